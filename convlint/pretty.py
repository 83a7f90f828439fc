"""Size expressions as people write them: ``floor((H - 1)/2) + 1``, not ``floor(H/2 - 1/2) + 1``."""

from __future__ import annotations

import functools

from convlint import formulas
from convlint import lazy_sympy as sympy

_RELATION_OPS = {"==": "==", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


@functools.cache
def _printer_class():
    """sympy's printer, our way (made on first use: it imports sympy)."""
    from sympy.printing.str import StrPrinter

    class _Printer(StrPrinter):
        def _print_Q(self, expr) -> str:  # the exact size type (convlint.affine): its sympy form
            return self._print(expr._sympy_())

        def _print_Relational(self, expr) -> str:
            return f"{self._print(expr.lhs)} {_RELATION_OPS.get(expr.rel_op, expr.rel_op)} {self._print(expr.rhs)}"

        def _print_Mod(self, expr) -> str:
            a, b = expr.args
            left = self._print(a) if a.is_Atom else f"({self._print(a)})"
            return f"{left} % {self._print(b)}"

        def _print_floor(self, expr) -> str:
            return f"floor({self._print(sympy.together(expr.args[0]))})"

        def _print_trunc(self, expr) -> str:
            return f"int({self._print(sympy.together(expr.args[0]))})"

        def _print_round_even(self, expr) -> str:
            return f"round({self._print(sympy.together(expr.args[0]))})"

        def _print_ceiling(self, expr) -> str:
            return f"ceil({self._print(sympy.together(expr.args[0]))})"

    return _Printer


def show(expr) -> str:
    if expr is None:
        return "?"
    if isinstance(expr, int):
        return str(expr)
    return _printer_class()().doprint(expr)


def sizes(values: dict) -> str:
    """An input's sizes by symbol: ``H = W = 17`` where they agree, else ``H = 17, W = 18``."""
    if len(values) > 1 and len(set(values.values())) == 1:
        return " = ".join(str(s) for s in values) + f" = {next(iter(values.values()))}"
    return ", ".join(f"{s} = {v}" for s, v in values.items())


def names(described: list[str]) -> str:
    """`a`, `b` and `c`; past three, `a`, `b` and 4 more."""
    if len(described) > 3:
        return f"{', '.join(described[:2])} and {len(described) - 2} more"
    return ", ".join(described[:-1]) + " and " + described[-1] if len(described) > 1 else described[0]


def within(qualnames: list[str]) -> str:
    """`` (in `stages.2`)``: modules by their common prefix when there are many, else by name."""
    import os

    qualnames = list(dict.fromkeys(q for q in qualnames if q))
    if len(qualnames) > 2:
        common = os.path.commonprefix([q.split(".") for q in qualnames])
        if common:
            return f" (in `{'.'.join(common)}`)"
    return f" (in {names([f'`{q}`' for q in qualnames])})" if qualnames else ""


def size_map(inputs, outputs) -> str:
    """``H -> H - 10, W -> W - 10``."""
    return ", ".join(f"{show(i)} -> {show(o)}" for i, o in zip(inputs, outputs))


def literal(values) -> str:
    """A padding as the user would write it: ``6`` or ``(0, 2, 2)``."""
    if isinstance(values, str):
        return repr(values)
    values = tuple(values) if isinstance(values, (tuple, list)) else (values,)
    if len(set(values)) == 1:
        return repr(values[0])
    return repr(values)


def axes_map(axes) -> str:
    """``H -> H - 10, W -> W - 10`` for per-dim verdicts, with what "same" would be at a stride."""
    text = size_map([a.symbol for a in axes], [a.expression for a in axes])
    strides = [a.stride for a in axes]
    if any(s not in (1, None) for s in strides):
        want = ", ".join(show(formulas.same_target(a.symbol, a.stride)) for a in axes)
        text += f" (same would be {want})"
    return text


def fix_arguments(geometry, fix: dict[str, tuple[int, ...]]) -> str:
    """``padding=6`` or ``padding=1, output_padding=1``: only what changes beyond padding."""
    text = f"padding={literal(fix['padding'])}"
    if "output_padding" in fix and tuple(fix["output_padding"]) != tuple(geometry.output_padding):
        text += f", output_padding={literal(fix['output_padding'])}"
    return text


def layer_settings(type_name: str, geometry) -> str:
    """``Conv2d(kernel 3, dilation 6, padding 1)``: what the user wrote that decides its size."""
    parts = [f"kernel {literal(geometry.kernel)}"]
    if any(s != 1 for s in geometry.stride):
        parts.append(f"stride {literal(geometry.stride)}")
    if any(d != 1 for d in geometry.dilation):
        parts.append(f"dilation {literal(geometry.dilation)}")
    parts.append(f"padding {literal(geometry.padding_literal)}")
    return f"{type_name}({', '.join(parts)})"
