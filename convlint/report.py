"""Output formats. Each reads the same ``Finding`` records.

Every format is a function ``(findings, context) -> str``; ``context`` carries what some
formats need besides the findings (the rules, for SARIF; whether unsafe fixes count).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Callable, Sequence

from convlint import __version__
from convlint.finding import Finding


@dataclass
class Context:
    unsafe: bool = False
    rules: Sequence = field(default_factory=tuple)  # convlint.registry.Rule records, for SARIF


def text(findings: Sequence[Finding], context: Context = Context()) -> str:
    """``path:line:col: CODE message``, one per line, as flake8 and ruff print; ``[*]``
    marks a finding that ``--fix`` (with ``--unsafe-fixes``, if given) would fix."""
    lines = []
    for f in findings:
        marker = "[*] " if f.fixable(context.unsafe) else ""
        lines.append(f"{f.path}:{f.line}:{f.column}: {f.code} {marker}{f.message}")
    return "\n".join(lines) + ("\n" if lines else "")


def grouped(findings: Sequence[Finding], context: Context = Context()) -> str:
    """Findings under a header per file: easier on the eye in a long report."""
    out, current = [], None
    for f in findings:
        if f.path != current:
            if current is not None:
                out.append("")
            out.append(f"{f.path}:")
            current = f.path
        marker = "[*] " if f.fixable(context.unsafe) else ""
        out.append(f"  {f.line}:{f.column} {f.code} {marker}{f.message}")
    return "\n".join(out) + ("\n" if out else "")


def as_json(findings: Sequence[Finding], context: Context = Context()) -> str:
    return json.dumps([f.to_dict() for f in findings], indent=2) + "\n"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


GITHUB_LEVELS = {"error": "error", "warning": "warning", "info": "notice"}


def github(findings: Sequence[Finding], context: Context = Context()) -> str:
    """GitHub Actions workflow commands: an annotation on the line, in the PR's diff."""
    lines = []
    for f in findings:
        props = {
            "file": f.path,
            "line": f.line,
            "endLine": f.end_line,
            "col": f.column,
            "endColumn": f.end_column,
            "title": f"convlint {f.code}",
        }
        if f.end_line != f.line:
            del props["endColumn"]  # GitHub takes a column range only on one line
        head = ",".join(f"{k}={_escape_property(str(v))}" for k, v in props.items())
        lines.append(f"::{GITHUB_LEVELS.get(f.severity, 'error')} {head}::{_escape_data(f'{f.code} {f.message}')}")
    return "\n".join(lines) + ("\n" if lines else "")


SARIF_LEVELS = {"error": "error", "warning": "warning", "info": "note"}


def _repository_root(start: str = ".") -> str:
    """The enclosing git work tree, or the working directory: SARIF URIs are relative to it."""
    directory = os.path.abspath(start)
    while True:
        if os.path.exists(os.path.join(directory, ".git")):
            return directory
        parent = os.path.dirname(directory)
        if parent == directory:
            return os.path.abspath(start)
        directory = parent


def _uri(path: str, root: str) -> str:
    rel = os.path.relpath(os.path.abspath(path), root)
    return rel.replace(os.sep, "/")


