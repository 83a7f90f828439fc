"""SizeProp: run a graph on meta tensors, carrying a symbolic shadow beside every value.

A ``torch.fx.Interpreter`` in the spirit of ``ShapeProp``: ``call_module``,
``call_function`` and ``call_method`` find the node's transfer function, run the op on
meta tensors (so nothing is allocated), and record the shadow beside the concrete value.
At the example size every shadow, evaluated, must equal the concrete value; a
disagreement is kept in ``mismatches`` and reported, never ignored.

One switch, ``run_every_op``: when off, a *fast* op (activations, norms, elementwise
merges, cat, adaptive pooling, interpolation) is not run; its output is its transfer
function's shadow evaluated at the example. Running these on meta tensors is exact but
slow (batch norm is decomposed, and the first cat imports ``torch._dynamo``, about a
second each process); when on, every op runs and the self-check covers them too.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import torch
import torch.fx

from convlint import lazy_sympy as sympy
from convlint.capture.values import READS, UNKNOWN, Values, in_place, meta_unsupported, on_meta
from convlint.common import describe, meta_input, spatial_axes
from convlint.dims import EXPR, free
from convlint.sizes import contents, probe, transfer
from convlint.sizes.elementwise import is_cat, is_merge, merge_operands
from convlint.sizes.symbolic import (
    SPATIAL_NAMES,
    SymTensor,
    constant_shadow,
    evaluate_int,
    has_symbols,
    input_dim,
    integer,
    symbol,
)
from convlint.sizes.transfer import Call, Unpredictable

log = logging.getLogger(__name__)


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
    geometries: dict = field(default_factory=dict)  # conv-like node -> its Geometry
    mismatches: list = field(default_factory=list)
    transfer_errors: list = field(default_factory=list)  # (node, exception)
    error: Optional[tuple] = None  # (node, exception) where execution stopped
    unknown_ops: dict = field(default_factory=dict)  # node whose sizes went unknown -> why
    broken_merges: dict = field(default_factory=dict)  # merge node -> the error PyTorch raised there
    example_only: dict = field(default_factory=dict)  # leaf whose sizes are known at the example only -> why
    # node -> relations its sizes (and so all after it) are right within: a broadcast
    # sized by one operand because the exact Max grew too large (elementwise.broadcast)
    within: dict = field(default_factory=dict)
    spatial_ndim: int = 0  # spatial dims of the first input: the trailing dims rules read


def merge_stand_in(n: Any, args: Sequence[Any], kwargs: dict) -> Optional[torch.Tensor]:
    """What a merge of mismatched sizes stands for, so that what comes after it is still
    followed: the first operand's sizes (a cat: its sum along the dim). ``n`` is the merge's
    node, or anything with its ``op`` and ``target`` (a capture in progress)."""
    if not is_merge(n):
        return None
    tensors = [t for t in merge_operands(n, args, kwargs) if isinstance(t, torch.Tensor)]
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


def shape_of(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return tuple(value.shape)
    if isinstance(value, (tuple, list)):
        return tuple(shape_of(v) for v in value)
    return value


def _fits(shadow: Any, value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return isinstance(shadow, SymTensor) and len(shadow.dims) == value.dim()
    if isinstance(value, (tuple, list)):
        return isinstance(shadow, (tuple, list)) and len(shadow) == len(value)
    return True


class SizeProp(torch.fx.Interpreter):
    def __init__(
        self,
        graph_module: torch.fx.GraphModule,
        input_shadows: Sequence[SymTensor],
        symbols: dict,
        run_every_op: bool,
        guards: Optional[dict] = None,
    ):
        super().__init__(graph_module)
        self.result = SizeResult(graph_module, symbols)
        self.run_every_op = run_every_op
        self._input_shadows = list(input_shadows)
        self._node: Optional[torch.fx.Node] = None
        self.values = Values()  # tensors computed from sizes, constants and factories
        self.guards = dict(guards or {})  # decision node -> the truth value the example gave it
        self.zeros: dict = {}  # sizes the decisions so far make 0 (Call.zeros)

    def run_node(self, n: torch.fx.Node) -> Any:
        self._node = n  # the hooks below receive only target, args and kwargs
        return super().run_node(n)

    # ------------------------------------------------------------ fx's hooks

    def placeholder(self, target, args, kwargs) -> Any:
        value = super().placeholder(target, args, kwargs)
        shadow = self._input_shadows.pop(0) if self._input_shadows else constant_shadow(value)
        return self._record(shadow, value)

    def get_attr(self, target, args, kwargs) -> Any:
        value = super().get_attr(target, args, kwargs)
        if isinstance(value, torch.Tensor):
            self.values.constant(value)
            self.values.set_content(value, contents.constant(self.values.of(value)))
        return self._record(constant_shadow(value), value)

    def output(self, target, args, kwargs) -> Any:
        value = super().output(target, args, kwargs)
        return self._record(torch.fx.node.map_arg(self._node.args[0], self.result.shadows.__getitem__), value)

    def call_module(self, target, args, kwargs) -> Any:
        module = self.fetch_attr(target)
        run = lambda: super(SizeProp, self).call_module(target, args, kwargs)  # noqa: E731
        return self._call(transfer.for_module(module), run, args, kwargs, module)

    def call_function(self, target, args, kwargs) -> Any:
        run = lambda: super(SizeProp, self).call_function(target, args, kwargs)  # noqa: E731
        return self._call(transfer.for_function(target), run, args, kwargs)

    def call_method(self, target, args, kwargs) -> Any:
        run = lambda: super(SizeProp, self).call_method(target, args, kwargs)  # noqa: E731
        return self._call(transfer.for_method(target), run, args, kwargs)

    # ------------------------------------------------------------ one op

    def _call(self, fn: Optional[transfer.Transfer], run: Callable, args, kwargs, module=None) -> Any:
        n, shadows = self._node, self.result.shadows
        sargs = torch.fx.node.map_arg(n.args, shadows.__getitem__)
        skwargs = torch.fx.node.map_arg(n.kwargs, shadows.__getitem__)
        call = Call(n, n.target, tuple(args), dict(kwargs), tuple(sargs), dict(skwargs), None, module, zeros=self.zeros)
        name = contents.op_name(n.op, n.target) if module is None else ""
        known = self.values.of(args[0]) if name in READS and args else None
        if known is not None:  # .item(), .tolist(), if mask.any(): a value sizes decided
            return self._read(name, known, call)
        if fn is not None and not self.run_every_op and self._fast(n, module):
            predicted = self._predict(fn, call, run)
            if predicted is not None:
                call.out = predicted[1]
                self._track(name, call, predicted[0])
                return self._record(*predicted, geometry=call.geometry, within=call.within)
            call.within.clear()
        call.out = self._execute(run)
        shadow = self._check(self._shadow(fn, call), call.out)
        self._track(name, call, shadow)
        return self._record(shadow, call.out, geometry=call.geometry, within=call.within)

    def _track(self, name: str, call: Call, shadow: Any) -> None:
        """Compute the op's output value where its operands' values are known, and what
        that value is at every size (``contents``)."""
        if call.module is not None:
            self.values.after(name, call.args, call.kwargs, call.out, UNKNOWN)
            return
        fn = _method(name) if call.node.op == "call_method" else call.target
        value = self.values.compute(name, fn, call.args, call.kwargs, call.out)
        content = None
        if value is not UNKNOWN and _tensors(call.out):
            content = contents.content(name, fn, call, shadow, self.values.content_of, self.values.of)
            operands = [c for c in map(self.values.content_of, _tensors((call.args, call.kwargs)))]
            if (
                content is None
                and all(contents.is_constant(c) for c in operands)
                and not has_symbols(
                    [s for s in _flat_shadows((call.sargs, call.skwargs)) if not isinstance(s, SymTensor)]
                )
            ):
                content = contents.constant(value)  # arange(10), a buffer's arithmetic: constants
        self.values.after(name, call.args, call.kwargs, call.out, value)
        if value is not UNKNOWN:
            written = call.args[0] if in_place(name, call.kwargs) and call.args else call.out
            self.values.set_content(written, content)

    def _read(self, name: str, value: torch.Tensor, call: Call) -> Any:
        """Python reads a tensor whose value sizes decided: its expression where the
        content has one, else the example's number, said at its line."""
        n = self._node
        out = value.tolist() if name == "tolist" else getattr(value, name)()
        shadow = contents.read(name, self.values.content_of(call.args[0]), out, value.dtype)
        if shadow is None or (isinstance(shadow, list) and None in _flat_shadows(shadow)):
            self.result.unknown_ops[n] = (
                "it reads a value computed from the input's sizes that convlint follows at the example only"
            )
        return self._record(self._check(shadow, out), out)

    @staticmethod
    def _fast(n: torch.fx.Node, module) -> bool:
        return is_fast(n.op, n.target, module)

    def _predict(self, fn: transfer.Transfer, call: Call, run: Callable) -> Optional[tuple]:
        return predict(fn, call, self.result.symbols, run)

    def _execute(self, run: Callable) -> Any:
        n = self._node
        try:
            return run()
        except Exception as exc:
            # A merge of mismatched sizes (the bug CVL301 reports) must not hide what comes
            # after it: go on as if the merge had taken its first operand's sizes.
            value = self._stand_in(n)
            if value is not None:
                self.result.broken_merges[n] = exc
                return value
            if n.op != "call_module" and meta_unsupported(exc):  # nonzero of a known mask
                args, kwargs = self.fetch_args_kwargs_from_env(n)
                name = contents.op_name(n.op, n.target)
                fn = _method(name) if n.op == "call_method" else n.target
                value = self.values.compute(name, fn, args, kwargs)
                if value is not UNKNOWN:
                    return on_meta(value)
            # A leaf that meta tensors cannot run (it reads data: .item()) runs on the CPU.
            if n.op == "call_module":
                value = _on_cpu(self.fetch_attr(n.target), *self.fetch_args_kwargs_from_env(n))
                if value is not None:
                    self.result.example_only[n] = f"it cannot run on meta tensors ({exc}); run on the CPU, on zeros"
                    return value
            raise

    def _shadow(self, fn: Optional[transfer.Transfer], call: Call) -> Any:
        n = call.node
        if fn is None:
            if call.out is None:
                return None  # an op that returns nothing (fx's guards on specialised arguments)
            return self._leaf(call)
        try:
            shadow = fn(call)
        except Exception as exc:  # a transfer function's own bug: report it, go on concrete
            self.result.transfer_errors.append((n, exc))
            return transfer.fallback(call)
        if not _fits(shadow, call.out):
            self.result.transfer_errors.append((n, ValueError(f"shadow {shadow!r} does not fit {shape_of(call.out)}")))
            return transfer.fallback(call)
        return shadow

    def _leaf(self, call: Call) -> Any:
        """A submodule fx could not follow, a helper function outside torch, or an op with
        no transfer function: probed where it is one of the first two, else unknown."""
        n = call.node
        leaf = n.op == "call_module" or (
            n.op == "call_function" and not getattr(n.target, "__module__", "torch").startswith("torch")
        )
        reason = "convlint has no size rule for it"
        if leaf and n not in self.result.example_only:
            try:
                return probe.probe(call)
            except probe.NoFit as exc:
                reason = f"probed at other sizes: {exc}"
        if n in self.result.example_only:
            reason = self.result.example_only[n]
        if has_symbols((call.sargs, call.skwargs)):
            self.result.unknown_ops[n] = reason
        return transfer.fallback(call)

    def _record(self, shadow: Any, value: Any, geometry=None, within: Sequence = ()) -> Any:
        """The one place a node's sizes are written."""
        n = self._node
        self.result.shadows[n] = shadow
        self.result.values[n] = shape_of(value)
        if geometry is not None:
            self.result.geometries[n] = geometry
        if within:
            self.result.within[n] = tuple(dict.fromkeys(within))
        if n in self.guards:
            self.zeros.update(zero_sizes(shadow, self.guards[n]))
        return value

    def _stand_in(self, n: torch.fx.Node) -> Optional[torch.Tensor]:
        args, kwargs = self.fetch_args_kwargs_from_env(n)
        return merge_stand_in(n, args, kwargs)

    def _check(self, shadow: Any, value: Any) -> Any:
        """Compare the shadow with the concrete value at the example size.

        A disagreeing dimension is recorded and made unknown, so one wrong formula
        is reported once, not again at every node after it.
        """
        n, symbols = self._node, self.result.symbols
        if isinstance(value, torch.Tensor) and isinstance(shadow, SymTensor):
            dims = list(shadow.dims)
            for axis, (expr, size) in enumerate(zip(shadow.dims, value.shape)):
                got = evaluate_int(expr, symbols)
                # Expressions hold within the sizes where every op is defined; a value
                # <= 0 stands for an empty dimension (x[..., :-p] with n < p).
                if expr is not None and got != size and not (size == 0 and got is not None and got < 0):
                    self.result.mismatches.append(Mismatch(n, axis, expr, size, got))
                    dims[axis] = None
            return SymTensor(tuple(dims))
        if isinstance(value, (tuple, list)) and isinstance(shadow, (tuple, list)):
            return type(shadow)(self._check(s, v) for s, v in zip(shadow, value))
        if isinstance(value, int) and not isinstance(value, bool) and isinstance(shadow, EXPR):
            got = evaluate_int(shadow, symbols)
            if got != value:
                self.result.mismatches.append(Mismatch(n, -1, shadow, value, got))
                return None
        return shadow


