"""Same intent on a block: a container or custom module declared to keep its size."""

from __future__ import annotations

from typing import Iterator

from convlint.rule_api import ERROR, INFO, BlockFact, Facts, Report, Rule, layer_verdicts, text


def _responsible(block: BlockFact) -> list[str]:
    """Layers inside the block that do not keep "same" on their own (a pad layer and the
    convolution it feeds count as one)."""
    names = []
    for unit in block.units:
        axes = layer_verdicts(unit.geometry)
        if not all(a.verdict.keeps for a in axes):
            names.append(f"{unit.text} ({text.size_map([a.symbol for a in axes], [a.expression for a in axes])})")
    return names


def _check_block(facts: Facts) -> Iterator[Report]:
    for block in facts.blocks:
        axes, reason = block.axes, block.reason
        if reason or any(a.verdict is None for a in axes):
            why = reason or "its size map is not defined at the example input"
            yield Report(
                f"cannot check that block `{block.display}` ({block.type_name}) keeps its size: {why}",
                block.qualname,
                severity=INFO,
            )
            continue
        if all(a.verdict.keeps for a in axes):
            continue
        known = all(a.expression is not None for a in axes)
        if known:
            change = text.axes_map(axes)
        else:
            broken = next(a for a in axes if not a.verdict.keeps)
            change = f"at {broken.symbol} = {broken.verdict.counterexample} it gives {broken.verdict.got}"
        culprits = _responsible(block)
        blame = (
            "; layers responsible: " + ", ".join(culprits)
            if culprits
            else "; no single conv or pooling layer in it breaks same on its own"
        )
        yield Report(
            f"block `{block.display}` ({block.type_name}) does not keep its size: {change}{blame}", block.qualname
        )


CVL103 = Rule(
    code="CVL103",
    name="same-block-mismatch",
    severity=ERROR,
    summary="A block declared to keep its size changes it",
    check=_check_block,
    doc="""\
## What it does
Checks a container or custom module that declares "same" intent (a
`# convlint: same` comment on its constructor call, a `same` glob, or
`convlint.same(block)`): traced on its own, its output size must be
`ceil(input / stride)` for every input size, where stride is the product of its strides.
It names the layers inside that break "same" on their own.

## Why is this bad?
Residual blocks, ASPP branches and U-Net stages are written to keep their size so
that their output can be added to or concatenated with another. A block that shrinks
the map breaks that merge, often only for some input sizes.

## Example
```python
self.block = nn.Sequential(  # convlint: same
    nn.Conv2d(64, 64, 3, padding=1),
    nn.Conv2d(64, 64, 3, dilation=2, padding=1),
)
```
`H -> H - 2`: the second convolution needs `padding=2`.

## Fix
Fix the padding of the layers it names (see CVL101 and CVL102).
""",
)
