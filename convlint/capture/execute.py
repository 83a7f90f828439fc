"""Capture by execution: record the graph by running ``forward`` on meta tensors.

Where ``torch.fx`` symbolic tracing stops (an input check that raises, ``assert``,
``int(x.size(2))``, loops over hidden states, a decorated ``forward``), the model is run
for real at the example input, with Python's own control flow, and every op is recorded
as fx would have: a ``torch.nn`` layer call is one ``call_module`` node, a torch function
a ``call_function`` node, a tensor method a ``call_method`` node, each with the source
line that made it. The result is an ordinary ``torch.fx.GraphModule``; sizes, rules, the
shapes report and the fixer read it as they read fx's.

Sizes that Python reads (``x.shape[-1]``, ``x.size(2)``, ``len(x)``) are ``SizeInt``s: the
example's int, and the graph node it came from, so ``h // 2`` or ``F.pad(x, [d, d])``
stay expressions in the graph. Where Python needs a concrete answer (``if``, ``assert``,
``range``, a comparison), the example decides, and the decision is recorded as a
*guard*: (the node, the value it had); the sizes stage turns it into a relation on the
input's sizes (``H % 32 == 0``).

How ops are intercepted: a ``TorchFunctionMode`` sees every torch function, tensor method
and tensor property; ``nn.Module.__call__`` is wrapped while the model runs, so a call of
a ``torch.nn`` layer is recorded whole (as fx's ``is_leaf_module`` decides) and the
model's own modules are followed inside.
"""

from __future__ import annotations

import builtins
import dataclasses
import inspect
import math
import operator
from typing import Any, Callable, Optional, Protocol, Sequence

import torch
import torch.fx
import torch.nn as nn
from torch.overrides import TorchFunctionMode

from convlint import sites
from convlint.capture.fx import Trace, graph_module_of
from convlint.capture.values import READS, UNKNOWN, Values, meta_unsupported, on_meta
from convlint.common import describe, meta_input

# Tensor dunder methods recorded as the operator fx would use.
_DUNDERS = {
    "__getitem__": operator.getitem,
    "__setitem__": operator.setitem,
    "__len__": builtins.len,
}
# Tensor properties whose value is not a tensor and does not depend on the input's sizes.
_PLAIN_PROPERTIES = {"ndim", "dtype", "device", "is_cuda", "requires_grad", "layout", "is_meta", "names"}


class Predictor(Protocol):
    """What the capture may ask of the sizes stage, passed in by the caller (the sizes
    stage comes after the capture and the capture does not import it). Without one,
    every op is run on meta tensors."""

    def output(self, op: str, target: Any, module: Optional[nn.Module], args: tuple, kwargs: dict) -> Any:
        """An op's output predicted from its sizes, without running it; None: run it."""

    def merge_stand_in(self, op: str, target: Any, args: tuple, kwargs: dict) -> Any:
        """What a merge of mismatched sizes stands for, so that the capture goes on; None:
        it is no such merge."""


class ValueUnknown(RuntimeError):
    """Python read the value of a tensor that depends on the input's data or on the
    weights (``if x.mean() > 0:``): no size analysis has it. The capture stops there."""

    def __init__(self, code: str, why: str, site: Optional[sites.Site]) -> None:
        super().__init__(f"{code} {why}")
        self.code, self.why, self.site = code, why, site


class _SizeNumber:
    """What SizeInt and SizeFloat share: the example's value (the number itself), the node
    that computes it from the input's sizes, and a truth value that is a guard."""

    _base: type
    node: torch.fx.Node
    recorder: "_Recorder"

    def __new__(cls, value, node: torch.fx.Node, recorder: "_Recorder"):
        obj = cls._base.__new__(cls, value)
        obj.node, obj.recorder = node, recorder
        return obj

    def __repr__(self) -> str:
        return self._base.__repr__(self)

    __str__ = __repr__

    def __hash__(self) -> int:
        return self._base.__hash__(self)

    def __bool__(self) -> bool:
        return self.recorder.decide(self.node, self._base.__bool__(self))


