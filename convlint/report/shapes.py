"""The shapes report: one row per layer with its settings, symbolic and concrete size,
receptive field and jump, and what the model needs of its input (``convlint shapes``,
``convlint.shapes()``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Optional

from convlint import common


def _op_name(node) -> str:
    if node.op == "call_module":
        return node.target
    if node.op == "call_method":
        return f".{node.target}()"
    if node.op == "call_function":
        module = getattr(node.target, "__module__", None) or ""
        name = getattr(node.target, "__name__", str(node.target))
        return f"{'F.' if module.endswith('functional') else ''}{name}()"
    return node.op


def _number(value) -> str:
    return str(value) if not hasattr(value, "denominator") or value.denominator != 1 else str(value.numerator)


def _changes_size(shadows: dict, node, shadow) -> bool:
    """Does a function or method call change its first tensor input's rank or spatial
    sizes (``F.pad``, slicing, ``F.interpolate``, ``view``, ``flatten``)?"""
    from convlint import sizes as sizes_mod

    first = next((a for a in node.all_input_nodes if isinstance(shadows.get(a), sizes_mod.SymTensor)), None)
    if first is None:
        return False
    before, after = shadows[first].dims, shadow.dims
    return len(before) > 2 and (len(before) != len(after) or before[2:] != after[2:])


def _call_name(view, node) -> tuple[str, str]:
    """(name, type) of a size-changing call's row: its source text and its line."""
    from convlint import sites

    site = view.site_of(node)
    text = sites.source_text(site, limit=32) if site is not None else None
    return text or _op_name(node), f"line {site.line}" if site is not None else _op_name(node)


@dataclass(frozen=True)
class Row:
    """One row of what a model does, in execution order: an input, a layer call, a
    functional convolution or pooling, or a call that changes a size (``F.pad``, slicing,
    ``F.interpolate``, ``view``). The one row model read by ``convlint shapes`` (text and
    JSON), ``convlint.shapes()`` and the editor's hover."""

    name: str
    type_name: str
    geometry: Optional[object]  # a layers.Geometry, for conv and pooling rows
    size: tuple  # per dim: its expression in the input's symbols, None where unknown
    shape: tuple  # per dim: its size at the example input
    input_shape: Optional[tuple]  # the shape of its first input at the example
    field: object  # per spatial dim (receptive field, jump); None: global; receptive.UNKNOWN
    module: Optional[str] = None  # the qualified name of the module it calls
    site: Optional[object] = None  # the forward line that calls it
    built_at: Optional[object] = None  # the constructor call that built its module
    leaf: Optional[str] = None  # why the capture did not follow inside it
    unknown_because: Optional[str] = None  # why its sizes are not expressions

    def as_json(self) -> dict:
        from convlint import pretty
        from convlint.report import receptive

        g, field = self.geometry, self.field
        row = {
            "name": self.name,
            "type": self.type_name,
            "kernel": list(g.kernel) if g else None,
            "stride": list(g.stride) if g else None,
            "padding": [list(p) for p in g.padding] if g else None,
            "dilation": list(g.dilation) if g else None,
            "size": [None if d is None else pretty.show(d) for d in self.size],
            "shape": list(self.shape),
            "unknown": [i for i, d in enumerate(self.size) if d is None],
            "receptive_field": "global"
            if field is None
            else field
            if field == receptive.UNKNOWN
            else [rf for rf, _ in field],
            "jump": None if field is None or field == receptive.UNKNOWN else [_number(j) for _, j in field],
        }
        if self.leaf is not None:
            row["leaf"] = self.leaf
        if self.unknown_because is not None:
            row["unknown_because"] = self.unknown_because
        return row


def rows(view) -> list[Row]:
    """The rows of one analysed model (none when it was not analysed)."""
    from convlint import sizes as sizes_mod
    from convlint.report import receptive

    result = view.sizes
    if result is None:
        return []
    leaves = view.analysis.trace.leaves if view.analysis.trace else {}
    fields = receptive.receptive_fields(view)
    found = []
    for node in view.nodes:
        shadow = result.shadows.get(node)
        geometry = view.geometry(node)
        if not isinstance(shadow, sizes_mod.SymTensor):
            continue
        call = geometry is None and node.op in ("call_function", "call_method")
        if call and not _changes_size(result.shadows, node, shadow):
            continue
        if not (node.op == "call_module" or geometry is not None or node.op == "placeholder" or call):
            continue
        module = view.submodule(view.analysis, node) if node.op == "call_module" else None
        name, kind = _call_name(view, node) if call else (_op_name(node), _op_name(node))
        first = node.all_input_nodes[:1]
        found.append(
            Row(
                name=node.name if node.op == "placeholder" else name,
                type_name=type(module).__name__
                if module is not None
                else ("input" if node.op == "placeholder" else kind),
                geometry=geometry,
                size=tuple(shadow.dims),
                shape=tuple(result.values[node]),
                input_shape=result.values.get(first[0]) if first else None,
                field=fields.get(node),
                module=node.target if module is not None else None,
                site=view.site_of(node),
                built_at=view.module(node.target).site if module is not None else None,
                leaf=leaves.get(node.target) if module is not None else None,
                unknown_because=result.unknown_ops.get(node),
            )
        )
    return found


def shape_rows(view) -> list[dict]:
    """The rows as ``convlint shapes --format json`` and ``convlint.shapes()`` give them:
    settings, symbolic and concrete output size, receptive field and jump; ``size`` holds
    None where a dimension is unknown (listed again in ``unknown``)."""
    return [row.as_json() for row in rows(view)]


