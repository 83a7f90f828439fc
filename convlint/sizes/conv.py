"""Transfer functions of convolution and pooling: modules, functions, adaptive pooling."""

from __future__ import annotations

from typing import Any, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from convlint import formulas, layers, signatures
from convlint.sizes.symbolic import SymTensor, as_dim, has_symbols, integer, lift, spatial, with_spatial
from convlint.sizes.transfer import (
    FUNCTION_TRANSFERS,
    Call,
    Unpredictable,
    apply_geometry,
    for_functions,
    for_modules,
    geometry_call,
)


def _maybe_indices(call: Call, out: SymTensor, returns_indices: bool) -> Any:
    """Max pooling with ``return_indices`` gives (values, indices) of one shape."""
    return (out, out) if returns_indices or isinstance(call.out, tuple) else out


@for_modules(nn.Conv1d, nn.Conv2d, nn.Conv3d, fast=True)
def conv_layer(call: Call) -> Any:
    """A convolution layer, predicted without running it where PyTorch would run it as
    the formula says (run on meta, its checks import torch's symbolic shapes, 0.1 s a
    process, and each costs a meta kernel): one contiguous floating input of the layer's
    rank, batched or not, its channels the layer's, the weight's dtype and device, zero
    padding. A size the formula makes 0 or less, and everything else, runs, so that
    PyTorch raises or decides (``interpreter.predict``)."""
    if call.out is None and not _runs_as_the_formula_says(call):
        raise Unpredictable(call.target)
    return conv_module(call)


def _one_plain_input(call: Call, ndim: int) -> bool:
    """One contiguous floating tensor of a layer's rank ``ndim``, batched or not, and no
    keyword: the call a conv or pooling layer runs as its formula says."""
    return len(call.args) == 1 and not call.kwargs and _plain_tensor(call.args[0], ndim)


def _plain_tensor(x: Any, ndim: int) -> bool:
    """A contiguous floating tensor of a layer's rank ``ndim``, batched or not (the
    predicted output is contiguous too)."""
    return (
        isinstance(x, torch.Tensor) and x.dim() in (ndim + 1, ndim + 2) and x.is_floating_point() and x.is_contiguous()
    )


def _pools(geometry: layers.Geometry, ndim: int) -> bool:
    """Does PyTorch pool with this window as the formula says, without raising? One int
    per dim, a positive kernel, stride and dilation, each pad from 0 to half the kernel
    (PyTorch's own check, ``k // 2``). avg_pool3d also refuses an input smaller than its
    kernel: it is run."""
    numbers = geometry.kernel + geometry.stride + geometry.dilation
    return (
        len(geometry.kernel) == len(geometry.stride) == len(geometry.dilation) == len(geometry.padding) == ndim
        and all(type(v) is int and v > 0 for v in numbers)
        and all(type(p) is int and 0 <= p <= k // 2 for pad, k in zip(geometry.padding, geometry.kernel) for p in pad)
        and not (geometry.kind == layers.AVGPOOL and ndim == 3)
    )


def _runs_as_the_formula_says(call: Call) -> bool:
    m = call.module
    weight, x = m.weight, call.args[0] if call.args else None
    # a transposed convolution's weight is (in, out / groups, *kernel), and it refuses an
    # output padding as large as both its stride and its dilation
    transposed = isinstance(m, nn.modules.conv._ConvTransposeNd)
    channels = weight.shape[0] if transposed else weight.shape[1] * m.groups
    return (
        _one_plain_input(call, weight.dim() - 2)
        and x.shape[-weight.dim() + 1] == channels
        and (not transposed or all(p < max(s, d) for p, s, d in zip(m.output_padding, m.stride, m.dilation)))
        and x.dtype == weight.dtype
        and x.device == weight.device
        and m.padding_mode == "zeros"
        and (m.bias is None or (m.bias.dtype == weight.dtype and m.bias.device == weight.device))
    )


@for_modules(nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, fast=True)
def pool_layer(call: Call) -> Any:
    """A max or average pooling layer, predicted as a convolution layer is (``conv_layer``):
    one contiguous floating input of its rank, each pad at most half the kernel (``k // 2``,
    PyTorch's own check)."""
    if call.out is None:
        geometry = layers.geometry_of(call.module)
        if not (_one_plain_input(call, geometry.ndim) and _pools(geometry, geometry.ndim)):
            raise Unpredictable(call.target)
    return conv_module(call)


def conv_module(call: Call) -> Any:
    geometry = layers.geometry_of(call.module)
    out = geometry_call(call, geometry, getattr(call.module, "out_channels", "keep"))
    return _maybe_indices(call, out, getattr(call.module, "return_indices", False))


@for_modules(nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d, fast=True)
def conv_transpose_module(call: Call) -> Any:
    """Predicted as ``conv_layer`` is, called with its input alone (an ``output_size`` is run)."""
    if call.out is None and not _runs_as_the_formula_says(call):
        raise Unpredictable(call.target)
    geometry = layers.geometry_of(call.module)
    output_size = call.arg(1, "output_size", shadow=True)
    if output_size is None:
        return geometry_call(call, geometry, call.module.out_channels)
    call.geometry = geometry
    dims = [as_dim(s) for s in tuple(output_size)[-geometry.ndim :]]
    return with_spatial(call.sargs[0], geometry.ndim, dims, call.module.out_channels)


def _conv_function(ndim: int, transposed: bool):
    signature = signatures.FUNCTIONS["transposed" if transposed else "conv"]
    defaults = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, "output_padding": 0}
    names = [n for n in signature if n in defaults]

    def transfer(call: Call) -> Any:
        weight = call.arg(signature.index("weight"), "weight")
        values = {n: call.arg(signature.index(n), n, defaults[n]) for n in names}
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
        return geometry_call(call, geometry, channels)

    return transfer


