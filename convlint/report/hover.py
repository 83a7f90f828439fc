"""What the editor shows over a layer: for each constructor call (and each ``forward`` line
that calls a layer), every module it built in the checked models, with its settings, its
size map, its sizes at the example input, and its receptive field and jump."""

from __future__ import annotations

from convlint import common, layers, pretty, samesize


def _shape(value) -> str:
    return "x".join(map(str, value)) if isinstance(value, tuple) else "?"


def _compact(values) -> str:
    """``13`` when every dimension agrees, else ``13, 7``."""
    return str(values[0]) if len(set(values)) == 1 else ", ".join(map(str, values))


def entries(views) -> list[dict]:
    """``[{"path", "line", "column", "end_line", "end_column", "text"}]`` (1-based, end
    exclusive, as findings), one per site and module; ``text`` is Markdown."""
    from convlint.report import receptive

    found = []
    for view in views:
        if view.sizes is None:
            continue
        fields = receptive.receptive_fields(view)
        for node in view.nodes:
            if node.op != "call_module":
                continue
            module = view.submodule(view.analysis, node)
            geometry = layers.geometry_of(module)
            if geometry is None:
                continue
            axes = samesize.layer_verdicts(geometry)
            inputs = [view.sizes.values.get(a) for a in node.all_input_nodes[:1]]
            text = [
                f"**`{node.target}`** {pretty.layer_settings(type(module).__name__, geometry)} in `{view.name}`",
                f"size: {pretty.size_map([a.symbol for a in axes], [a.expression for a in axes])}",
                f"at the example input: {_shape(inputs[0] if inputs else None)} -> {_shape(view.sizes.values.get(node))}",
            ]
            field = fields.get(node)
            if field is not None and field != receptive.UNKNOWN:
                rf = _compact([r for r, _ in field])
                jump = _compact([j for _, j in field])
                text.append(f"receptive field {rf}, jump {jump}")
            body = "  \n".join(text)
            sites = [view.module(node.target).site, view.site_of(node)]  # where it is built, where called
            for site in {s for s in sites if s is not None}:
                found.append(
                    {
                        "path": common.relpath(site.path),
                        "line": site.line,
                        "column": site.column,
                        "end_line": site.end_line,
                        "end_column": site.end_column,
                        "text": body,
                    }
                )
    return found
