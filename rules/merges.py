"""Merges: where two branches meet (add, sub, mul, div, cat), sizes must agree.

These rules need no annotation: a residual add or a skip concatenation states by itself
that its operands have one size.
"""

from __future__ import annotations

import os
from fractions import Fraction
from typing import Iterator, Optional

import torch

from convlint.rule_api import ERROR, WARNING, ModelView, Report, Rule, agreement, same_target, show

# ---------------------------------------------------------------- shared


def _size_text(dims) -> str:
    return "x".join(str(value) for _, value in dims)


# ---------------------------------------------------------------- CVL301


def _path(view: ModelView, start: torch.fx.Node, fork: torch.fx.Node, between: set) -> list:
    """Nodes from just after ``fork`` to ``start``, following the branch back."""
    path, node = [], start
    while node is not fork:
        path.append(node)
        node = next((a for a in node.all_input_nodes if a is fork or a in between), None)
        if node is None:
            break
    return list(reversed(path))


def _ancestors(node: torch.fx.Node) -> set:
    seen, stack = {node}, [node]
    while stack:
        for a in stack.pop().all_input_nodes:
            if a not in seen:
                seen.add(a)
                stack.append(a)
    return seen


def _descendants(node: torch.fx.Node) -> set:
    seen, stack = {node}, [node]
    while stack:
        for u in stack.pop().users:
            if u not in seen:
                seen.add(u)
                stack.append(u)
    return seen


def _unclean(view: ModelView, node: torch.fx.Node) -> Optional[str]:
    """``224 -> 222`` if the node changes the size other than by a clean stride or scale."""
    inputs = [a for a in node.all_input_nodes if view.spatial(a) is not None]
    out = view.spatial(node)
    if not inputs or out is None:
        return None
    before = [v for _, v in view.spatial(inputs[0])]
    after = [v for _, v in out]
    if len(before) != len(after) or before == after:
        return None
    geometry = view.geometry(node)
    if geometry is not None:
        want = [same_target(n, geometry.scale_stride(i)) for i, n in enumerate(before[-geometry.ndim :])]
        if after[-geometry.ndim :] == want:
            return None
    else:
        ratios = {Fraction(a, b) for a, b in zip(after, before) if b}
        if len(ratios) == 1 and 1 in (next(iter(ratios)).numerator, next(iter(ratios)).denominator):
            return None  # an exact resampling by one factor
    return f"{'x'.join(map(str, before))} -> {'x'.join(map(str, after))}"


def _parting(view: ModelView, operand: torch.fx.Node, other: torch.fx.Node) -> tuple:
    """(fork node, first layer on ``operand``'s branch that changes size uncleanly, its change)."""
    common = _ancestors(operand) & _ancestors(other)
    order = {n: i for i, n in enumerate(view.nodes)}
    if not common:
        return None, None, None
    fork = max(common, key=order.__getitem__)
    between = _descendants(fork) & _ancestors(operand)
    for node in _path(view, operand, fork, between):
        change = _unclean(view, node)
        if change:
            return fork, node, change
    return fork, None, None


def _names(described: list[str]) -> str:
    """`a`, `b` and `c`; past three, `a`, `b` and 4 more."""
    if len(described) > 3:
        return f"{', '.join(described[:2])} and {len(described) - 2} more"
    return ", ".join(described[:-1]) + " and " + described[-1] if len(described) > 1 else described[0]


def _listed(view: ModelView, operands: list, texts: list[str]) -> str:
    """224x224 from `branch1` (Conv2d) and `branch3` (Conv2d); 214x214 from `branch2`."""
    by_size: dict = {}
    for (operand, _), text in zip(operands, texts):
        by_size.setdefault(text, []).append(view.describe(operand, kind=False))
    return "; ".join(f"{text} from {_names(names)}" for text, names in by_size.items())


def _downstream(view: ModelView, rest: list, one_layer: bool) -> str:
    """`; the same layer breaks 2 more merges after it (in `layer2.1` and `layer2.2`)`."""
    if not rest:
        return ""
    within = _within(view, rest)
    who = "the same layer breaks" if one_layer else "layers built at the same line break"
    return f"; {who} {len(rest)} more{within}"


