"""Same intent: layers and blocks declared to keep their spatial size.

"Same" means: output size = ceil(input size / stride) in every spatial dimension, for
every input size where the layer is defined. With symmetric integer padding a layer
meets it exactly when dilation*(kernel-1) is even and padding = dilation*(kernel-1)/2.
"""

from __future__ import annotations

from typing import Iterator, Union

from convlint.fix_api import UNSAFE, CallSite, Fix, FixError, find_call, fix_padding, set_argument
from convlint.rule_api import (
    ERROR,
    Facts,
    Geometry,
    Intent,
    Kind,
    LayerFact,
    Report,
    Rule,
    keeping_padding,
    odd_axes,
    per_line,
    same_pad_argument,
    same_target,
    text,
)

# ---------------------------------------------------------------- shared helpers


def _same_layers(facts: Facts) -> Iterator[LayerFact]:
    """Conv and pooling layers that declare same intent and could miss it."""
    for layer in facts.layers:
        if not layer.intent or layer.intent is Intent.PADDING_SAME:
            continue  # PyTorch itself keeps the size of a padding="same" layer
        if not layer.keeps:
            yield layer


def _describe(layer: LayerFact) -> str:
    return text.layer_settings(layer.type_name, layer.geometry)


def _at_example(layer: LayerFact) -> str:
    """``; at the example input 19x19 -> 9x9`` when the layer ran in the model."""
    geometry, shapes = layer.geometry, layer.input_shapes
    if not shapes:
        return ""
    before = tuple(shapes[0][-geometry.ndim :])
    after = tuple(geometry.out(before))
    if any(n <= 0 for n in after) or after == tuple(
        same_target(n, geometry.scale_stride(i)) for i, n in enumerate(before)
    ):
        return ""  # the layer cannot run there, or the example does not show the break
    return f"; at the example input {'x'.join(map(str, before))} -> {'x'.join(map(str, after))}"


def _smallest_failure(layer: LayerFact) -> str:
    """``; first fails at H = 32 (17, not 16)``: a size that shows the break."""
    broken = next(a for a in layer.axes if not a.verdict.keeps)
    v = broken.verdict
    return f"; first fails at {broken.symbol} = {v.counterexample} ({v.got}, not {v.want})"


# ---------------------------------------------------------------- fixes


def _fix_same_string(call_site: CallSite) -> Union[Fix, str, None]:
    """CVL102 at stride 1: padding="same" (unsafe: PyTorch may copy the input)."""
    try:
        for built in call_site.modules:
            geometry = built.geometry
            if geometry.kind != Kind.CONV:
                raise FixError('pooling has no padding="same"')
            if any(s != 1 for s in geometry.stride):
                raise FixError('PyTorch refuses padding="same" at stride > 1')
            if not built.intent:
                raise FixError(f"the call also builds `{built.qualname}`, which declares no same intent")
        call = find_call(call_site.site)
        edit = set_argument(call, "padding", Kind.CONV, '"same"')
        return Fix('Set padding="same"', UNSAFE, (edit,))
    except FixError as exc:
        return str(exc)


# ---------------------------------------------------------------- CVL101


def _check_layer(facts: Facts) -> Iterator[Report]:
    return per_line(_each_layer(facts))  # the layers one call built: one finding


def _each_layer(facts: Facts) -> Iterator[tuple]:
    for layer in _same_layers(facts):
        geometry = layer.geometry
        if odd_axes(geometry):
            continue  # CVL102
        head = f"`{layer.display}` {_describe(layer)} does not keep its size: {text.axes_map(layer.axes)}"
        head += _at_example(layer) or _smallest_failure(layer)
        fix = keeping_padding(geometry)
        if fix is None:
            reason = "ceil_mode=True" if geometry.ceil_mode else "its other settings"
            yield layer, Report(f"{head}; no padding keeps it with {reason}", layer.qualname)
        else:
            yield layer, Report(f"{head}; use {text.fix_arguments(geometry, fix)}", layer.qualname)


