"""Contents: the values of tensors computed from sizes, as expressions of the input's sizes.

``capture.values`` keeps the concrete value of a tensor that sizes determine (a mask of
zeros made from ``x.shape``, ``torch.tensor(x.shape[-2:])``); this module keeps what that
value is at *every* size, so that Python's reads of it (``.item()``, ``.tolist()``, ``if
mask.any():``) are sizes and guards like ``x.size(2)`` and ``if h % 2:``. Two forms:

- ``Uniform(e)``: every element is ``e``, whatever the tensor's shape (``zeros``, ``ones``,
  ``full``, and what arithmetic, comparisons and views make of them);
- ``Elements(shape, items)``: a small tensor of a shape that does not depend on the input's
  sizes, one expression per element (``torch.tensor([h, w]) // 2``).

A tensor whose content is neither is ``None``: its value is known at the example only, and
a read of it keeps the example's number (the sizes stage says so at its line).
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch

from convlint import formulas
from convlint import lazy_sympy as sympy
from convlint.dims import BASIC, free
from convlint.sizes.symbolic import SymTensor

SMALL = 4096  # elements an Elements content may have


@dataclass(frozen=True)
class Uniform:
    expr: Any  # a sympy Expr, or a Boolean for a bool tensor; None: unknown


@dataclass(frozen=True)
class Elements:
    shape: tuple
    items: tuple  # row-major; an item may be None (unknown)


Content = Optional[Any]  # Uniform, Elements or None


def _is_truth(e: Any) -> bool:
    # a Symbol is a Boolean too in sympy: a truth value is a Boolean that is no Expr
    return isinstance(e, sympy.logic.boolalg.Boolean) and not isinstance(e, sympy.Expr)


def _number(e: Any) -> Any:
    """A truth value used as a number (``mask.sum()``): 1 where it holds."""
    if _is_truth(e):
        return sympy.Piecewise((1, e), (0, True))
    return e


def _truth(e: Any) -> Any:
    if _is_truth(e):
        return e
    return sympy.Ne(e, 0)


def _lift(fn: Callable) -> Callable:
    """``fn`` on expressions, None where an operand is unknown or sympy cannot say."""

    def lifted(*operands):
        if any(o is None for o in operands):
            return None
        try:
            return fn(*operands)
        except (TypeError, ValueError, ZeroDivisionError):
            return None

    return lifted


def _floordiv(a, b):
    a, b = _number(a), _number(b)
    if isinstance(b, sympy.Integer) and b > 0:
        return formulas.fdiv(a, int(b))  # the form every other size takes
    return sympy.floor(a / b)


def _truncdiv(a, b):
    return formulas.trunc(_number(a) / _number(b))


_BINARY = {
    "add": lambda a, b: _number(a) + _number(b),
    "sub": lambda a, b: _number(a) - _number(b),
    "mul": lambda a, b: _number(a) * _number(b),
    "truediv": lambda a, b: _number(a) / _number(b),
    "floordiv": _floordiv,
    "mod": lambda a, b: formulas.mod(_number(a), _number(b)),
    "pow": lambda a, b: _number(a) ** _number(b),
    "eq": lambda a, b: sympy.Eq(_number(a), _number(b)),
    "ne": lambda a, b: sympy.Ne(_number(a), _number(b)),
    "lt": lambda a, b: sympy.Lt(_number(a), _number(b)),
    "le": lambda a, b: sympy.Le(_number(a), _number(b)),
    "gt": lambda a, b: sympy.Gt(_number(a), _number(b)),
    "ge": lambda a, b: sympy.Ge(_number(a), _number(b)),
    "and": lambda a, b: sympy.And(_truth(a), _truth(b)),
    "or": lambda a, b: sympy.Or(_truth(a), _truth(b)),
    "minimum": lambda a, b: sympy.Min(_number(a), _number(b)),
    "maximum": lambda a, b: sympy.Max(_number(a), _number(b)),
}
_UNARY = {
    "neg": lambda a: -_number(a),
    "abs": lambda a: sympy.Abs(_number(a)),
    "ceil": lambda a: sympy.ceiling(_number(a)),
    "floor": lambda a: sympy.floor(_number(a)),
    "round": lambda a: formulas.round_even(_number(a)),
    "trunc": lambda a: formulas.trunc(_number(a)),
    "not": lambda a: sympy.Not(_truth(a)),
}
# The name an op goes by (tensor method, torch function, Python operator) -> (table, key, reflected)
_ALIASES: dict[str, tuple] = {}
for _key in _BINARY:
    for _name in (_key, f"__{_key}__", f"{_key}_", f"__i{_key}__"):
        _ALIASES[_name] = (_BINARY, _key, False)
    _ALIASES[f"__r{_key}__"] = (_BINARY, _key, True)
_ALIASES.update({
    "div": (_BINARY, "truediv", False), "true_divide": (_BINARY, "truediv", False), "__div__": (_BINARY, "truediv", False),
    "floor_divide": (_BINARY, "floordiv", False), "remainder": (_BINARY, "mod", False),
    "__and__": (_BINARY, "and", False), "logical_and": (_BINARY, "and", False), "bitwise_and": (_BINARY, "and", False),
    "__or__": (_BINARY, "or", False), "logical_or": (_BINARY, "or", False), "bitwise_or": (_BINARY, "or", False),
    "max": (_BINARY, "maximum", False), "min": (_BINARY, "minimum", False),
})  # fmt: skip
for _key in _UNARY:
    _ALIASES[_key] = _ALIASES[f"__{_key}__"] = (_UNARY, _key, False)
_ALIASES.update({"__invert__": (_UNARY, "not", False), "logical_not": (_UNARY, "not", False)})

_CASTS = {"float", "double", "half", "long", "int", "short", "bool", "to", "type", "type_as"}
_SAME = {"clone", "detach", "contiguous", "cuda", "cpu", "requires_grad_"}
_STRUCTURAL = {
    "__getitem__", "view", "reshape", "flatten", "permute", "transpose", "t", "unsqueeze", "squeeze", "flip",
    "expand", "expand_as", "view_as", "reshape_as", "repeat", "narrow", "select", "cat", "concat", "concatenate",
    "stack", "split", "chunk", "unbind", "tensor_split", "movedim", "roll", "index_select",
}  # fmt: skip
_REDUCTIONS = {"sum", "prod", "max", "min", "amax", "amin", "any", "all", "mean"}
_FILLS = {"zeros": 0, "zeros_like": 0, "new_zeros": 0, "ones": 1, "ones_like": 1, "new_ones": 1}


def op_name(node_op: str, target: Any) -> str:
    """The name an op goes by in the tables above (and in ``capture.values``)."""
    if node_op == "call_method":
        return target
    if target is operator.getitem:
        return "__getitem__"
    if target is operator.setitem:
        return "__setitem__"
    if target is operator.truediv:
        return "truediv"
    return getattr(target, "__name__", "")


def _operand(shadow: Any, concrete: Any, content_of: Callable) -> Content:
    """The content of an argument: a tensor's, or a number broadcast to any shape."""
    if isinstance(concrete, torch.Tensor):
        return content_of(concrete)
    if isinstance(concrete, bool):
        return Uniform(sympy.true if concrete else sympy.false)
    if isinstance(concrete, (int, float)):
        if isinstance(shadow, BASIC):
            return Uniform(shadow)
        return Uniform(sympy.Integer(concrete) if isinstance(concrete, int) else sympy.Rational(concrete))
    return None


