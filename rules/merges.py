"""Merges: where two branches meet (add, sub, mul, div, cat), sizes must agree.

These rules need no annotation: a residual add or a skip concatenation states by itself
that its operands have one size.
"""

from __future__ import annotations

from typing import Iterator, Optional

from convlint.rule_api import ERROR, WARNING, Facts, MergeFact, Op, Report, Rule, agreement, free, text

# ---------------------------------------------------------------- shared


def _size_text(dims) -> str:
    return "x".join(str(value) for _, value in dims)


# ---------------------------------------------------------------- CVL301


def _listed(merge: MergeFact, texts: list[str]) -> str:
    """224x224 from `branch1` (Conv2d) and `branch3` (Conv2d); 214x214 from `branch2`."""
    by_size: dict = {}
    for operand, size in zip(merge.operands, texts):
        by_size.setdefault(size, []).append(operand.name)
    return "; ".join(f"{size} from {text.names(names)}" for size, names in by_size.items())


def _downstream(facts: Facts, merges: list) -> str:
    """`; the same layer breaks 2 more merges after it (in `layer2.1` and `layer2.2`)`:
    each merge's own parting layer says who breaks them (``merges``: (op, message, own))."""
    rest = [m for m, _, _ in merges[1:]]
    if not rest:
        return ""
    own = [o for _, _, o in merges if o is not None]  # None: only downstream of the first
    if len(set(own)) == 1:
        who = "the same layer breaks"
    elif own and len({facts.construction(o) for o in own}) == 1:
        who = "layers built at the same line break"
    else:
        who = "it breaks"
    return f"; {who} {len(rest)} more{_within(rest)}"


def _check_mismatch(facts: Facts) -> Iterator[Report]:
    """One finding per root cause: the merges that one layer's change breaks (directly, or
    through a merge it broke) are one finding at the first, the others related to it."""
    roots: dict = {}  # broken merge -> the layer where its sizes first part (None: unknown)
    groups: dict = {}  # root (or the merge itself) -> [(merge, message, root), ...]
    for merge in facts.merges:
        if not merge.broken:
            continue
        texts = [_size_text(dims) for dims in merge.dims]
        # Compare each branch with one of another size: the layer where they part.
        partings = []
        for operand, size in zip(merge.operands, texts):
            other = next((a for a, t in zip(merge.operands, texts) if t != size), None)
            if other is None:
                continue
            layer, change = facts.parting(operand, other)
            if layer is not None and (layer, change) not in partings:
                partings.append((layer, change))
        # Downstream of a merge already broken, sizes are the stand-in's: the same cause.
        ancestors = facts.ancestors(merge.op)
        upstream = next((r for m, r in roots.items() if m in ancestors and r is not None), None)
        root = upstream or (partings[0][0] if partings else None)
        roots[merge.op] = root
        where = "; ".join(f"they part at {layer.text}: {change}" for layer, change in partings)
        message = (
            f"{merge.op.brief} merges different sizes at the example input: "
            + _listed(merge, texts)
            + (f"; {where}" if where else "")
        )
        key = facts.construction(root) if root is not None else merge.op
        groups.setdefault(key, []).append((merge.op, message, partings[0][0] if partings else None))
    for merges in groups.values():
        first, message, _ = merges[0]
        related = tuple((m.site, message) for m, message, _ in merges[1:] if m.site is not None)
        yield Report(_fit(message, [(1, _downstream(facts, merges))]), site=first.site, related=related)


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
the module whose `forward` holds it (`layer2.0`). The layer named is the first after which
that branch's sizes are never again an exact scaling of the sizes where the branches
forked, as functions of the input: a pad that the next convolution undoes is no cause, a
stride-2 layer that rounds odd sizes is. One root cause is one finding: the merges broken
by one layer (directly, or downstream of a merge it broke), or by layers one constructor
line built (a block used many times), are reported at the first, with the others as
related locations (JSON `related`, SARIF `relatedLocations`).

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


