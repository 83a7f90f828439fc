"""Transfer functions of elementwise ops and merges: activations, norms, arithmetic on
tensors and on sizes, broadcasting, matmul and attention, cat and stack; and which
nodes are merges (where two branches meet)."""

from __future__ import annotations

import functools
import itertools
import math
import operator
from typing import Any, Optional, Sequence

import torch
import torch.fx
import torch.nn as nn
import torch.nn.functional as F

from convlint import formulas
from convlint import lazy_sympy as sympy
from convlint.dims import Q, free, is_integer
from convlint.formulas import fdiv, mod
from convlint.sizes.symbolic import SymTensor, as_dim, integer, tree_size, unknown_shadow
from convlint.sizes.transfer import (
    FUNCTION_TRANSFERS,
    METHOD_TRANSFERS,
    Call,
    Unpredictable,
    fallback,
    for_functions,
    for_methods,
    for_modules,
    output_layout,
    shape_preserving,
)

# ---------------------------------------------------------------- merges

MERGE_FUNCTIONS = {
    operator.add, operator.sub, operator.mul, operator.truediv, operator.iadd, operator.isub, operator.imul,
    operator.itruediv, torch.add, torch.sub, torch.mul, torch.div, torch.maximum, torch.minimum,
}  # fmt: skip
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
    return [a for a in [*args, *kwargs.values()] if isinstance(a, (torch.Tensor, torch.fx.Node))]


def cat_dim(node: torch.fx.Node) -> Any:
    """The ``dim`` argument of a cat or stack node (0 when not given)."""
    return node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)


# ---------------------------------------------------------------- elementwise


# A Max of operands larger than this (in tree nodes) is not built: sums of sums through
# every stage (HRNet's fused resolutions) would double it at each one.
MAX_BROADCAST_SIZE = 1000


def _broadcastable(*shapes) -> None:
    """Raise ``Unpredictable`` unless ``shapes`` broadcast: the op is run, and raises as
    PyTorch does (``torch.broadcast_shapes`` would import torch's symbolic shapes, 0.1 s)."""
    for sizes in itertools.zip_longest(*(reversed(tuple(s)) for s in shapes), fillvalue=1):
        if len(set(sizes) - {1}) > 1:
            raise Unpredictable("the operands do not broadcast")


def broadcast(
    shadows: Sequence[SymTensor], shapes: Sequence[tuple], within: Optional[list] = None, zeros: Optional[dict] = None
) -> SymTensor:
    """Broadcasting: per aligned dim, the operand whose size is not 1 decides. Where the
    operands' sizes are different expressions of the input (equal at the example, or one
    of them shrunk to 1 there), PyTorch's result is the larger wherever the op runs at all
    (sizes equal, or one of them 1): their Max, so that what follows is sized right at
    every size, not only where they agree (merge rules compare the operands themselves);
    beside a fixed size other than 1 (a position table), that size.
    Where that Max would pass MAX_BROADCAST_SIZE, the dim is the deciding operand's, and
    the relation it is right within (every other operand equal to it, or 1) is appended
    to ``within``. ``zeros``: sizes the example's branches make 0 (``Call.zeros``),
    substituted first: a padding not taken is no operand of a Max."""
    rank = max(len(s) for s in shapes)
    dims = []
    for axis in range(rank):
        chosen, seen, sizes = None, [], set()
        for shadow, shape in zip(shadows, shapes):
            offset = axis - (rank - len(shape))
            if offset < 0:
                continue
            dim = shadow.dims[offset]
            if zeros and free(dim):
                dim = dim.xreplace(zeros)  # a padding the example's branches make 0
            sizes.add(shape[offset])
            # a size of the input's, or a fixed one other than 1 beside one (a position
            # table added to tokens): where the op runs the result is the larger
            if dim is not None and dim not in seen and (free(dim) or _fixed(dim)):
                seen.append(dim)
            if chosen is None or (chosen[1] == 1 and shape[offset] != 1):
                chosen = (dim, shape[offset])
        valid = len(sizes - {1}) <= 1  # a merge broken at the example stands for its first operand
        symbolic = any(free(d) for d in seen)
        fixed = [d for d in seen if _fixed(d)]
        if valid and fixed and symbolic:
            # wherever the op runs, every operand is the table's size or 1: the result is
            # the table's size itself (a Max of it would nest through every block that adds
            # one, and the merge rules compare the operands, not this result)
            dims.append(fixed[0])
            continue
        if valid and chosen is not None and chosen[0] is not None and len(seen) > 1 and symbolic:
            if sum(tree_size(d) for d in seen) <= MAX_BROADCAST_SIZE:
                dims.append(sympy.Max(*seen, evaluate=False))  # its own simplification is slow
                continue
            dims.append(chosen[0])
            if within is not None:
                within += [sympy.Or(sympy.Eq(d, chosen[0]), sympy.Eq(d, 1)) for d in seen if d != chosen[0]]
        else:
            dims.append(chosen[0] if chosen else integer(1))
    return SymTensor(tuple(dims))


