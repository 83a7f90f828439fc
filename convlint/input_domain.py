"""The input domain: the input sizes at which a model runs, as far as its sizes are followed.

One fact per model, made of conditions on the input's symbols (``H``, ``W``), each with
where it comes from:

- a layer's limit: a kernel within its padded input, reflect padding below the size,
  circular padding at most the size (``Limit`` of the facts);
- a merge: an add, sub, mul or div needs its operands' sizes equal or one of them 1 (it
  broadcasts), a cat needs them equal outside its own dimension;
- a fixed size: a Linear fed by features that depend on the input needs exactly its
  ``in_features``; an ``assert`` on sizes that fx traced (``torch._assert(H == 224)``);
- a guard: a branch the model's own Python took at the example (``if H % 32: raise``),
  whose other side was never run.

Every condition is evaluated exactly (Python's arithmetic as the model's code wrote it:
``int()`` truncates, ``//`` floors). ``contains`` is True exactly when every condition
holds; ``exact`` says whether that is the whole truth (False where sizes were not followed,
or where a guard leaves the other branch unknown).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

from convlint import domain_statement, sites
from convlint import lazy_sympy as sympy
from convlint.common import Shape, spatial_axes, with_spatial_sizes
from convlint.dims import free
from convlint.sizes.symbolic import evaluate_int, exact_values, holds, integer

if TYPE_CHECKING:
    from convlint import contract


@dataclass(frozen=True)
class Condition:
    """One thing the input's sizes must satisfy for the model to run."""

    kind: str  # "limit", "merge", "fixed", "view", "assert", "guard"
    test: Callable[[dict], Optional[bool]]  # env -> holds? (None: cannot be decided)
    where: str  # what imposes it: `conv2` (Conv2d), `torch.cat([y, x], dim=1)` in `up`
    site: Any = None  # its line, when it has one
    branches: tuple = ()  # what holds before it (guards, see ModelView.holds_before): it is PyTorch's only within them
    expressions: tuple = ()  # the size expressions it compares (what its period comes from)
    origin: Any = field(default=None, compare=False, repr=False)  # the op that imposes it (an fx node)
    broadcasts: bool = False  # a merge whose sizes may also differ where one is 1

    @property
    def symbols(self) -> frozenset:
        found = set()
        for e in self.expressions:
            found |= free(e)
        return frozenset(found)

    def holds(self, env: dict) -> Optional[bool]:
        return self.test(env)

    def refuses(self, env: dict) -> bool:
        """Does PyTorch certainly refuse these sizes here? (It fails, and the input takes
        the branches the example took before it; a guard itself refuses nothing.)"""
        return self.kind != "guard" and self.holds(env) is False and _within(self.branches, tuple(env.items()))


def _within(branches: tuple, env: tuple) -> bool:
    """Do sizes ``env`` keep within every relation of ``branches``?"""
    return all(_holds_at(relation, env) is not False for relation in branches)


@functools.lru_cache(maxsize=65536)
def _holds_at(relation, env: tuple) -> Optional[bool]:
    """A relation at sizes ``env`` (a tuple of items), decided once: the conditions after
    a guard all hold within it."""
    return holds(relation, dict(env))


