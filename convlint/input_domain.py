"""The input domain: the input sizes at which a model runs, as far as its sizes are followed.

One fact per model, made of conditions on the input's symbols (``H``, ``W``), each with
where it comes from:

- a layer's limit: a kernel within its padded input, reflect padding below the size,
  circular padding at most the size (``Limit`` of the facts);
- a merge: an add, sub, mul or div needs its operands' sizes equal or one of them 1 (it
  broadcasts), a cat needs them equal outside its own dimension;
- a fixed size: a Linear fed by features that depend on the input needs exactly its
  ``in_features``;
- a guard: a branch the model's own Python took at the example (``if H % 32: raise``),
  whose other side was never run.

Every condition is evaluated exactly (Python's arithmetic as the model's code wrote it:
``int()`` truncates, ``//`` floors). ``contains`` is True exactly when every condition
holds; ``exact`` says whether that is the whole truth (False where sizes were not followed,
or where a guard leaves the other branch unknown).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

from convlint.sizes.symbolic import evaluate_int, holds


@dataclass(frozen=True)
class Condition:
    """One thing the input's sizes must satisfy for the model to run."""

    kind: str  # "limit", "merge", "fixed", "guard"
    test: Callable[[dict], Optional[bool]]  # env -> holds? (None: cannot be decided)
    where: str  # what imposes it: `conv2` (Conv2d), `torch.cat([y, x], dim=1)` in `up`
    site: Any = None  # its line, when it has one
    branches: tuple = ()  # the guards decided before it: it is PyTorch's only within them

    def holds(self, env: dict) -> Optional[bool]:
        return self.test(env)

    def refuses(self, env: dict) -> bool:
        """Does PyTorch certainly refuse these sizes here? (It fails, and the input takes
        the branches the example took before it; a guard itself refuses nothing.)"""
        return (
            self.kind != "guard"
            and self.holds(env) is False
            and all(holds(relation, env) is not False for relation in self.branches)
        )


@dataclass(frozen=True)
class Domain:
    """The set of input shapes at which a model runs (see the module's doc)."""

    symbols: tuple  # the input's spatial symbols, in order (H, W)
    example: dict  # symbol -> size at the example input
    input_shapes: tuple  # the example's shapes: batch and channels are held there
    conditions: tuple[Condition, ...]
    exact: bool  # every size followed, no branch left unknown
    why_inexact: tuple[str, ...] = ()

    def env(self, *shapes: Sequence[int]) -> dict:
        """The symbols' values at these input shapes (the example's for inputs not given)."""
        env = dict(self.example)
        for shape, example in zip(shapes, self.input_shapes):
            if len(shape) != len(example):
                raise ValueError(f"shape {tuple(shape)} has rank {len(shape)}, the example's is {len(example)}")
            ndim = len(self.symbols) if example is self.input_shapes[0] else 0
            for symbol, n in zip(self.symbols, tuple(shape)[len(shape) - ndim :]):
                env[symbol] = int(n)
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


def _limit(c) -> Callable[[dict], Optional[bool]]:
    def test(env: dict) -> Optional[bool]:
        value = evaluate_int(c.expression, env)
        return None if value is None else value >= c.minimum

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
    for c in view.constraints():
        conditions.append(_condition(view, "limit", _limit(c), c.node))
    for node, operands in view.merges():
        conditions += _merge_conditions(view, node, operands, why)
    conditions += _fixed_conditions(view, why)
    for relation, site in view.guards:
        conditions.append(
            Condition("guard", _guard(relation), f"the branch at line {site.line}" if site else "a branch", site)
        )
        why.append("a branch the example took (the other side was not run)")
    if result.unknown_ops:
        why.append("sizes not followed past some ops")
    coverage = view.coverage
    if coverage.example_only or coverage.unchecked:
        why.append("convolutions checked at the example size only")
    exact = not why
    return Domain(
        tuple(view.symbols), view.example, tuple(view.input_shapes), tuple(conditions), exact, tuple(dict.fromkeys(why))
    )


def _condition(view, kind: str, test, node, line: bool = True) -> Condition:
    where = view.describe(node, line=line)
    return Condition(kind, test, where, view.site_of(node), tuple(view.guards_before(node)))


def _merge_conditions(view, node, operands: list, why: list) -> list[Condition]:
    """Each operand against the first, in every spatial dim but a cat's own."""
    found = []
    elementwise = view.is_elementwise_merge(node)
    skip = view.cat_axis(node)
    first = operands[0][1]
    for _operand, dims in operands[1:]:
        for i, ((a, _), (b, _)) in enumerate(zip(first, dims)):
            if i == skip:
                continue
            if a is None or b is None:
                why.append("a merge of sizes not followed")
                continue
            if a == b:
                continue
            found.append(
                Condition("merge", _agree(a, b, elementwise), view.describe(node, line=False), view.site_of(node))
            )
    return found


def _fixed_conditions(view, why: list) -> list[Condition]:
    """A Linear whose features depend on the input needs exactly its in_features."""
    import torch.nn as nn

    from convlint import sizes

    found = []
    result = view.sizes
    for node in view.nodes:
        if node.op != "call_module" or not node.all_input_nodes:
            continue
        module = view.submodule(view.analysis, node)
        shadow = result.shadows.get(node.all_input_nodes[0])
        if not isinstance(module, nn.Linear) or not isinstance(shadow, sizes.SymTensor):
            continue
        features = shadow.dims[-1]
        if features is None:
            why.append(f"the features of {view.describe(node)} not followed")
            continue
        if features.free_symbols:
            found.append(
                Condition("fixed", _equals(features, module.in_features), view.describe(node), view.site_of(node))
            )
    return found