def _cause(view: ModelView, layer) -> object:
    """What one fix changes: the constructor call that built the layer (a block used
    many times repeats its layer's mistake), else the layer's node."""
    if layer.op == "call_module":
        site = view.module(layer.target).site
        if site is not None:
            return site
    return layer


def _check_mismatch(view: ModelView) -> Iterator[Report]:
    """One finding per root cause: the merges that one layer's change breaks (directly, or
    through a merge it broke) are one finding at the first, the others related to it."""
    roots: dict = {}  # broken merge -> the layer where its sizes first part (None: unknown)
    groups: dict = {}  # root (or the merge itself) -> [(merge, message), ...]
    for node, operands in view.merges():
        if view.broken_merge(node) is None:
            continue
        texts = [_size_text(dims) for _, dims in operands]
        # Compare each branch with one of another size: the layer where they part.
        partings = []
        for index, ((operand, _), text) in enumerate(zip(operands, texts), start=1):
            other = next((a for (a, _), t in zip(operands, texts) if t != text), None)
            if other is None:
                continue
            _fork, layer, change = _parting(view, operand, other)
            if layer is not None and (layer, change) not in [(p[1], p[2]) for p in partings]:
                partings.append((index, layer, change))
        root = partings[0][1] if partings else None
        if root is None:  # downstream of a merge already broken: the same cause
            ancestors = _ancestors(node)
            root = next((r for m, r in roots.items() if m in ancestors and r is not None), None)
        roots[node] = root
        where = "; ".join(f"they part at {view.describe(layer)}: {change}" for _index, layer, change in partings)
        message = (
            f"{view.describe(node, line=False)} merges different sizes at the example input: "
            + _listed(view, operands, texts)
            + (f"; {where}" if where else "")
        )
        groups.setdefault(_cause(view, root) if root is not None else node, []).append((node, message, root))
    for merges in groups.values():
        (first, message, _), rest = merges[0], [m for m, _, _ in merges[1:]]
        one_layer = len({id(r) for _, _, r in merges}) == 1
        related = tuple((view.site_of(m), text) for m, text, _ in merges[1:] if view.site_of(m) is not None)
        yield Report(
            _fit(message, [(1, _downstream(view, rest, one_layer))]), site=view.site_of(first), related=related
        )


CVL301 = Rule(
    code="CVL301",
    name="merge-size-mismatch",
    severity=ERROR,
    summary="A residual add or skip concatenation gets tensors of different sizes",
    check=_check_mismatch,
    doc="""\
## What it does
Finds the add, sub, mul, div or cat in `forward` whose operands have different spatial
sizes at the example input (outside the cat dimension), and names, on each branch, the
layer where the sizes first part. A merge is named by its source (`out + residual`) and
the module whose `forward` holds it (`layer2.0`). One root cause is one finding: the
merges broken by one layer, or by layers one constructor line built (a block used many
times), are reported at the first, with the others as related locations (JSON `related`,
SARIF `relatedLocations`).

## Why is this bad?
PyTorch raises at that line ("Sizes of tensors must match", "The size of tensor a must
match the size of tensor b"), after everything before it has run.

## Example
```python
y = self.conv2(self.conv1(x))   # conv1: padding=1 with dilation=2: 224 -> 222
return y + x                    # 222 vs 224
```

## Fix
Fix the layer it names (its padding, usually), or crop or pad one branch to the other.
""",
)


# ---------------------------------------------------------------- CVL302