@dataclass(frozen=True)
class Domain:
    """The set of input shapes at which a model runs (see the module's doc)."""

    symbols: tuple  # the input's spatial symbols, in order (H, W)
    example: dict  # symbol -> size at the example input
    input_shapes: tuple  # the example's shapes: batch and channels are held there
    conditions: tuple[Condition, ...]
    exact: bool  # every size followed, no branch left unknown
    why_inexact: tuple[str, ...] = ()

    @functools.cached_property
    def stated(self) -> "domain_statement.Statement":
        """The domain in words by every condition, worked out once (summary, shapes, hover,
        CVL401/402 and JSON all read it)."""
        return domain_statement.state(self)

    def __str__(self) -> str:
        """The domain in words, as every report states it: ``H, W multiples of 8``."""
        return self.stated.summary

    def env(self, *shapes: Sequence[int]) -> dict:
        """The symbols' values at these input shapes (the example's for inputs not given)."""
        env = dict(self.example)
        for shape, example in zip(shapes, self.input_shapes):
            if len(shape) != len(example):
                raise ValueError(f"shape {tuple(shape)} has rank {len(shape)}, the example's is {len(example)}")
            if example is self.input_shapes[0]:
                for symbol, axis in zip(self.symbols, spatial_axes(example)):
                    env[symbol] = int(shape[axis])
        return env

    def failing(self, *shapes: Sequence[int]) -> list[Condition]:
        """The conditions these input shapes break (undecidable ones count as kept)."""
        env = self.env(*shapes)
        return [c for c in self.conditions if c.holds(env) is False]

    def contains(self, *shapes: Sequence[int]) -> bool:
        """Does the model run at these input shapes (batch and channels as in the example)?"""
        return not self.failing(*shapes)

    def refuses(self, *shapes: Sequence[int]) -> bool:
        """Is it certain that the model does not run at these shapes? (Even where the
        domain is not exact: a condition fails within the branches that lead to it.)"""
        env = self.env(*shapes)
        return any(c.refuses(env) for c in self.conditions)

    def nearest(self, shape: Sequence[int]) -> "contract.Nearest":
        """The spatial sizes nearest ``shape``'s at which the model runs, every dim at most
        (``.below``) or at least (``.above``) the input's; None where there is none."""
        from convlint import contract  # the input contract's API: not imported by a check

        return contract.nearest(self, shape)

    def dynamic_shapes(self, max_size: Optional[int] = None) -> "contract.DynamicShapes":
        """The ``dynamic_shapes`` of ``torch.export.export`` by this domain (``.spec``, as
        Python ``.source()``, TensorRT-style ``.minimum/.optimum/.maximum``), each size at
        most ``max_size``; what torch.export's dims cannot state is in ``.narrowed``."""
        from convlint import contract

        return contract.dynamic_shapes(self, max_size)

    def pad_amounts(self, shape: Sequence[int]) -> Optional[tuple]:
        """The ``F.pad`` amounts (last dim first) to the nearest size above that runs, all
        at the end of each dim; None where none runs."""
        from convlint import contract

        return contract.pad_amounts(self, shape)


def _limit(expression, minimum: int) -> Callable[[dict], Optional[bool]]:
    # closed over the expression and the bound alone: the limits of a block used many
    # times are one test (``domain_statement`` evaluates each distinct test once)
    def test(env: dict) -> Optional[bool]:
        value = evaluate_int(expression, env)
        return None if value is None else value >= minimum

    return test


def _agree(a, b, broadcasts: bool) -> Callable[[dict], Optional[bool]]:
    def test(env: dict) -> Optional[bool]:
        x, y = evaluate_int(a, env), evaluate_int(b, env)
        if x is None or y is None:
            return None
        return x == y or (broadcasts and 1 in (x, y))

    return test


def _equals(expression, value: int) -> Callable[[dict], Optional[bool]]:
    def test(env: dict) -> Optional[bool]:
        got = evaluate_int(expression, env)
        return None if got is None else got == value

    return test


def _guard(relation) -> Callable[[dict], Optional[bool]]:
    return lambda env: holds(relation, env)


def of(view) -> Domain:
    """The domain of one analysed model (``view``: the engine's ``ModelView``)."""
    conditions: list[Condition] = []
    why: list[str] = []
    result = view.sizes
    if result is None or view.analysis.error:
        why.append("the model was not analysed")
        return Domain(tuple(view.symbols), view.example, tuple(view.input_shapes), (), False, tuple(why))
    if result.error is not None:
        why.append("it raised at the example input: what comes after is not known")
    if view.analysis.trace is not None and view.analysis.trace.stopped is not None:
        why.append("it reads a value the input's data decides: what comes after is not known")
    for c in view.constraints():
        conditions.append(
            _condition(view, "limit", _limit(c.expression, c.minimum), c.node, (c.expression, integer(c.minimum)))
        )
    conditions += _merge_conditions(view, why)
    conditions += _fixed_conditions(view, why)
    conditions += _fold_conditions(view)
    conditions += _view_conditions(view)
    conditions += _attention_conditions(view)
    conditions += _matmul_conditions(view, why)
    conditions += _assert_conditions(view)
    earlier: list = []
    for relation, site in view.guards:
        if sites.raises_unless(site):  # the model's own input check: the other side raises
            where = f"the check at line {site.line}"
            conditions.append(Condition("assert", _guard(relation), where, site, tuple(earlier), (relation,)))
        else:
            where = f"the branch at line {site.line}" if site else "a branch"
            conditions.append(Condition("guard", _guard(relation), where, site, (), (relation,)))
            why.append("a branch the example took (the other side was not run)")
        earlier.append(relation)
    if result.unknown_ops:
        why.append("sizes not followed past some ops")
    if result.within:
        why.append(
            "a broadcast whose exact size grew too large was sized by one operand (right where the others equal it or are 1)"
        )
    coverage = view.coverage
    if coverage.example_only or coverage.unchecked:
        why.append("convolutions checked at the example size only")
    exact = not why
    return Domain(
        tuple(view.symbols), view.example, tuple(view.input_shapes), tuple(conditions), exact, tuple(dict.fromkeys(why))
    )