def _constant_shape(shadow: Any) -> bool:
    return isinstance(shadow, SymTensor) and all(d is not None and not free(d) for d in shadow.dims)


def _materialize(content: Content, shape: tuple) -> Optional[Elements]:
    if isinstance(content, Elements):
        return content
    if isinstance(content, Uniform) and math.prod(shape) <= SMALL:
        return Elements(tuple(shape), (content.expr,) * math.prod(shape))
    return None


def _elementwise(fn: Callable, operands: list, out: torch.Tensor, out_shadow: Any) -> Content:
    lifted = _lift(fn)
    if all(isinstance(o, Uniform) for o in operands):
        return Uniform(lifted(*[o.expr for o in operands]))
    if not _constant_shape(out_shadow) or any(o is None for o in operands):
        return None
    shape = tuple(out.shape)
    grids = []
    for o in operands:
        if isinstance(o, Uniform):
            grids.append(None)
            continue
        index = torch.arange(len(o.items)).reshape(o.shape)
        grids.append(index.expand(shape).reshape(-1).tolist())
    items = []
    for k in range(math.prod(shape)):
        args = [o.expr if g is None else o.items[g[k]] for o, g in zip(operands, grids)]
        items.append(lifted(*args))
    return Elements(shape, tuple(items))


def _structural(name: str, fn: Callable, args: tuple, kwargs: dict, content_of: Callable, value_of: Callable,
                out_shadow: Any) -> Any:  # fmt: skip
    """A view, a reshape, an index, a cat: the same op on a tensor of element indices
    says which element lands where."""
    data = args[0]
    many = isinstance(data, (list, tuple))
    tensors = list(data) if many else [data]
    if not all(isinstance(t, torch.Tensor) for t in tensors):
        return None
    contents = [content_of(t) for t in tensors]
    if not many and isinstance(contents[0], Uniform) and name not in ("cat", "stack"):
        return _each(out_shadow, lambda: contents[0])
    pool: list = []
    indices = []
    for t, c in zip(tensors, contents):
        elements = _materialize(c, tuple(t.shape))
        if elements is None:
            return None
        indices.append(torch.arange(len(pool), len(pool) + len(elements.items)).reshape(elements.shape))
        pool.extend(elements.items)
    rest = []
    for a in args[1:]:
        if isinstance(a, torch.Tensor):  # an index tensor: its value, not its content
            a = value_of(a)
            if a is None:
                return None
        rest.append(a)
    try:
        out = fn(indices if many else indices[0], *rest, **kwargs)
    except Exception:
        return None
    return _gathered(out, pool, out_shadow)