CVL101 = Rule(
    code="CVL101",
    name="same-padding-mismatch",
    severity=ERROR,
    summary="A layer declared to keep its size does not: its padding is wrong",
    check=_check_layer,
    fix=fix_padding,
    doc="""\
## What it does
Checks every convolution and pooling layer that declares "same" intent (a
`# convlint: same` comment on its constructor call, a `same` glob in
`[tool.convlint]`, or `convlint.same(layer)`) and proves, for every input size, whether
its output size is `ceil(input / stride)`. The layers one constructor call built are one
finding at that call, naming how many it built.

## Why is this bad?
A padding copied from a 3x3 layer (`padding=1`) shrinks the map once dilation or a larger
kernel is added: `H -> H - 10` for a 3x3 convolution with dilation 6. The model fails
later, at a residual add or a skip concatenation, or only for some input sizes.

## Example
```python
self.aspp = nn.Conv2d(256, 256, 3, padding=1, dilation=6)  # convlint: same
```
A 19x19 map comes out 9x9.

## Fix
Use `padding = dilation * (kernel_size - 1) // 2` per dimension:
```python
self.aspp = nn.Conv2d(256, 256, 3, padding=6, dilation=6)  # convlint: same
```
""",
)


# ---------------------------------------------------------------- CVL102


def _pad_layer(geometry: Geometry) -> str:
    """An explicit pad layer with PyTorch's split: total//2 before, the rest after."""
    amounts = same_pad_argument(geometry.kernel, geometry.dilation)
    name = {"reflect": "ReflectionPad", "replicate": "ReplicationPad", "circular": "CircularPad"}.get(
        geometry.padding_mode, "ZeroPad"
    )
    if geometry.kind == Kind.MAXPOOL:
        return f"nn.ConstantPad{geometry.ndim}d({amounts}, float('-inf'))"
    return f"nn.{name}{geometry.ndim}d({amounts})"


def _check_odd(facts: Facts) -> Iterator[Report]:
    return per_line(_each_odd(facts))


def _each_odd(facts: Facts) -> Iterator[tuple]:
    for layer in _same_layers(facts):
        geometry, axes = layer.geometry, layer.axes
        odd = odd_axes(geometry)
        if not odd:
            continue
        totals = ", ".join(
            f"{axes[i].symbol}: {geometry.dilation[i]}*({geometry.kernel[i]}-1) = {geometry.keeping_total(i)}"
            for i in odd
        )
        head = f"`{layer.display}` {_describe(layer)} cannot keep its size with symmetric padding, dilation*(kernel-1) is odd ({totals})"
        if geometry.kind == Kind.CONV and all(s == 1 for s in geometry.stride):
            fix = 'use padding="same" (PyTorch then pads asymmetrically, and may copy the input)'
        else:
            fix = f"add {_pad_layer(geometry)} before it and set padding=0"
        yield layer, Report(f"{head}; {fix}", layer.qualname)


CVL102 = Rule(
    code="CVL102",
    name="same-padding-impossible",
    severity=ERROR,
    summary="A layer declared to keep its size cannot, with any symmetric padding",
    check=_check_odd,
    fix=_fix_same_string,
    doc="""\
## What it does
Finds layers with "same" intent whose effective kernel `dilation*(kernel-1) + 1` is even
in some dimension (an even kernel, say), so that no symmetric integer `padding` keeps
the size.

## Why is this bad?
`padding=p` pads `p` on both sides, `2p` in all, but keeping the size needs
`dilation*(kernel-1)` in all, an odd number. Every choice of `p` shrinks or grows the map.

## Example
```python
self.conv = nn.Conv2d(64, 64, 4, padding=1)  # convlint: same
```

## Fix
At stride 1, `padding="same"`: PyTorch pads `total//2` before and the rest after (and
warns that it may copy the input). At other strides, pad explicitly before the layer:
```python
self.pad = nn.ZeroPad2d((1, 2, 1, 2))
self.conv = nn.Conv2d(64, 64, 4, stride=2, padding=0)
```
""",
)
