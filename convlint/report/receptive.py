"""Receptive field and jump of every node, per spatial dim: a small pass over the graph.

``jump`` is the distance in input pixels between neighbouring outputs (the product of the
strides); ``rf`` the number of input pixels one output sees. Where branches meet, the
largest of each is taken: what a pixel depends on through any path, not the order in which
hooks happen to fire. Global pooling (adaptive pooling to 1, a mean) sees everything: None.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from convlint import layers

Field = Optional[tuple[tuple[int, Fraction], ...]]  # per spatial dim: (rf, jump); None: global
UNKNOWN = "unknown"  # after a submodule traced as a leaf: its insides are not seen


def _resampling(node: torch.fx.Node, module) -> Optional[tuple[Fraction, int]]:
    """(output pixels per input pixel, extra taps) for an upsampling op, else None."""
    if isinstance(module, nn.Upsample):
        scale, mode = module.scale_factor, module.mode
    elif node.op == "call_function" and node.target in (F.interpolate, F.upsample):
        scale, mode = node.kwargs.get("scale_factor"), node.kwargs.get("mode", "nearest")
    else:
        return None
    if scale is None:
        return None
    scale = scale[0] if isinstance(scale, (tuple, list)) else scale
    if not isinstance(scale, (int, float)):
        return UNKNOWN  # a scale computed from sizes: no one jump for every size
    taps = {"nearest": 0, "nearest-exact": 0, "bilinear": 1, "linear": 1, "trilinear": 1, "bicubic": 3}.get(mode, 1)
    return Fraction(scale).limit_denominator(1 << 20), taps


def _resampled(field: Field, resampling) -> Field:
    if resampling == UNKNOWN:
        return UNKNOWN
    if resampling is None:
        return field
    scale, taps = resampling
    return tuple((rf + math.ceil(taps * jump), jump / scale) for rf, jump in field)


def receptive_fields(view) -> dict:
    """{node: Field} for every tensor node of the traced graph."""
    result: dict = {}
    ndim = view.sizes.spatial_ndim
    graph_module = view.sizes.graph_module
    for node in graph_module.graph.nodes:
        if node.op == "placeholder":
            result[node] = tuple((1, Fraction(1)) for _ in range(ndim))
            continue
        inputs = [result[a] for a in node.all_input_nodes if a in result]
        if not inputs:
            continue
        if any(f == UNKNOWN for f in inputs):
            result[node] = UNKNOWN
            continue
        if any(f is None for f in inputs):
            result[node] = None
            continue
        # the largest over branches, dim by dim
        field = tuple((max(f[i][0] for f in inputs), max(f[i][1] for f in inputs)) for i in range(ndim))
        module = graph_module.get_submodule(node.target) if node.op == "call_module" else None
        geometry = view.geometry(node)
        if view.analysis.trace is not None and node.op == "call_module" and node.target in view.analysis.trace.leaves:
            field = UNKNOWN
        elif geometry is not None and geometry.ndim == ndim:
            field = tuple(_through(geometry, i, rf, jump) for i, (rf, jump) in enumerate(field))
        elif isinstance(
            module,
            (
                nn.AdaptiveAvgPool1d,
                nn.AdaptiveAvgPool2d,
                nn.AdaptiveAvgPool3d,
                nn.AdaptiveMaxPool1d,
                nn.AdaptiveMaxPool2d,
                nn.AdaptiveMaxPool3d,
            ),
        ):
            field = None
        elif node.op in ("call_method", "call_function") and getattr(node.target, "__name__", node.target) in (
            "mean",
            "amax",
            "sum",
        ):
            field = None
        elif isinstance(module, nn.PixelShuffle):
            field = tuple((rf, jump / module.upscale_factor) for rf, jump in field)
        else:
            field = _resampled(field, _resampling(node, module))
        result[node] = field
    return result


def _through(geometry: layers.Geometry, i: int, rf: int, jump: Fraction) -> tuple[int, Fraction]:
    span = geometry.effective_kernel(i) - 1
    if geometry.kind == layers.TRANSPOSED:
        # an output sees ceil((span + 1) / stride) inputs
        taps = -(-(span + 1) // geometry.stride[i])
        return rf + math.ceil((taps - 1) * jump), jump / geometry.stride[i]
    return rf + math.ceil(span * jump), jump * geometry.stride[i]