def _each(shadow: Any, make: Callable) -> Any:
    if isinstance(shadow, (tuple, list)):
        return tuple(_each(s, make) for s in shadow)
    return make()


def _gathered(out: Any, pool: list, shadow: Any) -> Any:
    if isinstance(out, (tuple, list)):
        shadows = shadow if isinstance(shadow, (tuple, list)) else [None] * len(out)
        return tuple(_gathered(o, pool, s) for o, s in zip(out, shadows))
    if not isinstance(out, torch.Tensor) or not _constant_shape(shadow):
        return None
    return Elements(tuple(out.shape), tuple(pool[i] for i in out.reshape(-1).tolist()))


def _reduction(name: str, content: Content, shadow: Any) -> Content:
    if isinstance(content, Uniform):
        e = content.expr
        if e is None or not isinstance(shadow, SymTensor) or None in shadow.dims:
            return None
        count = sympy.Mul(*shadow.dims)
        nonempty = sympy.Gt(count, 0)
        if name == "sum":
            return Uniform(_number(e) * count)
        if name == "prod":
            return Uniform(_number(e) ** count)
        if name in ("any", "all"):
            # any() of no element is False, all() of none is True
            return Uniform(
                sympy.And(_truth(e), nonempty) if name == "any" else sympy.Or(_truth(e), sympy.Not(nonempty))
            )
        return Uniform(_number(e))  # max, min, mean: of a nonempty tensor (else PyTorch raises)
    if isinstance(content, Elements):
        items = content.items
        if None in items or not items:
            return None
        combine = {
            "sum": lambda: sympy.Add(*map(_number, items)),
            "prod": lambda: sympy.Mul(*map(_number, items)),
            "max": lambda: sympy.Max(*map(_number, items)),
            "amax": lambda: sympy.Max(*map(_number, items)),
            "min": lambda: sympy.Min(*map(_number, items)),
            "amin": lambda: sympy.Min(*map(_number, items)),
            "mean": lambda: sympy.Add(*map(_number, items)) / len(items),
            "any": lambda: sympy.Or(*map(_truth, items)),
            "all": lambda: sympy.And(*map(_truth, items)),
        }
        return Elements((), (combine[name](),))
    return None


def _cast(content: Content, source: torch.dtype, target: torch.dtype) -> Content:
    if target.is_floating_point or target == source:
        fn = lambda e: _number(e) if source == torch.bool else e  # noqa: E731
    elif target == torch.bool:
        fn = _truth
    elif source.is_floating_point:
        fn = formulas.trunc
    else:
        fn = _number
    return _map(content, _lift(fn))


def _map(content: Content, fn: Callable) -> Content:
    if isinstance(content, Uniform):
        return Uniform(fn(content.expr))
    if isinstance(content, Elements):
        return Elements(content.shape, tuple(fn(e) for e in content.items))
    return None


def _data(shadow: Any, data: Any) -> Content:
    """``torch.tensor(data)``: the expressions of a (nested) list of sizes and numbers."""
    items: list = []

    def walk(s: Any, d: Any) -> Optional[list]:
        if isinstance(d, (list, tuple)):
            shape = None
            subs = s if isinstance(s, (list, tuple)) and len(s) == len(d) else [None] * len(d)
            for si, di in zip(subs, d):
                sub = walk(si, di)
                if shape is not None and sub != shape:
                    return None
                shape = sub
            return [len(d)] + (shape or [])
        if isinstance(d, torch.Tensor):
            return None
        items.append(_operand(s, d, lambda t: None).expr if isinstance(d, (int, float, bool)) else None)
        return []

    shape = walk(shadow, data)
    if shape is None or math.prod(shape) > SMALL:
        return None
    return Elements(tuple(shape), tuple(items))


