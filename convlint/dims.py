"""What every stage asks of a size expression, answered in one place: the input symbols
it depends on. (The symbolic core of issue 25 grows here: a size of the common form
carried without sympy.)"""

from __future__ import annotations

import functools
from typing import Any

import sympy


def free(expr: Any) -> frozenset:
    """The input symbols a size depends on; none for an int, None or a non-expression.
    sympy walks the whole tree on every ``free_symbols`` read, and a size is asked many
    times (every rule, the coverage, the domain): read once per expression."""
    return _free(expr) if isinstance(expr, sympy.Basic) else frozenset()


@functools.lru_cache(maxsize=65536)
def _free(expr: sympy.Basic) -> frozenset:
    return frozenset(expr.free_symbols)