def _fixed(dim: Any) -> bool:
    return is_integer(dim) and dim != 1


def _flat(args: Sequence[Any], kwargs: dict) -> list:
    return list(args) + list(kwargs.values())


def _layout(call: Call) -> str:
    """An elementwise op's output strides (``interpreter.predict``): an op that returns its
    input (in place, Identity, dropout in eval, detach) has the input's own, ``clone`` a
    dense input's own (a sliced one laid out densely); any other as TensorIterator lays it out."""
    target, module = call.target, call.module
    returns_input = (
        (isinstance(target, str) and (target.endswith("_") or target == "detach"))
        or target in (operator.iadd, operator.isub, operator.imul, operator.itruediv)
        or call.kwargs.get("inplace") is True
        or getattr(module, "inplace", False) is True
        or isinstance(module, nn.Identity)
        or (isinstance(module, nn.modules.dropout._DropoutNd) and not module.training)
    )
    dropout = target in (F.dropout, F.dropout2d) and not call.arg(2, "training", True)
    return "input" if returns_input or dropout else "preserve" if target == "clone" else "elementwise"


@shape_preserving
@output_layout(_layout)
def same_shape(call: Call) -> Any:
    """Elementwise ops, activations, norms: operands broadcast, sizes pass through."""
    pairs = zip(_flat(call.args, call.kwargs), _flat(call.sargs, call.skwargs))
    tensors = [(s, a.shape) for a, s in pairs if isinstance(a, torch.Tensor)]
    if call.out is None:
        if (
            set(call.kwargs) - {"inplace"}
            or not tensors
            or not all(isinstance(a, (torch.Tensor, int, float, bool)) for a in call.args)
        ):
            raise Unpredictable(call.target)
        if len(tensors) == 1 and (call.target in MERGE_FUNCTIONS or call.target in MERGE_METHODS):
            # a tensor and a Python number: a floating tensor keeps its dtype under + - * /
            # (attention's `scores * d ** -0.5`); any other may change it
            floating = next(a for a in call.args if isinstance(a, torch.Tensor)).is_floating_point()
            if not floating or call.target in (torch.maximum, torch.minimum, "maximum", "minimum"):
                raise Unpredictable(call.target)
        _broadcastable(*(shape for _, shape in tensors))
    elif not tensors or not isinstance(call.out, torch.Tensor):
        return _scalar_arith(call)
    shadows, shapes = zip(*tensors)
    result = broadcast(shadows, shapes, call.within, call.zeros)
    if call.out is not None and len(result) != call.out.dim():
        return unknown_shadow(call.out)
    return result


_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)
_ACTIVATIONS = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Hardswish, nn.Hardsigmoid,
    nn.Mish, nn.ELU, nn.PReLU, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.Identity,
)  # fmt: skip
for_modules(*_ACTIVATIONS, fast=True)(same_shape)


