"""Where an author declared that a layer or block keeps its spatial size.

Four ways, all equivalent: a ``# convlint: same`` comment on a line of the
constructor call, ``padding="same"`` on a convolution, a ``same`` glob over qualified
module names in ``[tool.convlint]``, and ``convlint.same(module)`` in code.
"""

from __future__ import annotations

import enum
import fnmatch
from typing import Sequence

from convlint import comments

MARKER = "_convlint_same"


class Intent(str, enum.Enum):
    """How a module declares that it keeps its size."""

    COMMENT = "comment"  # `# convlint: same` on its constructor call
    API = "convlint.same()"  # convlint.same(module) in code
    CONFIG = "config"  # a `same` glob in [tool.convlint]
    PADDING_SAME = 'padding="same"'  # PyTorch keeps the size itself

    def __str__(self) -> str:
        return self.value


def mark(module):
    """``convlint.same(module)``: declare that ``module`` keeps its size; returns it."""
    module.__dict__[MARKER] = True
    return module


def _comment_owners(entries) -> set[str]:
    """Qualified names of the modules a ``# convlint: same`` comment belongs to.

    A comment belongs to the constructor calls on whose lines it stands; where calls
    nest (a layer inside ``nn.ModuleList([...])``), to the call spanning the fewest
    lines, and among calls on one line to the widest: a trailing comment speaks for its
    whole statement. Modules built by the same call (a loop) share its comment.
    """
    by_path: dict[str, list] = {}
    for qualname, _module, site in entries:
        if site is not None:
            by_path.setdefault(site.path, []).append((qualname, site))
    owners: set[str] = set()
    for path, items in by_path.items():
        for line in comments.same_lines(path):
            spans = {site for _, site in items if site.line <= line <= site.end_line}
            if not spans:
                continue
            best = min(
                spans, key=lambda s: (s.end_line - s.line, -(s.end_column - s.column) if s.line == s.end_line else 0)
            )
            owners.update(q for q, site in items if site == best)
    return owners


UNCALLED_CONTAINERS = ("ModuleList", "ModuleDict", "ParameterList")


def declarations(entries, globs: Sequence[str]) -> dict[str, Intent]:
    """How each module declares same intent: {qualified name: Intent.COMMENT, ...}.

    ``entries`` are (qualified name, module, construction site). Intent on a
    ``ModuleList`` or ``ModuleDict``, which is never called itself, passes to its members.
    """
    commented = _comment_owners(entries)
    found: dict[str, Intent] = {}
    for qualname, module, _site in entries:
        how = None
        if qualname in commented:
            how = Intent.COMMENT
        elif module.__dict__.get(MARKER):
            how = Intent.API
        elif any(fnmatch.fnmatchcase(qualname, g) for g in globs):
            how = Intent.CONFIG
        elif getattr(module, "padding", None) == "same" and hasattr(module, "kernel_size"):
            how = Intent.PADDING_SAME
        if how:
            found[qualname] = how
    for qualname, module, _site in entries:
        if qualname in found and type(module).__name__ in UNCALLED_CONTAINERS:
            for name, _child in module.named_children():
                found.setdefault(f"{qualname}.{name}" if qualname else name, found[qualname])
    return found