def _condition(
    view, kind: str, test, node, expressions: tuple, line: bool = True, broadcasts: bool = False
) -> Condition:
    where = view.describe(node, line=line)
    guards = tuple(view.holds_before(node))
    return Condition(kind, test, where, view.site_of(node), guards, expressions, node, broadcasts)


def _merge_conditions(view, why: list) -> list[Condition]:
    """Every add, sub, mul, div and cat: each operand against the first in every dim, as
    PyTorch aligns them (from the last; a cat's own dim apart), not only the spatial ones
    (a position table added to tokens whose count depends on H and W)."""
    from convlint import sizes

    found = []
    shadows = view.sizes.shadows
    for node in view.nodes:
        if node not in shadows or not sizes.is_merge(node):
            continue
        tensors = [shadows.get(a) for a in sizes.merge_operands(node, node.args, node.kwargs) if hasattr(a, "op")]
        tensors = [t for t in tensors if isinstance(t, sizes.SymTensor)]
        if len(tensors) < 2:
            continue
        cat = sizes.is_cat(node)
        skip = sizes.cat_dim(node) if cat else None
        first = tensors[0].dims
        for other in tensors[1:]:
            dims = other.dims
            if cat and (len(dims) != len(first) or not isinstance(skip, int)):
                continue
            for k in range(1, min(len(first), len(dims)) + 1):
                if cat and (len(first) - k) == skip % len(first):
                    continue
                found += _agreeing(view, node, first[-k], dims[-k], not cat, why)
    return found


def _agreeing(view, node, a, b, broadcasts: bool, why: list) -> list[Condition]:
    """The condition that sizes ``a`` and ``b`` of ``node``'s operands agree (or one is 1,
    where they ``broadcast``): none where they are equal, or two constants that agreed at
    the example; an unknown size makes the domain inexact."""
    if a is None or b is None:
        why.append("a merge of sizes not followed")
        return []
    if a == b or not (free(a) or free(b)):
        return []
    return [_condition(view, "merge", _agree(a, b, broadcasts), node, (a, b), line=False, broadcasts=broadcasts)]


def _whole(dims: tuple, total: tuple) -> Callable[[dict], Optional[bool]]:
    def test(env: dict) -> Optional[bool]:
        values = exact_values((*dims, *total), env)
        if values is None:
            return None
        outs, ins = values[: len(dims)], values[len(dims) :]
        return all(v == int(v) and v >= 0 for v in outs) and math.prod(outs) == math.prod(ins)

    return test


def _same_product(dims: tuple, total: tuple) -> bool:
    """Are the products of the two shapes the same expression (a view that only regroups)?"""
    return sympy.expand(sympy.Mul(*dims) - sympy.Mul(*total)) == 0


def _view_conditions(view) -> list[Condition]:
    """A view or reshape needs its new sizes whole and their product the old one's: the
    dim it infers (``-1``) from sizes that depend on the input divides evenly only for
    some (``x.reshape(B, 8, -1, 49)``: tokens a multiple of 49)."""
    from convlint import sizes

    found = []
    shadows = view.sizes.shadows
    for node in view.nodes:
        reshape = (node.op == "call_method" and node.target in ("view", "reshape")) or (
            node.op == "call_function" and getattr(node.target, "__name__", "") == "reshape"
        )
        source = shadows.get(node.args[0]) if reshape and node.args and hasattr(node.args[0], "op") else None
        out = shadows.get(node) if reshape else None
        if not (isinstance(source, sizes.SymTensor) and isinstance(out, sizes.SymTensor)):
            continue
        if None in out.dims or None in source.dims:
            continue
        moving = [d for d in out.dims if free(d) and not sympy.sympify(d).is_integer]
        if not moving and _same_product(out.dims, source.dims):
            continue
        # a dim the input's sizes decide, or whole sizes whose product is the old one's only
        # for some inputs (tokens folded to a side of int(sqrt(L)): L a square)
        found.append(_condition(view, "view", _whole(out.dims, source.dims), node, tuple(moving or out.dims)))
    return found