def _computed_pool(call: Call, ndim: int, dilation: int, ceil_mode: bool) -> SymTensor:
    """Pooling whose kernel or stride was computed from sizes (global pooling by
    ``kernel_size=x.size()[2:]``): the output-size formula on the expressions."""
    kernel = layers.ntuple(call.arg(1, "kernel_size", shadow=True), ndim)
    stride = call.arg(2, "stride", shadow=True)
    stride = kernel if stride is None or stride == () else layers.ntuple(stride, ndim)
    padding = layers.ntuple(call.arg(3, "padding", 0), ndim)  # the same positions in max and avg pooling
    dilation = layers.ntuple(dilation, ndim)
    dims = []
    for n, k, s, p, d in zip(spatial(call.sargs[0], ndim), kernel, stride, padding, dilation):
        k, s = as_dim(k), as_dim(s)
        dims.append(None if None in (n, k, s) else formulas.pool_out(n, k, s, p, d, ceil_mode))
    return with_spatial(call.sargs[0], ndim, dims)


def _pool_function(ndim: int, kind: str):
    def transfer(call: Call) -> Any:
        signature = signatures.FUNCTIONS[kind]
        dilation = call.arg(signature.index("dilation"), "dilation", 1) if "dilation" in signature else 1
        ceil_mode = call.arg(signature.index("ceil_mode"), "ceil_mode", False)
        stride_shadow = call.arg(2, "stride", shadow=True)
        windows = (call.arg(1, "kernel_size", shadow=True), () if call.arg(2, "stride") is None else stride_shadow)
        if has_symbols(windows):
            if call.out is None:
                raise Unpredictable(call.target)  # a window computed from sizes: run it
            return _maybe_indices(call, _computed_pool(call, ndim, dilation, ceil_mode), False)
        kernel, stride, padding = call.arg(1, "kernel_size"), call.arg(2, "stride"), call.arg(3, "padding", 0)
        geometry = layers.pool_geometry(ndim, kind, kernel, stride, padding, dilation, ceil_mode)
        if call.out is None:
            indices = "return_indices" in signature and call.arg(signature.index("return_indices"), "return_indices")
            if indices or not (_plain_tensor(call.arg(0, "input"), ndim) and _pools(geometry, ndim)):
                raise Unpredictable(call.target)
        return _maybe_indices(call, geometry_call(call, geometry), False)

    return transfer


for _n in (1, 2, 3):
    FUNCTION_TRANSFERS[getattr(F, f"conv{_n}d")] = _conv_function(_n, False)
    FUNCTION_TRANSFERS[getattr(F, f"conv_transpose{_n}d")] = _conv_function(_n, True)
    # fast: predicted where they pool as the formula says (_pools), as the pooling layers are
    _POOL_FUNCTIONS = {
        getattr(F, f"max_pool{_n}d"): layers.MAXPOOL,
        getattr(torch, f"max_pool{_n}d"): layers.MAXPOOL,
        getattr(F, f"avg_pool{_n}d"): layers.AVGPOOL,
    }
    for _fn, _kind in _POOL_FUNCTIONS.items():
        for_functions(_fn, fast=True)(_pool_function(_n, _kind))


# ---------------------------------------------------------------- sliding blocks: unfold, fold

UNFOLD_ARGS = ("kernel_size", "dilation", "padding", "stride")  # F.unfold's, after the input
FOLD_ARGS = ("output_size", *UNFOLD_ARGS)  # F.fold's


def block_geometry(kernel, dilation, padding, stride) -> layers.Geometry:
    """The sliding blocks of ``unfold``/``fold`` over two spatial dims: a convolution's."""
    return layers.conv_geometry(2, layers.ntuple(kernel, 2), stride, padding, dilation)


