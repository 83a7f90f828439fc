"""What the editor shows over a layer: for each constructor call (and each ``forward`` line
that calls a layer), every module it built in the checked models, with its settings, its
size map, its sizes at the example input, and its receptive field and jump."""

from __future__ import annotations

from convlint import common, pretty, samesize


def _shape(value) -> str:
    return "x".join(map(str, value)) if isinstance(value, tuple) else "?"


def _compact(values) -> str:
    """``13`` when every dimension agrees, else ``13, 7``."""
    return str(values[0]) if len(set(values)) == 1 else ", ".join(map(str, values))


def entries(views) -> list[dict]:
    """``[{"path", "line", "column", "end_line", "end_column", "text"}]`` (1-based, end
    exclusive, as findings), one per site and module; ``text`` is Markdown."""
    from convlint.report import receptive, shapes

    found = []
    for view in views:
        runs = shapes.requirements(view)  # the model's domain, in the words of every report
        for row in shapes.rows(view):
            geometry = row.geometry
            if row.module is None or geometry is None:
                continue
            axes = samesize.layer_verdicts(geometry)
            text = [
                f"**`{row.module}`** {pretty.layer_settings(row.type_name, geometry)} in `{view.name}`",
                f"size: {pretty.size_map([a.symbol for a in axes], [a.expression for a in axes])}",
                f"at the example input: {_shape(row.input_shape)} -> {_shape(row.shape)}",
            ]
            if row.field is not None and row.field != receptive.UNKNOWN:
                rf = _compact([r for r, _ in row.field])
                jump = _compact([j for _, j in row.field])
                text.append(f"receptive field {rf}, jump {jump}")
            text += [f"model input: {line}" for line in runs]
            body = "  \n".join(text)
            for site in {s for s in (row.built_at, row.site) if s is not None}:  # where it is built, where called
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
