"""The fast path: which files can define a model, decided without importing anything.

A pre-commit hook is handed every changed Python file; most define no model. A file is
imported only if it has a class whose bases could make it an ``nn.Module`` (anything
but plain Python bases such as ``object``, exceptions, enums, ``NamedTuple``), or if it
cannot be parsed (so the import reports the error). ``# convlint: skip-file`` skips a
file outright. When no file needs importing, torch is never imported.
"""

from __future__ import annotations

import ast
import builtins

from convlint import comments

_PLAIN_BASES = {
    "object",
    "Enum",
    "IntEnum",
    "StrEnum",
    "Flag",
    "IntFlag",
    "NamedTuple",
    "TypedDict",
    "Protocol",
    "Generic",
    "ABC",
    "dict",
    "list",
    "tuple",
    "set",
    "str",
    "int",
    "float",
    "Exception",
    "BaseException",
}


def _plain(base: ast.expr) -> bool:
    """A base that cannot make a class an nn.Module."""
    if isinstance(base, ast.Subscript):  # Generic[T], Protocol[T], dict[str, int]
        base = base.value
    name = base.attr if isinstance(base, ast.Attribute) else base.id if isinstance(base, ast.Name) else None
    if name is None:
        return False
    builtin = getattr(builtins, name, None)
    if isinstance(builtin, type) and issubclass(builtin, BaseException):
        return True
    return name in _PLAIN_BASES


def needs_import(path: str) -> bool:
    """Can ``path`` define a model? (True when unsure.)"""
    if comments.skip_file(path):
        return False
    try:
        with open(path, "rb") as fh:
            tree = ast.parse(fh.read(), filename=path)
    except (OSError, SyntaxError, ValueError):
        return True  # let the import say what is wrong
    return any(
        isinstance(node, ast.ClassDef) and node.bases and not all(_plain(b) for b in node.bases)
        for node in ast.walk(tree)
    )