def is_fast(op: str, target: Any, module=None) -> bool:
    """May the output of this op be predicted from its transfer function?"""
    if module is not None:
        return isinstance(module, transfer.FAST_MODULES)
    if op == "call_method":
        return target in transfer.FAST_METHODS
    return target in transfer.FAST_FUNCTIONS


# Set by the test suite: a transfer that raises where PyTorch runs the op is a defect (a
# NameError in a guard, say) that users would only see as a slower run; fail loudly.
STRICT_TRANSFERS = "CONVLINT_STRICT_TRANSFERS"


class TransferDefect(BaseException):
    """A transfer function raised where PyTorch runs the op (under ``STRICT_TRANSFERS``).
    Not an Exception: no diagnostic of the run may absorb it."""


def predict(fn: transfer.Transfer, call: Call, symbols: dict, run: Optional[Callable] = None) -> Optional[tuple]:
    """(shadow, a meta tensor of its sizes at ``symbols``) from a fast op's transfer
    function alone, or None: run the op instead (it may raise, or size 0 may mean more).
    ``run`` runs the op itself: under ``STRICT_TRANSFERS`` it judges a transfer's error."""
    tensors = _tensors(call.args)
    if not tensors or any(0 in t.shape for t in tensors):
        return None
    strides = _strides(fn, call, tensors)
    if strides is None:
        return None
    try:
        shadow = fn(call)
    except Unpredictable:
        return None
    except Exception as exc:  # the op itself would raise: run it, so its own error is kept
        log.debug("predicting %s raised %s; the op is run instead", call.target, describe(exc))
        if run is not None and os.environ.get(STRICT_TRANSFERS) == "1":
            _judge(call, exc, run)
        return None
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    value = _concrete(shadow, dtype, symbols, strides)
    return None if value is None else (shadow, value)