def requirements(view) -> list[str]:
    """What the model needs of its input, in the words every report shares (the domain's
    statement): ``["runs for H, W >= 5 and multiples of 8 (`torch.cat(...)` in `down`)",
    "within the branches the example took: H % 16 == 0"]``."""
    if view.sizes is None:
        return []
    domain = view.domain
    text = str(domain)
    needs = [f"runs for {text}" + ("" if domain.exact else " as far as its sizes were followed")]
    checks = view.branches()
    return needs + ([f"within the branches the example took: {', '.join(checks)}"] if checks else [])


def domain_json(view) -> dict:
    """The input domain as data: whether it is exact (and why not), the statement a clean
    check's summary gives (None: every size above a bound per dim), and each condition
    with what imposes it."""
    from convlint import domain_statement

    domain = view.domain
    return {
        "exact": domain.exact,
        "why_inexact": list(domain.why_inexact),
        "statement": domain_statement.statement(domain),
        "conditions": [
            {"kind": c.kind, "where": c.where, "line": c.site.line if c.site is not None else None}
            for c in domain.conditions
        ],
    }


def _dynamic(view, dynamic: Optional[tuple]):
    """The torch.export spec of a view's domain, when asked for (``dynamic``: (max size,))
    and the model was analysed; None otherwise."""
    if dynamic is None or view.analysis.sizes is None or not view.domain.symbols:
        return None
    return view.domain.dynamic_shapes(dynamic[0])


def shapes_json(views, dynamic: Optional[tuple] = None) -> str:
    out = []
    for view in views:
        sizes_ = view.analysis.sizes
        out.append(
            {
                "model": view.name,
                "input_shapes": [list(s) for s in view.input_shapes],
                # per input, the axes sized as spatial (H, W): the last ones, or those a
                # channels-last input's convolutions read
                "spatial_axes": [list(common.spatial_axes(s)) for s in view.input_shapes],
                "symbols": {str(k): v for k, v in (sizes_.symbols.items() if sizes_ else ())},
                "leaves": dict(view.analysis.trace.leaves) if view.analysis.trace else {},
                "capture": view.analysis.trace.method if view.analysis.trace else None,
                "fx_stopped": view.analysis.trace.fx_stopped if view.analysis.trace else None,
                "error": view.analysis.error,
                "layers": shape_rows(view),
                "requirements": requirements(view),
                "domain": domain_json(view),
            }
        )
        spec = _dynamic(view, dynamic)
        if spec is not None:
            out[-1]["dynamic_shapes"] = {
                "source": spec.source(),
                "minimum": list(spec.minimum),
                "optimum": list(spec.optimum),
                "maximum": list(spec.maximum),
                "narrowed": list(spec.narrowed),
            }
    return json.dumps(out, indent=2) + "\n"


def _settings(row: dict) -> str:
    if row["kernel"] is None:
        return ""
    pad = [p[0] if p[0] == p[1] else f"{p[0]}/{p[1]}" for p in row["padding"]]
    parts = [f"k{_compact(row['kernel'])}", f"s{_compact(row['stride'])}", f"p{_compact(pad)}"]
    if any(d != 1 for d in row["dilation"]):
        parts.append(f"d{_compact(row['dilation'])}")
    return " ".join(parts)


def _compact(values) -> str:
    return str(values[0]) if len(set(map(str, values))) == 1 else ",".join(map(str, values))


def shapes_text(views, dynamic: Optional[tuple] = None) -> str:
    lines = []
    for view in views:
        header = f"{view.name}  input {' '.join('x'.join(map(str, s)) for s in view.input_shapes)}"
        laid = [s for s in view.input_shapes[:1] if getattr(s, "spatial", None) is not None]
        if laid and view.sizes is not None:  # the spatial sizes are not the last dims: say which are
            header += f"  ({', '.join(map(str, view.sizes.symbols))} at dims {', '.join(map(str, laid[0].spatial))})"
        trace = view.analysis.trace
        if trace is not None and trace.method == "execution":
            header += f"  (captured by running forward: {trace.fx_stopped})"
        lines.append(header)
        if view.analysis.error:
            lines.append(f"  not analysed: {view.analysis.error}")
        rows = shape_rows(view)
        table = [("layer", "type", "settings", "size", "shape", "rf", "jump")]
        for r in rows:
            size = ", ".join("?" if s is None else s for s in r["size"])
            rf = r["receptive_field"] if isinstance(r["receptive_field"], str) else _compact(r["receptive_field"])
            rf = "?" if rf == "unknown" else rf
            jump = "-" if r["jump"] is None else _compact(r["jump"])
            note = f"  leaf: {r['leaf']}" if "leaf" in r else ""
            note += f"{';' if note else ' '} sizes unknown: {r['unknown_because']}" if "unknown_because" in r else ""
            table.append(
                (r["name"], r["type"], _settings(r), f"({size})", "x".join(map(str, r["shape"])), rf, jump + note)
            )
        widths = [max(len(row[i]) for row in table) for i in range(len(table[0]) - 1)]
        for row in table:
            lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[-1])
        needs = requirements(view)
        if needs:
            lines.append(f"  Model input: {'; '.join(needs)}.")
        spec = _dynamic(view, dynamic)
        if spec is not None:
            lines.append("  torch.export:")
            lines += [f"    {line}" if line else "" for line in spec.source().splitlines()]
            shown = ", ".join(
                f"{k} {common.shapes_text([s])}"
                for k, s in zip(("min", "opt", "max"), (spec.minimum, spec.optimum, spec.maximum))
            )
            lines.append(f"  Optimisation profile: {shown}.")
            lines += [f"  Not stated by the dims: {n}." for n in spec.narrowed]
        lines.append("")
    return "\n".join(lines)
