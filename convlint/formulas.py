"""PyTorch's output-size formulas, in one place.

Every function here works on plain ``int`` and on sympy expressions alike, so the
same formula computes a concrete size, a symbolic size map and a candidate
padding. The formulas follow PyTorch's documentation and its C++ shape functions
(``pooling_output_shape``, ``conv_output_size``).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Sequence, Union

from convlint import lazy_sympy as sympy
from convlint.dims import Basic, is_integer

Size = Union[int, "sympy.Expr"]


def _affine(a, b) -> bool:
    """A size of the exact type (``sizes.affine.Q``) divided by a positive int (or a
    constant Q: ``diff // 2`` of sizes read in Python): it stays one."""
    if type(a).__name__ != "Q" or isinstance(b, bool):
        return False
    return (isinstance(b, int) or (type(b).__name__ == "Q" and b.is_constant)) and int(b) > 0


def is_int(x: object) -> bool:
    """An int, sympy's Integer or a constant Q (no sympy import for the question)."""
    return isinstance(x, int) or is_integer(x)


def _flatten(a, rounding) -> sympy.Expr:
    """``floor(y) + c`` -> ``y + c`` (c an integer), so that ``floor(floor(y)/b)`` becomes
    ``floor(y/b)`` (true for every positive integer b): a chain of stride-2 layers reads
    ``floor((H - 1)/32) + 1``, not five nested floors."""
    a = sympy.sympify(a)
    terms = sympy.Add.make_args(a)
    rounded = [t for t in terms if isinstance(t, rounding)]
    rest = [t for t in terms if not isinstance(t, rounding)]
    if len(rounded) == 1 and all(t.is_Integer for t in rest):
        return rounded[0].args[0] + sum(rest)
    return a


def _number(a: Size, value: int) -> Size:
    """``value`` as the same kind of number as ``a``: a sympy size stays a sympy size."""
    if type(a).__name__ == "Q":
        return type(a)(value)
    return sympy.Integer(value) if isinstance(a, Basic) else value


def fdiv(a: Size, b: int) -> Size:
    """Floor division that stays exact for ints and symbolic for expressions."""
    if _affine(a, b):
        return a.floor_div(int(b)).made_by(fdiv, a, b)
    if is_int(a) and is_int(b):
        return _number(a, int(a) // int(b))
    if b == 1:
        return a  # sizes are integers: nothing to round (and sympy is slow to find that out)
    return sympy.floor(_flatten(a, sympy.floor) / b)


def _roundings() -> dict:
    """Python's roundings of a size expression as sympy functions (made when sympy is first
    needed: defining a sympy Function imports it)."""

    class _PythonRounding(sympy.Function):
        """A Python rounding of a size expression (``rounding``: the builtin), exact on numbers
        and a no-op on integers; symbolic otherwise."""

        is_integer = True
        rounding = staticmethod(int)

        @classmethod
        def eval(cls, x):
            if x.is_Rational:
                return sympy.Integer(cls.rounding(Fraction(int(x.p), int(x.q))))
            return x if x.is_integer else None

    class trunc(_PythonRounding):
        """Python's ``int()`` of a size expression: toward zero (``int(-1/2) == 0``), where
        ``//`` floors (``-1 // 2 == -1``). A pad of ``int(diff / 2)`` on a negative diff crops
        one less than ``diff // 2`` does."""

        @classmethod
        def eval(cls, x):
            found = super().eval(x)
            if found is None and x.is_nonnegative:
                return sympy.floor(x)
            if found is None and x.is_nonpositive:
                return sympy.ceiling(x)
            return found

    class round_even(_PythonRounding):
        """Python's ``round()`` of a size expression: to the nearest, half to even."""

        rounding = staticmethod(round)

    for made in (_PythonRounding, trunc, round_even):
        made.__module__ = __name__
    return {"trunc": trunc, "round_even": round_even}


def __getattr__(name: str):
    """``trunc`` and ``round_even``, made on first use (sympy with them)."""
    if name in ("trunc", "round_even"):
        globals().update(_roundings())
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def cdiv(a: Size, b: int) -> Size:
    """Ceiling division: -((-a) // b)."""
    if _affine(a, b):
        return a.ceil_div(int(b)).made_by(cdiv, a, b)
    if is_int(a) and is_int(b):
        return _number(a, -(-int(a) // int(b)))
    if b == 1 and sympy.sympify(a).is_integer:
        return a
    # arange(0.5, n): a size minus a fraction, rounded up
    return sympy.ceiling(_flatten(a, sympy.ceiling) / b)


def mod(a: Size, b: int) -> Size:
    if _affine(a, b):
        return (a % int(b)).made_by(mod, a, b)
    if is_int(a) and is_int(b):
        return _number(a, int(a) % int(b))
    # sympy 1.14 rewrites a Mod whose dividend holds a multiple of a Mod wrongly, the inner
    # Mod squared (Mod(2*Mod(H + 3, 8), 7) -> Mod(2*Mod(H + 3, 8)**2, 7); sympy#28744,
    # sympy#29757): such a Mod is kept as written, and evaluates with Python's %.
    return sympy.Mod(a, b, evaluate=not _holds_multiple_of_mod(a))


def _holds_multiple_of_mod(expr: Size) -> bool:
    return isinstance(expr, sympy.Basic) and any(
        isinstance(term, sympy.Mul)
        and any(isinstance(f, sympy.Mod) for f in term.args)
        and term.as_coeff_Mul()[0] not in (1, -1)
        for term in sympy.preorder_traversal(expr)
    )


def effective_kernel(kernel: int, dilation: int) -> int:
    """Span of a dilated kernel: d*(k-1) + 1."""
    return dilation * (kernel - 1) + 1


def conv_out(n: Size, kernel: Size, stride: Size, pad_left: int, pad_right: int, dilation: int) -> Size:
    """Convolution: floor((n + pl + pr - d(k-1) - 1) / s) + 1."""
    return fdiv(n + pad_left + pad_right - dilation * (kernel - 1) - 1, stride) + 1


def pool_out(n: Size, kernel: Size, stride: Size, pad: int, dilation: int, ceil_mode: bool) -> Size:
    """Max/avg pooling, PyTorch's ``pooling_output_shape``.

    With ``ceil_mode`` the size rounds up, but the last window must start inside the
    input or the left padding, so it drops by one when ``(out-1)*s >= n + p``. The
    kernel and stride may be expressions (global pooling by ``kernel_size=x.size()[2:]``).
    """
    if not ceil_mode:
        return conv_out(n, kernel, stride, pad, pad, dilation)
    m = n + 2 * pad - dilation * (kernel - 1) - 1
    out = cdiv(m, stride) + 1
    # (out-1)*s = m + ((-m) mod s), so the drop happens exactly when
    # r = (-m) mod s >= c with c = d(k-1) + 1 - p; r lies in [0, s).
    c = dilation * (kernel - 1) + 1 - pad
    r = mod(-m, stride)
    if is_int(c) and is_int(stride):
        if c <= 0:
            return out - 1
        if c >= stride:
            return out
        return out - fdiv(r + stride - c, stride)
    # An expression's c may fall on either side: the drop is [r >= c], 0 or 1.
    return out - sympy.Max(0, sympy.Min(1, r - c + 1))


def conv_transpose_out(n: Size, kernel: int, stride: int, pad: int, dilation: int, output_padding: int) -> Size:
    """Transposed convolution: (n-1)s - 2p + d(k-1) + output_padding + 1."""
    return (n - 1) * stride - 2 * pad + dilation * (kernel - 1) + output_padding + 1


def same_target(n: Size, stride: Union[int, Fraction]) -> Size:
    """What "same" means: ceil(n / s) (stride 1: n).

    An upsampling layer or block has a fractional stride: a transposed convolution
    with stride 2 has stride 1/2, and "same" is then n * 2 (Keras' meaning).
    """
    if stride == 1:
        return n
    stride = Fraction(stride)
    return cdiv(n * stride.denominator, stride.numerator)


def same_total_padding(kernel: int, dilation: int) -> int:
    """Total padding (left + right) that keeps "same" for every n: d*(k-1)."""
    return dilation * (kernel - 1)


def split_padding(total: int) -> tuple[int, int]:
    """PyTorch's split of an asymmetric "same" pad: total//2 left, the rest right."""
    return total // 2, total - total // 2


def pad_pairs(amounts: Sequence[Size]) -> list[tuple[Size, Size]]:
    """F.pad's flat argument (the last dim's left, right first) as (left, right) pairs in
    dim order, first dim first: ``(1, 2, 3, 4)`` -> ``[(3, 4), (1, 2)]``."""
    pairs = [(amounts[2 * i], amounts[2 * i + 1]) for i in range(len(amounts) // 2)]
    return list(reversed(pairs))


def pad_argument(pairs: Sequence[tuple[Size, Size]]) -> tuple[Size, ...]:
    """(left, right) pairs in dim order as F.pad's flat argument (last dim first)."""
    return tuple(a for pair in reversed(pairs) for a in pair)


def same_pad_argument(kernel: Sequence[int], dilation: Sequence[int]) -> tuple[int, ...]:
    """F.pad amounts that give "same" sizes before an unpadded layer (PyTorch's split)."""
    return pad_argument([split_padding(same_total_padding(k, d)) for k, d in zip(kernel, dilation)])
