"""Size propagation: concrete shapes from meta execution, symbolic ones beside them.

``SizeProp`` is a ``torch.fx.Interpreter`` in the spirit of ``ShapeProp``: it runs each
node on meta tensors (so it never allocates data) and, next to the concrete value,
carries a *shadow*: the same value with every size written as a sympy expression in the
input's symbols (``H``, ``W``, ...). Transfer functions below compute shadows from the
formulas in ``formulas``/``layers``; any op without one keeps its concrete sizes and
the dimensions that depended on the input become unknown (``None``).

At the example size every shadow, evaluated, must equal the concrete value; a
disagreement is kept in ``mismatches`` and reported, never ignored.
"""
from __future__ import annotations

import math
import operator
import os
from fractions import Fraction
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import sympy
import torch
import torch.fx
import torch.nn as nn
import torch.nn.functional as F

from convlint import layers
from convlint.formulas import cdiv, fdiv, mod

Dim = Optional[sympy.Expr]  # None: unknown, the concrete size is all there is

SPATIAL_NAMES = {1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}


def symbol(name: str) -> sympy.Symbol:
    return sympy.Symbol(name, integer=True, positive=True)


@dataclass(frozen=True)
class SymTensor:
    """Shadow of a tensor: one expression (or None) per dimension."""

    dims: tuple

    def __len__(self) -> int:
        return len(self.dims)


@dataclass
class Call:
    """What a transfer function sees of one node."""

    node: torch.fx.Node
    target: Any
    args: tuple  # concrete
    kwargs: dict
    sargs: tuple  # shadows
    skwargs: dict
    out: Any  # concrete result
    module: Optional[nn.Module] = None

    def arg(self, index: int, name: str, default: Any = None, shadow: bool = False) -> Any:
        """A parameter by position or keyword, concrete or as its shadow."""
        args, kwargs = (self.sargs, self.skwargs) if shadow else (self.args, self.kwargs)
        if index < len(args):
            return args[index]
        return kwargs.get(name, default)


# ---------------------------------------------------------------- shadows


def constant_shadow(value: Any) -> Any:
    """Shadow of a value that does not depend on the input sizes."""
    if isinstance(value, torch.Tensor):
        return SymTensor(tuple(sympy.Integer(s) for s in value.shape))
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return sympy.Integer(value)
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
        return any(d is None or d.free_symbols for d in shadow.dims)
    if isinstance(shadow, sympy.Basic):
        return bool(shadow.free_symbols)
    if isinstance(shadow, (tuple, list)):
        return any(has_symbols(s) for s in shadow)
    if isinstance(shadow, dict):
        return any(has_symbols(s) for s in shadow.values())
    return False


def evaluate(expr: Dim, values: dict) -> Optional[int]:
    """An expression's integer value with the symbols set (None stays None)."""
    if expr is None:
        return None
    if isinstance(expr, int):
        return expr
    result = expr.xreplace(values)
    if not result.is_Integer:
        result = sympy.simplify(result)
    return int(result) if result.is_Integer else None


def _lift(fn: Callable, *dims: Dim) -> Dim:
    """Apply a formula to dims, unknown in -> unknown out."""
    if any(d is None for d in dims):
        return None
    return sympy.sympify(fn(*dims))


def _dim(shadow: Any) -> Dim:
    """A shadow used as a size: ints and expressions pass, anything else is unknown."""
    if isinstance(shadow, bool):
        return None
    if isinstance(shadow, int):
        return sympy.Integer(shadow)
    if isinstance(shadow, sympy.Expr):
        return shadow
    return None


# ---------------------------------------------------------------- registries

MODULE_RULES: dict[type, Callable[[Call], Any]] = {}
FUNCTION_RULES: dict[Any, Callable[[Call], Any]] = {}
METHOD_RULES: dict[str, Callable[[Call], Any]] = {}


def for_modules(*classes: type):
    def register(fn):
        for cls in classes:
            MODULE_RULES[cls] = fn
        return fn

    return register


def for_functions(*targets: Any):
    def register(fn):
        for target in targets:
            FUNCTION_RULES[target] = fn
        return fn

    return register


def for_methods(*names: str):
    def register(fn):
        for name in names:
            METHOD_RULES[name] = fn
        return fn

    return register


def module_rule(module: nn.Module) -> Optional[Callable[[Call], Any]]:
    for cls in type(module).__mro__:
        if cls in MODULE_RULES:
            # A subclass with its own forward (timm's Conv2dSame pads at run time) is not
            # the layer the rule describes: it is a leaf for the probe to measure.
            return MODULE_RULES[cls] if type(module).forward is cls.forward else None
    if type(module).__module__ in _SHAPE_PRESERVING_MODULE_FILES and not isinstance(module, nn.MultiheadAttention):
        return same_shape
    return None


_SHAPE_PRESERVING_MODULE_FILES = {
    "torch.nn.modules.activation",
    "torch.nn.modules.batchnorm",
    "torch.nn.modules.instancenorm",
    "torch.nn.modules.normalization",
    "torch.nn.modules.dropout",
}


# ---------------------------------------------------------------- conv and pooling


def _spatial(shadow: SymTensor, ndim: int) -> tuple:
    return shadow.dims[len(shadow.dims) - ndim :]


def _with_spatial(shadow: SymTensor, ndim: int, spatial: Sequence[Dim], channels: Any = "keep") -> SymTensor:
    lead = list(shadow.dims[: len(shadow.dims) - ndim])
    if channels != "keep" and lead:
        lead[-1] = sympy.Integer(channels)
    return SymTensor(tuple(lead) + tuple(spatial))


def apply_geometry(geometry: layers.Geometry, spatial: Sequence[Dim]) -> tuple:
    return tuple(_lift(lambda n, i=i: geometry.out_dim(i, n), n) for i, n in enumerate(spatial))


def _geometry_call(call: Call, geometry: layers.Geometry, channels: Any = "keep") -> SymTensor:
    call.node.meta["convlint_geometry"] = geometry  # for the rules and the shapes report
    x = call.sargs[0]
    return _with_spatial(x, geometry.ndim, apply_geometry(geometry, _spatial(x, geometry.ndim)), channels)


@for_modules(nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)
@for_modules(nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)
def conv_module(call: Call) -> Any:
    geometry = layers.geometry_of(call.module)
    channels = getattr(call.module, "out_channels", "keep")
    out = _geometry_call(call, geometry, channels)
    if isinstance(call.out, tuple):  # max pooling with return_indices
        return (out, out)
    return out