def block_args(module, args: tuple, kwargs: dict, names: tuple) -> dict:
    """unfold's or fold's parameters ``names``: the module's, or a call's arguments after
    its input (positional or by keyword, PyTorch's defaults)."""
    if module is not None:
        return {n: getattr(module, n) for n in names}
    defaults = {"dilation": 1, "padding": 0, "stride": 1}
    return {n: args[i + 1] if i + 1 < len(args) else kwargs.get(n, defaults.get(n)) for i, n in enumerate(names)}


def block_call(node: torch.fx.Node, module) -> Optional[tuple[str, dict]]:
    """("unfold" or "fold", its parameters) of an fx node that unfolds or folds (``module``:
    the one a call_module node calls), else None."""
    if node.op == "call_module" and isinstance(module, (nn.Unfold, nn.Fold)):
        kind = "unfold" if isinstance(module, nn.Unfold) else "fold"
    elif node.op == "call_function" and node.target in (F.unfold, F.fold):
        kind, module = ("unfold" if node.target is F.unfold else "fold"), None
    else:
        return None
    return kind, block_args(module, node.args, node.kwargs, UNFOLD_ARGS if kind == "unfold" else FOLD_ARGS)


@for_modules(nn.Unfold)
def unfold_module(call: Call) -> Any:
    """(N, C, H, W) -> (N, C * kh * kw, L), L the blocks a convolution would output."""
    a = block_args(call.module, call.args, call.kwargs, UNFOLD_ARGS)
    geometry = block_geometry(a["kernel_size"], a["dilation"], a["padding"], a["stride"])
    x = call.sargs[0]
    blocks = apply_geometry(geometry, spatial(x, 2))
    count = None if None in blocks else lift(lambda h, w: h * w, *blocks)
    channels = lift(lambda c: c * geometry.kernel[0] * geometry.kernel[1], x.dims[-3])
    return SymTensor(x.dims[:-3] + (channels, count))


@for_modules(nn.Fold)
def fold_module(call: Call) -> Any:
    """(N, C * kh * kw, L) -> (N, C, *output_size); L must be the blocks of output_size
    (the domain's condition, ``input_domain``)."""
    a = block_args(call.module, call.args, call.kwargs, FOLD_ARGS)
    output_size = call.arg(1, "output_size", shadow=True) if call.module is None else a["output_size"]
    kernel = layers.ntuple(a["kernel_size"], 2)
    x = call.sargs[0]
    channels = lift(lambda c: formulas.fdiv(c, kernel[0] * kernel[1]), x.dims[-2])
    return SymTensor(x.dims[:-2] + (channels, *(as_dim(n) for n in layers.ntuple(output_size, 2))))


FUNCTION_TRANSFERS[F.unfold] = unfold_module
FUNCTION_TRANSFERS[F.fold] = fold_module


# ---------------------------------------------------------------- adaptive pooling

# The one list of adaptive pooling layers and functions, with their spatial rank.
ADAPTIVE_MODULES = {
    nn.AdaptiveAvgPool1d: 1, nn.AdaptiveAvgPool2d: 2, nn.AdaptiveAvgPool3d: 3,
    nn.AdaptiveMaxPool1d: 1, nn.AdaptiveMaxPool2d: 2, nn.AdaptiveMaxPool3d: 3,
}  # fmt: skip
ADAPTIVE_FUNCTIONS = {
    F.adaptive_avg_pool1d: 1, F.adaptive_avg_pool2d: 2, F.adaptive_avg_pool3d: 3,
    F.adaptive_max_pool1d: 1, F.adaptive_max_pool2d: 2, F.adaptive_max_pool3d: 3,
}  # fmt: skip


def _adaptive(call: Call, output_size: Any, ndim: int, returns_indices: bool) -> Any:
    x = call.sargs[0]
    sizes = layers.ntuple(output_size, ndim)
    dims = [n if s is None else integer(s) for s, n in zip(sizes, spatial(x, ndim))]
    return _maybe_indices(call, with_spatial(x, ndim, dims), returns_indices)


@for_modules(*ADAPTIVE_MODULES, fast=True)
def adaptive_module(call: Call) -> Any:
    module = call.module
    ndim = next(n for cls, n in ADAPTIVE_MODULES.items() if isinstance(module, cls))
    return _adaptive(call, module.output_size, ndim, getattr(module, "return_indices", False))


@for_functions(*ADAPTIVE_FUNCTIONS)
def adaptive_function(call: Call) -> Any:
    return _adaptive(
        call, call.arg(1, "output_size"), ADAPTIVE_FUNCTIONS[call.target], call.arg(2, "return_indices", False)
    )