class SizeInt(_SizeNumber, int):
    """An int that Python read from a tensor's sizes (``x.size(2)``, ``len(x)``)."""

    _base = int

    def __index__(self) -> int:
        # range(h), a list index: only this size will do.
        return self.recorder.pin(self)

    # The model's own int() and float() keep a size (``_NumberMeta``); these are called by
    # what cannot carry one: math.sqrt, numpy (``np.array([h, w])``), another module's
    # int(). The number they make holds at this size only: pinned, not lost silently.
    def __int__(self) -> int:
        return self.recorder.pin(self)

    def __float__(self) -> float:
        return float(self.recorder.pin(self))


class SizeFloat(_SizeNumber, float):
    """A float computed from sizes (``h / 2``)."""

    _base = float

    def __int__(self) -> SizeInt:
        return self.recorder.scalar(int, self)

    def __floor__(self) -> SizeInt:
        return self.recorder.scalar(math.floor, self)

    def __ceil__(self) -> SizeInt:
        return self.recorder.scalar(math.ceil, self)

    def __round__(self, ndigits=None):
        return round(float(self), ndigits) if ndigits is not None else self.recorder.scalar(round, self)


def _arithmetic(op: Callable, reflected: bool = False) -> Callable:
    if reflected:
        return lambda self, other: self.recorder.scalar(op, other, self)
    return lambda self, other: self.recorder.scalar(op, self, other)


def _comparison(op: Callable) -> Callable:
    return lambda self, other: self.recorder.compare(op, self, other)


for _cls in (SizeInt, SizeFloat):
    for _name, _op in [
        ("add", operator.add), ("sub", operator.sub), ("mul", operator.mul), ("floordiv", operator.floordiv),
        ("truediv", operator.truediv), ("mod", operator.mod), ("pow", operator.pow),
    ]:  # fmt: skip
        setattr(_cls, f"__{_name}__", _arithmetic(_op))
        setattr(_cls, f"__r{_name}__", _arithmetic(_op, reflected=True))
    for _name, _op in [("eq", operator.eq), ("ne", operator.ne), ("lt", operator.lt), ("le", operator.le),
                       ("gt", operator.gt), ("ge", operator.ge)]:  # fmt: skip
        setattr(_cls, f"__{_name}__", _comparison(_op))
    _cls.__neg__ = lambda self: self.recorder.scalar(operator.neg, self)
    _cls.__pos__ = lambda self: self
    _cls.__abs__ = lambda self: self  # sizes are not negative


def _plain(value: Any) -> Any:
    """The value with every SizeInt/SizeFloat made a plain number (what torch is given)."""
    if isinstance(value, SizeInt):
        return int.__int__(value)
    if isinstance(value, SizeFloat):
        return float.__float__(value)
    if isinstance(value, (list, tuple)) and not isinstance(value, torch.Size):
        items = [_plain(v) for v in value]
        return type(value)(items) if type(value) in (list, tuple) else tuple(items)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, slice):
        return slice(_plain(value.start), _plain(value.stop), _plain(value.step))
    return value