def _judge(call: Call, exc: Exception, run: Callable) -> None:
    """Raise ``TransferDefect`` if the op runs where its transfer raised ``exc``."""
    try:
        run()
    except Exception:
        return  # the transfer raised as the op does
    raise TransferDefect(f"the transfer of {call.target} raised {describe(exc)} where PyTorch runs the op") from exc


def _strides(fn: transfer.Transfer, call: Call, tensors: list) -> Optional[Callable[[list], Optional[tuple]]]:
    """How the predicted output's strides follow from its sizes; None where they are not
    known (the op is run). A view after the op may raise on them (``relu(x.transpose(2,
    3)).view``), so they are PyTorch's: contiguous inputs give a contiguous output (an op
    that returns its input, the input's strides); otherwise as ``transfer.output_layout``
    says (checked against PyTorch on every layout in tests/test_sizes.py)."""
    layout = getattr(fn, "output_layout", None)
    layout = layout(call) if callable(layout) else layout
    first = tensors[0]
    if layout == "preserve":  # clone: a dense input's strides exactly, else laid out densely
        layout = "input" if _dense(first) else "elementwise"
    if layout == "input":
        return lambda sizes: first.stride() if list(sizes) == list(first.shape) else None
    if layout == "contiguous" or all(t.is_contiguous() for t in tensors):
        return _contiguous_strides
    if layout == "format":  # cat: channels-last where every operand suggests it, else contiguous
        if all(_channels_last(t) and t.dim() == first.dim() for t in tensors):
            return _channels_last_strides
        return _contiguous_strides
    if layout == "elementwise":
        return lambda sizes: _elementwise_strides([t.expand(sizes) for t in tensors], sizes)
    return None