@for_modules(nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
def conv_transpose_module(call: Call) -> Any:
    output_size = call.arg(1, "output_size", shadow=True)
    if output_size is not None:
        call.node.meta["convlint_geometry"] = layers.geometry_of(call.module)
        x = call.sargs[0]
        ndim = len(call.module.kernel_size)
        spatial = [_dim(s) for s in tuple(output_size)[-ndim:]]
        return _with_spatial(x, ndim, spatial, call.module.out_channels)
    return _geometry_call(call, layers.geometry_of(call.module), call.module.out_channels)


def _conv_function(ndim: int, transposed: bool):
    def rule(call: Call) -> Any:
        weight = call.arg(1, "weight")
        if transposed:
            names = ("stride", "padding", "output_padding", "groups", "dilation")
            defaults = (1, 0, 0, 1, 1)
        else:
            names = ("stride", "padding", "dilation", "groups")
            defaults = (1, 0, 1, 1)
        values = {n: call.arg(3 + i, n, d) for i, (n, d) in enumerate(zip(names, defaults))}
        geometry = layers.conv_geometry(
            ndim,
            tuple(weight.shape[2:]),
            values["stride"],
            values["padding"],
            values["dilation"],
            transposed=transposed,
            output_padding=values.get("output_padding", 0),
        )
        channels = weight.shape[1] * values["groups"] if transposed else weight.shape[0]
        return _geometry_call(call, geometry, channels)

    return rule


for _n, (_conv, _convt) in enumerate(
    [(F.conv1d, F.conv_transpose1d), (F.conv2d, F.conv_transpose2d), (F.conv3d, F.conv_transpose3d)], start=1
):
    FUNCTION_RULES[_conv] = _conv_function(_n, False)
    FUNCTION_RULES[_convt] = _conv_function(_n, True)


def _pool_function(ndim: int, kind: str):
    def rule(call: Call) -> Any:
        if kind == layers.MAXPOOL:
            dilation, ceil_mode = call.arg(4, "dilation", 1), call.arg(5, "ceil_mode", False)
        else:
            dilation, ceil_mode = 1, call.arg(4, "ceil_mode", False)
        geometry = layers.pool_geometry(
            ndim, kind, call.arg(1, "kernel_size"), call.arg(2, "stride"), call.arg(3, "padding", 0), dilation, ceil_mode
        )
        out = _geometry_call(call, geometry)
        return (out, out) if isinstance(call.out, tuple) else out

    return rule


for _n, (_max, _avg) in enumerate(
    [(F.max_pool1d, F.avg_pool1d), (F.max_pool2d, F.avg_pool2d), (F.max_pool3d, F.avg_pool3d)], start=1
):
    FUNCTION_RULES[_max] = _pool_function(_n, layers.MAXPOOL)
    FUNCTION_RULES[_avg] = _pool_function(_n, layers.AVGPOOL)
    FUNCTION_RULES[getattr(torch, f"max_pool{_n}d")] = _pool_function(_n, layers.MAXPOOL)


def _adaptive(call: Call, output_size: Any, ndim: int) -> SymTensor:
    x = call.sargs[0]
    sizes = layers.ntuple(output_size, ndim)
    spatial = [n if s is None else sympy.Integer(s) for s, n in zip(sizes, _spatial(x, ndim))]
    out = _with_spatial(x, ndim, spatial)
    return (out, out) if isinstance(call.out, tuple) else out


@for_modules(nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)
@for_modules(nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)
def adaptive_module(call: Call) -> Any:
    return _adaptive(call, call.module.output_size, int(type(call.module).__name__[-2]))


@for_functions(F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d)
@for_functions(F.adaptive_max_pool1d, F.adaptive_max_pool2d, F.adaptive_max_pool3d)
def adaptive_function(call: Call) -> Any:
    return _adaptive(call, call.arg(1, "output_size"), int(call.target.__name__[-2]))


# ---------------------------------------------------------------- padding


def _pad(call: Call, amounts: Sequence[Any]) -> SymTensor:
    """F.pad order: (left, right) of the last dim first, then the one before."""
    x = call.sargs[0]
    dims = list(x.dims)
    for i in range(len(amounts) // 2):
        axis = len(dims) - 1 - i
        left, right = _dim(amounts[2 * i]), _dim(amounts[2 * i + 1])
        dims[axis] = _lift(lambda n, a, b: n + a + b, dims[axis], left, right)
    return SymTensor(tuple(dims))


@for_functions(F.pad, torch.constant_pad_nd)
def pad_function(call: Call) -> Any:
    return _pad(call, tuple(call.arg(1, "pad", shadow=True)))


@for_modules(nn.ZeroPad1d, nn.ZeroPad2d, nn.ZeroPad3d, nn.ConstantPad1d, nn.ConstantPad2d, nn.ConstantPad3d)
@for_modules(nn.ReflectionPad1d, nn.ReflectionPad2d, nn.ReflectionPad3d)
@for_modules(nn.ReplicationPad1d, nn.ReplicationPad2d, nn.ReplicationPad3d)
@for_modules(nn.CircularPad1d, nn.CircularPad2d, nn.CircularPad3d)
def pad_module(call: Call) -> Any:
    return _pad(call, call.module.padding)


# ---------------------------------------------------------------- resampling


def _resample(call: Call, size: Any, scale: Any, size_shadow: Any = None) -> SymTensor:
    x = call.sargs[0]
    ndim = len(x.dims) - 2
    if size is not None:
        shadow = size_shadow if size_shadow is not None else constant_shadow(size)
        spatial = [_dim(s) for s in layers.ntuple(shadow, ndim)]
    else:
        # PyTorch: floor(float(n) * scale) in double precision, where 24 * (1/3) rounds
        # to 8.0; the nearest simple fraction reproduces that rounding.
        factors = [sympy.Rational(Fraction(float(f)).limit_denominator(1 << 20)) for f in layers.ntuple(scale, ndim)]
        spatial = [_lift(lambda n, f=f: sympy.floor(n * f), n) for n, f in zip(_spatial(x, ndim), factors)]
    return _with_spatial(x, ndim, spatial)


@for_functions(F.interpolate, F.upsample)
def interpolate_function(call: Call) -> Any:
    size = call.arg(1, "size")
    return _resample(call, size, call.arg(2, "scale_factor"), call.arg(1, "size", shadow=True) if size is not None else None)


@for_modules(nn.Upsample)
def upsample_module(call: Call) -> Any:
    return _resample(call, call.module.size, call.module.scale_factor)


@for_modules(nn.PixelShuffle, nn.PixelUnshuffle)
def pixel_shuffle_module(call: Call) -> Any:
    x = call.sargs[0]
    if isinstance(call.module, nn.PixelShuffle):
        r = call.module.upscale_factor
        spatial = [_lift(lambda n: n * r, n) for n in x.dims[-2:]]
    else:
        r = call.module.downscale_factor
        spatial = [_lift(lambda n: fdiv(n, r), n) for n in x.dims[-2:]]
    return _with_spatial(x, 2, spatial, call.out.shape[-3])


# ---------------------------------------------------------------- elementwise and merges


def broadcast(shadows: Sequence[SymTensor], shapes: Sequence[tuple], node: torch.fx.Node) -> SymTensor:
    """Broadcasting: per aligned dim, the operand whose size is not 1 decides (the first
    one where several are not 1; merge rules compare the operands themselves)."""
    rank = max(len(s) for s in shapes)
    dims = []
    for axis in range(rank):
        chosen = None
        for shadow, shape in zip(shadows, shapes):
            offset = axis - (rank - len(shape))
            if offset < 0:
                continue
            if chosen is None or (chosen[1] == 1 and shape[offset] != 1):
                chosen = (shadow.dims[offset], shape[offset])
        dims.append(chosen[0] if chosen else sympy.Integer(1))
    return SymTensor(tuple(dims))


def same_shape(call: Call) -> Any:
    """Elementwise ops, activations, norms: operands broadcast, sizes pass through."""
    tensors = [(s, a.shape) for a, s in zip(_flat(call.args, call.kwargs), _flat(call.sargs, call.skwargs)) if isinstance(a, torch.Tensor)]
    if not tensors or not isinstance(call.out, torch.Tensor):
        return _scalar_arith(call)
    shadows, shapes = zip(*tensors)
    result = broadcast(shadows, shapes, call.node)
    if len(result) != call.out.dim():
        return unknown_shadow(call.out)
    return result


@for_functions(torch.matmul, operator.matmul, torch.bmm)
@for_methods("matmul", "bmm", "__matmul__")
def matmul(call: Call) -> Any:
    """(..., n, k) @ (..., k, m) -> (..., n, m), the batch dims broadcast (attention)."""
    (a, b), (sa, sb) = call.args[:2], call.sargs[:2]
    if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dim() >= 2 and b.dim() >= 2):
        return _fallback(call)
    batch = broadcast([SymTensor(sa.dims[:-2]), SymTensor(sb.dims[:-2])], [tuple(a.shape[:-2]), tuple(b.shape[:-2])], call.node)
    return SymTensor(batch.dims + (sa.dims[-2], sb.dims[-1]))


if hasattr(F, "scaled_dot_product_attention"):

    @for_functions(F.scaled_dot_product_attention)
    def attention(call: Call) -> Any:
        """softmax(q k^T) v: the query's dims with the value's last one."""
        q, v = call.arg(0, "query", shadow=True), call.arg(2, "value", shadow=True)
        if not (isinstance(q, SymTensor) and isinstance(v, SymTensor)):
            return _fallback(call)
        return SymTensor(q.dims[:-1] + v.dims[-1:])


def _flat(args: Sequence[Any], kwargs: dict) -> list:
    return list(args) + list(kwargs.values())


_SCALAR_OPS = {
    operator.add: operator.add,
    operator.sub: operator.sub,
    operator.mul: operator.mul,
    operator.floordiv: fdiv,
    operator.mod: mod,  # pad to a multiple: (p - W % p) % p
    operator.neg: operator.neg,
}


def _scalar_arith(call: Call) -> Any:
    """Arithmetic on sizes (``skip.size(2) - x.size(2)``) stays symbolic."""
    fn = _SCALAR_OPS.get(call.target)
    if fn is not None and isinstance(call.out, int) and not isinstance(call.out, bool):
        operands = [_dim(s) for s in call.sargs]
        if any(o is None for o in operands):
            return None
        return sympy.sympify(fn(*operands))
    if fn is None and call.target is operator.truediv:
        operands = [_dim(s) for s in call.sargs]
        if not any(o is None for o in operands):
            return operands[0] / operands[1]
    return constant_shadow(call.out) if not has_symbols((call.sargs, call.skwargs)) else unknown_shadow(call.out)


ELEMENTWISE_FUNCTIONS = (
    operator.add, operator.sub, operator.mul, operator.truediv, operator.floordiv, operator.neg, operator.pow,
    operator.iadd, operator.isub, operator.imul, operator.itruediv, operator.mod,
    torch.add, torch.sub, torch.mul, torch.div, torch.true_divide, torch.maximum, torch.minimum, torch.where,
    torch.relu, torch.sigmoid, torch.tanh, torch.exp, torch.log, torch.abs, torch.neg, torch.sqrt, torch.rsqrt,
    torch.pow, torch.clamp, torch.clip, torch.sin, torch.cos, torch.erf, torch.softmax, torch.log_softmax,
    torch.sign, torch.square, torch.reciprocal, torch.lerp, torch.addcmul,
    torch.cumsum, torch.cumprod, torch.flip, torch.roll, operator.invert, torch.logical_not,
    F.relu, F.relu6, F.leaky_relu, F.elu, F.selu, F.celu, F.gelu, F.silu, F.mish, F.hardswish, F.hardsigmoid,
    F.hardtanh, F.softplus, F.softsign, F.tanhshrink, F.sigmoid, F.tanh, F.logsigmoid, F.rrelu,
    F.softmax, F.log_softmax, F.softmin, F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout,
    torch.nn.functional.threshold,
)
for _fn in ELEMENTWISE_FUNCTIONS:
    FUNCTION_RULES.setdefault(_fn, same_shape)

# The input's shape, whatever the other tensors: a norm's weight and running statistics
# (C,) do not broadcast against the input's last dim, nor does prelu's weight.
INPUT_SHAPED_FUNCTIONS = (
    F.batch_norm, F.layer_norm, F.group_norm, F.instance_norm, F.local_response_norm, F.normalize, F.prelu,
    torch.batch_norm, torch.layer_norm, torch.group_norm, torch.instance_norm, *([F.rms_norm] if hasattr(F, "rms_norm") else []),
)


def input_shaped(call: Call) -> Any:
    return call.sargs[0] if call.sargs and isinstance(call.sargs[0], SymTensor) else _fallback(call)


for _fn in INPUT_SHAPED_FUNCTIONS:
    FUNCTION_RULES[_fn] = input_shaped

ELEMENTWISE_METHODS = (
    "add", "sub", "mul", "div", "true_divide", "pow", "neg", "abs", "exp", "log", "sqrt", "rsqrt", "sigmoid",
    "tanh", "relu", "relu_", "clamp", "clamp_", "clip", "contiguous", "float", "double", "half", "bfloat16",
    "to", "type", "type_as", "clone", "detach", "add_", "sub_", "mul_", "div_", "sigmoid_", "softmax",
    "log_softmax", "masked_fill", "masked_fill_", "maximum", "minimum", "sign", "square", "reciprocal", "cpu",
    "cuda", "requires_grad_", "__add__", "__mul__", "__sub__", "__truediv__", "__radd__", "__rmul__", "lerp",
    "where", "sin", "cos", "erf", "exp_", "tanh_", "fill_", "zero_", "normal_", "uniform_",
    "cumsum", "cumprod", "flip", "roll", "logical_not", "bitwise_not", "__invert__",
)
for _name in ELEMENTWISE_METHODS:
    METHOD_RULES.setdefault(_name, same_shape)

for_modules(nn.Identity)(same_shape)


@for_functions(torch.cat, torch.concat, torch.concatenate)
def cat_function(call: Call) -> Any:
    tensors, shadows = call.arg(0, "tensors"), call.arg(0, "tensors", shadow=True)
    dim = call.arg(1, "dim", 0)
    rank = call.out.dim()
    axis = dim % rank
    # a 1-d empty tensor is skipped by torch.cat
    pairs = [(t, s) for t, s in zip(tensors, shadows) if not (t.dim() == 1 and t.shape[0] == 0)]
    first = pairs[0][1]
    dims = list(first.dims)
    total = [s.dims[axis] for _, s in pairs]
    dims[axis] = None if any(d is None for d in total) else sympy.Add(*total)
    return SymTensor(tuple(dims))


@for_functions(torch.stack)
def stack_function(call: Call) -> Any:
    shadows = call.arg(0, "tensors", shadow=True)
    dims = list(shadows[0].dims)
    axis = call.arg(1, "dim", 0) % call.out.dim()
    dims.insert(axis, sympy.Integer(len(shadows)))
    return SymTensor(tuple(dims))


# ---------------------------------------------------------------- sizes, views, slicing


@for_functions(getattr)
def getattr_function(call: Call) -> Any:
    obj, name = call.sargs[0], call.args[1]
    if isinstance(obj, SymTensor) and name == "shape":
        return tuple(obj.dims)
    if isinstance(obj, SymTensor) and name in ("T", "mT"):
        return SymTensor(tuple(reversed(obj.dims)))
    return _fallback(call)


@for_methods("size")
def size_method(call: Call) -> Any:
    obj = call.sargs[0]
    dim = call.arg(1, "dim")
    if dim is None:
        return tuple(obj.dims)
    return obj.dims[dim]


@for_methods("dim", "ndimension")
def dim_method(call: Call) -> Any:
    return sympy.Integer(call.out)


@for_functions(operator.getitem)
def getitem_function(call: Call) -> Any:
    obj, index = call.sargs[0], call.args[1]
    if isinstance(obj, (tuple, list)):
        if isinstance(index, slice):
            return tuple(obj[index])
        return obj[index]
    if isinstance(obj, SymTensor):
        return _slice_tensor(call, obj, call.args[1], call.sargs[1])
    return _fallback(call)


def _slice_tensor(call: Call, shadow: SymTensor, index: Any, sindex: Any) -> Any:
    """``x[..., :T]``, ``x[:, :, :-p]``, ``x[:, :, a:b]``: within the valid sizes."""
    items = list(index) if isinstance(index, tuple) else [index]
    sitems = list(sindex) if isinstance(sindex, tuple) else [sindex]
    if any(isinstance(i, torch.Tensor) or isinstance(i, (list, bool)) for i in items):
        return _fallback(call)
    consumed = sum(1 for i in items if i is not None and i is not Ellipsis)
    out, axis = [], 0
    for item, sitem in zip(items, sitems):
        if item is Ellipsis:
            for _ in range(len(shadow.dims) - consumed):
                out.append(shadow.dims[axis])
                axis += 1
        elif item is None:
            out.append(sympy.Integer(1))
        elif isinstance(item, int):
            axis += 1
        elif isinstance(item, slice):
            out.append(_slice_length(shadow.dims[axis], item, sitem))
            axis += 1
        else:
            return _fallback(call)
    out.extend(shadow.dims[axis:])
    return SymTensor(tuple(out))


def _slice_length(n: Dim, item: slice, sitem: Any) -> Dim:
    if n is None:
        return None
    step = item.step if item.step is not None else 1
    if not isinstance(step, int) or step <= 0:
        return None

    def bound(value: Any, shadow: Any, default: Dim) -> Dim:
        if value is None:
            return default
        expr = _dim(shadow)
        if expr is not None and expr.free_symbols:
            return expr  # computed from sizes (x[..., d : d + y.size(2)]): keep it symbolic
        if isinstance(value, int) and not isinstance(value, bool):
            return n + value if value < 0 else sympy.Integer(value)
        return expr

    parts = (sitem.start, sitem.stop) if isinstance(sitem, slice) else (None, None)
    start = bound(item.start, parts[0], sympy.Integer(0))
    stop = bound(item.stop, parts[1], n)
    if start is None or stop is None:
        return None
    # A constant stop past a symbolic end is clamped to the end.
    if not stop.free_symbols and int(stop) >= 0 and n.free_symbols:
        stop = sympy.Min(stop, n)
    length = stop - start
    return length if step == 1 else cdiv(length, step)


def _size_args(values: Sequence[Any]) -> tuple:
    """Sizes given one by one (``view(b, -1)``) or as one tuple (``view((b, -1))``)."""
    if len(values) == 1 and isinstance(values[0], (tuple, list)):
        return tuple(values[0])
    return tuple(values)


@for_methods("view", "reshape", "expand", "new_empty", "new_zeros", "new_ones")
@for_functions(torch.reshape)
def view_method(call: Call) -> Any:
    sizes = _size_args(call.sargs[1:] if call.target not in (torch.reshape,) else (call.sargs[1],))
    if "size" in call.skwargs or "shape" in call.skwargs:
        sizes = tuple(call.skwargs.get("size", call.skwargs.get("shape")))
    dims = [_dim(s) for s in sizes]
    if len(dims) != call.out.dim():
        return _fallback(call)
    source = call.sargs[0]
    out = []
    for axis, d in enumerate(dims):
        if d is not None and d == -1:
            if call.target == "expand":
                out.append(source.dims[axis - (len(dims) - len(source.dims))])
                continue
            known = sympy.Mul(*[x for x in dims if x is not None and x != -1])
            total = None if any(x is None for x in source.dims) else sympy.Mul(*source.dims)
            out.append(None if total is None or None in dims else sympy.cancel(total / known))
        else:
            out.append(d)
    return SymTensor(tuple(out))


@for_functions(torch.zeros, torch.ones, torch.empty, torch.rand, torch.randn, torch.full)
def factory_function(call: Call) -> Any:
    """A new tensor of a given size (a positional encoding for this map: zeros(B, H, W))."""
    count = len(call.args) - 1 if call.target is torch.full else len(call.args)
    sizes = _size_args(call.sargs[:count])
    if "size" in call.skwargs:
        sizes = tuple(call.skwargs["size"])
    dims = tuple(_dim(s) for s in sizes)
    return SymTensor(dims) if len(dims) == call.out.dim() else _fallback(call)


@for_methods("repeat")
def repeat(call: Call) -> Any:
    """x.repeat(a, b, ...): each dim times its count (the input's dims padded with 1s)."""
    counts = [_dim(c) for c in _size_args(call.sargs[1:])]
    source = (sympy.Integer(1),) * (len(counts) - len(call.sargs[0].dims)) + call.sargs[0].dims
    if len(counts) != call.out.dim() or len(source) != len(counts):
        return _fallback(call)
    return SymTensor(tuple(None if d is None or c is None else d * c for d, c in zip(source, counts)))


@for_functions(torch.arange)
def arange(call: Call) -> Any:
    """arange(end), arange(start, end[, step]): ceil((end - start) / step) numbers."""
    bounds = [_dim(s) for s in call.sargs[:3]]
    if len(bounds) == 1:
        bounds = [sympy.Integer(0)] + bounds
    start, end = bounds[0], bounds[1] if len(bounds) > 1 else None
    step = bounds[2] if len(bounds) > 2 else _dim(call.skwargs.get("step", 1))
    if start is None or end is None or step is None or not step.is_Integer or int(step) <= 0:
        return _fallback(call)
    return SymTensor((cdiv(end - start, int(step)),))


@for_modules(nn.Linear)
def linear_module(call: Call) -> Any:
    """The last dim becomes out_features; the others pass through (channels-last blocks)."""
    return SymTensor(call.sargs[0].dims[:-1] + (sympy.Integer(call.module.out_features),))


@for_functions(F.linear)
def linear_function(call: Call) -> Any:
    return SymTensor(call.sargs[0].dims[:-1] + (sympy.Integer(call.out.shape[-1]),))


# Shape-preserving functions of libraries convlint does not import (torchvision.ops,
# timm), known by name: the symbolic tracer keeps them as calls.
SHAPE_PRESERVING_NAMES = {"stochastic_depth", "drop_path", "drop_block_2d", "drop_block_fast_2d"}


@for_methods("chunk", "split", "unbind", "tensor_split")
@for_functions(torch.chunk, torch.split, torch.unbind, torch.tensor_split)
def split_method(call: Call) -> Any:
    """Pieces along one dim (channels, mostly): the other dims pass through; the split dim
    is known when it was a constant, else unknown."""
    source = call.sargs[0]
    name = getattr(call.target, "__name__", call.target)
    default = 0
    dim = call.arg(1 if name == "unbind" else 2, "dim", default)
    axis = dim % len(source.dims)
    pieces = []
    for piece in call.out:
        dims = list(source.dims)
        if name == "unbind":
            del dims[axis]
        else:
            split = source.dims[axis]
            dims[axis] = sympy.Integer(piece.shape[axis]) if split is not None and not split.free_symbols else None
        pieces.append(SymTensor(tuple(dims)))
    return tuple(pieces)


@for_methods("expand_as", "view_as", "reshape_as")
def expand_as_method(call: Call) -> Any:
    return call.sargs[1]


@for_methods("permute")
@for_functions(torch.permute)
def permute_method(call: Call) -> Any:
    order = call.args[1:]
    if len(order) == 1 and isinstance(order[0], (tuple, list)):
        order = order[0]
    dims = call.sargs[0].dims
    return SymTensor(tuple(dims[i] for i in order))


@for_methods("transpose")
@for_functions(torch.transpose)
def transpose_method(call: Call) -> Any:
    dims = list(call.sargs[0].dims)
    a, b = call.arg(1, "dim0") % len(dims), call.arg(2, "dim1") % len(dims)
    dims[a], dims[b] = dims[b], dims[a]
    return SymTensor(tuple(dims))


@for_methods("flatten")
@for_functions(torch.flatten)
def flatten_method(call: Call) -> Any:
    dims = list(call.sargs[0].dims)
    if not dims:
        return SymTensor((sympy.Integer(1),))
    start = call.arg(1, "start_dim", 0) % len(dims)
    end = call.arg(2, "end_dim", -1) % len(dims)
    block = dims[start : end + 1]
    merged = None if any(d is None for d in block) else sympy.Mul(*block)
    return SymTensor(tuple(dims[:start] + [merged] + dims[end + 1 :]))


@for_modules(nn.Flatten)
def flatten_module(call: Call) -> Any:
    dims = list(call.sargs[0].dims)
    start, end = call.module.start_dim % len(dims), call.module.end_dim % len(dims)
    block = dims[start : end + 1]
    merged = None if any(d is None for d in block) else sympy.Mul(*block)
    return SymTensor(tuple(dims[:start] + [merged] + dims[end + 1 :]))


@for_methods("unsqueeze")
@for_functions(torch.unsqueeze)
def unsqueeze_method(call: Call) -> Any:
    dims = list(call.sargs[0].dims)
    axis = call.arg(1, "dim") % (len(dims) + 1)
    dims.insert(axis, sympy.Integer(1))
    return SymTensor(tuple(dims))


@for_methods("mean", "sum", "amax", "amin", "std", "var")
@for_functions(torch.mean, torch.sum, torch.amax, torch.amin, torch.std, torch.var)
def reduce_method(call: Call) -> Any:
    dims = list(call.sargs[0].dims)
    axes = call.arg(1, "dim")
    keepdim = call.arg(2, "keepdim", False)
    if axes is None:
        return SymTensor(()) if not keepdim else SymTensor((sympy.Integer(1),) * len(dims))
    axes = {a % len(dims) for a in (axes if isinstance(axes, (tuple, list)) else (axes,))}
    if keepdim:
        return SymTensor(tuple(sympy.Integer(1) if i in axes else d for i, d in enumerate(dims)))
    return SymTensor(tuple(d for i, d in enumerate(dims) if i not in axes))


# Run every op on meta tensors, even those whose output size PyTorch's shape rules give
# (see SizeProp._passed_through): slower, and the self-check then covers them too.
FULL_META = os.environ.get("CONVLINT_FULL_META", "") not in ("", "0")

# Modules whose output has exactly their input's size and dtype (see SizeProp._passed_through).
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)
_PASS_THROUGH = (
    *_NORMS, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Hardswish, nn.Hardsigmoid,
    nn.Mish, nn.ELU, nn.PReLU, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.Identity,
)