@for_modules(*_NORMS, fast=True)
def norm_module(call: Call) -> Any:
    """A batch or instance norm keeps its input's shape, if its channels fit."""
    x = call.args[0] if call.args else None
    if call.out is None and (
        len(call.args) != 1 or not isinstance(x, torch.Tensor) or x.dim() < 2 or x.shape[1] != call.module.num_features
    ):
        raise Unpredictable(call.target)  # let PyTorch raise, or decide
    return same_shape(call)


@for_modules(nn.LayerNorm, fast=True)
@output_layout("contiguous")
def layer_norm_module(call: Call) -> Any:
    """A layer norm keeps its input's shape, if its normalized shape is the input's last
    dims (run on meta, its decomposition imports torch._dynamo: 0.8 s a process)."""
    x = call.args[0] if call.args else None
    shape = tuple(call.module.normalized_shape)
    if call.out is None and (
        len(call.args) != 1 or not isinstance(x, torch.Tensor) or tuple(x.shape[x.dim() - len(shape) :]) != shape
    ):
        raise Unpredictable(call.target)  # let PyTorch raise, or decide
    return same_shape(call)


@for_functions(F.layer_norm, fast=True)
@output_layout("contiguous")
def layer_norm_function(call: Call) -> Any:
    """``F.layer_norm(x, shape, weight, bias, eps)``: predicted as the layer is, its
    weight and bias (when given) of that shape and the input's dtype."""
    x, shape = call.arg(0, "input"), call.arg(1, "normalized_shape")
    if call.out is None:
        shape = (shape,) if type(shape) is int else shape
        affine = [call.arg(2, "weight"), call.arg(3, "bias")]
        if not (
            isinstance(x, torch.Tensor)
            and x.is_floating_point()
            and isinstance(shape, (tuple, list, torch.Size))
            and 0 < len(shape) <= x.dim()
            and tuple(x.shape[x.dim() - len(shape) :]) == tuple(shape)
            and all(w is None or (isinstance(w, torch.Tensor) and w.shape == x.shape[x.dim() - len(shape) :]
                    and w.dtype == x.dtype) for w in affine)
            and set(call.kwargs) <= {"normalized_shape", "weight", "bias", "eps"}
        ):  # fmt: skip
            raise Unpredictable(call.target)
    return input_shaped(call)


@for_modules(nn.GroupNorm, fast=True)
def group_norm_module(call: Call) -> Any:
    """A group norm keeps its input's shape, if its channels fit."""
    x = call.args[0] if call.args else None
    if call.out is None and (
        len(call.args) != 1 or not isinstance(x, torch.Tensor) or x.dim() < 2 or x.shape[1] != call.module.num_channels
    ):
        raise Unpredictable(call.target)
    return same_shape(call)


@for_functions(torch.matmul, operator.matmul, torch.bmm, fast=True)
@for_methods("matmul", "bmm", "__matmul__", fast=True)
@output_layout("contiguous")
def matmul(call: Call) -> Any:
    """(..., n, k) @ (..., k, m) -> (..., n, m), the batch dims broadcast (attention).
    Predicted without running it where the operands fit (run on meta, its decomposition
    imports torch._dynamo: 0.8 s a process)."""
    (a, b), (sa, sb) = call.args[:2], call.sargs[:2]
    if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dim() >= 2 and b.dim() >= 2):
        if call.out is None:
            raise Unpredictable(call.target)
        return fallback(call)
    if call.out is None:
        bmm = getattr(call.target, "__name__", call.target) == "bmm"
        if (
            len(call.args) != 2
            or call.kwargs
            or a.shape[-1] != b.shape[-2]
            or a.dtype != b.dtype
            or (bmm and (a.dim() != 3 or b.dim() != 3 or a.shape[0] != b.shape[0]))
        ):
            raise Unpredictable(call.target)  # let PyTorch raise, or decide
        _broadcastable(a.shape[:-2], b.shape[:-2])
    batch = broadcast(
        [SymTensor(sa.dims[:-2]), SymTensor(sb.dims[:-2])], [tuple(a.shape[:-2]), tuple(b.shape[:-2])], call.within
    )
    return SymTensor(batch.dims + (sa.dims[-2], sb.dims[-1]))


