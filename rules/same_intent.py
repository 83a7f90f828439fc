"""Same intent: layers and blocks declared to keep their spatial size.

"Same" means: output size = ceil(input size / stride) in every spatial dimension, for
every input size where the layer is defined. With symmetric integer padding a layer
meets it exactly when dilation*(kernel-1) is even and padding = dilation*(kernel-1)/2.
"""
from __future__ import annotations

from typing import Callable, Iterator, Optional, Union

from convlint import fix as fix_mod
from convlint import formulas, layers, pretty
from convlint.finding import ERROR, SAFE, UNSAFE, Fix
from convlint.fix import CallRef, FixError
from convlint.registry import CallSite, Report, Rule
from convlint.samesize import AxisVerdict, layer_verdicts
from convlint.view import ModelView

# ---------------------------------------------------------------- shared helpers


def _same_layers(view: ModelView) -> Iterator[tuple]:
    """Conv and pooling layers that declare same intent and could miss it."""
    for info in view.modules:
        if not info.intent or info.intent == 'padding="same"':
            continue  # PyTorch itself keeps the size of a padding="same" layer
        geometry = layers.geometry_of(info.module)
        if geometry is None:
            continue
        axes = view.layer_axes(geometry)
        if all(a.verdict.keeps for a in axes):
            continue
        yield info, geometry, axes


def _odd_axes(geometry: layers.Geometry) -> list[int]:
    """Dims where no symmetric padding works (a transposed conv has output_padding to even it out)."""
    if geometry.kind == layers.TRANSPOSED:
        return []
    return [i for i in range(geometry.ndim) if (geometry.dilation[i] * (geometry.kernel[i] - 1)) % 2]


def _describe(info, geometry: layers.Geometry) -> str:
    parts = [f"kernel {pretty.literal(geometry.kernel)}"]
    if any(s != 1 for s in geometry.stride):
        parts.append(f"stride {pretty.literal(geometry.stride)}")
    if any(d != 1 for d in geometry.dilation):
        parts.append(f"dilation {pretty.literal(geometry.dilation)}")
    parts.append(f"padding {pretty.literal(geometry.padding_literal)}")
    return f"{info.type_name}({', '.join(parts)})"


def size_map(axes: tuple[AxisVerdict, ...]) -> str:
    text = pretty.size_map([a.symbol for a in axes], [a.expression for a in axes])
    strides = [a.stride for a in axes]
    if any(s not in (1, None) for s in strides):
        want = ", ".join(pretty.show(layers_same(a)) for a in axes)
        text += f" (same would be {want})"
    return text


def layers_same(axis: AxisVerdict):
    return formulas.same_target(axis.symbol, axis.stride)


def _at_example(view: ModelView, qualname: str, module, ndim: int) -> str:
    """``; at the example input 19x19 -> 9x9`` when the layer ran in the model."""
    shapes = view.module_inputs(qualname)
    if not shapes:
        return ""
    import torch

    try:
        with torch.no_grad():
            out = module(torch.empty(shapes[0], device="meta"))
    except Exception:
        return ""
    before, after = tuple(shapes[0][-ndim:]), tuple(out.shape)[-ndim:]
    geometry = layers.geometry_of(module)
    if after == tuple(formulas.same_target(n, geometry.scale_stride(i)) for i, n in enumerate(before)):
        return ""  # the example does not show the break
    return f"; at the example input {'x'.join(map(str, before))} -> {'x'.join(map(str, after))}"


def _smallest_failure(axes: tuple[AxisVerdict, ...]) -> str:
    """``; first fails at H = 32 (17, not 16)``: a size that shows the break."""
    broken = next(a for a in axes if not a.verdict.keeps)
    v = broken.verdict
    return f"; first fails at {broken.symbol} = {v.counterexample} ({v.got}, not {v.want})"


