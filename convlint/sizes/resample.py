"""Transfer functions of padding and resampling: F.pad and pad layers, interpolation,
upsampling, pixel shuffle."""

from __future__ import annotations

from fractions import Fraction
from typing import Any, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from convlint import formulas, layers
from convlint import lazy_sympy as sympy
from convlint.formulas import fdiv
from convlint.sizes.symbolic import SymTensor, as_dim, constant_shadow, has_symbols, lift, spatial, with_spatial
from convlint.sizes.transfer import Call, Unpredictable, fallback, for_functions, for_modules


def _pad(call: Call, amounts: Sequence[Any]) -> SymTensor:
    dims = list(call.sargs[0].dims)
    pairs = formulas.pad_pairs(amounts)
    for axis, (left, right) in enumerate(pairs, start=len(dims) - len(pairs)):
        dims[axis] = lift(lambda n, a, b: n + a + b, dims[axis], as_dim(left), as_dim(right))
    return SymTensor(tuple(dims))


@for_functions(F.pad, torch.constant_pad_nd)
def pad_function(call: Call) -> Any:
    return _pad(call, tuple(call.arg(1, "pad", shadow=True)))


# The pad layers, by the mode whose limits the input-size rules check (CVL402).
REFLECTION_PADS = (nn.ReflectionPad1d, nn.ReflectionPad2d, nn.ReflectionPad3d)
CIRCULAR_PADS = (nn.CircularPad1d, nn.CircularPad2d, nn.CircularPad3d)


@for_modules(nn.ZeroPad1d, nn.ZeroPad2d, nn.ZeroPad3d, nn.ConstantPad1d, nn.ConstantPad2d, nn.ConstantPad3d)
@for_modules(*REFLECTION_PADS, *CIRCULAR_PADS)
@for_modules(nn.ReplicationPad1d, nn.ReplicationPad2d, nn.ReplicationPad3d)
def pad_module(call: Call) -> Any:
    return _pad(call, call.module.padding)


def _resample(call: Call, size: Any, scale: Any, size_shadow: Any = None, scale_shadow: Any = None) -> SymTensor:
    x = call.sargs[0]
    ndim = len(x.dims) - 2
    if size is None and scale_shadow is not None:
        # a scale computed from sizes (int(stride)): floor(n * scale) at every size
        scales = layers.ntuple(scale_shadow, ndim)
        dims = [
            None if f is None else lift(lambda n, f=f: sympy.floor(n * f), n) for n, f in zip(spatial(x, ndim), scales)
        ]
    elif size is not None:
        shadow = size_shadow if size_shadow is not None else constant_shadow(size)
        dims = [as_dim(s) for s in layers.ntuple(shadow, ndim)]
    else:
        # PyTorch: floor(float(n) * scale) in double precision, where 24 * (1/3) rounds
        # to 8.0; the nearest simple fraction reproduces that rounding.
        factors = [Fraction(float(f)).limit_denominator(1 << 20) for f in layers.ntuple(scale, ndim)]
        dims = [lift(lambda n, f=f: _scaled(n, f), n) for n, f in zip(spatial(x, ndim), factors)]
    return with_spatial(x, ndim, dims)


def _scaled(n: Any, factor: Fraction) -> Any:
    """floor(n * factor): an integer factor (upsampling by 2) keeps a size of the common form."""
    return n * factor.numerator if factor.denominator == 1 else sympy.floor(n * sympy.Rational(factor))


# The input ranks PyTorch resamples in each mode (others raise: trilinear needs 5-d input).
_MODE_RANKS = {
    "nearest": (3, 4, 5), "nearest-exact": (3, 4, 5), "area": (3, 4, 5),
    "linear": (3,), "bilinear": (4,), "bicubic": (4,), "trilinear": (5,),
}  # fmt: skip


def _predictable_resampling(x: Any, size: Any, scale: Any, mode: Any, align_corners: Any, *rest: Any) -> None:
    """Raise ``Unpredictable`` unless PyTorch resamples this call as the formula says: one
    of size and scale, a mode that takes the input's rank, no option that may raise or
    change the sizes (align_corners with a nearest mode raises; antialias, recomputed
    scales): those calls are run."""
    ranks = _MODE_RANKS.get(mode, ())
    given = size if scale is None else scale
    if not (
        isinstance(x, torch.Tensor)
        and x.is_floating_point()
        and x.dim() in ranks
        and (size is None) != (scale is None)
        and (not isinstance(given, (tuple, list)) or len(given) == x.dim() - 2)
        and (align_corners is None or mode in ("linear", "bilinear", "bicubic", "trilinear"))
        and not any(rest)
    ):
        raise Unpredictable("predicted only for plain sizes and scales in a mode the input's rank takes")


@for_functions(F.interpolate, F.upsample, fast=True)
def interpolate_function(call: Call) -> Any:
    size = call.arg(1, "size")
    if call.out is None:
        _predictable_resampling(
            call.arg(0, "input"), size, call.arg(2, "scale_factor"), call.arg(3, "mode", "nearest"),
            call.arg(4, "align_corners"), call.arg(5, "recompute_scale_factor"), call.arg(6, "antialias"),
        )  # fmt: skip
    size_shadow = call.arg(1, "size", shadow=True) if size is not None else None
    scale, scale_shadow = call.arg(2, "scale_factor"), call.arg(2, "scale_factor", shadow=True)
    if scale is not None and scale_shadow is None:
        return fallback(call)  # a scale read from a value convlint knows at the example only
    symbolic = scale is not None and has_symbols(scale_shadow)  # computed from sizes: int(stride)
    return _resample(call, size, scale, size_shadow, scale_shadow if symbolic else None)


@for_modules(nn.Upsample, fast=True)
def upsample_module(call: Call) -> Any:
    m = call.module
    if call.out is None:
        if len(call.args) != 1 or call.kwargs:
            raise Unpredictable("an Upsample called with more than its input")
        _predictable_resampling(call.args[0], m.size, m.scale_factor, m.mode, m.align_corners, m.recompute_scale_factor)
    return _resample(call, m.size, m.scale_factor)


@for_modules(nn.PixelShuffle, nn.PixelUnshuffle)
def pixel_shuffle_module(call: Call) -> Any:
    x = call.sargs[0]
    if isinstance(call.module, nn.PixelShuffle):
        r = call.module.upscale_factor
        dims = [lift(lambda n: n * r, n) for n in x.dims[-2:]]
    else:
        r = call.module.downscale_factor
        dims = [lift(lambda n: fdiv(n, r), n) for n in x.dims[-2:]]
    return with_spatial(x, 2, dims, call.out.shape[-3])