def _holds_for_some(view: ModelView, node, operands) -> Optional[tuple]:
    """(conditions, first failures, the size maps, smallest failing size) of a merge whose
    operands agree at the example but not for every size; None when they always agree."""
    found: dict = {}  # symbol -> (condition, smallest, above, "H: a vs b")
    for i, a, b in view.merge_pairs(node, operands):
        if a is None or b is None or i >= len(view.symbols) or view.symbols[i] in found:
            continue
        symbol = view.symbols[i]
        before = view.guards_before(node)
        allowed = (lambda n, symbol=symbol: view.allowed({**view.example, symbol: n}, node)) if before else None
        failure = agreement(
            view.example,
            a,
            b,
            symbol,
            lambda: view.smallest_input(symbol) or 1,
            allowed,
            broadcasts=view.is_elementwise_merge(node),
        )
        if failure:
            found[symbol] = (*failure, f"{symbol}: {show(a)} vs {show(b)}")
    if not found:
        return None
    groups: dict = {}  # one condition for all dims that share it
    for symbol, (condition, *_rest) in found.items():
        groups.setdefault(condition(["{}"]), (condition, []))[1].append(str(symbol))
    conditions = "; ".join(condition(names) for condition, names in groups.values())
    first = _sizes({symbol: smallest for symbol, (_c, smallest, _a, _m) in found.items()})
    above = _sizes({s: a for s, (_c, smallest, a, _m) in found.items() if a is not None and a != smallest})
    fails = (first, f" (above the example: {above})" if above else "")
    maps = "; ".join(m for *_x, m in found.values())
    return conditions, fails, maps, min(smallest for _c, smallest, _a, _m in found.values())


def _sizes(values: dict) -> str:
    """``H = W = 17`` where they agree, else ``H = 17, W = 18``."""
    if len(values) > 1 and len(set(values.values())) == 1:
        return " = ".join(str(s) for s in values) + f" = {next(iter(values.values()))}"
    return ", ".join(f"{s} = {v}" for s, v in values.items())


def _within(view: ModelView, nodes: list) -> str:
    """`` (in `stages.2`)``: the modules holding these merges, by their common prefix when
    there are many."""
    owners = list(dict.fromkeys(view.owner(m) for m in nodes if view.owner(m)))
    if len(owners) > 2:
        common = os.path.commonprefix([o.split(".") for o in owners])
        if common:
            return f" (in `{'.'.join(common)}`)"
    return f" (in {_names([f'`{o}`' for o in owners])})" if owners else ""


LIMIT = 320  # a message people read; what does not fit is in JSON's related and detail


def _fit(core: str, optional: list[tuple[int, str]]) -> str:
    """``core`` followed by the optional parts ((rank, text), in text order), the parts of
    the highest rank dropped first while the message is longer than ``LIMIT``."""
    kept = list(optional)
    while kept and len(core + "".join(text for _, text in kept)) > LIMIT:
        kept.remove(max(kept, key=lambda part: part[0]))
    return core + "".join(text for _, text in kept)


def _check_some_sizes(view: ModelView) -> Iterator[Report]:
    """One finding per condition: merges at one line (a loop, a block used many times)
    are one finding, at the one that fails first; merges elsewhere that need the same
    condition are related to it."""
    by_site: dict = {}  # source line -> [(node, conditions, fails, maps, smallest), ...]
    for node, operands in view.merges():
        if view.broken_merge(node) is not None:
            continue
        verdict = _holds_for_some(view, node, operands)
        if verdict is not None:
            by_site.setdefault(view.site_of(node) or node, []).append((node, *verdict))
    by_condition: dict = {}
    for merges in by_site.values():
        merges.sort(key=lambda m: m[4])  # the first to fail speaks for its line
        by_condition.setdefault(merges[0][1], []).append(merges)
    for groups in by_condition.values():
        (node, conditions, fails, maps, _), *same_line = groups[0]
        others = [m for g in groups[1:] for m in g]
        within = ""
        if view.guards_before(node):
            within = " (among the sizes that take the example's branches before it)"
            maps += "; branches: " + ", ".join(show(g) for g in view.guards_before(node))
        here = _size_text(view.spatial(node) or [])
        core = (
            f"{view.describe(node, line=False)} merges tensors whose sizes agree at the example input ({here}) "
            f"but not for every input size{within}: {conditions}; it first fails at {fails[0]}"
        )
        tail = ""
        if same_line:
            tail += f"; {len(same_line)} more merge{'s' * (len(same_line) != 1)} at this line"
        if others:
            tail += f"; {len(others)} more merge{'s' * (len(others) != 1)} need the same"
        where = _within(view, [m[0] for m in others])
        message = _fit(core, [(2, fails[1]), (1, tail), (3, where)])
        related = tuple(
            (view.site_of(m[0]), f"{view.describe(m[0], line=False)}: {m[1]}; it first fails at {''.join(m[2])}")
            for m in [*same_line, *others]
            if view.site_of(m[0]) is not None
        )
        yield Report(message, site=view.site_of(node), related=related, detail=maps)


