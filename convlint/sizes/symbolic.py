"""Symbolic sizes: a tensor's shadow (one sympy expression per dimension, or None where
unknown), the input's symbols (``H``, ``W``), and exact evaluation at integer sizes."""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Callable, Optional, Sequence

import torch

from convlint import formulas
from convlint import lazy_sympy as sympy
from convlint.dims import BASIC, EXPR, Q, free

Dim = Optional["sympy.Expr"]  # None: unknown, the concrete size is all there is

SPATIAL_NAMES = {1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}


# The input's sizes are carried as the exact type Q (convlint.affine), its symbols and
# constants Qs too: sympy is imported only for what Q does not hold. CONVLINT_SYMBOLIC_CORE=sympy
# carries every size as a sympy expression instead (the path Q is tested against).
AFFINE = os.environ.get("CONVLINT_SYMBOLIC_CORE") != "sympy"


def symbol(name: str) -> "sympy.Symbol":
    """An input size's symbol (a Q of it, with the affine core)."""
    return Q.symbol(name) if AFFINE else sympy.Symbol(name, integer=True, positive=True)


def integer(value: int) -> "sympy.Integer":
    """A size that does not depend on the input (a Q, with the affine core)."""
    return Q(int(value)) if AFFINE else sympy.Integer(value)


input_dim = symbol  # the size of an input's spatial axis


@dataclass(frozen=True)
class SymTensor:
    """Shadow of a tensor: one expression (or None) per dimension."""

    dims: tuple

    def __len__(self) -> int:
        return len(self.dims)


def constant_shadow(value: Any) -> Any:
    """Shadow of a value that does not depend on the input sizes."""
    if isinstance(value, torch.Tensor):
        return SymTensor(tuple(integer(s) for s in value.shape))
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return integer(value)
    if isinstance(value, (tuple, list)):
        return tuple(constant_shadow(v) for v in value)
    return value


def unknown_shadow(value: Any) -> Any:
    """Shadow of a value whose input dependence convlint cannot follow."""
    if isinstance(value, torch.Tensor):
        return SymTensor((None,) * value.dim())
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return None
    if isinstance(value, (tuple, list)):
        return tuple(unknown_shadow(v) for v in value)
    return value


def has_symbols(shadow: Any) -> bool:
    """True when a shadow depends on the input sizes (or is unknown)."""
    if shadow is None:
        return True
    if isinstance(shadow, SymTensor):
        return any(d is None or free(d) for d in shadow.dims)
    if isinstance(shadow, BASIC):
        return bool(free(shadow))
    if isinstance(shadow, (tuple, list)):
        return any(has_symbols(s) for s in shadow)
    if isinstance(shadow, dict):
        return any(has_symbols(s) for s in shadow.values())
    return False


def lift(fn: Callable, *dims: Dim) -> Dim:
    """Apply a formula to dims, unknown in -> unknown out."""
    if any(d is None for d in dims):
        return None
    result = fn(*dims)
    return result if isinstance(result, Q) else sympy.sympify(result)


def as_dim(shadow: Any) -> Dim:
    """A shadow used as a size: ints and expressions pass, anything else is unknown."""
    if isinstance(shadow, bool):
        return None
    if isinstance(shadow, int):
        return integer(shadow)
    if isinstance(shadow, float) and math.isfinite(shadow):
        # stride = float(32): the nearest simple fraction, as PyTorch's scales are read
        return sympy.Rational(Fraction(shadow).limit_denominator(1 << 20))
    if isinstance(shadow, EXPR):
        return shadow
    return None


def size_args(values: Sequence[Any]) -> tuple:
    """Sizes given one by one (``view(b, -1)``) or as one tuple (``view((b, -1))``)."""
    if len(values) == 1 and isinstance(values[0], (tuple, list)):
        return tuple(values[0])
    return tuple(values)


def spatial(shadow: SymTensor, ndim: int) -> tuple:
    """The trailing ``ndim`` dims of a shadow."""
    return shadow.dims[len(shadow.dims) - ndim :]


def with_spatial(shadow: SymTensor, ndim: int, dims: Sequence[Dim], channels: Any = "keep") -> SymTensor:
    """``shadow`` with its trailing ``ndim`` dims replaced (and its channels, if given)."""
    lead = list(shadow.dims[: len(shadow.dims) - ndim])
    if channels != "keep" and lead:
        lead[-1] = integer(channels)
    return SymTensor(tuple(lead) + tuple(dims))


def tree_size(expr: Any) -> int:
    """How many nodes an expression has written out as a tree (shared parts counted each
    time they occur): what printing, comparing and substituting it cost."""
    return _tree_size(expr) if isinstance(expr, BASIC) else 1


@functools.lru_cache(maxsize=65536)
def _tree_size(expr: sympy.Basic) -> int:
    return 1 + sum(_tree_size(a) for a in expr.args)


