"""Fixes that set ``padding=`` (and ``output_padding=``) on a constructor call, planned
from every module the call built in the run: a literal where they all need one value, an
expression in the call's own names (``padding=d``, ``dilation * (kernel_size - 1) // 2``)
where they differ, checked against each of them; or the reason there is none."""

from __future__ import annotations

from typing import Callable, Union

from convlint import layers, pretty
from convlint.finding import SAFE, UNSAFE, Fix
from convlint.fix import edits
from convlint.fix.edits import CallRef, FixError
from convlint.registry import CallSite
from convlint.samesize import keeping_padding


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
    kernel_literal = (
        int(kernel.value.value, 0) if kernel is not None and isinstance(kernel.value, cst.Integer) else None
    )
    if dilation is None and kernel_literal is not None:
        raise FixError("its modules need different paddings, but its kernel and dilation are literals")
    d = edits.operand(call, dilation) if dilation is not None else None
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
            raise FixError(
                f"`padding={text}` would not fit `{built.qualname}` (it needs padding={pretty.literal(need['padding'])})"
            )
    return text


class NoPadding(FixError):
    """A module of the call can keep its size with no padding at all: its finding says so."""


def fix_padding(call_site: CallSite, wants_same: Callable = declared_same) -> Union[Fix, str, None]:
    """The edit that gives every module of the call that wants "same" its padding, and
    leaves the others as they are."""
    try:
        needs = _needs(call_site, wants_same)
        call = edits.find_call(call_site.site)
        kind = needs[0][1].kind
        values = {tuple(sorted((k, v if isinstance(v, str) else tuple(v)) for k, v in n[2].items())) for n in needs}
        if len(values) == 1:
            built, geometry, need = needs[0]
            changes = [edits.set_argument(call, "padding", kind, pretty.literal(need["padding"]))]
            if "output_padding" in need and tuple(need["output_padding"]) != tuple(geometry.output_padding):
                changes.append(edits.set_argument(call, "output_padding", kind, pretty.literal(need["output_padding"])))
            applicability = SAFE if len(needs) == 1 else UNSAFE
            return Fix(f"Set {pretty.fix_arguments(geometry, need)}", applicability, tuple(changes))
        text = _padding_expression(call, kind, needs)
        return Fix(f"Set padding={text}", SAFE, (edits.set_argument(call, "padding", kind, text),))
    except NoPadding as exc:
        flagged = {b.qualname for b in call_site.modules if wants_same(b)}
        return None if flagged == {str(exc)} else f"no padding keeps `{exc}`, built by the same call, its size"
    except FixError as exc:
        return str(exc)