def sarif(findings: Sequence[Finding], context: Context = Context()) -> str:
    """SARIF 2.1.0, as GitHub code scanning takes it (``github/codeql-action/upload-sarif``)."""
    root = _repository_root()
    rules = list(context.rules)
    index = {r.code: i for i, r in enumerate(rules)}
    results = []
    for f in findings:
        region = {"startLine": f.line, "startColumn": f.column, "endLine": f.end_line, "endColumn": f.end_column}
        result = {
            "ruleId": f.code,
            "level": SARIF_LEVELS.get(f.severity, "error"),
            "message": {"text": f.message},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": _uri(f.path, root), "uriBaseId": "%SRCROOT%"},
                        "region": region,
                    }
                }
            ],
        }
        if f.code in index:
            result["ruleIndex"] = index[f.code]
        if f.module:
            result["properties"] = {"model": f.model, "module": f.module}
        if f.fix is not None and f.fix.edits:
            result["fixes"] = [
                {
                    "description": {"text": f.fix.description},
                    "artifactChanges": [
                        {
                            "artifactLocation": {"uri": _uri(e.path, root), "uriBaseId": "%SRCROOT%"},
                            "replacements": [
                                {
                                    "deletedRegion": {
                                        "startLine": e.line,
                                        "startColumn": e.column,
                                        "endLine": e.end_line,
                                        "endColumn": e.end_column,
                                    },
                                    "insertedContent": {"text": e.content},
                                }
                            ],
                        }
                        for e in f.fix.edits
                    ],
                }
            ]
        results.append(result)
    driver = {
        "name": "convlint",
        "version": __version__,
        "semanticVersion": __version__,
        "informationUri": "https://pypi.org/project/convlint/",
        "rules": [
            {
                "id": r.code,
                "name": r.name,
                "shortDescription": {"text": r.summary},
                "fullDescription": {"text": r.summary},
                "help": {"text": r.doc, "markdown": r.doc},
                "defaultConfiguration": {"level": SARIF_LEVELS.get(r.severity, "error")},
            }
            for r in rules
        ],
    }
    run = {
        "tool": {"driver": driver},
        "originalUriBaseIds": {"%SRCROOT%": {"uri": "file://" + root.replace(os.sep, "/").rstrip("/") + "/"}},
        "results": results,
    }
    document = {"$schema": "https://json.schemastore.org/sarif-2.1.0.json", "version": "2.1.0", "runs": [run]}
    return json.dumps(document, indent=2) + "\n"


FORMATS: dict[str, Callable[..., str]] = {
    "text": text,
    "grouped": grouped,
    "json": as_json,
    "sarif": sarif,
    "github": github,
}


def rule_doc(rule, level: int = 1) -> str:
    """One rule's documentation: what it does, why it is bad, an example, the fix."""
    fix = "Fixable with `--fix`." if rule.fixable else "No automatic fix."
    doc = rule.doc if level == 1 else rule.doc.replace("\n## ", "\n### ").replace("## ", "### ", 1)
    return f"{'#' * level} {rule.code} ({rule.name})\n\nSeverity: {rule.severity}. {rule.summary}. {fix}\n\n{doc}"


def rules_markdown(rules) -> str:
    """docs/rules.md: an index, then every rule's documentation."""
    head = [
        "# convlint rules",
        "",
        "Generated by `convlint rules --markdown`.",
        "",
        "| code | name | severity | summary |",
        "|---|---|---|---|",
    ]
    head += [f"| [{r.code}](#{r.code.lower()}-{r.name}) | {r.name} | {r.severity} | {r.summary} |" for r in rules]
    return "\n".join(head) + "\n\n" + "\n".join(rule_doc(r, level=2) for r in rules)


def _coverage(coverage: Sequence[int]) -> str:
    every, example, unchecked = coverage
    total = every + example + unchecked
    parts = [f"{every} of {total} convolution{'s' * (total != 1)} checked for every input size"]
    if example:
        parts.append(f"{example} at the example size only")
    if unchecked:
        parts.append(f"{unchecked} not checked")
    return ", ".join(parts) + "."


