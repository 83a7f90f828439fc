"""Padding written for dilation 1: the classic slip when a dilation argument is added."""

from __future__ import annotations

from typing import Iterator

from convlint.rule_api import (
    CONV,
    WARNING,
    ModelView,
    Report,
    Rule,
    axes_map,
    declared_same,
    fix_arguments,
    fix_padding,
    geometry_of,
    keeping_padding,
    layer_verdicts,
    literal,
)


def forgot_dilation(module) -> bool:
    """A dilated convolution whose padding is (kernel-1)//2, which keeps the size only
    without the dilation, in some dim; no same intent declared (that is CVL101's)."""
    geometry = geometry_of(module)
    if geometry is None or geometry.kind != CONV or isinstance(geometry.padding_literal, str):
        return False
    keeping = geometry.symmetric_keeping_padding()
    return any(
        d > 1 and k > 1 and left == right == (k - 1) // 2 != keep
        for (left, right), k, d, keep in zip(geometry.padding, geometry.kernel, geometry.dilation, keeping)
    )


def _check(view: ModelView) -> Iterator[Report]:
    for info in view.modules:
        if declared_same(info) or not forgot_dilation(info.module):
            continue
        geometry = geometry_of(info.module)
        axes = layer_verdicts(geometry)
        fix = keeping_padding(geometry)
        advice = f"use {fix_arguments(geometry, fix)}" if fix else 'no symmetric padding keeps it (use padding="same")'
        yield Report(
            f"`{view.display(info.qualname)}` {info.type_name}(kernel {literal(geometry.kernel)}, "
            f"dilation {literal(geometry.dilation)}, padding {literal(geometry.padding_literal)}) "
            f"has the padding of an undilated kernel: {axes_map(axes)}; {advice}",
            info.qualname,
        )


CVL201 = Rule(
    code="CVL201",
    name="padding-for-dilation-1",
    severity=WARNING,
    summary="A dilated convolution whose padding is (kernel-1)//2, written for dilation 1",
    check=_check,
    fix=lambda call_site: fix_padding(call_site, lambda b: declared_same(b) or forgot_dilation(b.module)),
    doc="""\
## What it does
Finds convolutions with dilation > 1 whose padding is `(kernel-1)//2` in a dimension
where that no longer keeps the size, with no same intent declared. It needs no
annotation: that padding says what the author meant.

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