# ---------------------------------------------------------------- evaluation


def evaluate(expr: Dim, values: dict) -> Optional[int]:
    """An expression's integer value with the symbols set, by sympy (None stays None)."""
    if expr is None:
        return None
    if isinstance(expr, int):
        return expr
    result = expr.xreplace(values)
    if not result.is_Integer:
        result = sympy.simplify(result)
    return int(result) if result.is_Integer else None


def _product(values: list):
    result = values[0]
    for v in values[1:]:
        result = result * v
    return result


@functools.cache
def _exact_functions() -> dict:
    """The functions sizes are made of, evaluated on ints and Fractions."""
    return {
        sympy.Add: lambda a: sum(a[1:], a[0]),
        sympy.Mul: _product,
        sympy.Pow: lambda a: Fraction(a[0]) ** a[1],  # an int to a negative power stays exact
        sympy.floor: lambda a: math.floor(a[0]),
        sympy.ceiling: lambda a: math.ceil(a[0]),
        formulas.trunc: lambda a: int(a[0]),
        formulas.round_even: lambda a: round(a[0]),
        sympy.Mod: lambda a: a[0] % a[1],
        sympy.Min: min,
        sympy.Max: max,
        sympy.Eq: lambda a: a[0] == a[1],
        sympy.Ne: lambda a: a[0] != a[1],
        sympy.StrictLessThan: lambda a: a[0] < a[1],
        sympy.LessThan: lambda a: a[0] <= a[1],
        sympy.StrictGreaterThan: lambda a: a[0] > a[1],
        sympy.GreaterThan: lambda a: a[0] >= a[1],
        sympy.Not: lambda a: not a[0],
        sympy.And: all,
        sympy.Or: any,
    }


@functools.cache
def _code_of() -> tuple[dict, dict]:
    """How the compiled form writes each function: (operators, calls)."""
    operators = {
        sympy.Add: " + ", sympy.Mul: " * ", sympy.Mod: " % ",
        sympy.Eq: " == ", sympy.Ne: " != ", sympy.StrictLessThan: " < ", sympy.LessThan: " <= ",
        sympy.StrictGreaterThan: " > ", sympy.GreaterThan: " >= ",
    }  # fmt: skip
    calls = {
        sympy.floor: "_floor", sympy.ceiling: "_ceil", formulas.trunc: "int", formulas.round_even: "round",
        sympy.Min: "min", sympy.Max: "max", sympy.And: "_all", sympy.Or: "_any", sympy.Not: "_not",
    }  # fmt: skip
    return operators, calls


@functools.lru_cache(maxsize=8192)
def _compiled(expr) -> Callable[[dict], Any]:
    """``expr`` as a Python function of the symbol values, on ints and Fractions: one line
    per distinct subexpression (window partitions repeat ``floor((H - 1)/4)`` dozens of
    times), so a size is as cheap to evaluate as the model's own arithmetic."""
    operators, calls = _code_of()
    lines: list[str] = []
    names: dict = {}
    namespace: dict = {
        "_F": Fraction, "_floor": math.floor, "_ceil": math.ceil,
        "_all": lambda *a: all(a), "_any": lambda *a: any(a), "_not": lambda a: not a,
    }  # fmt: skip

    def visit(e) -> str:
        if e in names:
            return names[e]
        if e is sympy.true or e is sympy.false:
            code = str(bool(e))
        elif e.is_Integer:
            code = str(int(e))
        elif e.is_Rational:
            code = f"_F({int(e.p)}, {int(e.q)})"
        elif e.is_Symbol:
            namespace[f"_S{len(namespace)}"] = e
            code = f"env[_S{len(namespace) - 1}]"
        elif type(e) in (sympy.floor, sympy.ceiling) and _scaled(e.args[0]) is not None:
            # floor((H + 1)/2) as (H + 1) // 2: on ints, not Fractions (ten times faster)
            scaled, q = _scaled(e.args[0])
            code = f"{visit(scaled)} // {q}" if type(e) is sympy.floor else f"-((-{visit(scaled)}) // {q})"
        elif type(e) is sympy.Pow and e.args[1].is_Integer:
            base, k = visit(e.args[0]), int(e.args[1])
            code = f"{base} ** {k}" if k >= 0 else f"_F(1) / ({base} ** {-k})"  # an int to a negative power stays exact
        elif type(e) in operators:
            code = operators[type(e)].join(visit(a) for a in e.args)
        elif type(e) in calls:
            code = f"{calls[type(e)]}({', '.join(visit(a) for a in e.args)})"
        else:
            raise TypeError(type(e).__name__)
        names[e] = f"t{len(lines)}"
        lines.append(f"    t{len(lines)} = {code}")
        return names[e]

    # A tuple of expressions is one function: their shared subexpressions computed once.
    result = "(" + "".join(f"{visit(e)}, " for e in expr) + ")" if isinstance(expr, tuple) else visit(expr)
    exec("def _f(env):\n" + "\n".join(lines) + f"\n    return {result}\n", namespace)
    return namespace["_f"]