def _holds_for_some(facts: Facts, merge: MergeFact, decided: dict) -> Optional[tuple]:
    """(conditions, first failures, the size maps, smallest failing size) of a merge whose
    operands agree at the example but not for every size; None when they always agree.
    ``decided``: the agreements worked out for this model (the same merge in every block
    of a stage is decided once)."""
    found: dict = {}  # symbol -> (condition, smallest, above, "H: a vs b")
    for i, a, b in merge.pairs:
        symbol = facts.symbol_of(i, a, b)
        if a is None or b is None or symbol is None or symbol in found:
            continue
        within = facts.within(symbol, merge.op)
        key = (symbol, a, b, within, merge.elementwise)
        if key not in decided:
            decided[key] = agreement(
                facts.example,
                a,
                b,
                symbol,
                lambda symbol=symbol: facts.smallest_input(symbol) or 1,
                within,
                broadcasts=merge.elementwise,
            )
        failure = decided[key]
        if failure:
            found[symbol] = (*failure, f"{symbol}: {text.show(a)} vs {text.show(b)}")
    if not found:
        return None
    groups: dict = {}  # one condition for all dims that share it
    for symbol, (condition, *_rest) in found.items():
        groups.setdefault(condition(["{}"]), (condition, []))[1].append(str(symbol))
    conditions = "; ".join(condition(names) for condition, names in groups.values())
    first = text.sizes({symbol: smallest for symbol, (_c, smallest, _a, _m) in found.items()})
    above = text.sizes({s: a for s, (_c, smallest, a, _m) in found.items() if a is not None and a != smallest})
    fails = (first, f" (above the example: {above})" if above else "")
    maps = "; ".join(m for *_x, m in found.values())
    return conditions, fails, maps, min(smallest for _c, smallest, _a, _m in found.values())


def _within(ops: list[Op]) -> str:
    """`` (in `stages.2`)``: the modules holding these merges."""
    return text.within([op.owner for op in ops])


LIMIT = 320  # a message people read; what does not fit is in JSON's related and detail
NEEDS_LIMIT = 120  # a condition tying H and W through window partitions: named, in `detail`


def _fit(core: str, optional: list[tuple[int, str]]) -> str:
    """``core`` followed by the optional parts ((rank, text), in text order), the parts of
    the highest rank dropped first while the message is longer than ``LIMIT``."""
    kept = list(optional)
    while kept and len(core + "".join(part for _, part in kept)) > LIMIT:
        kept.remove(max(kept, key=lambda part: part[0]))
    return core + "".join(part for _, part in kept)