class _Recorder(TorchFunctionMode):
    """Records every op run while it is active into ``graph``."""

    def __init__(self, root: nn.Module, predictor: Optional[Predictor]) -> None:
        super().__init__()
        self.predictor = predictor
        self.graph = torch.fx.Graph()
        self.attrs: dict[str, Any] = {}  # get_attr / call_module targets -> object
        self.guards: list = []
        self.inputs: dict[str, tuple] = {}  # qualified name -> shapes it was first called with
        self.nodes: dict[int, torch.fx.Node] = {}  # id(tensor) -> node that made it
        self.keep: list = []  # every tensor seen, kept alive so that ids stay unique
        self.suspended = 0  # inside a torch.nn layer: its ops are not recorded
        self.stack: list[str] = []  # the modules whose forward is running
        self.skipped = sites._skipped_dirs()
        self.modules = {id(m): name for name, m in reversed(list(root.named_modules(remove_duplicate=False)))}
        self.tensors = {id(t): name for name, t in _named_tensors(root)}
        self.values = Values()  # tensors computed from sizes, constants and factories

    # ------------------------------------------------------------ nodes

    def create(self, op: str, target: Any, args: tuple, kwargs: dict) -> torch.fx.Node:
        node = self.graph.create_node(op, target, self.arg(args), self.arg(kwargs))
        site = sites.user_site(self.skipped)
        if site is not None:
            node.meta[sites.NODE_META] = site
        # the modules whose forward is running, outermost first, as fx records them
        node.meta["nn_module_stack"] = {name: (name, None) for name in self.stack}
        return node

    def arg(self, value: Any) -> Any:
        """A value as an fx node argument: tensors and sizes by the node that made them."""
        if isinstance(value, torch.Tensor):
            return self.tensor_node(value)
        if isinstance(value, (SizeInt, SizeFloat)):
            return value.node
        if isinstance(value, torch.Size):
            return tuple(int(v) for v in value)
        if isinstance(value, (list, tuple)):
            items = [self.arg(v) for v in value]
            return type(value)(items) if type(value) in (list, tuple) else tuple(items)
        if isinstance(value, dict):
            return {k: self.arg(v) for k, v in value.items()}
        if isinstance(value, slice):
            return slice(self.arg(value.start), self.arg(value.stop), self.arg(value.step))
        return value

    def tensor_node(self, tensor: torch.Tensor) -> torch.fx.Node:
        node = self.nodes.get(id(tensor))
        if node is None:
            # A parameter or buffer of the model, or a constant made outside the graph.
            name = self.tensors.get(id(tensor)) or f"_convlint_constant_{len(self.attrs)}"
            self.attrs[name] = tensor
            self.values.constant(tensor)
            node = self.graph.create_node("get_attr", name)
            self.bind(tensor, node)
        return node

    def bind(self, value: Any, node: torch.fx.Node) -> Any:
        """Remember which node made each tensor of an op's output (tuples by getitem)."""
        if isinstance(value, torch.Tensor):
            self.nodes[id(value)] = node
            self.keep.append(value)
        elif isinstance(value, (tuple, list)) and not isinstance(value, torch.Size):
            for i, item in enumerate(value):
                if isinstance(item, torch.Tensor):
                    self.bind(item, self.graph.create_node("call_function", operator.getitem, (node, i)))
        return value

    # ------------------------------------------------------------ sizes Python reads

    def scalar(self, op: Callable, *operands: Any) -> Any:
        value = op(*[_plain(o) for o in operands])
        node = self.create("call_function", op, operands, {})
        return self.wrap_number(value, node)

    def wrap_number(self, value: Any, node: torch.fx.Node) -> Any:
        if isinstance(value, bool):
            return value
        if isinstance(value, int):
            return SizeInt(value, node, self)
        if isinstance(value, float):
            return SizeFloat(value, node, self)
        return value

    def compare(self, op: Callable, a: Any, b: Any) -> bool:
        node = self.create("call_function", op, (a, b), {})
        return self.decide(node, bool(op(_plain(a), _plain(b))))

    def decide(self, node: torch.fx.Node, value: bool) -> bool:
        """Python needed a truth value: the example gives it; the decision is a guard."""
        self.guards.append((node, value, sites.user_site(self.skipped)))
        return value

    def pin(self, size: SizeInt) -> int:
        """Python needed this exact size (``range``, an index): a guard that it is."""
        self.compare(operator.eq, size, int.__int__(size))
        return int.__int__(size)

    def sizes(self, tensor: torch.Tensor, node: torch.fx.Node) -> tuple:
        """``x.shape``: a tuple of SizeInts, one getitem node per dim."""
        return tuple(
            SizeInt(n, self.graph.create_node("call_function", operator.getitem, (node, i)), self)
            for i, n in enumerate(tensor.shape)
        )

    # ------------------------------------------------------------ torch's hook

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.suspended:
            return func(*_plain(args), **_plain(kwargs))
        name = getattr(func, "__name__", "")
        owner = getattr(func, "__self__", None)
        if name == "__get__" and owner is not None:  # a tensor property: x.shape, x.T
            return self._property(func, args, kwargs)
        qualname = getattr(func, "__qualname__", "")
        if name in _DUNDERS:
            op, target = "call_function", _DUNDERS[name]
        elif qualname.startswith(("TensorBase.", "Tensor.")):
            op, target = "call_method", name
        else:
            op, target = "call_function", func
        value = self.values.of(args[0]) if name in READS and args else None
        if value is not None:  # mask.any() in an if, .item(), .tolist(): sizes decided it
            return self.read(name, value, self.create(op, target, args, kwargs))
        if name in READS and args and isinstance(args[0], torch.Tensor) and args[0].is_meta:
            raise self.unknown("it reads a value that the input's data or the weights decide", name)
        out = self._run_op(op, target, name, func, args, kwargs)
        node = self.create(op, target, args, kwargs)
        plain_args, plain_kwargs = _plain(args), _plain(kwargs)
        self.values.after(
            name, plain_args, plain_kwargs, out, self.values.compute(name, func, plain_args, plain_kwargs, out)
        )
        if name == "size" and isinstance(out, torch.Size):
            return self.sizes(args[0], node)
        if isinstance(out, (int, float)) and not isinstance(out, bool):
            return self.wrap_number(out, node)  # x.size(2), len(x), x.numel()
        return self.bind(out, node)

    def _run_op(self, op: str, target: Any, name: str, func: Callable, args: tuple, kwargs: dict) -> Any:
        try:
            return self.run(op, target, None, lambda: func(*_plain(args), **_plain(kwargs)), args, kwargs)
        except Exception as exc:
            # A merge of mismatched sizes (CVL301's bug) must not end the capture: go on
            # as the sizes stage does, which meets the same error there and reports it.
            stand_in = self.predictor.merge_stand_in if self.predictor is not None else None
            out = stand_in(op, target, _plain(args), _plain(kwargs)) if stand_in is not None else None
            if out is None and meta_unsupported(exc):
                # nonzero, x[mask], nms: their sizes are their operands' values
                value = self.values.compute(name, func, _plain(args), _plain(kwargs))
                if value is UNKNOWN:
                    raise self.unknown(
                        "its sizes are the values of a tensor the input's data or the weights decide", name
                    ) from exc
                out = on_meta(value)
            if out is None:
                raise
            return out

    def _property(self, func: Callable, args: tuple, kwargs: dict) -> Any:
        name, tensor, out = func.__self__.__name__, args[0], func(*args, **kwargs)
        if name in _PLAIN_PROPERTIES:
            return out
        self.values.after(name, args, kwargs, out, self.values.compute(name, func, args, kwargs, out))
        if name == "data":
            return self.bind(out, self.tensor_node(tensor))
        node = self.create("call_function", builtins.getattr, (tensor, name), {})
        if name == "shape":
            return self.sizes(tensor, node)
        return self.bind(out, node)

    def unknown(self, message: str, name: str) -> ValueUnknown:
        """Where forward needs a value no size analysis has: the capture stops there."""
        site = sites.user_site(self.skipped)
        text = sites.source_text(site, limit=40) if site is not None else None
        return ValueUnknown(f"`{text}`" if text else f"`{name}`", message, site)

    def read(self, name: str, value: torch.Tensor, node: torch.fx.Node) -> Any:
        """Python reads a tensor whose value sizes decided: the number(s) stay sizes,
        a truth value is a guard, as for a size Python read."""
        if name == "tolist":
            return self._listed(value.tolist(), node)
        number = getattr(value, name)()
        if isinstance(number, bool):
            return self.decide(node, number)  # if mask.any(): (an item() of a bool, too)
        wrapped = self.wrap_number(number, node)
        return self.pin(wrapped) if name == "__index__" else wrapped

    def _listed(self, items: Any, node: torch.fx.Node) -> Any:
        if isinstance(items, list):
            return [
                self._listed(v, self.graph.create_node("call_function", operator.getitem, (node, i)))
                for i, v in enumerate(items)
            ]
        return self.decide(node, items) if isinstance(items, bool) else self.wrap_number(items, node)

    # ------------------------------------------------------------ module calls

    def call_module(self, module: nn.Module, call: Callable, args: tuple, kwargs: dict) -> Any:
        name = self.modules.get(id(module))
        if name is not None and name not in self.inputs:
            self.inputs[name] = tuple(tuple(a.shape) for a in args if isinstance(a, torch.Tensor))
        # A layer built inside forward is followed inside: its settings may be sizes
        # the forward read (nn.Upsample(size=x.shape[2:])), and stay expressions so.
        built_here = id(module) not in self.modules
        if self.suspended or not _is_layer(module) or built_here:
            if self.suspended or name is None:
                return call(module, *args, **kwargs)
            self.stack.append(name)
            try:
                return call(module, *args, **kwargs)
            finally:
                self.stack.pop()
        self.suspended += 1
        try:
            out = self.run(
                "call_module", None, module, lambda: call(module, *_plain(args), **_plain(kwargs)), args, kwargs
            )
        finally:
            self.suspended -= 1
        name = self.modules[id(module)]
        self.attrs[name] = module
        return self.bind(out, self.create("call_module", name, args, kwargs))

    def run(self, op: str, target: Any, module: Optional[nn.Module], run: Callable, args: tuple, kwargs: dict) -> Any:
        """An op's output: predicted where the predictor can (running activations, norms,
        merges on meta tensors imports torch._dynamo, a second per process), else run."""
        if self.predictor is not None:
            predicted = self.predictor.output(op, target, module, tuple(_plain(args)), dict(_plain(kwargs)))
            if predicted is not None:
                return predicted
        return run()