def _scaled(arg) -> Optional[tuple]:
    """(q * arg, q) when q * arg is a whole number at every size (q the common denominator
    of ``arg``'s coefficients), else None."""
    q = 1
    for coefficient in arg.as_coefficients_dict().values():
        if not coefficient.is_Rational:
            return None
        q = math.lcm(q, int(coefficient.q))
    scaled = sympy.expand_mul(q * arg) if q > 1 else arg
    return (scaled, q) if q > 1 and _integral(scaled) else None


@functools.lru_cache(maxsize=65536)
def _integral(e) -> bool:
    """Is ``e`` a whole number at every integer size? (Only what the structure shows.)"""
    if e.is_Integer or (e.is_Symbol and e.is_integer):
        return True
    if type(e) in (sympy.floor, sympy.ceiling, formulas.trunc, formulas.round_even):
        return True
    if type(e) in (sympy.Add, sympy.Mul, sympy.Max, sympy.Min, sympy.Mod):
        return all(_integral(a) for a in e.args)
    if type(e) is sympy.Pow:
        return e.args[1].is_Integer and e.args[1] >= 0 and _integral(e.args[0])
    return False


def _exact(expr, env: dict):
    """Evaluate a size expression exactly (ints and Fractions), far faster than subs."""
    if isinstance(expr, Q):
        return expr.value(env)
    try:
        fn = _compiled(expr)
    except (TypeError, RecursionError, SyntaxError, MemoryError):
        return _walk(expr, env)
    return fn(env)


def _walk(expr, env: dict):
    """``_exact`` node by node: for what the compiled form does not take."""
    if expr is sympy.true or expr is sympy.false:
        return bool(expr)
    if expr.is_Integer:
        return int(expr)
    if expr.is_Rational:
        return Fraction(int(expr.p), int(expr.q))
    if expr.is_Symbol:
        return env[expr]
    fn = _exact_functions().get(type(expr))
    if fn is None:
        raise TypeError(type(expr).__name__)
    return fn([_walk(a, env) for a in expr.args])


def exact_values(exprs: tuple, env: dict) -> Optional[tuple]:
    """``exact_value`` of each of ``exprs`` (sympy expressions or ints) in one call; None
    when one cannot be evaluated."""
    if any(isinstance(e, Q) for e in exprs):
        if all(type(e) is Q or type(e) is int for e in exprs):  # the common case, called most
            try:
                return tuple(e if type(e) is int else e.value(env) for e in exprs)
            except KeyError:
                return None  # a size of a symbol the env does not set: as exact_value says
        values = tuple(exact_value(e, env) for e in exprs)
        return None if any(v is None for v in values) else values
    try:
        return _compiled(tuple(sympy.Integer(e) if isinstance(e, int) else e for e in exprs))(env)
    except (TypeError, KeyError, ZeroDivisionError, RecursionError, SyntaxError, MemoryError):
        values = tuple(exact_value(e, env) for e in exprs)
        return None if any(v is None for v in values) else values


def evaluate_int(expr: Dim, env: dict) -> Optional[int]:
    """``expr`` at integer symbol values (``{H: 19}``); None when unknown or not an integer."""
    if expr is None:
        return None
    if isinstance(expr, int):
        return expr
    try:
        value = _exact(expr, env)
    except (TypeError, KeyError, ZeroDivisionError):
        # Outside the exact evaluator's functions: sympy decides (slow, rare).
        return evaluate(expr, {k: sympy.Integer(v) for k, v in env.items()})
    if isinstance(value, Fraction):
        return int(value) if value.denominator == 1 else None
    return int(value)


def exact_value(expr: Dim, env: dict) -> Optional[Any]:
    """``expr`` at integer symbol values as an int or a Fraction (``floor(H/4)*H/49`` need
    not be whole: a view's inferred dim); None when it cannot be evaluated."""
    if expr is None or isinstance(expr, int):
        return expr
    try:
        return _exact(expr, env)
    except (TypeError, KeyError, ZeroDivisionError):
        return None


def holds(relation, env: dict) -> Optional[bool]:
    """A relation on sizes (a guard: ``Eq(Mod(H, 32), 0)``) at integer symbol values;
    None when it cannot be decided."""
    try:
        return bool(_exact(relation, env))
    except (TypeError, KeyError, ZeroDivisionError):
        value = relation.xreplace({k: sympy.Integer(v) for k, v in env.items()})
        return bool(value) if value in (sympy.true, sympy.false) else None