def _check_some_sizes(facts: Facts) -> Iterator[Report]:
    """One finding per condition: merges at one line (a loop, a block used many times)
    are one finding, stating the condition they need together and the smallest size that
    fails it; merges elsewhere that need the same are related to it."""
    by_site: dict = {}  # source line -> [(op, per-merge verdict), ...]
    decided: dict = {}
    for merge in facts.merges:
        if merge.broken:
            continue
        verdict = _holds_for_some(facts, merge, decided)
        if verdict is not None:
            site = merge.op.site  # a line: `a + b + c` is two merges at one line, one finding
            by_site.setdefault((site.path, site.line) if site else merge.op, []).append((merge.op, *verdict))
    by_condition: dict = {}
    for merges in by_site.values():
        said = facts.sizes_that_run([m[0] for m in merges])
        if not said.needs:
            continue  # a size of 1 that broadcasts is their only difference
        merges.sort(key=lambda m: m[4])  # the first to fail speaks for its line
        by_condition.setdefault((said.needs, said.bounds), []).append((merges, said))
    for groups in by_condition.values():
        # A line speaks if PyTorch raises there at some size; one whose sizes fail only
        # where an earlier op already raised is related to it, not a finding of its own.
        groups.sort(key=lambda group: group[1].first is None)
        if groups[0][1].first is None:
            continue
        ((op, _, _, maps, _), *same_line), said = groups[0]
        others = [m for g, _ in groups[1:] for m in g]
        within = ""
        if facts.guards_before(op):
            within = " (among the sizes that take the example's branches before it)"
            maps += "; branches: " + ", ".join(text.show(g) for g in facts.guards_before(op))
        here = _size_text(op.spatial or [])
        together = [f"with the {len(same_line)} other merge{'s' * (len(same_line) != 1)} at this line"] * bool(
            same_line
        )
        aside = "; ".join(together + [f"the layers need {said.bounds}"] * bool(said.bounds))
        needs = said.needs if len(said.needs) <= NEEDS_LIMIT else "the sizes where its operands agree (see `detail`)"
        core = (
            f"{op.brief} merges tensors whose sizes agree at the example input ({here}) "
            f"but not for every input size{within}: it needs {needs}{f' ({aside})' if aside else ''}; "
            f"it first fails at {text.sizes(said.first)}"
        )
        above = f" (above the example: {text.sizes(said.above)})" if said.above and said.above != said.first else ""
        tail = f"; {len(others)} more merge{'s' * (len(others) != 1)} need the same" if others else ""
        where = _within([m[0] for m in others])
        message = _fit(core, [(2, above), (1, tail), (3, where)])
        related = tuple((m[0].site, _alone(facts, m[0])) for m in [*same_line, *others] if m[0].site is not None)
        yield Report(message, site=op.site, related=related, detail=maps)


def _alone(facts: Facts, op: Op) -> str:
    """What one merge needs by itself, in the domain's words (a related location)."""
    said = facts.sizes_that_run([op])
    fails = f"it first fails at {text.sizes(said.first)}" if said.first else "it fails only where an op before it does"
    return f"{op.brief}: it needs {said.needs or 'nothing more'}; {fails}"


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
the exact condition on the input: what the merges at its line need together ("it needs
H, W multiples of 8" for three halvings built by one line, not "multiples of 2"), jointly
where the truth is joint ("H = W", "H % 2 = W % 2"), with the layers' own lower bound
apart ("the layers need H, W >= 5"), and the smallest size that fails (a size of 1 that
broadcasts is no failure). The statement is the model's input domain (see "The input
domain" in the README), worked out exactly (Python's `int()` truncates, `//` floors) and
the same words `convlint shapes` prints. Merges at one line (a loop over skips) are one
finding, at the one that fails first; merges elsewhere that need the same are related to
it. "First fails at" is a size at which PyTorch reaches the merge and raises there: a
merge that fails only where an op before it already raises is no finding of its own.
The size maps themselves are in JSON's `detail`.

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


def _check_broadcast(facts: Facts) -> Iterator[Report]:
    for op in facts.ops:
        if not op.sized or not (op.elementwise_merge or op.expands):
            continue
        out = op.spatial
        if out is None:
            continue
        for operand in [a for a in facts.inputs(op) if a.spatial is not None][: 1 if op.expands else None]:
            # a 1 made on purpose (adaptive pooling, a mean) is a constant; one that convolutions
            # shrank to still depends on the input size
            shrunk = [
                (i, expr)
                for i, ((expr, value), (_, stretched)) in enumerate(zip(operand.spatial, out))
                if value == 1 and stretched != 1 and expr is not None and free(expr)
            ]
            if not shrunk:
                continue
            named = [(facts.symbol_of(i, e), e) for i, e in shrunk]
            names = ", ".join(str(s) if s is not None else str(i) for (s, _), (i, _) in zip(named, shrunk))
            over = "x".join(str(v) for _, v in out)
            maps = "; ".join(f"{s} -> {text.show(e)}" for s, e in named if s is not None)
            yield Report(
                f"{op.brief} stretches {operand.text} over {over} in {names}: "
                "it is 1 there only because the layers before it shrank it at the example input; "
                "pool it to 1 on purpose (nn.AdaptiveAvgPool) if a global value is meant",
                site=op.site,
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
