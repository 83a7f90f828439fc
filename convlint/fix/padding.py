"""Fixes that set ``padding=`` (and ``output_padding=``) on a constructor call, planned
from every module the call built in the run: a literal where they all need one value, an
expression in the call's own names (``padding=d``, ``dilation * (kernel_size - 1) // 2``)
where they differ, checked against each of them; or the reason there is none."""

from __future__ import annotations

from typing import Callable, Optional, Union

from convlint import layers, pretty, sites
from convlint.finding import SAFE, UNSAFE, Fix
from convlint.fix import edits
from convlint.fix.edits import CallRef, FixError
from convlint.intent import Intent
from convlint.registry import CallSite
from convlint.samesize import keeping_padding


def declared_same(built) -> bool:
    return bool(built.intent) and built.intent is not Intent.PADDING_SAME


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
        text = _times_dilation(kernel_literal, d)
    elif d is None:
        text = f"({call.code(kernel.value).strip()} - 1) // 2"
    else:
        text = f"{d} * ({call.code(kernel.value).strip()} - 1) // 2"
    return _fitting(f"padding={text}", needs)[len("padding=") :]


def _times_dilation(kernel: int, d: str) -> str:
    """The padding that keeps a kernel of odd size ``kernel`` at dilation ``d`` (an
    expression): ``d`` for 3, ``2 * d`` for 5, ``d * 6 // 2`` for 7... in general."""
    factor, rest = divmod(kernel - 1, 2)
    if (factor, rest) == (1, 0):
        return d
    return f"{factor} * {d}" if not rest else f"{d} * {kernel - 1} // 2"


def _fitting(text: str, needs: list[tuple]) -> str:
    """``text`` (an expression of the dilation) when it gives every module the padding it
    needs, as ``dilation * (kernel - 1) // 2`` does; else why not."""
    for built, geometry, need in needs:
        got = geometry.symmetric_keeping_padding()
        if need["padding"] != got:
            raise FixError(
                f"`{text}` would not fit `{built.qualname}` (it needs padding={pretty.literal(need['padding'])})"
            )
    return text


def _uses_in_function(call: CallRef, name: str) -> int:
    """How many times the function around ``call`` reads ``name`` (one: only this call)."""
    import libcst as cst

    wrapper, positions = call.source.parsed()
    inner = positions[call.node]
    around = [
        node
        for node, r in positions.items()
        if isinstance(node, cst.FunctionDef)
        and (r.start.line, r.start.column) <= (inner.start.line, inner.start.column)
        and (r.end.line, r.end.column) >= (inner.end.line, inner.end.column)
    ]
    if not around:
        return 0
    function = min(around, key=lambda n: positions[n].end.line - positions[n].start.line)
    found = []

    class Reads(cst.CSTVisitor):
        def visit_Name(self, node: cst.Name) -> None:
            if node.value == name:
                found.append(node)

        def visit_Param(self, node: cst.Param) -> bool:
            return False  # the parameter itself, and its default

    function.body.visit(Reads())
    return len(found)


def _written(calls: tuple, name: str, dilation: Optional[str]) -> tuple:
    """Follow a helper's forwarded ``name`` (and ``dilation``) out through its callers to the
    first call that writes the value: (that call, the helper's parameter, its position,
    the argument giving the helper's dilation there, or None)."""
    import libcst as cst

    for level in range(len(calls) - 1):
        inner, outer = calls[level], calls[level + 1]
        params = list(inner.params)
        if inner.function == "__init__" and params[:1] == ["self"]:
            params = params[1:]  # a class called by its name: `self` is not passed
        if name not in params:
            raise FixError(f"`{name}` is not a parameter of `{inner.function}`")
        call = edits.find_call(outer.site)
        arg = edits.argument(call.node, name, params.index(name), strict=True)
        given = None
        if dilation in params:
            given = edits.argument(call.node, dilation, params.index(dilation), strict=True)
        if arg is not None and isinstance(arg.value, cst.Name) and arg.value.value in outer.params:
            name = arg.value.value  # forwarded once more: go on out
            dilation = given.value.value if given is not None and isinstance(given.value, cst.Name) else None
            continue
        return call, name, params.index(name), given
    raise FixError(f"the value of `{name}` comes from further out than convlint recorded")