class _NumberMeta(type):
    """``int`` and ``float`` as the model's own modules see them during a capture:
    ``int(x.size(2))`` and ``float(h)`` keep the size (Python's own would copy it to a
    plain number), ``int(t.sum())`` of a tensor whose value sizes decide is a size too;
    everything else, isinstance checks included, behaves as the builtin."""

    builtin: type

    def __instancecheck__(cls, obj) -> bool:
        return isinstance(obj, cls.builtin)

    def __subclasscheck__(cls, sub) -> bool:
        return issubclass(sub, cls.builtin)

    def __call__(cls, *args, **kwargs):
        if len(args) == 1 and not kwargs and isinstance(args[0], (SizeInt, SizeFloat, torch.Tensor)):
            x = args[0]
            if cls.builtin is int:
                return x if isinstance(x, SizeInt) else x.__int__()
            return x.recorder.scalar(float, x) if isinstance(x, (SizeInt, SizeFloat)) else x.__float__()
        return cls.builtin(*args, **kwargs)


class _SizeKeepingInt(metaclass=_NumberMeta):
    builtin = int


class _SizeKeepingFloat(metaclass=_NumberMeta):
    builtin = float


class _int_in_forward:
    """While capturing, the names ``int`` and ``float`` in the modules that define the
    model's forwards are the size-keeping ones; their own bindings (if any) are put back
    afterwards."""

    KEEPING = {"int": _SizeKeepingInt, "float": _SizeKeepingFloat}

    def __init__(self, root: nn.Module) -> None:
        namespaces = {}
        for module in root.modules():
            forward = getattr(type(module), "forward", None)
            namespace = getattr(forward, "__globals__", None)
            name = namespace.get("__name__", "") if namespace is not None else "torch"
            if not (name == "torch" or name.startswith(("torch.", "convlint"))):  # torchvision's are followed
                namespaces[id(namespace)] = namespace
        self.namespaces = list(namespaces.values())
        self.saved: list = []

    def __enter__(self):
        for namespace in self.namespaces:
            for name, keeping in self.KEEPING.items():
                builtin = keeping.builtin
                if namespace.get(name, builtin) is builtin:
                    self.saved.append((namespace, name, name in namespace))
                    namespace[name] = keeping
        return self

    def __exit__(self, *exc):
        for namespace, name, had in self.saved:
            if had:
                namespace[name] = self.KEEPING[name].builtin
            else:
                namespace.pop(name, None)
        return False