@for_functions(torch.einsum)
def einsum(call: Call) -> Any:
    """``einsum("b g h i d, b g h j d -> b g h i j", q, k)``: each output label has the size
    of that label in the operands (``...`` broadcast as in matmul). Where two operands give
    a label different expressions of the input, the sizes are unknown: einsum runs only
    where they agree, which this does not state."""
    equation, operands = call.args[0], list(call.args[1:])
    shadows = list(call.sargs[1:])
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands, shadows = list(operands[0]), list(shadows[0])
    if not isinstance(equation, str) or "->" not in equation or len(operands) != len(shadows):
        return fallback(call)
    inputs, output = equation.replace(" ", "").split("->")
    labels: dict = {}
    ellipses: list = []
    for spec, tensor, shadow in zip(inputs.split(","), operands, shadows):
        if not isinstance(tensor, torch.Tensor) or not isinstance(shadow, SymTensor):
            return fallback(call)
        head, dots, tail = spec.partition("...")
        extra = tensor.dim() - len(head) - len(tail)
        if extra < 0 or (extra and not dots):
            return fallback(call)
        ellipses.append(
            (SymTensor(shadow.dims[len(head) : len(head) + extra]), tuple(tensor.shape[len(head) : len(head) + extra]))
        )
        pairs = list(zip(head, shadow.dims, tensor.shape)) + list(
            zip(tail, shadow.dims[len(head) + extra :], tensor.shape[len(head) + extra :])
        )
        for label, dim, size in pairs:
            known = labels.get(label)
            if known is None or known[1] == 1:
                labels[label] = (dim, size)
            elif size != 1 and dim != known[0]:
                return fallback(call)  # a label two operands size differently
    dims: list = []
    head, dots, tail = output.partition("...")
    if dots:
        dims += broadcast([e for e, _ in ellipses], [shape for _, shape in ellipses], call.within).dims
    elif any(shape for _, shape in ellipses):
        return fallback(call)
    if any(label not in labels for label in head + tail):
        return fallback(call)
    dims = [labels[label][0] for label in head] + dims + [labels[label][0] for label in tail]
    return SymTensor(tuple(dims))


if hasattr(F, "scaled_dot_product_attention"):

    @for_functions(F.scaled_dot_product_attention)
    def attention(call: Call) -> Any:
        """softmax(q k^T) v: the query's dims with the value's last one."""
        q, v = call.arg(0, "query", shadow=True), call.arg(2, "value", shadow=True)
        if not (isinstance(q, SymTensor) and isinstance(v, SymTensor)):
            return fallback(call)
        return SymTensor(q.dims[:-1] + v.dims[-1:])


_SCALAR_OPS = {
    operator.add: operator.add,
    operator.sub: operator.sub,
    operator.mul: operator.mul,
    operator.truediv: operator.truediv,
    operator.floordiv: fdiv,
    operator.mod: mod,  # pad to a multiple: (p - W % p) % p
    operator.neg: operator.neg,
    operator.pow: operator.pow,
    # what Python does with a size it read (an execution capture records these); sympy's
    # functions looked up when called (sympy is imported where it is first needed)
    math.floor: lambda a: sympy.floor(a),
    math.ceil: lambda a: sympy.ceiling(a),
    int: lambda a: formulas.trunc(a),  # toward zero: int(-1 / 2) == 0 (a negative diff of sizes)
    round: lambda a: formulas.round_even(a),
    float: lambda a: a,
}
# Comparisons of sizes: the relations guards are made of.
RELATIONS = {
    operator.eq: lambda a, b: sympy.Eq(a, b),
    operator.ne: lambda a, b: sympy.Ne(a, b),
    operator.lt: lambda a, b: sympy.Lt(a, b),
    operator.le: lambda a, b: sympy.Le(a, b),
    operator.gt: lambda a, b: sympy.Gt(a, b),
    operator.ge: lambda a, b: sympy.Ge(a, b),
}


