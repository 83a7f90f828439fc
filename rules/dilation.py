"""Padding written for dilation 1: the classic slip when a dilation argument is added."""

from __future__ import annotations

from typing import Iterator

from convlint.fix_api import declared_same, fix_padding
from convlint.rule_api import WARNING, Facts, Geometry, Kind, Report, Rule, keeping_padding, per_line, text


def forgot_dilation(geometry: Geometry) -> bool:
    """A dilated convolution whose padding is (kernel-1)//2, which keeps the size only
    without the dilation, in some dim; no same intent declared (that is CVL101's)."""
    if geometry is None or geometry.kind != Kind.CONV or isinstance(geometry.padding_literal, str):
        return False
    keeping = geometry.symmetric_keeping_padding()
    return any(
        d > 1 and k > 1 and left == right == (k - 1) // 2 != keep
        for (left, right), k, d, keep in zip(geometry.padding, geometry.kernel, geometry.dilation, keeping)
    )


def _check(facts: Facts) -> Iterator[Report]:
    return per_line(_each(facts))  # a stage of blocks built by one line: one finding


def _each(facts: Facts) -> Iterator[tuple]:
    for layer in facts.layers:
        if declared_same(layer) or not forgot_dilation(layer.geometry):
            continue
        geometry = layer.geometry
        fix = keeping_padding(geometry)
        advice = (
            f"use {text.fix_arguments(geometry, fix)}" if fix else 'no symmetric padding keeps it (use padding="same")'
        )
        yield (
            layer,
            Report(
                f"`{layer.display}` {layer.type_name}(kernel {text.literal(geometry.kernel)}, "
                f"dilation {text.literal(geometry.dilation)}, padding {text.literal(geometry.padding_literal)}) "
                f"has the padding of an undilated kernel: {text.axes_map(layer.axes)}; {advice}",
                layer.qualname,
            ),
        )


CVL201 = Rule(
    code="CVL201",
    name="padding-for-dilation-1",
    severity=WARNING,
    summary="A dilated convolution whose padding is (kernel-1)//2, written for dilation 1",
    check=_check,
    fix=lambda call_site: fix_padding(call_site, lambda b: declared_same(b) or forgot_dilation(b.geometry)),
    doc="""\
## What it does
Finds convolutions with dilation > 1 whose padding is `(kernel-1)//2` in a dimension
where that no longer keeps the size, with no same intent declared. It needs no
annotation: that padding says what the author meant. The layers one constructor call
built (a helper, a block used many times) are one finding at that call, naming how many
it built; each one's own message is related.

## Why is this bad?
`padding=1` keeps a 3x3 convolution's size only at dilation 1; at dilation 4 the map
shrinks by 6. Real cases: a shared `conv3x3(..., dilation=d)` helper that keeps
`padding=1`; attention gates with `padding=1, dilation=4`; re-parameterisable blocks that
take a dilation argument.

## Example
```python
def conv3x3(cin, cout, dilation=1):
    return nn.Conv2d(cin, cout, 3, padding=1, dilation=dilation)
```

## Fix
`padding = dilation * (kernel_size - 1) // 2`, as for CVL101: `padding=dilation` here.
""",
)