_ADAPTIVE = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
             nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)


def _cat_shape(tensors: Sequence[torch.Tensor], dim: int) -> Optional[torch.Tensor]:
    """torch.cat's output, by its rules: 1-d empty tensors skipped, the rest of one rank
    and one size outside ``dim``. Raises as torch.cat does."""
    if not all(isinstance(t, torch.Tensor) for t in tensors):
        return None
    kept = [(i, t) for i, t in enumerate(tensors) if not (t.dim() == 1 and t.shape[0] == 0)]
    if not kept:
        return None
    first = kept[0][1]
    axis = dim % first.dim()
    for i, t in kept:
        if t.dim() != first.dim():
            raise RuntimeError(f"Tensors must have same number of dimensions: got {first.dim()} and {t.dim()}")
        for d in range(first.dim()):
            if d != axis and t.shape[d] != first.shape[d]:
                raise RuntimeError(
                    f"Sizes of tensors must match except in dimension {axis}. Expected size {first.shape[d]} "
                    f"but got size {t.shape[d]} for tensor number {i} in the list."
                )
    kept = [t for _, t in kept]
    shape = list(first.shape)
    shape[axis] = sum(t.shape[axis] for t in kept)
    dtype = first.dtype
    for t in kept[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    return torch.empty(shape, device="meta", dtype=dtype)


_UNARY_FUNCTIONS = {
    F.relu, F.relu6, F.leaky_relu, F.gelu, F.silu, F.mish, F.elu, F.selu, F.hardswish, F.hardsigmoid, F.hardtanh,
    F.sigmoid, F.tanh, F.softplus, torch.relu, torch.sigmoid, torch.tanh, F.dropout, F.dropout2d,
}
_UNARY_METHODS = {"relu", "relu_", "sigmoid", "sigmoid_", "tanh", "tanh_", "clone", "detach"}


# ---------------------------------------------------------------- merges

MERGE_FUNCTIONS = {
    operator.add, operator.sub, operator.mul, operator.truediv, operator.iadd, operator.isub, operator.imul,
    operator.itruediv, torch.add, torch.sub, torch.mul, torch.div, torch.maximum, torch.minimum,
}
MERGE_METHODS = {"add", "sub", "mul", "div", "add_", "sub_", "mul_", "div_", "maximum", "minimum"}
CAT_FUNCTIONS = {torch.cat, torch.concat, torch.concatenate, torch.stack}


def is_cat(node: torch.fx.Node) -> bool:
    return node.op == "call_function" and node.target in CAT_FUNCTIONS


def is_merge(node: torch.fx.Node) -> bool:
    """add, sub, mul, div (any spelling) or cat/stack: where two branches meet."""
    if node.op == "call_function":
        return node.target in MERGE_FUNCTIONS or node.target in CAT_FUNCTIONS
    return node.op == "call_method" and node.target in MERGE_METHODS


def merge_operands(node: torch.fx.Node, args: Sequence[Any], kwargs: dict) -> list:
    """The operands of a merge, in order (the list of a cat, or the tensor arguments)."""
    if is_cat(node):
        return list(args[0] if args else kwargs.get("tensors", ()))
    return [a for a in [*args, *kwargs.values()] if isinstance(a, torch.Tensor)]


def merge_operand_nodes(node: torch.fx.Node) -> list:
    """The graph nodes feeding a merge's tensor operands."""
    if is_cat(node):
        items = node.args[0] if node.args else node.kwargs.get("tensors", ())
        return [a for a in items if isinstance(a, torch.fx.Node)]
    return [a for a in [*node.args, *node.kwargs.values()] if isinstance(a, torch.fx.Node)]


# ---------------------------------------------------------------- the interpreter


def _declared_geometry(module: Optional[nn.Module], ndim: int) -> Optional[layers.Geometry]:
    """The geometry a leaf declares: a conv or pooling layer's, or, for a conv-like module
    of a library (timm's CondConv2d), its kernel_size, stride, padding and dilation. Only
    a candidate: the probe checks it."""
    if module is None:
        return None
    geometry = layers.geometry_of(module)
    if geometry is None and hasattr(module, "kernel_size") and hasattr(module, "stride"):
        padding = getattr(module, "padding", 0)
        try:
            geometry = layers.conv_geometry(ndim, module.kernel_size, module.stride, padding if not isinstance(padding, str) else 0, getattr(module, "dilation", 1))
        except (TypeError, ValueError):
            return None
    return geometry if geometry is not None and geometry.ndim == ndim else None


def _probe_leaf(call: Call) -> Optional[SymTensor]:
    """Sizes for a submodule or helper function convlint cannot follow (a leaf: attention
    with control flow, a convolution padded at run time), from a few candidate size maps,
    each checked by running a copy of the module on meta tensors at the example and at
    sizes n + 1 .. n + P and 2n + 1 (P: the product of its strides, one period of the map):

    - a conv or pooling subclass with its own forward: the layer's own formula, then
      TensorFlow's "SAME" (ceil(n / s), what run-time padding gives);
    - anything else: its input's size (a block that keeps the spatial size), a fixed
      size (a helper that resizes to a set size), or its input's size rounded up or down
      to a multiple of 2 .. 8 (a block that pads or crops to its patch size).

    The first candidate that fits every probe is taken; otherwise the sizes stay unknown.
    Running a copy leaves a module that caches per-size state alone."""
    import copy

    args = list(call.args)
    x, shadow, out = (args[0] if args else None), (call.sargs[0] if call.sargs else None), call.out
    if not (isinstance(x, torch.Tensor) and isinstance(shadow, SymTensor) and isinstance(out, torch.Tensor)):
        return None
    # Other tensor arguments (CondConv's routing weights) must not depend on the input size.
    if x.dim() < 3 or out.dim() != x.dim() or has_symbols((call.sargs[1:], call.skwargs)):
        return None
    base = _declared_geometry(call.module, x.dim() - 2)
    if base is not None:
        candidates, period = [base, base.as_dynamic_same()], math.prod(base.stride)
        axes = list(range(2, x.dim()))
    else:
        # The axes whose sizes come from the input's: the spatial ones, channels-last too.
        candidates, period = ["input", "fixed"], 1
        axes = [i for i, d in enumerate(shadow.dims) if d is not None and d.free_symbols]
        if not axes:
            return None

    def resized(grow) -> tuple:
        return tuple(grow(n) if i in axes else n for i, n in enumerate(x.shape))

    run = call.target
    if call.module is not None:
        try:
            run = copy.deepcopy(call.module)
        except Exception:
            return None

    def measure(shapes) -> Optional[list]:
        """The output sizes along ``axes`` at each input shape; None if one run fails."""
        measured = []
        try:
            with torch.no_grad():
                for shape in shapes:
                    y = run(torch.empty(shape, device="meta", dtype=x.dtype), *args[1:], **call.kwargs)
                    if not isinstance(y, torch.Tensor) or y.dim() != x.dim():
                        return None
                    if any(y.shape[i] != out.shape[i] for i in range(x.dim()) if i not in axes):
                        return None
                    measured.append(tuple(y.shape[i] for i in axes))
        except Exception:
            return None
        return measured

    shapes = [tuple(x.shape)] + [resized(lambda n, k=k: n + k) for k in range(1, period + 1)] + [resized(lambda n: 2 * n + 1)]
    measured = measure(shapes)
    if measured is None:
        return None
    given = [tuple(shape[i] for i in axes) for shape in shapes]
    for candidate in candidates:
        if candidate == "input" and measured == given:
            return SymTensor(tuple(shadow.dims[i] if i in axes else sympy.Integer(d) for i, d in enumerate(out.shape)))
        if candidate == "fixed" and len(set(measured)) == 1:
            return constant_shadow(out)
        if isinstance(candidate, layers.Geometry) and all(candidate.out(size) == got for size, got in zip(given, measured)):
            return _geometry_call(call, candidate, out.shape[1])
    if base is None:
        return _probe_rounding(call, shadow, axes, resized, measure)
    return None


def _probe_rounding(call: Call, shadow: SymTensor, axes: list, resized, measure) -> Optional[SymTensor]:
    """A leaf that rounds each size up or down to a multiple of m <= 8 (MobileViTv2's
    block resizes to a multiple of its patch size): checked at n .. n + 8 and 2n + 1."""
    shapes = [resized(lambda n, k=k: n + k) for k in range(0, 9)] + [resized(lambda n: 2 * n + 1)]
    measured = measure(shapes)
    if measured is None:
        return None
    dims = list(shadow.dims)
    for j, axis in enumerate(axes):
        pairs = [(shape[axis], got[j]) for shape, got in zip(shapes, measured)]
        fits = [
            (m, rounding)
            for m in range(2, 9)
            for rounding in (cdiv, fdiv)
            if all(out == rounding(n, m) * m for n, out in pairs)
        ]
        if not fits:
            return None
        m, rounding = fits[0]
        dims[axis] = rounding(shadow.dims[axis], m) * m
    return SymTensor(tuple(d if i in axes else sympy.Integer(v) for i, (d, v) in enumerate(zip(dims, call.out.shape))))


def _fallback(call: Call) -> Any:
    """No transfer function: sizes that depended on the input become unknown."""
    if has_symbols((call.sargs, call.skwargs)):
        return unknown_shadow(call.out)
    return constant_shadow(call.out)


def _shadow_matches(shadow: Any, value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return isinstance(shadow, SymTensor) and len(shadow.dims) == value.dim()
    if isinstance(value, (tuple, list)):
        return isinstance(shadow, (tuple, list)) and len(shadow) == len(value)
    return True


@dataclass
class Mismatch:
    node: torch.fx.Node
    axis: int
    expression: sympy.Expr
    expected: int
    actual: int


@dataclass
class SizeResult:
    """Sizes of every node of one traced graph."""

    graph_module: torch.fx.GraphModule
    symbols: dict  # symbol -> example value
    shadows: dict = field(default_factory=dict)  # node -> shadow
    values: dict = field(default_factory=dict)  # node -> concrete shape(s)
    mismatches: list = field(default_factory=list)
    transfer_errors: list = field(default_factory=list)  # (node, exception)
    error: Optional[tuple] = None  # (node, exception) where execution stopped
    unknown_ops: set = field(default_factory=set)
    broken_merges: dict = field(default_factory=dict)  # merge node -> the error PyTorch raised there
    spatial_ndim: int = 0  # spatial dims of the first input: the trailing dims rules read


def _shape_of(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return tuple(value.shape)
    if isinstance(value, (tuple, list)):
        return tuple(_shape_of(v) for v in value)
    return value


class SizeProp(torch.fx.Interpreter):
    """Run a graph on meta tensors, carrying a symbolic shadow beside every value."""

    def __init__(self, graph_module: torch.fx.GraphModule, input_shadows: Sequence[SymTensor], symbols: dict):
        super().__init__(graph_module)
        self.result = SizeResult(graph_module, symbols)
        self._input_shadows = list(input_shadows)
        self._values = dict(symbols)

    def run_node(self, n: torch.fx.Node) -> Any:
        try:
            value = None if FULL_META else self._passed_through(n)
            if value is None:
                value = super().run_node(n)
        except Exception as exc:
            # A merge of mismatched sizes (the bug CVL301 reports) must not hide what comes
            # after it: go on as if the merge had taken its first operand's sizes.
            value = self._stand_in(n) if is_merge(n) else None
            if value is None:
                raise
            self.result.broken_merges[n] = exc
        shadow = self._check(n, self._transfer(n, value), value)
        self.result.shadows[n] = shadow
        self.result.values[n] = _shape_of(value)
        return value

    def _passed_through(self, n: torch.fx.Node) -> Optional[torch.Tensor]:
        """The output of a few common ops, from PyTorch's shape rules instead of a run.

        Activations, dropout and batch/instance norms whose channel count fits keep their
        input's size; elementwise merges take ``torch.broadcast_shapes`` (which raises as
        the op would). Running these on meta tensors is exact but slow: batch norm is
        decomposed, and the first add, cat or mean imports ``torch._dynamo`` (a second
        each process). ``CONVLINT_FULL_META=1`` runs every op instead (the tests do).
        """
        if n.op in ("call_function", "call_method") and is_merge(n) and not is_cat(n):
            args, kwargs = self.fetch_args_kwargs_from_env(n)
            tensors = merge_operands(n, args, kwargs)
            scalars_ok = all(isinstance(a, (torch.Tensor, int, float, bool)) for a in [*args, *kwargs.values()])
            if len(tensors) == 2 and scalars_ok and not kwargs:
                shape = torch.broadcast_shapes(*(t.shape for t in tensors))  # raises like the op
                dtype = torch.promote_types(tensors[0].dtype, tensors[1].dtype)
                return torch.empty(shape, device="meta", dtype=dtype)
            return None
        if is_cat(n) and n.target is not torch.stack:
            args, kwargs = self.fetch_args_kwargs_from_env(n)
            return _cat_shape(merge_operands(n, args, kwargs), args[1] if len(args) > 1 else kwargs.get("dim", 0))
        if not n.args or not isinstance(n.args[0], torch.fx.Node):
            return None
        x = self.env.get(n.args[0])
        if not isinstance(x, torch.Tensor):
            return None
        if n.op == "call_function" and n.target in (F.interpolate, F.upsample):
            return self._resampled(n, x)
        if any(isinstance(a, torch.fx.Node) for a in [*n.args[1:], *n.kwargs.values()]):
            return None  # a second tensor could broadcast, or fail to
        if n.op == "call_module":
            module = self.fetch_attr(n.target)
            if isinstance(module, _ADAPTIVE) and len(n.args) == 1 and x.dim() >= 2 and all(x.shape[2:]):
                ndim = int(type(module).__name__[-2])
                out = [x.shape[-ndim + i] if s is None else s for i, s in enumerate(layers.ntuple(module.output_size, ndim))]
                value = torch.empty((*x.shape[: x.dim() - ndim], *out), device="meta", dtype=x.dtype)
                return (value, value.long()) if getattr(module, "return_indices", False) else value
            if not isinstance(module, _PASS_THROUGH) or len(n.args) != 1:
                return None
            if isinstance(module, _NORMS) and (x.dim() < 2 or x.shape[1] != module.num_features):
                return None
            return x if isinstance(module, nn.Identity) else torch.empty_like(x)
        unary = n.target in _UNARY_FUNCTIONS if n.op == "call_function" else n.op == "call_method" and n.target in _UNARY_METHODS
        return torch.empty_like(x) if unary else None

    def _resampled(self, n: torch.fx.Node, x: torch.Tensor) -> Optional[torch.Tensor]:
        """F.interpolate's output size by its own rule: the given size, or floor(n * scale)."""
        if x.dim() >= 3:
            args, kwargs = self.fetch_args_kwargs_from_env(n)
            size, scale = (args[1] if len(args) > 1 else kwargs.get("size")), (args[2] if len(args) > 2 else kwargs.get("scale_factor"))
            ndim = x.dim() - 2
            if size is not None:
                out = list(layers.ntuple(tuple(size) if isinstance(size, (tuple, list, torch.Size)) else size, ndim))
            elif scale is not None and not kwargs.get("recompute_scale_factor"):
                out = [math.floor(float(n_) * f) for n_, f in zip(x.shape[2:], layers.ntuple(scale, ndim))]  # PyTorch's rule
            else:
                return None
            if any(o <= 0 for o in out):
                return None  # let PyTorch raise
            return torch.empty((*x.shape[:2], *out), device="meta", dtype=x.dtype)
        return None

    def _stand_in(self, n: torch.fx.Node) -> Optional[torch.Tensor]:
        args, kwargs = self.fetch_args_kwargs_from_env(n)
        tensors = merge_operands(n, args, kwargs)
        if len(tensors) < 2:
            return None
        first = tensors[0]
        if is_cat(n):
            dim = (args[1] if len(args) > 1 else kwargs.get("dim", 0)) % first.dim()
            shape = list(first.shape)
            shape[dim] = sum(t.shape[dim] if t.dim() == first.dim() else 0 for t in tensors)
            return torch.empty(shape, device="meta", dtype=first.dtype)
        rank = max(t.dim() for t in tensors)
        shape = [1] * rank
        for t in reversed(tensors):  # broadcasting, but the first operand wins where sizes disagree
            for i, size in enumerate(t.shape, start=rank - t.dim()):
                if size != 1:
                    shape[i] = size
        return torch.empty(shape, device="meta", dtype=first.dtype)

    def _transfer(self, n: torch.fx.Node, value: Any) -> Any:
        if n.op == "placeholder":
            return self._input_shadows.pop(0) if self._input_shadows else constant_shadow(value)
        if n.op == "get_attr":
            return constant_shadow(value)
        if n.op == "output":
            return torch.fx.node.map_arg(n.args[0], lambda a: self.result.shadows[a])
        shadows = self.result.shadows
        sargs = torch.fx.node.map_arg(n.args, lambda a: shadows[a])
        skwargs = torch.fx.node.map_arg(n.kwargs, lambda a: shadows[a])
        args, kwargs = self.fetch_args_kwargs_from_env(n)
        call = Call(n, n.target, tuple(args), dict(kwargs), tuple(sargs), dict(skwargs), value)
        if n.op == "call_module":
            call.module = self.fetch_attr(n.target)
            rule = module_rule(call.module)
        elif n.op == "call_function":
            rule = FUNCTION_RULES.get(n.target)
            if rule is None and getattr(n.target, "__name__", None) in SHAPE_PRESERVING_NAMES:
                rule = same_shape
        else:
            rule = METHOD_RULES.get(n.target)
        if rule is None and value is None:
            return None  # an op that returns nothing (fx's guards on specialised arguments)
        if rule is None:
            # A leaf: a submodule fx could not follow, or a helper function outside torch.
            if n.op == "call_module" or (n.op == "call_function" and not getattr(n.target, "__module__", "torch").startswith("torch")):
                probed = _probe_leaf(call)
                if probed is not None:
                    return probed
            if has_symbols((sargs, skwargs)):
                self.result.unknown_ops.add(n)
            return _fallback(call)
        try:
            shadow = rule(call)
        except Exception as exc:  # a transfer function's own bug: report it, go on concrete
            self.result.transfer_errors.append((n, exc))
            return _fallback(call)
        if not _shadow_matches(shadow, value):
            self.result.transfer_errors.append((n, ValueError(f"shadow {shadow!r} does not fit {_shape_of(value)}")))
            return _fallback(call)
        return shadow

    def _check(self, n: torch.fx.Node, shadow: Any, value: Any) -> Any:
        """Compare the shadow with the concrete value at the example size.

        A disagreeing dimension is recorded and made unknown, so one wrong formula
        is reported once, not again at every node after it.
        """
        if isinstance(value, torch.Tensor) and isinstance(shadow, SymTensor):
            dims = list(shadow.dims)
            for axis, (expr, size) in enumerate(zip(shadow.dims, value.shape)):
                got = evaluate_int(expr, self._values)
                # Expressions hold within the sizes where every op is defined; a value
                # <= 0 stands for an empty dimension (x[..., :-p] with n < p).
                if expr is not None and got != size and not (size == 0 and got is not None and got < 0):
                    self.result.mismatches.append(Mismatch(n, axis, expr, size, got))
                    dims[axis] = None
            return SymTensor(tuple(dims))
        if isinstance(value, (tuple, list)) and isinstance(shadow, (tuple, list)):
            return type(shadow)(self._check(n, s, v) for s, v in zip(shadow, value))
        if isinstance(value, int) and not isinstance(value, bool) and isinstance(shadow, sympy.Expr):
            got = evaluate_int(shadow, self._values)
            if got != value:
                self.result.mismatches.append(Mismatch(n, -1, shadow, value, got))
                return None
        return shadow


def input_shadow(shape: Sequence[int], names: Sequence[str]) -> tuple[SymTensor, dict]:
    """Shadow for an input of ``shape``: leading dims concrete, spatial dims symbols."""
    ndim = len(names)
    syms = [symbol(name) for name in names]
    lead = tuple(sympy.Integer(s) for s in shape[: len(shape) - ndim])
    return SymTensor(lead + tuple(syms)), dict(zip(syms, shape[len(shape) - ndim :]))


def propagate(graph_module: torch.fx.GraphModule, input_shapes: Sequence[Sequence[int]]) -> SizeResult:
    """Sizes for every node, the inputs' spatial dims named L / H, W / D, H, W.

    A second input with the same spatial sizes as the first shares its symbols; one
    with other sizes gets its own (``H1``, ``W1``, ...).
    """
    shadows, symbols, seen = [], {}, {}
    for index, shape in enumerate(input_shapes):
        ndim = max(0, min(3, len(shape) - 2))
        spatial = tuple(shape[len(shape) - ndim :])
        if ndim and spatial in seen:
            lead = tuple(sympy.Integer(s) for s in shape[: len(shape) - ndim])
            shadows.append(SymTensor(lead + seen[spatial]))
            continue
        names = [f"{n}{index}" if index else n for n in SPATIAL_NAMES.get(ndim, ())]
        shadow, syms = input_shadow(shape, names)
        seen[spatial] = shadow.dims[len(shape) - ndim :]
        shadows.append(shadow)
        symbols.update(syms)
    prop = SizeProp(graph_module, shadows, symbols)
    prop.result.spatial_ndim = max(0, min(3, len(input_shapes[0]) - 2)) if input_shapes else 0
    inputs = [torch.empty(tuple(shape), device="meta") for shape in input_shapes]
    try:
        prop.run(*inputs)
    except Exception as exc:
        node = next((n for n in graph_module.graph.nodes if n not in prop.result.shadows), None)
        prop.result.error = (node, exc)
    return prop.result


# ---------------------------------------------------------------- fast exact evaluation

import math as _math  # noqa: E402


def _exact(expr, env: dict):
    """Evaluate a size expression exactly (ints and Fractions), far faster than subs."""
    if expr.is_Integer:
        return int(expr)
    if expr.is_Rational:
        return Fraction(int(expr.p), int(expr.q))
    if expr.is_Symbol:
        return env[expr]
    args = [_exact(a, env) for a in expr.args]
    if expr.is_Add:
        return sum(args[1:], args[0])
    if expr.is_Mul:
        result = args[0]
        for a in args[1:]:
            result = result * a
        return result
    if expr.is_Pow:
        return Fraction(args[0]) ** args[1]  # an int to a negative power stays exact
    if isinstance(expr, sympy.floor):
        return _math.floor(args[0])
    if isinstance(expr, sympy.ceiling):
        return _math.ceil(args[0])
    if isinstance(expr, sympy.Mod):
        return args[0] % args[1]
    if isinstance(expr, sympy.Min):
        return min(args)
    if isinstance(expr, sympy.Max):
        return max(args)
    raise TypeError(type(expr).__name__)


def evaluate_int(expr: Dim, env: dict) -> Optional[int]:
    """``expr`` at integer symbol values (``{H: 19}``); None when unknown or not an integer."""
    if expr is None:
        return None
    if isinstance(expr, int):
        return expr
    try:
        value = _exact(expr, env)
    except (TypeError, KeyError, ZeroDivisionError):
        return evaluate(expr, {k: sympy.Integer(v) for k, v in env.items()})
    if isinstance(value, Fraction):
        return int(value) if value.denominator == 1 else None
    return int(value)