def _contiguous_strides(sizes: list) -> tuple:
    return _strides_in_order(sizes, range(len(sizes)))


def _channels_last_strides(sizes: list) -> tuple:
    return _strides_in_order(sizes, [0, *range(2, len(sizes)), 1])


def _strides_in_order(sizes: list, order) -> tuple:
    """Dense strides laying out ``sizes``' dims in ``order``, outermost first."""
    strides, step = [0] * len(sizes), 1
    for d in reversed(list(order)):
        strides[d] = step
        step *= max(sizes[d], 1)
    return tuple(strides)


def _elementwise_strides(operands: list, sizes: list) -> tuple:
    """The strides TensorIterator gives the output of operands of one shape (broadcast
    ones expanded, stride 0): as they are where all are dense and alike (its fast set-up),
    else dense with its dims ordered by the first operand's strides, ties by the next
    operand's (PyTorch's compute_elementwise_output_logical_to_physical_perm, on plain
    ints; a sliced, non-dense operand too: ``clone`` and ``empty_like`` order them so)."""
    ndim = len(sizes)
    if ndim <= 1:
        return _contiguous_strides(sizes)
    last = {4: torch.channels_last, 5: torch.channels_last_3d}.get(ndim)
    if all(t.is_contiguous() for t in operands):
        return _contiguous_strides(sizes)
    if last is not None and all(t.is_contiguous(memory_format=last) for t in operands):
        return _channels_last_strides(sizes)
    if _dense(operands[0]) and all(t.stride() == operands[0].stride() for t in operands):
        return operands[0].stride()  # one dense layout (size-1 dims' strides too): kept as it is

    perm = list(reversed(range(ndim)))  # innermost first, reversed on output
    for i in range(1, ndim):
        dim1 = i
        for dim0 in reversed(range(i)):
            comparison = _should_swap(operands, sizes, perm[dim0], perm[dim1])
            if comparison > 0:
                perm[dim0], perm[dim1] = perm[dim1], perm[dim0]
                dim1 = dim0
            elif comparison < 0:
                break
    return _strides_in_order(sizes, list(reversed(perm)))