def _is_layer(module: nn.Module) -> bool:
    """A torch.nn layer is recorded as one call, as fx's ``is_leaf_module`` decides."""
    return (
        module.__module__.startswith(("torch.nn", "torch.ao.nn"))
        and not isinstance(module, nn.Sequential)
        and not isinstance(module, torch.fx.GraphModule)
    )


def _named_tensors(root: nn.Module) -> list:
    found = list(root.named_parameters(remove_duplicate=False)) + list(root.named_buffers(remove_duplicate=False))
    return list(reversed(found))  # the first name of a shared tensor wins


def _input_names(module: nn.Module, count: int) -> list[str]:
    try:
        parameters = list(inspect.signature(module.forward).parameters.values())
    except (TypeError, ValueError):
        parameters = []
    names = [p.name for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)][:count]
    return names + [f"input_{i}" for i in range(len(names), count)]


def _outputs(recorder: _Recorder, value: Any) -> Any:
    """The forward's result as an fx output argument: dataclasses and dict-like outputs
    (a model's output record) become dicts."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _outputs(recorder, getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: _outputs(recorder, v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) and not isinstance(value, torch.Size):
        return tuple(_outputs(recorder, v) for v in value)
    return recorder.arg(value)


def _run_recorded(recorder: "_Recorder", module: nn.Module, input_shapes: Sequence[Sequence[int]]) -> Any:
    """Run ``module`` on meta inputs with ``recorder`` watching every op and module call."""
    names = _input_names(module, len(input_shapes))
    inputs = []
    for name, shape in zip(names, input_shapes):
        tensor = meta_input(shape)
        recorder.bind(tensor, recorder.graph.placeholder(name))
        inputs.append(tensor)
    recorder.inputs[""] = tuple(tuple(t.shape) for t in inputs)
    original = nn.Module.__call__

    def call(self, *args, **kwargs):
        return recorder.call_module(self, original, args, kwargs)

    nn.Module.__call__ = call
    try:
        with torch.no_grad(), _int_in_forward(module), recorder:
            return original(module, *inputs)
    finally:
        nn.Module.__call__ = original


def capture(module: nn.Module, input_shapes: Sequence[Sequence[int]], predictor: Optional[Predictor] = None) -> Trace:
    """Run ``module`` on meta tensors of ``input_shapes`` and record what it does.

    Raises what the model raises: a model that does not run at the example input has no
    graph to record."""
    recorder = _Recorder(module, predictor)
    stopped = None
    try:
        out = _outputs(recorder, _run_recorded(recorder, module, input_shapes))
    except ValueUnknown as exc:
        # What ran before the read is a graph: its convolutions are checked, and the
        # stop is reported at its line.
        stopped = (exc.code, exc.why, exc.site)
        out = tuple(n for n in recorder.graph.nodes if not n.users and n.op != "placeholder")
    recorder.graph.output(out)
    graph_module = graph_module_of(recorder.attrs, recorder.graph, type(module).__name__)
    return Trace(graph_module, {}, method="execution", guards=recorder.guards, stopped=stopped)


def module_inputs(
    module: nn.Module, input_shapes: Sequence[Sequence[int]], predictor: Optional[Predictor] = None
) -> tuple[dict, Optional[str]]:
    """The shapes of the tensors each module (by qualified name) was first called with,
    from one recorded run; and why the run stopped early, if it did."""
    recorder = _Recorder(module, predictor)
    try:
        _run_recorded(recorder, module, input_shapes)
    except Exception as exc:
        # What ran before the failure is still known; the reason is kept for the report.
        return recorder.inputs, f"the model raised at the example input: {describe(exc)}"
    return recorder.inputs, None