_FACTORIES = {*_FILLS, "full", "new_full", "full_like", "tensor", "as_tensor", "scalar_tensor", "new_tensor"}


def _factory(name: str, call: Any, out_shadow: Any, content_of: Callable) -> Content:
    args, kwargs, sargs = call.args, call.kwargs, call.sargs
    if name in _FILLS:
        return _each(out_shadow, lambda: Uniform(sympy.Integer(_FILLS[name])))
    if name in ("full", "new_full", "full_like"):
        index = 0 if name == "full" else 1
        fill = args[index + 1] if len(args) > index + 1 else kwargs.get("fill_value")
        shadow = sargs[index + 1] if len(sargs) > index + 1 else call.skwargs.get("fill_value")
        return _operand(shadow, fill, content_of)
    index = 1 if name == "new_tensor" else 0  # torch.tensor(data), x.new_tensor(data)
    return _data(sargs[index], args[index]) if len(args) > index else None


def content(name: str, fn: Callable, call: Any, out_shadow: Any, content_of: Callable, value_of: Callable) -> Any:
    """The content of an op's output (a tuple of them for several outputs), or None.
    ``call``: the op's concrete arguments (``args``, ``kwargs``), their shadows, its output."""
    args, kwargs, sargs, out = call.args, call.kwargs, call.sargs, call.out
    if name in _FACTORIES:
        return _factory(name, call, out_shadow, content_of)
    if name in _SAME:
        return content_of(args[0])
    if name in _CASTS and isinstance(out, torch.Tensor) and isinstance(args[0], torch.Tensor):
        return _cast(content_of(args[0]), args[0].dtype, out.dtype)
    if name in _REDUCTIONS and len(args) == 1 and not kwargs and isinstance(out, torch.Tensor):
        return _reduction(name, content_of(args[0]), sargs[0])
    if name in ("fill_", "zero_"):
        return Uniform(sympy.Integer(0)) if name == "zero_" else _operand(sargs[1], args[1], content_of)
    binary_max = name not in ("max", "min") or (len(args) == 2 and isinstance(args[1], torch.Tensor))
    if name in _ALIASES and isinstance(out, torch.Tensor) and binary_max:
        table, key, reflected = _ALIASES[name]
        if name in ("div", "div_") and kwargs.get("rounding_mode") is not None:
            fn_ = _floordiv if kwargs["rounding_mode"] == "floor" else _truncdiv
        else:
            fn_ = table[key]
        count = 1 if table is _UNARY else 2
        operands = [_operand(s, a, content_of) for s, a in zip(sargs[:count], args[:count])]
        if len(operands) < count:
            return None
        if reflected:
            operands.reverse()
        if name.endswith("_") or name.startswith("__i"):
            operands[0] = content_of(args[0])
        return _elementwise(fn_, operands, out, out_shadow)
    if name in _STRUCTURAL:
        return _structural(name, fn, args, kwargs, content_of, value_of, out_shadow)
    return None


def constant(value: Any) -> Content:
    """The content of a value that does not depend on the input's sizes (a buffer, an op
    on constants): its own elements, where it is small."""
    if isinstance(value, torch.Tensor) and value.numel() <= SMALL and not value.is_complex():
        return Elements(tuple(value.shape), tuple(sympy.sympify(v) for v in value.reshape(-1).tolist()))
    return None


def is_constant(c: Content) -> bool:
    if isinstance(c, Uniform):
        return c.expr is not None and not free(c.expr)
    if isinstance(c, Elements):
        return all(e is not None and not free(e) for e in c.items)
    return False


def read(name: str, content: Content, value: Any, source: torch.dtype) -> Any:
    """The shadow of a read of a tensor (``item``, ``tolist``, ``__bool__``, ``__int__``,
    ``__float__``, ``__index__``): expressions where the content has them, else None."""
    if isinstance(content, Uniform):
        if name == "tolist":
            return _nest(value, lambda: content.expr)
        e = content.expr
    elif isinstance(content, Elements):
        if name == "tolist":
            items = iter(content.items)
            return _nest(value, lambda: next(items))
        e = content.items[0] if len(content.items) == 1 else None
    else:
        return None
    if e is None:
        return None
    if name == "__bool__" or isinstance(value, bool):
        return _truth(e)
    if name in ("__int__", "__index__") and source.is_floating_point:
        return formulas.trunc(e)
    return _number(e)


def _nest(value: Any, next_item: Callable) -> Any:
    if isinstance(value, list):
        return [_nest(v, next_item) for v in value]
    e = next_item()
    return None if e is None else (_truth(e) if isinstance(value, bool) else _number(e))
