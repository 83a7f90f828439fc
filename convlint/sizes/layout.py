"""Which axes of an input are its spatial ones: those that reach the spatial dims of its
convolutions.

Most models take (N, C, spatial...), and the last axes are the spatial ones. A model that
permutes a channels-last input (N, H, W, C) or folds tokens (N, L, C) into a grid decides
otherwise in its forward. One propagation with every axis but the batch a symbol shows
which axes reach a convolution's spatial dims, through permutes, transposes and views;
the analysis then sizes the model with those axes as its symbols.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch

from convlint import layers
from convlint.common import Shape, spatial_axes
from convlint.dims import free
from convlint.sizes.interpreter import SizeResult, propagate
from convlint.sizes.symbolic import SymTensor


def convolutions(result: SizeResult) -> list[tuple[torch.fx.Node, SymTensor]]:
    """(convolution, the shadow of its input) for each convolution sized, in order."""
    found = []
    for node, geometry in result.geometries.items():
        shadow = result.shadows.get(node.all_input_nodes[0]) if node.all_input_nodes else None
        if geometry.kind in (layers.CONV, layers.TRANSPOSED) and isinstance(shadow, SymTensor):
            found.append((node, shadow))
    return found


def misread(result: SizeResult) -> Optional[tuple[torch.fx.Node, str]]:
    """(a convolution, the symbol) where an input's spatial symbol reached the channels of a
    convolution whole (a permute): the input's spatial axes are not the ones sized, and
    every size stated from those symbols would be about the wrong dims. Tokens flattened
    into the channels (a mixer's Conv1d over H*W patches) are an expression, not this."""
    for node, shadow in convolutions(result):
        channels = shadow.dims[1] if len(shadow.dims) > 1 else None
        if getattr(channels, "is_Symbol", False) and channels in result.symbols:
            return node, str(channels)
    return None


def part_spatial(result: SizeResult) -> bool:
    """Does a convolution see the input's sizes in some of its spatial dims and a fixed
    size in another (224 x W: the input's last axis, its channels, sized as W)?"""
    symbols = set(result.symbols)
    for _, shadow in convolutions(result):
        carry = [d is not None and not symbols.isdisjoint(free(d)) for d in shadow.dims[2:]]
        if any(carry) and not all(carry):
            return True
    return False


def laid_out(
    graph_module: torch.fx.GraphModule, input_shapes: Sequence[Sequence[int]], run_every_op: bool = False
) -> Optional[tuple]:
    """The input shapes with the spatial axes their convolutions read (``Shape.spatial``),
    or None where those are the ones already sized (or none reach a convolution)."""
    probe = [_every_axis(s) for s in input_shapes]
    result = propagate(graph_module, probe, run_every_op=run_every_op)
    axis_of = {}  # symbol -> (input, axis)
    placeholders = [n for n in graph_module.graph.nodes if n.op == "placeholder"]
    for index, node in enumerate(placeholders[: len(probe)]):
        shadow = result.shadows.get(node)
        for axis in spatial_axes(probe[index]) if isinstance(shadow, SymTensor) else ():
            axis_of.setdefault(shadow.dims[axis], (index, axis))
    reached: list[list[int]] = [[] for _ in input_shapes]
    for _, shadow in convolutions(result):
        for dim in shadow.dims[2:]:
            for sym in sorted(free(dim), key=str):
                index, axis = axis_of.get(sym, (None, None))
                if index is not None and axis not in reached[index]:
                    reached[index].append(axis)
    shapes = tuple(
        _with_axes(shape, tuple(sorted(axes))) if 0 < len(axes) <= 3 else shape
        for shape, axes in zip(input_shapes, reached)
    )
    return None if all(spatial_axes(a) == spatial_axes(b) for a, b in zip(shapes, input_shapes)) else shapes


def _every_axis(shape: Sequence[int]) -> Shape:
    return _with_axes(shape, tuple(range(1, len(shape))) if len(shape) > 2 else ())


def _with_axes(shape: Sequence[int], axes: tuple) -> Shape:
    return Shape(shape, getattr(shape, "dtype", "float32"), axes or None)
