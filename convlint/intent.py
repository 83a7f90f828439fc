"""Where an author declared that a layer or block keeps its spatial size.

Four ways, all equivalent: a ``# convlint: same`` comment on a line of the
constructor call, ``padding="same"`` on a convolution, a ``same`` glob over qualified
module names in ``[tool.convlint]``, and ``convlint.same(module)`` in code.
"""
from __future__ import annotations

import fnmatch
import functools
import io
import re
import tokenize
from typing import Optional, Sequence

MARKER = "_convlint_same"
COMMENT = re.compile(r"#.*\bconvlint:\s*same\b")


def mark(module):
    """``convlint.same(module)``: declare that ``module`` keeps its size; returns it."""
    module.__dict__[MARKER] = True
    return module


@functools.lru_cache(maxsize=512)
def comment_lines(path: str) -> frozenset[int]:
    """Lines of ``path`` that carry a ``# convlint: same`` comment (real comments only)."""
    try:
        with open(path, "rb") as fh:
            source = fh.read()
    except OSError:
        return frozenset()
    lines = set()
    try:
        for token in tokenize.tokenize(io.BytesIO(source).readline):
            if token.type == tokenize.COMMENT and COMMENT.search(token.string):
                lines.add(token.start[0])
    except (tokenize.TokenError, SyntaxError):
        pass
    return frozenset(lines)


def declared(module, qualname: str, site, globs: Sequence[str]) -> Optional[str]:
    """How ``module`` declares same intent, or None."""
    if site is not None and comment_lines(site.path) & set(range(site.line, site.end_line + 1)):
        return "comment"
    if module.__dict__.get(MARKER):
        return "convlint.same()"
    if any(fnmatch.fnmatchcase(qualname, g) for g in globs):
        return "config"
    if getattr(module, "padding", None) == "same" and hasattr(module, "kernel_size"):
        return 'padding="same"'
    return None
