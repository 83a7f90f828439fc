"""The one record every output format and the fixer read."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

ERROR, WARNING, INFO = "error", "warning", "info"
SAFE, UNSAFE, DISPLAY = "safe", "unsafe", "display-only"


@dataclass(frozen=True)
class Edit:
    """Replace the span (1-based line/column, end exclusive) with ``content``."""

    path: str
    line: int
    column: int
    end_line: int
    end_column: int
    content: str


@dataclass(frozen=True)
class Fix:
    description: str
    applicability: str = SAFE
    edits: tuple[Edit, ...] = ()


@dataclass(frozen=True)
class Related:
    """Another place the same root cause shows (a merge further downstream that the same
    layer breaks), as SARIF's ``relatedLocations``."""

    path: str
    line: int
    column: int
    end_line: int
    end_column: int
    message: str


@dataclass(frozen=True)
class Finding:
    code: str
    severity: str
    path: str
    line: int
    column: int
    end_line: int
    end_column: int
    message: str
    model: Optional[str] = None
    module: Optional[str] = None
    fix: Optional[Fix] = None
    related: tuple[Related, ...] = ()
    # the full expressions behind the message (size maps per dimension): JSON and SARIF only
    detail: Optional[str] = None

    def fixable(self, unsafe: bool = False) -> bool:
        """Would ``--fix`` (with ``--unsafe-fixes`` when ``unsafe``) apply this finding's fix?"""
        return self.fix is not None and bool(self.fix.edits) and (self.fix.applicability == SAFE or unsafe)

    def sort_key(self) -> tuple:
        return (self.path, self.line, self.column, self.code, self.module or "", self.message)

    def to_dict(self) -> dict:
        data = asdict(self)
        if self.fix is not None:
            data["fix"]["edits"] = [asdict(e) for e in self.fix.edits]
        data["related"] = [asdict(r) for r in self.related]
        return data
