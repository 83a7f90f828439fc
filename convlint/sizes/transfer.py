"""Transfer functions: how one op maps its inputs' shadows to its output's.

A transfer function takes the ``Call`` of one node and returns its output's shadow. It
is registered for module classes, functions, or tensor method names; the family modules
(``conv``, ``resample``, ``elementwise``, ``views``) hold them. ``lookup`` finds the one
for a node; a node without one is a leaf (``probe``) or keeps concrete sizes only.

Some ops are *fast*: their transfer function is exact from the inputs' sizes alone and
raises where PyTorch would, so the interpreter may take the op's output from the shadow
instead of running it (see ``interpreter.SizeProp``). Their transfer functions see
``call.out`` as None then.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence, Union

import torch
import torch.fx
import torch.nn as nn

from convlint import layers
from convlint.sizes.symbolic import SymTensor, constant_shadow, has_symbols, lift, spatial, unknown_shadow, with_spatial


@dataclass
class Call:
    """What a transfer function sees of one node."""

    node: torch.fx.Node
    target: Any
    args: tuple  # concrete
    kwargs: dict
    sargs: tuple  # shadows
    skwargs: dict
    out: Any  # concrete result; None while the fast path predicts it
    module: Optional[nn.Module] = None
    geometry: Optional[layers.Geometry] = None  # set by conv-like transfers, for the rules
    # Relations on the input's sizes within which the shadow is right (a broadcast sized
    # by one operand where a Max would be too large): the sizes stage records them.
    within: list = field(default_factory=list)
    # Sizes the branches the example took make 0 (a window padding `if pad > 0:` not
    # taken): {Mod(...): 0}. A broadcast compares its operands with them substituted.
    zeros: dict = field(default_factory=dict)

    def arg(self, index: int, name: str, default: Any = None, shadow: bool = False) -> Any:
        """A parameter by position or keyword, concrete or as its shadow."""
        args, kwargs = (self.sargs, self.skwargs) if shadow else (self.args, self.kwargs)
        if index < len(args):
            return args[index]
        return kwargs.get(name, default)


Transfer = Callable[[Call], Any]


class Unpredictable(Exception):
    """Raised by a fast transfer function (``call.out`` None) that cannot predict this
    call's output from its inputs' sizes alone: the interpreter runs the op instead."""


def output_layout(layout: Union[str, Callable[[Call], str]]) -> Callable[[Transfer], Transfer]:
    """Mark a fast transfer with its op's output strides when an operand is not contiguous
    (``interpreter.predict``): "contiguous" whatever the input's (softmax, layer norm,
    matmul), "elementwise" as TensorIterator orders the operands' dims, "input" the first
    operand's own (an op that returns it), "preserve" as ``clone`` keeps it, "format" the
    memory format the operands agree on (``cat``), or a function of the call saying which. PyTorch
    agrees on every layout of the dims (tests/test_sizes.py); unmarked, such a call is run."""

    def mark(fn: Transfer) -> Transfer:
        fn.output_layout = layout
        return fn

    return mark


MODULE_TRANSFERS: dict[type, Transfer] = {}
FUNCTION_TRANSFERS: dict[Any, Transfer] = {}
METHOD_TRANSFERS: dict[str, Transfer] = {}
# Function targets and method names whose output the fast path may predict; module
# classes answer by ``fast_module``.
FAST_FUNCTIONS: set = set()
FAST_METHODS: set = set()
FAST_MODULES: tuple = ()


def _registrar(table: dict, fast_add: Callable[[tuple], None]):
    """A decorator factory: ``@for_x(key, ..., fast=False)`` puts the transfer function in
    ``table`` under each key, and marks the keys fast when asked."""

    def for_keys(*keys: Any, fast: bool = False):
        def register(fn: Transfer) -> Transfer:
            for key in keys:
                table[key] = fn
            if fast:
                fast_add(keys)
            return fn

        return register

    return for_keys


def _fast_modules(classes: tuple) -> None:
    global FAST_MODULES
    FAST_MODULES = (*FAST_MODULES, *classes)


for_modules = _registrar(MODULE_TRANSFERS, _fast_modules)
for_functions = _registrar(FUNCTION_TRANSFERS, FAST_FUNCTIONS.update)
for_methods = _registrar(METHOD_TRANSFERS, FAST_METHODS.update)


# Shape-preserving modules of these torch files need no registration one by one.
_SHAPE_PRESERVING_MODULE_FILES = {
    "torch.nn.modules.activation",
    "torch.nn.modules.batchnorm",
    "torch.nn.modules.instancenorm",
    "torch.nn.modules.normalization",
    "torch.nn.modules.dropout",
}
# Shape-preserving functions of libraries convlint does not import (torchvision.ops,
# timm), known by name: the symbolic tracer keeps them as calls.
SHAPE_PRESERVING_NAMES = {"stochastic_depth", "drop_path", "drop_block_2d", "drop_block_fast_2d"}


# The transfer of an op that keeps its input's shape (elementwise, activations, norms),
# registered by the module that writes it (``elementwise``) with ``@shape_preserving``.
_SHAPE_PRESERVING: list[Transfer] = []


def shape_preserving(fn: Transfer) -> Transfer:
    """Register ``fn`` as the transfer of every shape-preserving op known by file or name."""
    _SHAPE_PRESERVING[:] = [fn]
    return fn


def for_module(module: nn.Module) -> Optional[Transfer]:
    for cls in type(module).__mro__:
        if cls in MODULE_TRANSFERS:
            # A subclass with its own forward (timm's Conv2dSame pads at run time) is not
            # the layer the transfer describes: it is a leaf for the probe to measure.
            return MODULE_TRANSFERS[cls] if type(module).forward is cls.forward else None
    if type(module).__module__ in _SHAPE_PRESERVING_MODULE_FILES and not isinstance(module, nn.MultiheadAttention):
        return _SHAPE_PRESERVING[0]
    return None


def for_function(target: Any) -> Optional[Transfer]:
    found = FUNCTION_TRANSFERS.get(target)
    if found is None and getattr(target, "__name__", None) in SHAPE_PRESERVING_NAMES:
        return _SHAPE_PRESERVING[0]
    if found is None and isinstance(target, type) and dataclasses.is_dataclass(target):
        return record  # a model's output record, built in forward
    return found


def record(call: Call) -> Any:
    """A dataclass built from tensors (a model's output): the same record of shadows."""
    return call.target(*call.sargs, **call.skwargs)


def for_method(name: str) -> Optional[Transfer]:
    return METHOD_TRANSFERS.get(name)


def fallback(call: Call) -> Any:
    """No transfer function: sizes that depended on the input become unknown."""
    if has_symbols((call.sargs, call.skwargs)):
        return unknown_shadow(call.out)
    return constant_shadow(call.out)


def apply_geometry(geometry: layers.Geometry, dims: Sequence[Any]) -> tuple:
    """A conv-like layer's output sizes for input sizes ``dims`` (expressions or None)."""
    return tuple(lift(lambda n, i=i: geometry.out_dim(i, n), n) for i, n in enumerate(dims))


def geometry_call(call: Call, geometry: layers.Geometry, channels: Any = "keep") -> SymTensor:
    """The output of a conv-like call with ``geometry``; the geometry is kept for the rules."""
    call.geometry = geometry
    x = call.sargs[0]
    return with_spatial(x, geometry.ndim, apply_geometry(geometry, spatial(x, geometry.ndim)), channels)
