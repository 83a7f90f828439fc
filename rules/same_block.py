"""Same intent on a block: a container or custom module declared to keep its size."""

from __future__ import annotations

from typing import Iterator

from convlint.rule_api import ERROR, INFO, ModelView, Report, Rule, axes_map, geometry_of, size_map


def _responsible(view: ModelView, qualname: str, analysis) -> list[str]:
    """Layers inside the block that do not keep "same" on their own (a pad layer and the
    convolution it feeds count as one)."""
    names = []
    prefix = f"{qualname}." if qualname else ""
    for node in view.nodes_in(analysis):
        if node.op != "call_module":
            continue
        module = view.submodule(analysis, node)
        geometry = geometry_of(module)
        if geometry is None:
            continue
        name = f"`{prefix}{node.target}`"
        pad = view.pad_in_front(analysis, node)
        unit = view.with_pad_in_front(analysis, pad, geometry) if pad is not None else None
        if unit is not None:  # the pad layer in front supplies its padding: judge them together
            geometry = unit
            name = f"{view.describe(pad) if pad.op != 'call_module' else f'`{prefix}{pad.target}`'} and {name}"
        axes = view.layer_axes(geometry)
        if not all(a.verdict.keeps for a in axes):
            names.append(f"{name} ({size_map([a.symbol for a in axes], [a.expression for a in axes])})")
    return names


def _check_block(view: ModelView) -> Iterator[Report]:
    for info in view.modules:
        if not info.intent or geometry_of(info.module) is not None:
            continue
        if info.uncalled_container:
            continue  # never called itself; its members carry the intent
        name = view.display(info.qualname)
        analysis, axes, reason = view.block(info.qualname)
        if reason or any(a.verdict is None for a in axes):
            why = reason or "its size map is not defined at the example input"
            yield Report(
                f"cannot check that block `{name}` ({info.type_name}) keeps its size: {why}",
                info.qualname,
                severity=INFO,
            )
            continue
        if all(a.verdict.keeps for a in axes):
            continue
        known = all(a.expression is not None for a in axes)
        if known:
            change = axes_map(axes)
        else:
            broken = next(a for a in axes if not a.verdict.keeps)
            change = f"at {broken.symbol} = {broken.verdict.counterexample} it gives {broken.verdict.got}"
        culprits = _responsible(view, info.qualname, analysis) if analysis is not None else []
        blame = (
            "; layers responsible: " + ", ".join(culprits)
            if culprits
            else "; no single conv or pooling layer in it breaks same on its own"
        )
        yield Report(f"block `{name}` ({info.type_name}) does not keep its size: {change}{blame}", info.qualname)


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