def _fits(score, mask) -> Callable[[dict], Optional[bool]]:
    """A mask broadcasts to the scores, never the other way: its size or 1."""

    def test(env: dict) -> Optional[bool]:
        x, y = evaluate_int(score, env), evaluate_int(mask, env)
        return None if x is None or y is None else x == y or y == 1

    return test


def _attention_conditions(view) -> list[Condition]:
    """``F.scaled_dot_product_attention(q, k, v, attn_mask=bias)`` adds the mask to the
    (queries x keys) scores: a relative-position table of a fixed size needs that many
    tokens, as an add would."""
    found = []
    shadows = view.sizes.shadows
    for node in view.nodes:
        if node.op != "call_function" or getattr(node.target, "__name__", "") != "scaled_dot_product_attention":
            continue
        args = list(node.args) + [None] * 4
        q, k = shadows.get(args[0]), shadows.get(args[1])
        mask = node.kwargs.get("attn_mask", args[3])
        mask = shadows.get(mask) if hasattr(mask, "op") else None
        if not all(hasattr(t, "dims") for t in (q, k, mask)) or len(q.dims) < 2 or len(k.dims) < 2:
            continue
        scores = (*q.dims[:-1], k.dims[-2])
        for i in range(1, min(len(scores), len(mask.dims)) + 1):
            a, b = scores[-i], mask.dims[-i]
            if a is None or b is None or a == b:
                continue
            if free(a) or free(b):
                found.append(_condition(view, "merge", _fits(a, b), node, (a, b), line=False))
    return found


_MATMUL_METHODS = ("matmul", "bmm", "__matmul__")


def _matmul_conditions(view, why: list) -> list[Condition]:
    """``a @ b`` needs a's last dim equal to b's second to last (nothing broadcasts there)
    and its batch dims to broadcast: a position table of a fixed size multiplied with
    tokens whose count depends on the input (timm's lambda layers)."""
    import operator

    import torch

    from convlint import sizes

    found = []
    shadows = view.sizes.shadows
    for node in view.nodes:
        matmul = (node.op == "call_function" and node.target in (torch.matmul, operator.matmul, torch.bmm)) or (
            node.op == "call_method" and node.target in _MATMUL_METHODS
        )
        if not matmul or node not in shadows or len(node.args) < 2:
            continue
        a, b = (shadows.get(x) if hasattr(x, "op") else None for x in node.args[:2])
        if not (isinstance(a, sizes.SymTensor) and isinstance(b, sizes.SymTensor)) or min(len(a.dims), len(b.dims)) < 2:
            continue
        pairs = [(a.dims[-1], b.dims[-2], False)]
        pairs += [(x, y, True) for x, y in zip(reversed(a.dims[:-2]), reversed(b.dims[:-2]))]
        for x, y, broadcasts in pairs:
            found += _agreeing(view, node, x, y, broadcasts, why)
    return found


def _assert_conditions(view) -> list[Condition]:
    """``torch._assert(H == 224, ...)`` traced by fx: the input must satisfy it."""
    found = []
    for node in view.nodes:
        if node.op != "call_function" or getattr(node.target, "__name__", "") != "_assert" or not node.args:
            continue
        relation = view.sizes.shadows.get(node.args[0]) if hasattr(node.args[0], "op") else None
        if free(relation) and isinstance(relation, sympy.logic.boolalg.Boolean):
            # `H == 224 and W == 224` is two conditions, one per dim
            for part in relation.args if isinstance(relation, sympy.And) else (relation,):
                found.append(_condition(view, "assert", _guard(part), node, (part,)))
    return found