def summary(
    findings: Sequence[Finding], models: int, files: int, unsafe: bool = False, coverage: Sequence[int] = (0, 0, 0)
) -> str:
    """The last lines: what was found, what can be fixed, and, unless every convolution
    was checked for every input size, how many were checked how."""
    complete = not coverage[1] and not coverage[2]
    if not findings and complete:
        return f"All checks passed! ({models} model{'s' * (models != 1)} in {files} file{'s' * (files != 1)})"
    if not findings:
        return (
            f"No problems found ({models} model{'s' * (models != 1)} in {files} file{'s' * (files != 1)}); "
            + _coverage(coverage)
        )
    text = f"Found {len(findings)} finding{'s' * (len(findings) != 1)} in {models} model{'s' * (models != 1)}."
    if not complete:
        text += " " + _coverage(coverage)
    fixable = sum(f.fixable(unsafe) for f in findings)
    hidden = sum(f.fixable(True) for f in findings) - fixable
    if fixable:
        text += f"\n[*] {fixable} fixable with the `--fix` option."
    if hidden:
        text += f"\n{hidden} hidden fix{'es' * (hidden != 1)} can be enabled with the `--unsafe-fixes` option."
    return text


# ---------------------------------------------------------------- shapes report


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


def shape_rows(view) -> list[dict]:
    """One row per layer (every submodule call, and functional convolutions and pooling)
    in execution order: settings, symbolic and concrete output size, receptive field and
    jump. ``size`` holds None where a dimension is unknown (listed again in ``unknown``)."""
    from convlint import pretty, receptive
    from convlint import sizes as sizes_mod

    analysis = view.analysis
    if analysis.sizes is None:
        return []
    leaves = analysis.trace.leaves if analysis.trace else {}
    fields = receptive.receptive_fields(view)
    rows = []
    for node in analysis.sizes.graph_module.graph.nodes:
        shadow = analysis.sizes.shadows.get(node)
        geometry = view.geometry(node)
        if not isinstance(shadow, sizes_mod.SymTensor) or not (
            node.op == "call_module" or geometry is not None or node.op == "placeholder"
        ):
            continue
        module = analysis.sizes.graph_module.get_submodule(node.target) if node.op == "call_module" else None
        field = fields.get(node)
        row = {
            "name": node.name if node.op == "placeholder" else _op_name(node),
            "type": type(module).__name__
            if module is not None
            else ("input" if node.op == "placeholder" else _op_name(node)),
            "kernel": list(geometry.kernel) if geometry else None,
            "stride": list(geometry.stride) if geometry else None,
            "padding": [list(p) for p in geometry.padding] if geometry else None,
            "dilation": list(geometry.dilation) if geometry else None,
            "size": [None if d is None else pretty.show(d) for d in shadow.dims],
            "shape": list(analysis.sizes.values[node]),
            "unknown": [i for i, d in enumerate(shadow.dims) if d is None],
            "receptive_field": "global"
            if field is None
            else field
            if field == receptive.UNKNOWN
            else [rf for rf, _ in field],
            "jump": None if field is None or field == receptive.UNKNOWN else [_number(j) for _, j in field],
        }
        if node.op == "call_module" and node.target in leaves:
            row["leaf"] = leaves[node.target]
        if node in analysis.sizes.unknown_ops:
            row["unknown_because"] = analysis.sizes.unknown_ops[node]
        rows.append(row)
    return rows


def shapes_json(views) -> str:
    out = []
    for view in views:
        sizes_ = view.analysis.sizes
        out.append(
            {
                "model": view.name,
                "input_shapes": [list(s) for s in view.input_shapes],
                "symbols": {str(k): v for k, v in (sizes_.symbols.items() if sizes_ else ())},
                "leaves": dict(view.analysis.trace.leaves) if view.analysis.trace else {},
                "capture": view.analysis.trace.method if view.analysis.trace else None,
                "fx_stopped": view.analysis.trace.fx_stopped if view.analysis.trace else None,
                "error": view.analysis.error,
                "layers": shape_rows(view),
                "requirements": view.requirements(),
            }
        )
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


def shapes_text(views) -> str:
    lines = []
    for view in views:
        header = f"{view.name}  input {' '.join('x'.join(map(str, s)) for s in view.input_shapes)}"
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
        if view.requirements():
            lines.append(f"  Model input: {'; '.join(view.requirements())}.")
        lines.append("")
    return "\n".join(lines)