def keeping_padding(geometry: layers.Geometry) -> Optional[dict[str, tuple[int, ...]]]:
    """The arguments that keep the size for every input, checked: ``{"padding": (6, 6)}``,
    with ``output_padding`` too for a transposed convolution; None when there are none."""
    if _odd_axes(geometry):
        return None
    if geometry.kind == layers.TRANSPOSED:
        fix = _transposed_padding(geometry)
        if fix is None:
            return None
        fixed = geometry.with_padding(fix["padding"], fix["output_padding"])
    else:
        padding = tuple(geometry.dilation[i] * (geometry.kernel[i] - 1) // 2 for i in range(geometry.ndim))
        if geometry.kind != layers.CONV and any(p > k // 2 for p, k in zip(padding, geometry.kernel)):
            return None  # pooling refuses padding above half the kernel
        fix, fixed = {"padding": padding}, geometry.with_padding(padding)
    if all(a.verdict.keeps for a in layer_verdicts(fixed)):
        return fix
    return None


def _transposed_padding(geometry: layers.Geometry) -> Optional[dict[str, tuple[int, ...]]]:
    """Output n*s needs 2p - output_padding = d(k-1) + 1 - s; keep output_padding if it can."""
    padding, output_padding = [], []
    for i in range(geometry.ndim):
        s, d, k = geometry.stride[i], geometry.dilation[i], geometry.kernel[i]
        allowed = [geometry.output_padding[i]] + [op for op in range(max(s, d)) if op != geometry.output_padding[i]]
        need = d * (k - 1) + 1 - s
        for op in allowed:
            if need + op >= 0 and (need + op) % 2 == 0:
                padding.append((need + op) // 2)
                output_padding.append(op)
                break
        else:
            return None
    return {"padding": tuple(padding), "output_padding": tuple(output_padding)}


def fix_arguments(geometry: layers.Geometry, fix: dict[str, tuple[int, ...]]) -> str:
    """``padding=6`` or ``padding=1, output_padding=1``: only what changes beyond padding."""
    text = f"padding={pretty.literal(fix['padding'])}"
    if "output_padding" in fix and tuple(fix["output_padding"]) != tuple(geometry.output_padding):
        text += f", output_padding={pretty.literal(fix['output_padding'])}"
    return text


# ---------------------------------------------------------------- fixes


def declared_same(built) -> bool:
    return bool(built.intent) and built.intent != 'padding="same"'


def _needs(call_site: CallSite, wants_same: Callable = declared_same) -> list[tuple]:
    """What each module the call built needs: (module, geometry, fix arguments).

    A module that does not want "same" needs its padding to stay as it is.
    """
    needs = []
    for built in call_site.modules:
        geometry = layers.geometry_of(built.module)
        if wants_same(built):
            fix = keeping_padding(geometry)
            if fix is None:
                raise NoPadding(built.qualname)
        else:
            if isinstance(geometry.padding_literal, str):
                fix = {"padding": geometry.padding_literal}
            else:
                fix = {"padding": tuple(left for left, _ in geometry.padding)}
            if geometry.kind == layers.TRANSPOSED:
                fix["output_padding"] = tuple(geometry.output_padding)
        needs.append((built, geometry, fix))
    return needs


def _padding_expression(call: CallRef, kind: str, needs: list[tuple]) -> str:
    """``padding=d`` for a 3x3 kernel with ``dilation=d``; ``d * (k - 1) // 2`` in general.

    Checked against every module the call built before it is offered.
    """
    import libcst as cst

    if kind == layers.TRANSPOSED:
        raise FixError("its modules need different paddings, and transposed convolutions get no expression")
    dilation, kernel = call.argument("dilation", kind), call.argument("kernel_size", kind)
    kernel_literal = int(kernel.value.value, 0) if kernel is not None and isinstance(kernel.value, cst.Integer) else None
    if dilation is None and kernel_literal is not None:
        raise FixError("its modules need different paddings, but its kernel and dilation are literals")
    d = fix_mod.operand(call, dilation) if dilation is not None else None
    if kernel_literal is not None and (kernel_literal - 1) // 2 == 1 and kernel_literal % 2:
        text = call.code(dilation.value).strip()  # 3x3: padding is the dilation itself, tuple or not
    elif any(isinstance(a.value, (cst.Tuple, cst.List)) for a in (dilation, kernel) if a is not None):
        raise FixError("its modules need different paddings, and arithmetic on a tuple argument would repeat it")
    elif kernel_literal is not None:
        factor, rest = divmod(kernel_literal - 1, 2)
        text = f"{factor} * {d}" if not rest else f"{d} * {kernel_literal - 1} // 2"
    elif d is None:
        text = f"({call.code(kernel.value).strip()} - 1) // 2"
    else:
        text = f"{d} * ({call.code(kernel.value).strip()} - 1) // 2"
    for built, geometry, need in needs:
        got = tuple(geometry.dilation[i] * (geometry.kernel[i] - 1) // 2 for i in range(geometry.ndim))
        if need["padding"] != got:
            raise FixError(f"`padding={text}` would not fit `{built.qualname}` (it needs padding={pretty.literal(need['padding'])})")
    return text


class NoPadding(FixError):
    """A module of the call can keep its size with no padding at all: its finding says so."""


def fix_padding(call_site: CallSite, wants_same: Callable = declared_same) -> Union[Fix, str, None]:
    """The edit that gives every module of the call that wants "same" its padding, and
    leaves the others as they are."""
    try:
        needs = _needs(call_site, wants_same)
        call = fix_mod.find_call(call_site.site)
        kind = needs[0][1].kind
        values = {tuple(sorted((k, v if isinstance(v, str) else tuple(v)) for k, v in n[2].items())) for n in needs}
        if len(values) == 1:
            built, geometry, need = needs[0]
            edits = [fix_mod.set_argument(call, "padding", kind, pretty.literal(need["padding"]))]
            if "output_padding" in need and tuple(need["output_padding"]) != tuple(geometry.output_padding):
                edits.append(fix_mod.set_argument(call, "output_padding", kind, pretty.literal(need["output_padding"])))
            applicability = SAFE if len(needs) == 1 else UNSAFE
            return Fix(f"Set {fix_arguments(geometry, need)}", applicability, tuple(edits))
        text = _padding_expression(call, kind, needs)
        return Fix(f"Set padding={text}", SAFE, (fix_mod.set_argument(call, "padding", kind, text),))
    except NoPadding as exc:
        flagged = {b.qualname for b in call_site.modules if wants_same(b)}
        return None if flagged == {str(exc)} else f"no padding keeps `{exc}`, built by the same call, its size"
    except FixError as exc:
        return str(exc)


def _fix_same_string(call_site: CallSite) -> Union[Fix, str, None]:
    """CVL102 at stride 1: padding="same" (unsafe: PyTorch may copy the input)."""
    try:
        for built in call_site.modules:
            geometry = layers.geometry_of(built.module)
            if geometry.kind != layers.CONV:
                raise FixError('pooling has no padding="same"')
            if any(s != 1 for s in geometry.stride):
                raise FixError('PyTorch refuses padding="same" at stride > 1')
            if not built.intent:
                raise FixError(f"the call also builds `{built.qualname}`, which declares no same intent")
        call = fix_mod.find_call(call_site.site)
        edit = fix_mod.set_argument(call, "padding", layers.CONV, '"same"')
        return Fix('Set padding="same"', UNSAFE, (edit,))
    except FixError as exc:
        return str(exc)


# ---------------------------------------------------------------- CVL101


def _check_layer(view: ModelView) -> Iterator[Report]:
    for info, geometry, axes in _same_layers(view):
        if _odd_axes(geometry):
            continue  # CVL102
        name = view.display(info.qualname)
        head = f"`{name}` {_describe(info, geometry)} does not keep its size: {size_map(axes)}"
        example = _at_example(view, info.qualname, info.module, geometry.ndim)
        head += example or _smallest_failure(axes)
        fix = keeping_padding(geometry)
        if fix is None:
            reason = "ceil_mode=True" if geometry.ceil_mode else "its other settings"
            yield Report(f"{head}; no padding keeps it with {reason}", info.qualname)
        else:
            yield Report(f"{head}; use {fix_arguments(geometry, fix)}", info.qualname)


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
its output size is `ceil(input / stride)`.

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


def _pad_layer(geometry: layers.Geometry) -> str:
    """An explicit pad layer with PyTorch's split: total//2 before, the rest after."""
    amounts = []
    for i in reversed(range(geometry.ndim)):  # F.pad order: last dimension first
        total = geometry.dilation[i] * (geometry.kernel[i] - 1)
        amounts.extend((total // 2, total - total // 2))
    name = {"reflect": "ReflectionPad", "replicate": "ReplicationPad", "circular": "CircularPad"}.get(
        geometry.padding_mode, "ZeroPad"
    )
    if geometry.kind == layers.MAXPOOL:
        return f"nn.ConstantPad{geometry.ndim}d({tuple(amounts)}, float('-inf'))"
    return f"nn.{name}{geometry.ndim}d({tuple(amounts)})"


def _check_odd(view: ModelView) -> Iterator[Report]:
    for info, geometry, axes in _same_layers(view):
        odd = _odd_axes(geometry)
        if not odd:
            continue
        name = view.display(info.qualname)
        totals = ", ".join(
            f"{axes[i].symbol}: {geometry.dilation[i]}*({geometry.kernel[i]}-1) = {geometry.dilation[i] * (geometry.kernel[i] - 1)}"
            for i in odd
        )
        head = f"`{name}` {_describe(info, geometry)} cannot keep its size with symmetric padding, dilation*(kernel-1) is odd ({totals})"
        if geometry.kind == layers.CONV and all(s == 1 for s in geometry.stride):
            fix = 'use padding="same" (PyTorch then pads asymmetrically, and may copy the input)'
        else:
            fix = f"add {_pad_layer(geometry)} before it and set padding=0"
        yield Report(f"{head}; {fix}", info.qualname)


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
