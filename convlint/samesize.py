"""Deciding "keeps its size" for every input size, from one period of sizes.

Conv, pooling, padding and resampling maps are quasi-affine in the input size n:
``f(n) = r*n + q(n)`` with ``q`` periodic. Once ``f`` is defined it repeats with a
period that divides the product of the strides, and so does the target ``ceil(n/S)``.
Checking ``f(n) == ceil(n/S)`` on ``[n_min, n_min + P]`` therefore decides it for all
``n >= n_min`` (the endpoint pins the slope).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Optional

from convlint import formulas
from convlint import lazy_sympy as sympy
from convlint.dims import BASIC, Q, free

# Beyond this many sizes a period is not walked; the answer is then "unproven".
MAX_PERIOD = 1 << 16


@dataclass(frozen=True)
class Verdict:
    keeps: bool
    counterexample: Optional[int] = None  # an input size where the output is not ceil(n/S)
    got: Optional[int] = None
    want: Optional[int] = None
    n_min: int = 1


def keeps_same(out: Callable[[int], Optional[int]], stride, n_min: int, period: int) -> Verdict:
    """Does ``out(n) == ceil(n / stride)`` hold for every n >= n_min?

    ``stride`` may be a fraction (1/2 for an upsampling by 2: the target is then 2n).
    """
    period = math.lcm(max(1, period), Fraction(stride).numerator)
    if period > MAX_PERIOD:
        period = MAX_PERIOD
    for n in range(n_min, n_min + period + 1):
        got, want = out(n), formulas.same_target(n, stride)
        if got != want:
            return Verdict(False, n, got, want, n_min)
    return Verdict(True, n_min=n_min)


def period_of(expr) -> int:
    """A multiple of the period of a quasi-affine expression in its symbol.

    Periods multiply through nesting (``floor(floor(H/2)/2)`` repeats every 4) and take
    the least common multiple side by side (``floor(H/2) + floor(H/3)``: 6).
    """
    if expr is None or not isinstance(expr, BASIC) or not free(expr):
        return 1
    if isinstance(expr, Q):
        return min(expr.period(), MAX_PERIOD)
    return _period_of(expr)


@functools.lru_cache(maxsize=65536)
def periodic(expr) -> bool:
    """Do the sizes where conditions on the expression hold repeat with some period? Sums,
    constant multiples, floors, mods, Max and Min of sizes do (``period_of``), and so, in
    practice, does a product of them (``H*W`` against ``4*floor(H/2)*floor(W/2)``: H, W
    even; against a Linear's features: a few sizes, all within reach; a dim a view infers,
    the old size divided by the new ones). A root of a size does not (tokens folded to a
    side of ``int(sqrt(L))``: squares)."""
    if not isinstance(expr, BASIC) or not free(expr) or expr.is_Symbol:
        return True
    if isinstance(expr, sympy.Pow) and (free(expr.exp) or not expr.exp.is_Integer):
        return False
    return all(periodic(a) for a in expr.args)


@functools.lru_cache(maxsize=65536)  # shared parts (a sum of sums) are met many times
def _period_of(expr: sympy.Basic) -> int:
    if isinstance(expr, (sympy.floor, sympy.ceiling, formulas.trunc, formulas.round_even)):
        arg = expr.args[0]
        step = 1
        for coefficient in arg.as_coefficients_dict().values():
            if isinstance(coefficient, sympy.Rational):
                step = math.lcm(step, int(coefficient.q))
        return min(period_of(arg) * step, MAX_PERIOD)
    if isinstance(expr, sympy.Mod):
        modulus = int(expr.args[1]) if expr.args[1].is_Integer else 1
        return min(period_of(expr.args[0]) * abs(modulus), MAX_PERIOD)
    period = 1
    for arg in expr.args:
        period = min(math.lcm(period, period_of(arg)), MAX_PERIOD)
    return period


def slope(out: Callable[[int], Optional[int]], n: int, period: int) -> Optional[Fraction]:
    """Output growth per input step, from one period: 1/S for a stride-S block."""
    a, b = out(n), out(n + period)
    if a is None or b is None:
        return None
    return Fraction(b - a, period)


def smallest_defined(defined: Callable[[int], bool], upper: int) -> Optional[int]:
    """Smallest n in [1, upper] with ``defined(n)``; sizes grow with n, so bisect."""
    if not defined(upper):
        return None
    lo, hi = 1, upper
    while lo < hi:
        mid = (lo + hi) // 2
        if defined(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


@dataclass(frozen=True)
class AxisVerdict:
    """Whether one spatial dimension keeps "same", with the map that decided it."""

    symbol: sympy.Symbol
    expression: Optional[sympy.Expr]
    stride: Optional[Fraction]  # 1/2 for an upsampling by 2
    verdict: Optional[Verdict]  # None: could not be decided


def layer_verdicts(geometry) -> tuple[AxisVerdict, ...]:
    """Per spatial dim of a conv or pooling layer: its size map and whether it keeps "same"."""
    from functools import partial

    from convlint.sizes import SPATIAL_NAMES, integer, symbol

    result = []
    for i, name in enumerate(SPATIAL_NAMES[geometry.ndim]):
        sym, stride = symbol(name), geometry.scale_stride(i)
        verdict = keeps_same(partial(geometry.out_dim, i), stride, geometry.min_input(i), stride.numerator)
        out = geometry.out_dim(i, sym)
        result.append(AxisVerdict(sym, integer(out) if isinstance(out, int) else out, stride, verdict))
    return tuple(result)


def condition(passes: dict, n0: int, period: int) -> Callable[[list], str]:
    """The shortest statement of which sizes pass, as a function of the dims' names:
    ``H and W must be multiples of 16``, ``H % 16 must be in {0, 1}``."""
    for m in sorted(d for d in range(1, period + 1) if period % d == 0):
        if all(passes[n] == passes[n0 + (n - n0) % m] for n in passes):
            residues = sorted({n % m for n in passes if passes[n]})
            if not residues:
                break
            if residues == [0]:
                return lambda names: (
                    f"{' and '.join(names)} must be {'multiples' if len(names) > 1 else 'a multiple'} of {m}"
                )
            allowed = "{" + ", ".join(map(str, residues)) + "}"
            return lambda names: f"{' and '.join(f'{n} % {m}' for n in names)} must be in {allowed}"
    return lambda names: f"{' and '.join(names)} must be one of the few sizes where both agree"


def agreement(
    example: dict,
    a,
    b,
    symbol,
    n0: Callable[[], int],
    allowed: Optional[Callable[[int], bool]] = None,
    broadcasts: bool = False,
) -> Optional[tuple]:
    """Where two size expressions agree, along input dim ``symbol`` (the others at their
    example sizes), for n >= n0() (the smallest valid size, asked for only when needed):
    (condition, smallest failing n, first failing n above the example), or None when they
    agree for every n. Decided over two periods. With ``broadcasts`` (an elementwise
    merge) a size of 1 on either side is no failure: PyTorch broadcasts it."""
    from convlint.sizes import evaluate_int

    others = {s: v for s, v in example.items() if s is not symbol}
    if isinstance(a, Q) and isinstance(b, Q):  # the exact type: no sympy
        named = {str(s): v for s, v in others.items()}
        a, b = a.partly(named), b.partly(named)
    else:
        a, b = sympy.sympify(sympy.sympify(a).xreplace(others)), sympy.sympify(sympy.sympify(b).xreplace(others))
    if symbol not in (free(a) | free(b)) or a == b:
        return None
    n0 = n0()  # costly: only once the expressions differ
    period = min(math.lcm(period_of(a), period_of(b)), MAX_PERIOD)

    def agree(n: int, broadcast: bool = False) -> bool:
        if allowed is not None and not allowed(n):
            return True  # outside the sizes the model itself accepts
        x, y = evaluate_int(a, {symbol: n}), evaluate_int(b, {symbol: n})
        return x == y or (broadcast and 1 in (x, y))

    passes = {n: agree(n) for n in range(n0, n0 + 2 * period)}
    if all(passes.values()):
        return None
    # Sizes are 1 only near the smallest input: a few more periods find the first real failure.
    smallest = next((n for n in range(n0, n0 + 4 * period + 8) if not agree(n, broadcasts)), None)
    if smallest is None:
        return None  # every difference is a size of 1 that broadcasts
    if all(passes[n] == passes[n + period] for n in range(n0, n0 + period)):
        statement = condition({n: passes[n] for n in range(n0, n0 + period)}, n0, period)
    else:  # different slopes: they meet at a few sizes at most
        statement = condition({}, n0, 1)
    start = example[symbol] + 1
    above = next((n for n in range(start, start + 2 * period + 1) if not agree(n, broadcasts)), None)
    return statement, smallest, above


# ---------------------------------------------------------------- the padding that keeps "same"


def odd_axes(geometry) -> list[int]:
    """Dims where no symmetric padding works (a transposed conv has output_padding to even it out)."""
    from convlint import layers

    if geometry.kind == layers.TRANSPOSED:
        return []
    return [i for i in range(geometry.ndim) if geometry.keeping_total(i) % 2]


def keeping_padding(geometry) -> Optional[dict[str, tuple[int, ...]]]:
    """The arguments that keep the size for every input, checked: ``{"padding": (6, 6)}``,
    with ``output_padding`` too for a transposed convolution; None when there are none."""
    from convlint import layers as layers_mod

    if odd_axes(geometry):
        return None
    if geometry.kind == layers_mod.TRANSPOSED:
        fix = transposed_padding(geometry)
        if fix is None:
            return None
        fixed = geometry.with_padding(fix["padding"], fix["output_padding"])
    else:
        padding = geometry.symmetric_keeping_padding()
        if geometry.kind != layers_mod.CONV and any(p > k // 2 for p, k in zip(padding, geometry.kernel)):
            return None  # pooling refuses padding above half the kernel
        fix, fixed = {"padding": padding}, geometry.with_padding(padding)
    if all(a.verdict.keeps for a in layer_verdicts(fixed)):
        return fix
    return None


def transposed_padding(geometry) -> Optional[dict[str, tuple[int, ...]]]:
    """Output n*s needs 2p - output_padding = d(k-1) + 1 - s; keep output_padding if it can."""
    padding, output_padding = [], []
    for i in range(geometry.ndim):
        s, d = geometry.stride[i], geometry.dilation[i]
        allowed = [geometry.output_padding[i]] + [op for op in range(max(s, d)) if op != geometry.output_padding[i]]
        need = geometry.effective_kernel(i) - s
        for op in allowed:
            if need + op >= 0 and (need + op) % 2 == 0:
                padding.append((need + op) // 2)
                output_padding.append(op)
                break
        else:
            return None
    return {"padding": tuple(padding), "output_padding": tuple(output_padding)}
