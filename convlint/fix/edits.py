"""Fixes: edits to a layer's constructor call, found with libcst, applied safely.

The rules decide *what* a call's padding must be; this module finds the call in the
source (by the exact span recorded when the layer was built), turns the decision into
``Edit``s, and applies them: all edits to a file in one write, through a temporary file
and an atomic rename, keeping the file's mode and line endings, and only when the file
is unchanged since it was read and still parses afterwards.

libcst is imported here only, and only when a fix is asked for.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import stat
import tempfile
from dataclasses import dataclass, field
from typing import Optional, Sequence

from convlint import signatures
from convlint.finding import Edit, Finding

# Positions of (name) in each layer's constructor, for calls that pass it positionally.
SIGNATURES = signatures.MODULES


class FixError(Exception):
    """Why no edit can be made; the finding says so."""


# ---------------------------------------------------------------- reading source


@dataclass
class Source:
    path: str
    data: bytes
    text: str
    digest: str
    newline: str
    _wrapper: object = None
    _positions: object = None

    @property
    def lines(self) -> list[str]:
        return self.text.splitlines(keepends=True)

    def parsed(self):
        """libcst module and node positions; FixError when libcst cannot round-trip the file."""
        if self._wrapper is None:
            import libcst as cst
            from libcst.metadata import MetadataWrapper, PositionProvider

            try:
                module = cst.parse_module(self.text)
            except Exception as exc:
                raise FixError(f"libcst cannot parse {self.path}: {str(exc).splitlines()[0]}") from None
            if module.code != self.text:
                raise FixError(f"libcst does not reproduce {self.path} byte for byte")
            self._wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
            self._positions = self._wrapper.resolve(PositionProvider)
        return self._wrapper, self._positions


_SOURCES: dict[str, Source] = {}


def read_source(path: str) -> Source:
    """The file as convlint read it; fixes are applied only if it is still the same."""
    key = os.path.abspath(path)
    if key not in _SOURCES:
        with open(key, "rb") as fh:
            data = fh.read()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise FixError(f"{path} is not UTF-8") from None
        newline = "\r\n" if "\r\n" in text else "\n"
        _SOURCES[key] = Source(path, data, text, hashlib.sha256(data).hexdigest(), newline)
    return _SOURCES[key]


# ---------------------------------------------------------------- finding the call


@dataclass
class CallRef:
    """A constructor call in source, with its arguments by name and by position."""

    source: Source
    node: object  # libcst.Call
    positions: object

    def span(self, node) -> tuple[int, int, int, int]:
        """1-based line and column, end exclusive, as ``Edit`` wants them."""
        r = self.positions[node]
        return r.start.line, r.start.column + 1, r.end.line, r.end.column + 1

    def code(self, node) -> str:
        wrapper, _ = self.source.parsed()
        return wrapper.module.code_for_node(node)

    def argument(self, name: str, kind: str):
        """The argument node for parameter ``name``: keyword, or positional by signature
        (None for a parameter the layer does not have: a pooling layer's ``dilation``)."""
        if name not in SIGNATURES[kind]:
            return None
        return argument(self.node, name, SIGNATURES[kind].index(name), strict=True)


def argument(node, name: str, index: Optional[int], strict: bool = False):
    """The ``libcst.Arg`` of a call that gives parameter ``name``: by keyword, or the
    ``index``-th positional one. ``strict``: a call with ``*args``/``**kwargs`` is a
    ``FixError`` (the argument could be anywhere); otherwise they are passed over."""
    for arg in node.args:
        if arg.keyword is not None and arg.keyword.value == name:
            return arg
    if strict and any(arg.star for arg in node.args):
        raise FixError("the call passes *args or **kwargs")
    positional = [arg for arg in node.args if arg.keyword is None and not arg.star]
    return positional[index] if index is not None and index < len(positional) else None


def find_call(site) -> CallRef:
    import libcst as cst

    from convlint.common import relpath

    source = read_source(relpath(site.path))
    wrapper, positions = source.parsed()
    want = (site.line, site.column - 1, site.end_line, site.end_column - 1)
    for node, r in positions.items():
        if isinstance(node, cst.Call) and (r.start.line, r.start.column, r.end.line, r.end.column) == want:
            return CallRef(source, node, positions)
    raise FixError(f"no call at {site.path}:{site.line}:{site.column} in the current source")


def _needs_parentheses(code: str, node) -> bool:
    import libcst as cst

    return not isinstance(node, (cst.Name, cst.Attribute, cst.Integer, cst.Subscript, cst.Call))


def operand(call: CallRef, arg) -> str:
    """An argument's source, parenthesised where an operator would bind into it."""
    text = call.code(arg.value).strip()
    return f"({text})" if _needs_parentheses(text, arg.value) else text


def set_argument(call: CallRef, name: str, kind: Optional[str], value: str, index: Optional[int] = None) -> Edit:
    """Replace argument ``name``'s value with ``value``, or add ``name=value``. ``kind``
    names a torch layer's signature; a helper's call gives the parameter's ``index``."""
    arg = call.argument(name, kind) if kind is not None else argument(call.node, name, index, strict=True)
    path = call.source.path
    if arg is not None:
        line, col, end_line, end_col = call.span(arg.value)
        if getattr(arg.value, "lpar", None) and value.startswith("(") and value.endswith(")"):
            value = value[1:-1]  # the span is inside the written parentheses: (0, 1) -> (0, 2)
        return Edit(path, line, col, end_line, end_col, value)
    args = call.node.args
    if not args:
        raise FixError("the call has no arguments to place the new one after")
    last = args[-1]
    last_line, last_col, last_end_line, last_end_col = call.span(last.value)
    call_end_line = call.span(call.node)[2]
    import libcst as cst

    trailing_comma = isinstance(last.comma, cst.Comma)
    if trailing_comma and call_end_line > last_end_line:
        # One argument per line with a trailing comma: a line of its own, same indent,
        # after the last argument's line (and the comment that may end it).
        line_text = call.source.lines[last_line - 1]
        indent = line_text[: len(line_text) - len(line_text.lstrip(" \t"))]
        return Edit(path, last_end_line + 1, 1, last_end_line + 1, 1, f"{indent}{name}={value},{call.source.newline}")
    if trailing_comma:
        return Edit(path, last_end_line, last_end_col + 1, last_end_line, last_end_col + 1, f" {name}={value},")
    return Edit(path, last_end_line, last_end_col, last_end_line, last_end_col, f", {name}={value}")


# ---------------------------------------------------------------- applying


def _offset(lines: list[str], line: int, column: int) -> int:
    return sum(len(text) for text in lines[: line - 1]) + column - 1


def apply_edits(text: str, edits: Sequence[Edit]) -> str:
    """Apply non-overlapping edits (identical ones once) to ``text``."""
    lines = text.splitlines(keepends=True)
    spans = sorted(
        {(_offset(lines, e.line, e.column), _offset(lines, e.end_line, e.end_column), e.content) for e in edits},
        reverse=True,
    )
    end_of_next = None
    for start, end, content in spans:
        if end_of_next is not None and end > end_of_next:
            raise FixError("edits overlap")
        text = text[:start] + content + text[end:]
        end_of_next = start
    return text


@dataclass
class Outcome:
    """What applying fixes did, file by file."""

    fixed: list = field(default_factory=list)  # findings whose fix was written
    errors: list = field(default_factory=list)  # (path, reason)
    diffs: list = field(default_factory=list)  # unified diffs, for --diff
    written: list = field(default_factory=list)  # paths


def apply(findings: Sequence[Finding], *, unsafe: bool = False, write: bool = True) -> Outcome:
    """Apply the fixes of ``findings`` (safe ones, and unsafe ones with ``unsafe``).

    Per file, all edits in one write; a file that changed since it was read, that
    would not parse afterwards, or that cannot be written is reported and left as it is.
    """
    outcome = Outcome()
    by_path: dict[str, list[Finding]] = {}
    for f in findings:
        if f.fixable(unsafe):  # a fix's edits all lie in the file of its call
            by_path.setdefault(f.fix.edits[0].path, []).append(f)
    for path in sorted(by_path):
        group = by_path[path]
        try:
            new_text, source = _fixed_text(path, group)
        except (FixError, OSError) as exc:
            outcome.errors.append((path, str(exc)))
            continue
        rel = os.path.relpath(path)
        outcome.diffs.append(
            "".join(
                difflib.unified_diff(
                    source.text.splitlines(keepends=True), new_text.splitlines(keepends=True), f"a/{rel}", f"b/{rel}"
                )
            )
        )
        if write:
            try:
                write_atomically(path, new_text.encode("utf-8"))
            except OSError as exc:
                outcome.errors.append((path, f"cannot write: {exc.strerror or exc}"))
                continue
            outcome.written.append(path)
        outcome.fixed.extend(group)
    return outcome


def _fixed_text(path: str, group: Sequence[Finding]) -> tuple[str, Source]:
    import libcst as cst

    source = read_source(path)
    with open(path, "rb") as fh:
        if hashlib.sha256(fh.read()).hexdigest() != source.digest:
            raise FixError(f"{path} changed on disk since convlint read it; run convlint again")
    edits = [e for f in group for e in f.fix.edits]
    new_text = apply_edits(source.text, edits)
    try:
        cst.parse_module(new_text)
    except Exception as exc:
        raise FixError(f"the fixed {path} would not parse ({str(exc).splitlines()[0]}); left as it was") from None
    return new_text, source


def write_atomically(path: str, data: bytes) -> None:
    """Write through a temporary file in the same folder and rename it over ``path``,
    keeping the mode; a crash leaves the old file or the new one, never half of one."""
    mode = stat.S_IMODE(os.stat(path).st_mode)
    # No write bit for anyone means read-only on purpose, even to root (who could write it).
    if not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) or not os.access(path, os.W_OK):
        raise PermissionError(13, "the file is read-only")
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".convlint-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _SOURCES.pop(os.path.abspath(path), None)