def _scalar_arith(call: Call) -> Any:
    """Arithmetic on sizes (``skip.size(2) - x.size(2)``, ``h // 2``, ``h % 32 == 0``)
    stays symbolic."""
    fn = _SCALAR_OPS.get(call.target) or RELATIONS.get(call.target)
    if fn is None or not isinstance(call.out, (int, float)):  # tuples added, tensors: not sizes
        return fallback(call)
    operands = [as_dim(s) for s in call.sargs]
    if None in operands:
        return None
    result = fn(*operands)
    return result if isinstance(result, Q) else sympy.sympify(result)


for_functions(*_SCALAR_OPS, *RELATIONS)(same_shape)


# Fast: the output has the input's size and dtype, and PyTorch's shape rule is
# broadcasting, so the fast path may predict it.
_UNARY_FUNCTIONS = (
    F.relu, F.relu6, F.leaky_relu, F.gelu, F.silu, F.mish, F.elu, F.selu, F.hardswish, F.hardsigmoid, F.hardtanh,
    F.sigmoid, F.tanh, F.softplus, torch.relu, torch.sigmoid, torch.tanh, F.dropout, F.dropout2d,
)  # fmt: skip
_UNARY_METHODS = ("relu", "relu_", "sigmoid", "sigmoid_", "tanh", "tanh_", "clone", "detach")
for_functions(*_UNARY_FUNCTIONS, *MERGE_FUNCTIONS, fast=True)(same_shape)
for_methods(*_UNARY_METHODS, *MERGE_METHODS, fast=True)(same_shape)


@for_functions(F.softmax, F.log_softmax, torch.softmax, torch.log_softmax, fast=True)
@for_methods("softmax", "log_softmax", fast=True)
@output_layout("contiguous")
def softmax(call: Call) -> Any:
    """The input's sizes; predicted for a floating tensor and a dim it has, no dtype (an
    attention's ``attn.softmax(-1)``): PyTorch's own check would import its symbolic shapes."""
    x, dim = call.arg(0, "input"), call.arg(1, "dim")
    if call.out is None and not (
        isinstance(x, torch.Tensor)
        and x.is_floating_point()
        and len(call.args) <= 2
        and set(call.kwargs) <= {"dim"}
        and type(dim) is int
        and -max(x.dim(), 1) <= dim < max(x.dim(), 1)
    ):
        raise Unpredictable(call.target)
    return call.sargs[0] if isinstance(call.sargs[0], SymTensor) else fallback(call)


ELEMENTWISE_FUNCTIONS = (
    operator.floordiv, operator.neg, operator.pow, operator.mod, operator.invert,
    torch.true_divide, torch.where,
    torch.exp, torch.log, torch.abs, torch.neg, torch.sqrt, torch.rsqrt,
    torch.pow, torch.clamp, torch.clip, torch.sin, torch.cos, torch.erf, torch.softmax, torch.log_softmax,
    torch.sign, torch.square, torch.reciprocal, torch.lerp, torch.addcmul,
    torch.cumsum, torch.cumprod, torch.flip, torch.roll, torch.logical_not,
    F.selu, F.celu, F.softsign, F.tanhshrink, F.logsigmoid, F.rrelu,
    F.softmax, F.log_softmax, F.softmin, F.dropout1d, F.dropout3d, F.alpha_dropout, F.threshold,
)  # fmt: skip
for _fn in ELEMENTWISE_FUNCTIONS:
    FUNCTION_TRANSFERS.setdefault(_fn, same_shape)

