"""Values that sizes determine: the contents of tensors computed only from sizes,
constants and factories, kept beside their meta tensors.

On meta tensors ``mask.any()``, ``.item()`` and ``.tolist()`` have nothing to read, yet a
mask of zeros built from ``x.shape``, a tensor of ones summed to a count, or
``torch.tensor(x.shape[-2:])`` turned into crop offsets hold values the input's sizes
alone decide. Such a tensor's value is computed on the CPU beside it (small tensors
only); an op whose tensor arguments all have one gets one too. A value that depends on
the input's data or on the weights (a parameter) stays unknown, and reading it stops the
analysis there, with PyTorch's own error.

One ``Values`` serves the capture (``execute``) and the sizes stage (``SizeProp``): both
call ``compute`` for each op and ``bind`` its output, keyed by the tensor objects.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import torch

# Reads that turn a tensor's value into Python's: the analysis may go on past them only
# where the value is known.
READS = frozenset({"item", "tolist", "__bool__", "__int__", "__float__", "__index__"})
# Factories whose result is not a function of their arguments.
_RANDOM = frozenset({
    "empty", "empty_like", "new_empty", "empty_strided", "rand", "randn", "randint", "rand_like", "randn_like",
    "randint_like", "randperm", "normal", "normal_", "uniform_", "bernoulli", "bernoulli_", "multinomial",
    "exponential_", "geometric_", "cauchy_", "log_normal_", "random_",
})  # fmt: skip
# Ops that read only the shape and dtype of their tensor argument, never its values.
_SHAPE_ONLY = frozenset({"zeros_like", "ones_like", "full_like", "new_zeros", "new_ones", "new_full", "new_tensor"})
# In-place ops whose result does not depend on what the tensor held.
_OVERWRITES = frozenset({"fill_", "zero_", "copy_"})
_IN_PLACE_DUNDERS = frozenset({
    "__setitem__", "__iadd__", "__isub__", "__imul__", "__itruediv__", "__ifloordiv__", "__imod__", "__ipow__",
    "__iand__", "__ior__", "__ixor__", "__ilshift__", "__irshift__",
})  # fmt: skip
LIMIT = 1 << 20  # elements a value may have: masks and anchors, not feature maps


UNKNOWN = object()  # what ``compute`` returns where the value is not known


def in_place(name: str, kwargs: dict) -> bool:
    """Does the op write into its first argument (``mask[:, :h] = 0``, ``x.fill_(v)``)?"""
    return (name.endswith("_") and not name.endswith("__")) or name in _IN_PLACE_DUNDERS or "out" in kwargs


class Values:
    """The CPU value of each tensor whose value sizes determine, by tensor identity."""

    def __init__(self) -> None:
        # id(tensor) -> [tensor (kept alive, so that ids stay unique), its value, its content]
        # (the content: what the sizes stage knows of the value at every size; opaque here)
        self._values: dict[int, list] = {}

    def constant(self, tensor: torch.Tensor) -> None:
        """A tensor the graph reads as an attribute: a buffer or a constant is known (a
        copy: an in-place op on the value must not write into the model); a parameter is
        not, its values are the weights."""
        if not isinstance(tensor, torch.nn.Parameter) and tensor.device.type != "meta" and tensor.numel() <= LIMIT:
            self._values[id(tensor)] = [tensor, tensor.detach().clone(), None]

    def of(self, tensor: Any) -> Optional[torch.Tensor]:
        """The value of ``tensor``, or None where it is not known."""
        entry = self._values.get(id(tensor)) if isinstance(tensor, torch.Tensor) else None
        return None if entry is None else entry[1]

    def compute(self, name: str, fn: Callable[..., Any], args: tuple, kwargs: dict, out: Any = None) -> Any:
        """``fn(*args, **kwargs)`` on the values of its tensor arguments, on the CPU;
        ``UNKNOWN`` where one of them is unknown, the op is random, the result is too
        large, or the op raises there (it raises on the real tensors too, which the
        analysis meets). An in-place op writes into the value it is given. ``out``: the
        op's output on the meta tensors, if run already (a large one is not computed)."""
        if name in _RANDOM or name == "numpy" or any(t.numel() > LIMIT for t in _tensors(out)):
            return UNKNOWN
        first = args[0] if args else None
        # The first argument of these is read for its shape and dtype only.
        shape_only = name in _SHAPE_ONLY or name in _OVERWRITES
        tensors = _tensors((args, kwargs))
        if any(self.of(t) is None and not (t is first and shape_only) for t in tensors):
            return UNKNOWN

        def value(a: Any) -> Any:
            if isinstance(a, torch.Tensor):
                known = self.of(a)
                return known if known is not None else torch.zeros(a.shape, dtype=a.dtype)
            if isinstance(a, torch.device):
                return torch.device("cpu")
            if isinstance(a, (list, tuple)) and not isinstance(a, torch.Size):
                items = [value(v) for v in a]
                return type(a)(items) if type(a) in (list, tuple) else tuple(items)
            if isinstance(a, dict):
                return {k: value(v) for k, v in a.items()}
            return a

        cpu_args = value(tuple(args))
        cpu_kwargs = {k: ("cpu" if k == "device" else value(v)) for k, v in kwargs.items()}
        if name in ("cuda", "cpu"):
            return cpu_args[0]
        try:
            with torch.no_grad():
                out = fn(*cpu_args, **cpu_kwargs)
        except Exception:  # the op raises on these values: it raises on the real ones too
            return UNKNOWN
        if name in _OVERWRITES and first is not None and self.of(first) is None:
            self.bind(first, cpu_args[0])  # fill_/zero_/copy_: known now, whatever it held
        if isinstance(out, torch.Tensor) and out.numel() > LIMIT:
            return UNKNOWN
        return out

    def bind(self, out: Any, value: Any) -> None:
        """Remember ``value`` as the value of ``out`` (tuples item by item)."""
        if isinstance(out, torch.Tensor):
            if isinstance(value, torch.Tensor) and value.shape == out.shape:
                self._values[id(out)] = [out, value, None]
            else:
                self.forget(out)
        elif isinstance(out, (tuple, list)) and isinstance(value, (tuple, list)) and len(out) == len(value):
            for o, v in zip(out, value):
                self.bind(o, v)

    def forget(self, tensor: torch.Tensor) -> None:
        """``tensor`` was written with what is not known: it, and every value that shares
        its storage (a view of it, the tensor it is a view of), is no longer known."""
        entry = self._values.pop(id(tensor), None)
        if entry is None:
            return
        for key in self._aliases(entry[1]):
            del self._values[key]

    def _aliases(self, value: torch.Tensor) -> list:
        storage = value.untyped_storage().data_ptr()
        return [key for key, entry in self._values.items() if entry[1].untyped_storage().data_ptr() == storage]

    def content_of(self, tensor: Any) -> Any:
        entry = self._values.get(id(tensor)) if isinstance(tensor, torch.Tensor) else None
        return None if entry is None else entry[2]

    def set_content(self, tensor: Any, content: Any) -> None:
        """Set the content of a known tensor (of each, for a tuple of tensors)."""
        if isinstance(tensor, (tuple, list)):
            contents = content if isinstance(content, (tuple, list)) else [None] * len(tensor)
            for t, c in zip(tensor, contents):
                self.set_content(t, c)
        elif isinstance(tensor, torch.Tensor) and id(tensor) in self._values:
            self._values[id(tensor)][2] = content

    def after(self, name: str, args: tuple, kwargs: dict, out: Any, value: Any) -> None:
        """Record what an op did: its output's value; for an in-place op whose value is
        unknown, that what it wrote into is no longer known."""
        written = in_place(name, kwargs) and args and isinstance(args[0], torch.Tensor)
        if value is UNKNOWN:
            if written:
                self.forget(args[0])
            for t in _tensors(out):
                self.forget(t)
            return
        if written and self.of(args[0]) is not None:
            for key in self._aliases(self.of(args[0])):  # what they held is not what it was
                self._values[key][2] = None
        self.bind(out, value)


def _tensors(value: Any) -> list:
    found: list = []

    def walk(a: Any) -> None:
        if isinstance(a, torch.Tensor):
            found.append(a)
        elif isinstance(a, (list, tuple)) and not isinstance(a, torch.Size):
            for v in a:
                walk(v)
        elif isinstance(a, dict):
            for v in a.values():
                walk(v)

    walk(value)
    return found


def meta_unsupported(exc: BaseException) -> bool:
    """Did an op fail because meta tensors have no values (``nonzero``, ``x[mask]``,
    ``unique``, ``nms``), rather than because of the sizes it was given?"""
    return isinstance(exc, NotImplementedError) or "meta tensor" in str(exc).lower()


def on_meta(value: Any) -> Any:
    """Meta tensors of a value's sizes and dtypes (tuples item by item)."""
    if isinstance(value, torch.Tensor):
        return torch.empty(value.shape, dtype=value.dtype, device="meta")
    if isinstance(value, (tuple, list)):
        return type(value)(on_meta(v) for v in value) if type(value) in (tuple, list) else tuple(map(on_meta, value))
    return value
