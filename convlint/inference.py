"""The example input of a model nobody gave one for: rank and channels from the first
convolution each input of ``forward`` reaches, default spatial sizes; an integer input for
an input whose first use is an embedding."""

from __future__ import annotations

import functools
import inspect
import logging
from typing import Optional, Sequence

from convlint import common
from convlint.common import Shape

log = logging.getLogger(__name__)

# Default spatial sizes when no --input-shape is given (batch 1; channels from the
# first convolution the input reaches).
DEFAULT_SPATIAL = {1: (1024,), 2: (224, 224), 3: (32, 112, 112)}


class InputError(Exception):
    """The model's inputs cannot be inferred; the message says how to declare them."""


def _forward_inputs(model) -> list[str]:
    try:
        params = inspect.signature(model.forward).parameters.values()
    except (TypeError, ValueError) as exc:  # a forward without a signature: one input
        log.debug("%s.forward has no signature (%s): one input assumed", type(model).__name__, common.describe(exc))
        return ["input"]
    return [p.name for p in params if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def _first_conv(model, graph_module, placeholder) -> Optional[object]:
    """The first convolution (in execution order) that an input reaches."""
    import torch.nn.functional as F

    from convlint import layers

    convs = (F.conv1d, F.conv2d, F.conv3d, F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)
    reached = {placeholder}
    for node in graph_module.graph.nodes:
        if node is placeholder or not any(a in reached for a in node.all_input_nodes):
            continue
        reached.add(node)
        if node.op == "call_module":
            sub = graph_module.get_submodule(node.target)
            if layers.is_convolution(sub):
                return sub
        if node.op == "call_function" and node.target in convs:
            weight = node.args[1] if len(node.args) > 1 else node.kwargs.get("weight")
            if weight is not None and weight.op == "get_attr":
                w = functools.reduce(getattr, weight.target.split("."), graph_module)
                groups = node.args[6] if len(node.args) > 6 else node.kwargs.get("groups", 1)
                transposed = "transpose" in node.target.__name__
                channels = w.shape[0] if transposed else w.shape[1] * groups
                return (w.dim() - 2, channels)
    return None


def _last_dim_layer(graph_module, placeholder) -> Optional[int]:
    """The size of the last dim the first layer an input reaches reads, where that layer is
    a Linear or LayerNorm before any convolution (channels-last features: N, H, W, C)."""
    import torch.nn as nn

    from convlint import layers

    reached = {placeholder}
    for node in graph_module.graph.nodes:
        if node is placeholder or not any(a in reached for a in node.all_input_nodes):
            continue
        reached.add(node)
        if node.op != "call_module":
            continue
        sub = graph_module.get_submodule(node.target)
        if layers.is_convolution(sub):
            return None
        if isinstance(sub, nn.Linear) and sub.in_features:
            return sub.in_features
        if isinstance(sub, nn.LayerNorm) and sub.normalized_shape:
            return sub.normalized_shape[-1]
    return None


def channels_last(model, shape: Sequence[int], graph_module=None) -> Shape:
    """The channels-last form of an inferred input (1, C, H, W) -> (1, H, W, C'): for a
    model that permutes its input in forward. C' is the last dim of the first Linear or
    LayerNorm the input reaches before a convolution, else C."""
    placeholder = next((n for n in graph_module.graph.nodes if n.op == "placeholder"), None) if graph_module else None
    channels = _last_dim_layer(graph_module, placeholder) if placeholder is not None else None
    return Shape((shape[0], *shape[2:], channels or shape[1]), getattr(shape, "dtype", "float32"))


def _indexes_an_embedding(graph_module, placeholder) -> bool:
    """Is an input's first use an embedding lookup (so it holds integers)?"""
    import torch.nn as nn
    import torch.nn.functional as F

    for user in placeholder.users:
        if user.op == "call_module" and isinstance(graph_module.get_submodule(user.target), nn.Embedding):
            return True
        if user.op == "call_function" and user.target is F.embedding:
            return True
    return False


def infer_input_shapes(model, graph_module=None) -> tuple:
    """Rank and channels from the first convolution each input reaches, default sizes.

    Without a graph (a model whose forward cannot be traced) the first convolution
    the model built stands in, for a single-input model.
    """
    from convlint import layers

    names = _forward_inputs(model)
    if not names:
        raise InputError("its forward() takes no tensor input, so there is nothing to infer; pass --input-shape")
    shapes = []
    if graph_module is not None:
        placeholders = [n for n in graph_module.graph.nodes if n.op == "placeholder"][: len(names)]
        for name, placeholder in zip(names, placeholders):
            if _indexes_an_embedding(graph_module, placeholder):
                shapes.append(Shape((1,), "int64"))  # class labels, timesteps, token ids
                continue
            conv = _first_conv(model, graph_module, placeholder)
            if conv is None:
                raise InputError(
                    f"input `{name}` of forward() reaches no convolution, so its shape cannot be inferred; "
                    + _how_to_declare(names)
                )
            shapes.append(_shape_for(conv))
        return tuple(shapes)
    if len(names) > 1:
        raise InputError(f"forward() takes {len(names)} inputs and could not be traced; " + _how_to_declare(names))
    conv = next((m for m in model.modules() if layers.is_convolution(m)), None)
    if conv is None:
        raise InputError("it has no convolution to infer its input from; " + _how_to_declare(names))
    return (_shape_for(conv),)


def _shape_for(conv) -> tuple:
    if isinstance(conv, tuple):
        ndim, channels = conv
    else:
        ndim, channels = len(conv.kernel_size), conv.in_channels
    if not channels:
        raise InputError("its first convolution is lazy (in_channels unknown); pass --input-shape")
    return (1, channels, *DEFAULT_SPATIAL[ndim])


def _how_to_declare(names: Sequence[str]) -> str:
    if len(names) == 1:
        return "pass its shape, for example --input-shape 1,3,224,224"
    example = " ".join("--input-shape ..." for _ in names)
    return f"pass one --input-shape per input of forward({', '.join(names)}), in order: {example}"