CVL302 = Rule(
    code="CVL302",
    name="merge-holds-for-some-sizes",
    severity=WARNING,
    summary="A merge whose operands agree only for some input sizes",
    check=_check_some_sizes,
    doc="""\
## What it does
At every add, sub, mul, div or cat, compares the operands' sizes as expressions of the
input size. When they agree at the example input but the expressions differ, it states
the exact condition on the input (for example "H and W must be multiples of 16") and the
smallest size that fails (a size of 1 that broadcasts is no failure). The condition is
derived, not guessed: the size maps are periodic in the input size with period dividing
the product of the strides, so one period decides it. Merges at one line (a loop over
skips) are one finding, at the one that fails first; merges that need the same condition
are related to it. The size maps themselves are in JSON's `detail`.

## Why is this bad?
A U-Net trained on 256x256 crops fails on a 250x250 image at the first skip
concatenation: the pooled branch rounds down, the upsampled one comes back even.

## Example
```python
skip = self.enc(x)                       # H
y = self.up(self.pool(skip))             # 2*floor(H/2)
return torch.cat([y, skip], dim=1)       # only for even H
```

## Fix
Pad or crop to the skip connection's size (`F.pad(y, ...)` or `F.interpolate(y,
size=skip.shape[-2:])`), or document and check the input sizes the model takes.
""",
)


# ---------------------------------------------------------------- CVL303


def _check_broadcast(view: ModelView) -> Iterator[Report]:
    for node in view.nodes:
        if not view.sized(node):
            continue
        elementwise = view.is_elementwise_merge(node)
        expand = node.op == "call_method" and node.target in ("expand", "expand_as")
        out = view.spatial(node)
        if not (elementwise or expand) or out is None:
            continue
        for operand in [a for a in node.all_input_nodes if view.spatial(a) is not None][: 1 if expand else None]:
            # a 1 made on purpose (adaptive pooling, a mean) is a constant; one that convolutions
            # shrank to still depends on the input size
            shrunk = [
                (i, expr)
                for i, ((expr, value), (_, stretched)) in enumerate(zip(view.spatial(operand), out))
                if value == 1 and stretched != 1 and expr is not None and expr.free_symbols
            ]
            if not shrunk:
                continue
            names = ", ".join(str(view.symbols[i]) if i < len(view.symbols) else str(i) for i, _ in shrunk)
            over = "x".join(str(v) for _, v in out)
            maps = "; ".join(f"{view.symbols[i]} -> {show(e)}" for i, e in shrunk if i < len(view.symbols))
            yield Report(
                f"{view.describe(node, line=False)} stretches {view.describe(operand)} over {over} in {names}: "
                "it is 1 there only because the layers before it shrank it at the example input; "
                "pool it to 1 on purpose (nn.AdaptiveAvgPool) if a global value is meant",
                site=view.site_of(node),
                detail=maps,
            )


CVL303 = Rule(
    code="CVL303",
    name="silent-broadcast",
    severity=WARNING,
    summary="An elementwise op or expand stretches a dimension that convolutions shrank to 1",
    check=_check_broadcast,
    doc="""\
## What it does
Finds elementwise ops (add, mul, ...) and `expand`/`expand_as` that broadcast a spatial
dimension of size 1 over a larger one, where the 1 comes from convolutions and pooling
shrinking the map (its size still depends on the input), not from adaptive or global
pooling or a mean (a constant 1, which is not flagged).

## Why is this bad?
Broadcasting hides the bug: a gate meant to be per-pixel silently becomes one number per
channel at this input size, and something else at another.

## Example
```python
gate = self.squeeze(x)      # four stride-2 convs: 16x16 -> 1x1 here, 2x2 at 32x32
return x * gate             # broadcast over 16x16
```

## Fix
If a global value is meant, pool to 1 on purpose (`nn.AdaptiveAvgPool2d(1)`); otherwise
make the shapes agree.
""",
)