def _should_swap(operands: list, sizes: list, a: int, b: int) -> int:
    """1 if dim ``a`` lies inside dim ``b`` in the output, -1 if outside, 0 undecided: the
    first operand whose strides tell them apart decides (broadcast dims tell nothing)."""
    for t in operands:
        sa, sb = t.stride()[a], t.stride()[b]
        if sa == 0 or sb == 0:
            continue
        if sa == sb:
            if _ge(sizes[b], sizes[a]):
                continue
            return 1
        if _ge(sb, sa):
            return -1
        if _ge(sa, sb):
            return 1
    return 0


def _ge(x: int, y: int) -> bool:
    return True if y == 0 else False if x == 0 else x >= y or x % y == 0


def _channels_last(t: torch.Tensor) -> bool:
    """Does PyTorch suggest channels-last for ``t`` (c10's is_channels_last_strides_2d/3d,
    which ``suggest_memory_format`` reads: C innermost, then W, H (D), N, ambiguous size-1
    cases NCHW)?"""
    order = {4: (1, 3, 2, 0), 5: (1, 4, 3, 2, 0)}.get(t.dim())
    sizes, strides = t.shape, t.stride()
    if order is None or strides[1] == 0:
        return False
    low = 0
    for d in order:
        if sizes[d] == 0 or strides[d] < low or (d == 0 and low == strides[1]):
            return False
        low = strides[d] * max(sizes[d], 1)
    return True