def _forwarded_fix(call: CallRef, kind: str, name: str, needs: list[tuple]) -> Fix:
    """The padding a layer got through a helper's parameter: edit the helper's callers,
    never the helper (its other callers would lose what they pass)."""
    import libcst as cst

    dilation_arg = call.argument("dilation", kind)
    dilation = (
        dilation_arg.value.value if dilation_arg is not None and isinstance(dilation_arg.value, cst.Name) else None
    )
    targets: dict = {}
    for built, geometry, need in needs:
        outer, param, index, given = _written(sites.calls_of(built.module), name, dilation)
        key = (outer.source.path, outer.span(outer.node), param)
        targets.setdefault(key, (outer, param, index, given, []))[4].append((built, geometry, need))
    changes = []
    for outer, param, index, given, group in targets.values():
        if all(need["padding"] == tuple(left for left, _ in g.padding) for _, g, need in group):
            continue  # what this caller passes already fits
        if given is not None and not _literal(given.value):
            text = _dilation_expression(outer, given, group)
        else:
            values = {need["padding"] for _, _, need in group}
            if len(values) != 1:
                raise FixError(f"the modules `{param}` reaches through one call need different paddings")
            text = pretty.literal(values.pop())
        changes.append(edits.set_argument(outer, param, None, text, index=index))
    if not changes:
        raise FixError("its callers already pass the padding it needs")
    # Safe when the helper reads the parameter only for this layer: its other layers keep theirs.
    applicability = SAFE if _uses_in_function(call, name) == 1 else UNSAFE
    return Fix(f"Set `{name}` where the helper is called", applicability, tuple(changes))


def _literal(node) -> bool:
    import libcst as cst

    if isinstance(node, (cst.Tuple, cst.List)):
        return all(_literal(e.value) for e in node.elements)
    return isinstance(node, cst.Integer)


def _dilation_expression(call: CallRef, given, group: list[tuple]) -> str:
    """The padding as an expression of the dilation the call passes (``d`` for a 3x3
    kernel), checked against every module it reaches."""
    kernels = {g.kernel for _, g, _ in group}
    if len(kernels) != 1 or len(set(next(iter(kernels)))) != 1:
        raise FixError("the modules it reaches have different kernels")
    return _fitting(_times_dilation(next(iter(kernels))[0], edits.operand(call, given)), group)


class NoPadding(FixError):
    """A module of the call can keep its size with no padding at all: its finding says so."""


def _forwarded_name(call: CallRef, kind: str, call_site: CallSite) -> Optional[str]:
    """The parameter of the enclosing helper that the call passes as its padding
    (``padding`` in a helper's ``nn.Conv2d(c, c, k, s, padding, dilation)``), or None."""
    import libcst as cst

    arg = call.argument("padding", kind)
    if arg is None or not isinstance(arg.value, cst.Name):
        return None
    name = arg.value.value
    calls = [sites.calls_of(b.module) for b in call_site.modules]
    return name if all(c and name in c[0].params for c in calls) else None


def fix_padding(call_site: CallSite, wants_same: Callable = declared_same) -> Union[Fix, str, None]:
    """The edit that gives every module of the call that wants "same" its padding, and
    leaves the others as they are."""
    try:
        needs = _needs(call_site, wants_same)
        call = edits.find_call(call_site.site)
        kind = needs[0][1].kind
        forwarded = _forwarded_name(call, kind, call_site)
        if forwarded is not None:
            return _forwarded_fix(call, kind, forwarded, needs)
        dilation = call.argument("dilation", kind)
        if dilation is not None and not _literal(dilation.value) and kind != layers.TRANSPOSED:
            # `dilation=dia_val`: `padding=dia_val` holds for every value, a literal for one
            try:
                text = _padding_expression(call, kind, needs)
                return Fix(f"Set padding={text}", SAFE, (edits.set_argument(call, "padding", kind, text),))
            except FixError:
                pass
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
