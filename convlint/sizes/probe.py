"""The leaf probe: sizes for a submodule or helper function convlint cannot follow (a
leaf: attention with control flow, a convolution padded at run time), measured by
running a copy of it on meta tensors at a few sizes and fitting candidate size maps.

Candidates, each checked at the example and at sizes n + 1 .. n + P and 2n + 1 (P: the
product of its strides, one period of the map):

- a conv or pooling subclass with its own forward: the layer's own formula, then
  TensorFlow's "SAME" (ceil(n / s), what run-time padding gives);
- anything else: its input's size (a block that keeps the spatial size), a fixed size
  (a helper that resizes to a set size), or its input's size rounded up or down to a
  multiple of 2 .. 8 (a block that pads or crops to its patch size).

The first candidate that fits every probe is taken; otherwise the sizes stay unknown and
the reason is returned. Running a copy leaves a module that caches per-size state alone.
"""

from __future__ import annotations

import copy
import math
from typing import Callable, Optional

import torch
import torch.fx
import torch.nn as nn

from convlint import layers
from convlint.common import describe
from convlint.dims import EXPR, free
from convlint.formulas import cdiv, fdiv
from convlint.sizes.symbolic import SymTensor, constant_shadow, has_symbols, integer
from convlint.sizes.transfer import Call, geometry_call


class NoFit(Exception):
    """The probe found no size map; the message says why."""


def declared_geometry(module: Optional[nn.Module], ndim: int) -> Optional[layers.Geometry]:
    """The geometry a leaf declares: a conv or pooling layer's, or, for a conv-like module
    of a library (timm's CondConv2d), its kernel_size, stride, padding and dilation. Only
    a candidate: the probe checks it."""
    if module is None:
        return None
    geometry = layers.geometry_of(module)
    if geometry is None and hasattr(module, "kernel_size") and hasattr(module, "stride"):
        padding = getattr(module, "padding", 0)
        try:
            geometry = layers.conv_geometry(
                ndim,
                module.kernel_size,
                module.stride,
                0 if isinstance(padding, str) else padding,
                getattr(module, "dilation", 1),
            )
        except (TypeError, ValueError):
            return None  # attributes of another meaning: no declared geometry
    return geometry if geometry is not None and geometry.ndim == ndim else None


class _Runs:
    """Runs of the leaf at other sizes along ``axes``, everything else as at the example."""

    def __init__(self, call: Call, axes: list[int]) -> None:
        self.call, self.axes = call, axes
        self.x = call.args[0]
        self.run = call.target
        if call.module is not None:
            try:
                self.run = copy.deepcopy(call.module)
            except Exception as exc:
                raise NoFit(f"it cannot be copied to be probed: {describe(exc)}") from None

    def shape(self, grow: Callable[[int], int]) -> tuple:
        return tuple(grow(n) if i in self.axes else n for i, n in enumerate(self.x.shape))

    def given(self, shapes: list) -> list:
        return [tuple(shape[i] for i in self.axes) for shape in shapes]

    def measure(self, shapes: list) -> list:
        """The output sizes along ``axes`` at each input shape."""
        out, x, args = self.call.out, self.x, self.call.args
        measured = []
        for shape in shapes:
            try:
                with torch.no_grad():
                    y = self.run(torch.empty(shape, device="meta", dtype=x.dtype), *args[1:], **self.call.kwargs)
            except Exception as exc:
                raise NoFit(f"it raised at input {tuple(shape)}: {describe(exc)}") from None
            if not isinstance(y, torch.Tensor) or y.dim() != x.dim():
                raise NoFit(f"at input {tuple(shape)} it returned no tensor of its input's rank")
            if any(y.shape[i] != out.shape[i] for i in range(x.dim()) if i not in self.axes):
                raise NoFit("the sizes it keeps at the example change at other sizes")
            measured.append(tuple(y.shape[i] for i in self.axes))
        return measured


def probe(call: Call) -> SymTensor:
    """The leaf's output shadow, or ``NoFit`` with the reason."""
    args, out = list(call.args), call.out
    x, shadow = (args[0] if args else None), (call.sargs[0] if call.sargs else None)
    if not (isinstance(x, torch.Tensor) and isinstance(shadow, SymTensor) and isinstance(out, torch.Tensor)):
        raise NoFit("it does not map one tensor to one tensor")
    if x.dim() < 3 or out.dim() != x.dim():
        raise NoFit("its output's rank differs from its input's")
    if has_symbols((call.sargs[1:], call.skwargs)):
        # Other tensor arguments (CondConv's routing weights) must not depend on the size.
        raise NoFit("its other arguments depend on the input size")
    base = declared_geometry(call.module, x.dim() - 2)
    if base is not None:
        return _fit_geometry(call, base)
    # The axes whose sizes come from the input's: the spatial ones, channels-last too.
    axes = [i for i, d in enumerate(shadow.dims) if d is not None and free(d)]
    if not axes:
        raise NoFit("no size of its input depends on the model's input")
    return _fit_block(call, shadow, axes)