def _dense(t: torch.Tensor) -> bool:
    """Non-overlapping and dense: its elements fill its storage in some order of its dims."""
    expected = 1
    for stride, size in sorted((stride, size) for size, stride in zip(t.shape, t.stride()) if size != 1):
        if stride != expected:
            return False
        expected *= size
    return True


def _concrete(shadow: Any, dtype: torch.dtype, symbols: dict, strides: Callable = _contiguous_strides) -> Any:
    """A meta tensor of the shadow's sizes (a pair for (values, indices)), laid out by
    ``strides`` (sizes -> strides, None: not known)."""
    if isinstance(shadow, tuple):
        first = _concrete(shadow[0], dtype, symbols)
        return None if first is None else (first, first.long())
    if not isinstance(shadow, SymTensor):
        return None
    sizes = [evaluate_int(d, symbols) for d in shadow.dims]
    if any(s is None or s <= 0 for s in sizes):
        return None  # let PyTorch say what a size that is not positive means
    laid = strides(sizes)
    return None if laid is None else torch.empty_strided(sizes, laid, device="meta", dtype=dtype)


_CPU_LIMIT = 50_000_000  # parameters a leaf may have to be run on the CPU


def _on_cpu(module, args, kwargs) -> Any:
    """The output of a leaf run on the CPU, on zeros, with uninitialised weights, as meta
    tensors: its sizes at the example input, nothing more. None if that fails too."""
    import copy

    if sum(p.numel() for p in module.parameters()) > _CPU_LIMIT:
        return None
    to_cpu = lambda a: torch.zeros(a.shape, dtype=a.dtype) if isinstance(a, torch.Tensor) else a  # noqa: E731
    to_meta = lambda a: torch.empty(a.shape, dtype=a.dtype, device="meta") if isinstance(a, torch.Tensor) else a  # noqa: E731
    try:
        runnable = copy.deepcopy(module).to_empty(device="cpu")
        with torch.no_grad():
            out = runnable(*torch.fx.node.map_aggregate(args, to_cpu), **torch.fx.node.map_aggregate(kwargs, to_cpu))
    except Exception as exc:  # the caller raises the meta error, the one that explains it
        log.debug("%s did not run on the CPU either: %s", type(module).__name__, describe(exc))
        return None
    return torch.fx.node.map_aggregate(out, to_meta)


def _method(name: str) -> Callable:
    return lambda self, *args, **kwargs: getattr(self, name)(*args, **kwargs)


