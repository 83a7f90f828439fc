"""What every stage asks of a size expression, answered in one place: the input symbols
it depends on. (The symbolic core of issue 25 grows here: a size of the common form
carried without sympy.)"""

from __future__ import annotations

import functools
import sys
from typing import Any

from convlint import lazy_sympy as sympy
from convlint.affine import Q, canonical


class _SympyClass(type):
    """A stand-in for the sympy class of its name in ``isinstance``: nothing is an
    instance of a sympy class before sympy is imported, so the check imports nothing."""

    def __instancecheck__(cls, obj: object) -> bool:
        module = sys.modules.get("sympy")
        return module is not None and isinstance(obj, getattr(module, cls.__name__))


class Basic(metaclass=_SympyClass):
    """``isinstance(x, Basic)``: is x a sympy object (sympy not imported for the question)."""


class Expr(metaclass=_SympyClass):
    """``isinstance(x, Expr)``: is x a sympy expression."""


def is_integer(x: Any) -> bool:
    """A whole number that does not depend on the input, as an expression: sympy's Integer,
    a constant Q (not a plain int: the shadows' fixed sizes are expressions)."""
    if isinstance(x, Q):
        return not x.terms
    return isinstance(x, Integer)


class Integer(metaclass=_SympyClass):
    """``isinstance(x, Integer)``: is x sympy's Integer."""


# A size expression: sympy's, or the exact type (``sizes.affine.Q``), which stands for one.
EXPR = (Expr, Q)
BASIC = (Basic, Q)


def free(expr: Any) -> frozenset:
    """The input symbols a size depends on; none for an int, None or a non-expression.
    sympy walks the whole tree on every ``free_symbols`` read, and a size is asked many
    times (every rule, the coverage, the domain): read once per expression."""
    if isinstance(expr, Q):
        return _free_names(expr.symbols())
    return _free(expr) if isinstance(expr, Basic) else frozenset()


@functools.lru_cache(maxsize=4096)
def _free_names(names: frozenset) -> frozenset:
    # a Q's symbols are Qs (equal to, and hashing as, their sympy forms: affine._size_symbol)
    return frozenset(Q.symbol(n) for n in names)


@functools.lru_cache(maxsize=65536)
def _free(expr: sympy.Basic) -> frozenset:
    return frozenset(canonical(s) for s in expr.free_symbols)