def _fixed_dims(module, rank: int) -> list[tuple[int, int]]:
    """(dim of its input, the size it must be) of a layer with fixed sizes: a Linear's
    features, a convolution's or a BatchNorm's channels, a LayerNorm's normalized shape."""
    import torch.nn as nn

    if isinstance(module, nn.Linear):
        return [(rank - 1, module.in_features)]
    if isinstance(module, nn.modules.conv._ConvNd) and module.in_channels > 0:  # a lazy one: not built yet
        return [(rank - len(module.kernel_size) - 1, module.in_channels)]
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.num_features > 0 and rank >= 2:
        return [(1, module.num_features)]
    if isinstance(module, nn.LayerNorm):
        shape = tuple(module.normalized_shape)
        return [(rank - len(shape) + i, n) for i, n in enumerate(shape)]
    return []


def _fixed_conditions(view, why: list) -> list[Condition]:
    """A layer whose features or channels depend on the input (a Linear after a flatten,
    a Conv1d over a spectrogram's bands) needs exactly the size it was built for."""
    from convlint import sizes

    found = []
    result = view.sizes
    for node in view.nodes:
        if node.op != "call_module" or not node.all_input_nodes:
            continue
        module = view.submodule(view.analysis, node)
        shadow = result.shadows.get(node.all_input_nodes[0])
        if not isinstance(shadow, sizes.SymTensor):
            continue
        for dim, size in _fixed_dims(module, len(shadow.dims)):
            expr = shadow.dims[dim] if 0 <= dim < len(shadow.dims) else None
            if expr is None:
                if 0 <= dim < len(shadow.dims):
                    why.append(f"the input sizes of {view.describe(node)} not followed")
                continue
            if free(expr):
                found.append(_condition(view, "fixed", _equals(expr, size), node, (expr, integer(size))))
    return found


def _fold_conditions(view) -> list[Condition]:
    """``F.fold``/``nn.Fold`` needs as many blocks in its input as ``output_size`` holds
    (an Outlooker folds back what it unfolded: the two counts are two expressions)."""
    from convlint import sizes
    from convlint.sizes.conv import UNFOLD_ARGS, block_call, block_geometry

    found = []
    for node in view.nodes:
        module = view.submodule(view.analysis, node) if node.op == "call_module" else None
        call = block_call(node, module)
        if call is None or call[0] != "fold":
            continue
        args = [call[1][n] for n in UNFOLD_ARGS]
        x, out = view.sizes.shadows.get(node.all_input_nodes[0]), view.sizes.shadows.get(node)
        if not (isinstance(x, sizes.SymTensor) and isinstance(out, sizes.SymTensor)):
            continue
        if not all(isinstance(a, (int, tuple, list)) for a in args):
            continue
        geometry = block_geometry(*args)
        blocks = [geometry.out_dim(i, n) if n is not None else None for i, n in enumerate(out.dims[-2:])]
        count = x.dims[-1]
        if count is None or None in blocks or not (free(count) or any(free(b) for b in blocks)):
            continue
        total = sympy.Mul(*blocks)
        found.append(_condition(view, "fixed", _agree(count, total, False), node, (count, total)))
    return found


def past_the_limits(view, domain: Domain) -> Optional[Shape]:
    """An input that meets every layer limit the domain knows, when the example raised at
    one (so that the layers after it are sized too); None when the example did not, or no
    size is larger. Each dim grows to its lower bound, rounded up to the power of two the
    example was a multiple of (a U-Net's example keeps its divisibility)."""
    from convlint.samesize import smallest_defined

    result = view.sizes
    example = dict(domain.example)
    limits = [c for c in domain.conditions if c.kind == "limit"]
    if result is None or result.error is None or all(c.holds(example) is not False for c in limits):
        return None
    grown = {}
    for symbol in domain.symbols:
        mine = [c for c in limits if c.symbols == frozenset({symbol})]
        low = smallest_defined(lambda n: all(c.holds({**example, symbol: n}) is not False for c in mine), 1 << 20)
        if low is None:
            return None
        step = example[symbol] & -example[symbol]  # the largest power of two dividing it
        grown[symbol] = max(example[symbol], -(-low // step) * step)
    if grown == example:
        return None
    return with_spatial_sizes(domain.input_shapes[0], [grown[s] for s in domain.symbols])