def _flat_shadows(value: Any) -> list:
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in _flat_shadows(v)]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _flat_shadows(v)]
    return [value]


def _tensors(value: Any) -> list:
    """The tensors in a nest of arguments (a cat's list among them), in order."""
    found: list = []
    torch.fx.node.map_aggregate(value, lambda a: found.append(a) if isinstance(a, torch.Tensor) else None)
    return found


def input_shadow(shape: Sequence[int], names: Sequence[str]) -> tuple[SymTensor, dict]:
    """Shadow for an input of ``shape``: its spatial axes (``common.spatial_axes``) symbols
    named ``names``, its other dims concrete."""
    axes = spatial_axes(shape)
    syms = dict(zip(axes, (input_dim(name) for name in names)))
    dims = tuple(syms.get(i, integer(n)) for i, n in enumerate(shape))
    return SymTensor(dims), {symbol(str(syms[a])): shape[a] for a in axes}


def zero_sizes(relation: Any, taken: bool) -> dict:
    """{size: 0} for a decision that, as the example took it, makes a size that is never
    negative (a ``Mod``) zero: ``if pad > 0:`` not taken, ``if pad == 0:`` taken, with
    ``pad = (w - x % w) % w``. Within the example's branches the size is 0 at every input."""
    if not isinstance(relation, sympy.core.relational.Relational) or not free(relation):
        return {}
    difference = relation.lhs - relation.rhs
    zero = (
        (isinstance(relation, sympy.StrictGreaterThan) and not taken)
        or (isinstance(relation, sympy.LessThan) and taken)
        or (isinstance(relation, sympy.Eq) and taken)
        or (isinstance(relation, sympy.Ne) and not taken)
    )
    if not zero:  # `0 < pad` not taken, `0 >= pad` taken: the other side
        difference = -difference
        zero = (isinstance(relation, sympy.StrictLessThan) and not taken) or (
            isinstance(relation, sympy.GreaterThan) and taken
        )
    if zero and isinstance(difference, sympy.Mod) and difference.args[1].is_positive:
        return {difference: integer(0)}
    return {}


def propagate(
    graph_module: torch.fx.GraphModule,
    input_shapes: Sequence[Sequence[int]],
    *,
    run_every_op: bool = False,
    guards: Optional[dict] = None,
) -> SizeResult:
    """Sizes for every node, the inputs' spatial dims named L / H, W / D, H, W.

    The spatial dims are an input's last ones, or the axes its ``Shape`` names (a
    channels-last input). A second input with the same spatial sizes as the first shares
    its symbols; one with other sizes gets its own (``H1``, ``W1``, ...). ``run_every_op``:
    see the module's doc (``convlint.options.Options`` carries it from the CLI, the
    configuration or the API).
    """
    shadows, symbols, seen = [], {}, {}
    for index, shape in enumerate(input_shapes):
        axes = spatial_axes(shape)
        spatial = tuple(shape[a] for a in axes)
        if axes and spatial in seen:
            shadows.append(SymTensor(tuple(seen[spatial].get(i, integer(n)) for i, n in enumerate(shape))))
            continue
        # past three (a layout probe, every axis a symbol) an axis is named by its index
        names = SPATIAL_NAMES.get(len(axes)) or [f"A{a}_" for a in axes]
        names = [f"{n}{index}" if index else n for n in names]
        shadow, syms = input_shadow(shape, names)
        seen[spatial] = {a: shadow.dims[a] for a in axes}
        shadows.append(shadow)
        symbols.update(syms)
    prop = SizeProp(graph_module, shadows, symbols, run_every_op, guards)
    prop.result.spatial_ndim = len(spatial_axes(input_shapes[0])) if input_shapes else 0
    inputs = [meta_input(shape) for shape in input_shapes]
    try:
        prop.run(*inputs)
    except Exception as exc:
        # Execution stopped at the node being run: the report names it and the reason.
        prop.result.error = (prop._node, exc)
    return prop.result