ELEMENTWISE_METHODS = (
    "true_divide", "pow", "neg", "abs", "exp", "log", "sqrt", "rsqrt",
    "clamp", "clamp_", "clip", "contiguous", "float", "double", "half", "bfloat16",
    "to", "type", "type_as", "softmax",
    "log_softmax", "masked_fill", "masked_fill_", "sign", "square", "reciprocal", "cpu",
    "cuda", "requires_grad_", "__add__", "__mul__", "__sub__", "__truediv__", "__radd__", "__rmul__", "lerp",
    "where", "sin", "cos", "erf", "exp_", "fill_", "zero_", "normal_", "uniform_",
    "cumsum", "cumprod", "flip", "roll", "logical_not", "bitwise_not", "__invert__",
    "eq", "ne", "lt", "le", "gt", "ge", "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__",
    "__and__", "__or__", "__xor__", "logical_and", "logical_or", "bitwise_and", "bitwise_or", "floor", "ceil",
    "round", "__floordiv__", "__rfloordiv__", "__mod__", "__rsub__", "__rtruediv__", "__pow__", "__rpow__",
    "remainder", "floor_divide", "sigmoid_", "log2", "exp2", "log1p", "expm1",
    "long", "int", "short", "char", "byte", "bool", "trunc", "frac",
)  # fmt: skip
for _name in ELEMENTWISE_METHODS:
    METHOD_TRANSFERS.setdefault(_name, same_shape)

# The input's shape, whatever the other tensors: a norm's weight and running statistics
# (C,) do not broadcast against the input's last dim, nor does prelu's weight (F.layer_norm:
# layer_norm_function, predicted).
INPUT_SHAPED_FUNCTIONS = (
    F.batch_norm, F.group_norm, F.instance_norm, F.local_response_norm, F.normalize, F.prelu,
    torch.batch_norm, torch.layer_norm, torch.group_norm, torch.instance_norm,
    *([F.rms_norm] if hasattr(F, "rms_norm") else []),
)  # fmt: skip


@for_functions(*INPUT_SHAPED_FUNCTIONS)
def input_shaped(call: Call) -> Any:
    return call.sargs[0] if call.sargs and isinstance(call.sargs[0], SymTensor) else fallback(call)


# ---------------------------------------------------------------- cat and stack


def _cat_operands(tensors: Sequence[Any], dim: int, check: bool) -> list:
    """The operands torch.cat joins (it skips 1-d empty tensors); ``check``: checked as
    torch.cat checks them (one rank, one size outside ``dim``), before predicting."""
    if not all(isinstance(t, torch.Tensor) for t in tensors):
        raise Unpredictable("cat of a non-tensor")
    kept = [(i, t) for i, t in enumerate(tensors) if not (t.dim() == 1 and t.shape[0] == 0)]
    if not kept:
        raise Unpredictable("cat of nothing")
    first = kept[0][1]
    axis = dim % first.dim()
    for i, t in kept if check else ():
        if t.dim() != first.dim():
            raise RuntimeError(f"Tensors must have same number of dimensions: got {first.dim()} and {t.dim()}")
        for d in range(first.dim()):
            if d != axis and t.shape[d] != first.shape[d]:
                raise RuntimeError(f"Sizes of tensors must match except in dimension {axis} (tensor number {i})")
    return [i for i, _ in kept]


@for_functions(torch.cat, torch.concat, torch.concatenate, fast=True)
@output_layout("format")
def cat_function(call: Call) -> Any:
    tensors, shadows = call.arg(0, "tensors"), call.arg(0, "tensors", shadow=True)
    kept = _cat_operands(tensors, call.arg(1, "dim", 0), check=call.out is None)
    first = shadows[kept[0]]
    axis = call.arg(1, "dim", 0) % len(first.dims)
    dims = list(first.dims)
    total = [shadows[i].dims[axis] for i in kept]
    if any(d is None for d in total):
        dims[axis] = None
    elif all(isinstance(d, Q) for d in total):  # the exact type: no sympy
        dims[axis] = functools.reduce(operator.add, total)
    else:
        dims[axis] = sympy.Add(*total)
    return SymTensor(tuple(dims))


@for_functions(torch.stack)
def stack_function(call: Call) -> Any:
    shadows = call.arg(0, "tensors", shadow=True)
    dims = list(shadows[0].dims)
    axis = call.arg(1, "dim", 0) % call.out.dim()
    dims.insert(axis, integer(len(shadows)))
    return SymTensor(tuple(dims))
