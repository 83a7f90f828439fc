"""Inputs too small for a layer: PyTorch would raise at the example input.

Each layer needs of its input a padded size at least its effective kernel (CVL401), and
reflect or circular padding within the size (CVL402). The finding names the layer, the
size it gets, and the input sizes at which the model runs (its domain, stated once for
every report).
"""

from __future__ import annotations

from typing import Iterator

from convlint.rule_api import ERROR, Facts, Limit, Report, Rule, evaluate_int, text


def violated(facts: Facts, kinds: tuple[str, ...]) -> Iterator[list[tuple[Limit, int]]]:
    """Per layer, the limits of these kinds the example input breaks, each with the size
    the layer gets there."""
    by_op: dict = {}
    for c in facts.limits:
        if c.kind in kinds:
            got = evaluate_int(c.expression, facts.example)
            if got is not None and got < c.minimum and c.dim not in [x.dim for x, _ in by_op.get(c.op, [])]:
                by_op.setdefault(c.op, []).append((c, got))
    yield from by_op.values()


def _raises(facts: Facts, op, said: str, error: str = "") -> Report:
    """``said`` of ``op`` at the example, then that PyTorch raises there (``error``: its
    words) and the sizes the model runs for: every CVL401/402 message ends so."""
    runs = facts.sizes_that_run().summary  # the model's domain: the same words as `convlint shapes` and hover
    exact = "" if facts.domain.exact else " as far as its sizes were followed"
    return Report(
        f"{said}; PyTorch raises here{error}. The model runs for {runs}{exact}",
        module=op.module,
        site=None if op.module else op.site,
    )


def _report(facts: Facts, broken: list[tuple[Limit, int]], what: str) -> Report:
    op = broken[0][0].op
    symbols = facts.symbols
    names = [str(symbols[c.dim]) if c.dim < len(symbols) else str(c.dim) for c, _ in broken]
    got = "x".join(str(g) for _, g in broken)
    maps = ", ".join(f"{n} -> {text.show(c.expression)}" for n, (c, _) in zip(names, broken))
    return _raises(facts, op, f"{op.text} gets {got} in {', '.join(names)} at the example input ({maps}), {what}")


def _one_value(facts: Facts, c: Limit) -> Report:
    """A norm whose statistics, at the example, are over one value per channel group."""
    first = next(iter(facts.inputs(c.op)), None)
    spatial = first.spatial if first is not None else None
    sizes = "x".join(str(n) for _, n in spatial) if spatial else str(evaluate_int(c.expression, facts.example))
    said = (
        f"{c.op.text} gets a {sizes} map at the example input ({text.show(c.expression)} values per channel "
        "group), and takes its statistics over them"
    )
    return _raises(facts, c.op, said, ' ("Expected more than 1 value per channel")')


def _check_kernel(facts: Facts) -> Iterator[Report]:
    for broken in violated(facts, ("output",)):  # a kernel computed from sizes
        outputs = "x".join(str(got) for _, got in broken)
        yield _report(facts, broken, f"and its kernel, computed from the sizes, leaves an output of {outputs}")
    for broken in violated(facts, ("statistics",)):
        yield _one_value(facts, broken[0][0])
    for broken in violated(facts, ("kernel",)):
        geometry = broken[0][0].op.geometry
        if geometry is None:  # unfold's sliding blocks: an op with no layer geometry of its own
            needs = "x".join(str(c.minimum) for c, _ in broken)
            yield _report(facts, broken, f"but its sliding blocks need an input of {needs} at least")
            continue
        spans = "x".join(str(geometry.effective_kernel(c.axis)) for c, _ in broken)
        padded = "x".join(str(got + sum(geometry.padding[c.axis])) for c, got in broken)
        yield _report(facts, broken, f"but its kernel spans {spans} and its padded input is {padded}")


CVL401 = Rule(
    code="CVL401",
    name="kernel-larger-than-input",
    severity=ERROR,
    summary="A kernel larger than its padded input at the example size",
    check=_check_kernel,
    doc="""\
## What it does
Finds the convolution or pooling layer whose padded input, at the example input size,
is smaller than its effective kernel `dilation*(kernel-1) + 1` (or, for a kernel computed
from sizes, whose output would be empty; for an `unfold`, whose sliding blocks would be
none), or the normalisation that takes its statistics over one value per channel group
(a `GroupNorm` with one channel per group at batch 1, an `InstanceNorm`, on a 1x1 map),
and states the input sizes at which the model runs: its input domain, in the words
`convlint shapes` uses.

## Why is this bad?
PyTorch raises "Kernel size can't be greater than actual input size" (or "Output size is
too small", or "Expected more than 1 value per channel") at that layer: the model cannot
run on inputs this small.

## Example
```python
# five stride-2 stages take 32x32 to 1x1; a 3x3 valid conv after them cannot run
self.head = nn.Conv2d(512, 512, 3)
```

## Fix
Feed larger inputs, pad the layer, or remove a downsampling stage.
""",
)


def _check_padding(facts: Facts) -> Iterator[Report]:
    for broken in violated(facts, ("reflect", "circular")):
        c = broken[0][0]
        rule = "below" if c.kind == "reflect" else "at most"
        yield _report(facts, broken, f"but its {c.kind} padding of {c.padding} must be {rule} the input size")


CVL402 = Rule(
    code="CVL402",
    name="padding-larger-than-input",
    severity=ERROR,
    summary="Reflect or circular padding too large for its input at the example size",
    check=_check_padding,
    doc="""\
## What it does
Finds reflect padding not smaller than its input, and circular padding larger than its
input (it would wrap more than once), at the example input size: pad layers, `F.pad`
and convolutions with `padding_mode="reflect"` or `"circular"`. It states the input sizes
at which the model runs (its input domain).

## Why is this bad?
PyTorch raises ("Padding size should be less than the corresponding input dimension",
"Padding value causes wrapping around more than once").

## Example
```python
nn.Conv2d(64, 64, 7, padding=3, padding_mode="reflect")   # needs an input of at least 4
```

## Fix
Use zero or replicate padding for small maps, or feed larger inputs.
""",
)