def _fit_geometry(call: Call, base: layers.Geometry) -> SymTensor:
    runs = _Runs(call, list(range(2, call.args[0].dim())))
    period = math.prod(base.stride)
    shapes = [runs.shape(lambda n: n)] + [runs.shape(lambda n, k=k: n + k) for k in range(1, period + 1)]
    shapes.append(runs.shape(lambda n: 2 * n + 1))
    measured, given = runs.measure(shapes), runs.given(shapes)
    for candidate in (base, base.as_dynamic_same()):
        if all(candidate.out(size) == got for size, got in zip(given, measured)):
            return geometry_call(call, candidate, call.out.shape[1])
    raise NoFit("neither its own formula nor run-time 'same' padding fits its sizes")


def _fit_block(call: Call, shadow: SymTensor, axes: list[int]) -> SymTensor:
    runs, out = _Runs(call, axes), call.out
    shapes = [runs.shape(lambda n: n), runs.shape(lambda n: n + 1), runs.shape(lambda n: 2 * n + 1)]
    measured, given = runs.measure(shapes), runs.given(shapes)
    if measured == given:
        return SymTensor(tuple(shadow.dims[i] if i in axes else integer(d) for i, d in enumerate(out.shape)))
    if len(set(measured)) == 1:
        return constant_shadow(out)
    return _fit_rounding(call, shadow, runs)


def _fit_rounding(call: Call, shadow: SymTensor, runs: _Runs) -> SymTensor:
    """A leaf that rounds each size up or down to a multiple of m <= 8 (MobileViTv2's
    block resizes to a multiple of its patch size): checked at n .. n + 8 and 2n + 1."""
    shapes = [runs.shape(lambda n, k=k: n + k) for k in range(0, 9)] + [runs.shape(lambda n: 2 * n + 1)]
    measured = runs.measure(shapes)
    dims = list(shadow.dims)
    for j, axis in enumerate(runs.axes):
        pairs = [(shape[axis], got[j]) for shape, got in zip(shapes, measured)]
        fits = [
            (m, rounding)
            for m in range(2, 9)
            for rounding in (cdiv, fdiv)
            if all(out == rounding(n, m) * m for n, out in pairs)
        ]
        if not fits:
            raise NoFit(f"no size map fits its sizes along dim {axis}")
        m, rounding = fits[0]
        dims[axis] = rounding(shadow.dims[axis], m) * m
    sizes = call.out.shape
    return SymTensor(tuple(d if i in runs.axes else integer(v) for i, (d, v) in enumerate(zip(dims, sizes))))


__all__ = ["NoFit", "declared_geometry", "probe"]


def raises_everywhere(result, node: torch.fx.Node) -> Optional[bool]:
    """Does the op that raised at the example (``result.error``) raise at other input sizes
    too? Its operands are rebuilt on meta tensors from their size maps at the example
    times 2, 3 and 4, plus one, half, and squares up to 512; True when it raises at all,
    False when some size runs it, None when its operands cannot be rebuilt (or rebuilt at
    the example they do not raise as the model did)."""
    example = dict(result.symbols)
    envs = [{s: max(1, op(v)) for s, v in example.items()} for op in (lambda v: v * 2, lambda v: v * 3,
            lambda v: v * 4, lambda v: v + 1, lambda v: v // 2)]  # fmt: skip
    envs += [{s: n for s in example} for n in (32, 64, 96, 128, 256, 384, 512)]
    if _run_at(result, node, example) is not False:
        return None  # not rebuilt faithfully: it should raise at the example as the model did
    for env in envs:
        ran = _run_at(result, node, env)
        if ran is None:
            return None
        if ran:
            return False
    return True


def _run_at(result, node: torch.fx.Node, env: dict) -> Optional[bool]:
    """Run one op on meta operands sized at ``env``: True if it runs, False if it raises,
    None if an operand's size is not known there."""
    from convlint.sizes.symbolic import evaluate_int

    missing = []

    def rebuild(a):
        shadow = result.shadows.get(a)
        if isinstance(shadow, SymTensor):
            dims = [evaluate_int(d, env) for d in shadow.dims]
            if any(d is None or d < 0 for d in dims):
                missing.append(a)
                return None
            return torch.empty(dims, device="meta")
        if isinstance(shadow, EXPR):
            value = evaluate_int(shadow, env)
            if value is None:
                missing.append(a)
            return value
        if shadow is None or isinstance(shadow, (tuple, list, dict)):
            missing.append(a)
        return shadow

    args = torch.fx.node.map_arg(node.args, rebuild)
    kwargs = torch.fx.node.map_arg(node.kwargs, rebuild)
    if missing:
        return None
    try:
        with torch.no_grad():
            if node.op == "call_module":
                result.graph_module.get_submodule(node.target)(*args, **kwargs)
            elif node.op == "call_method":
                getattr(args[0], node.target)(*args[1:], **kwargs)
            elif node.op == "call_function":
                node.target(*args, **kwargs)
            else:
                return None
    except Exception:
        return False
    return True
