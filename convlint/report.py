"""Output formats. Each reads the same ``Finding`` records."""
from __future__ import annotations

import json
from typing import Sequence

from convlint.finding import SAFE, Finding


def _fixable(f: Finding, unsafe: bool) -> bool:
    return f.fix is not None and bool(f.fix.edits) and (f.fix.applicability == SAFE or unsafe)


def text(findings: Sequence[Finding], unsafe: bool = False) -> str:
    """``path:line:col: CODE message``, one per line, as flake8 and ruff print; ``[*]``
    marks a finding that ``--fix`` (with ``--unsafe-fixes``, if given) would fix."""
    lines = []
    for f in findings:
        marker = "[*] " if _fixable(f, unsafe) else ""
        lines.append(f"{f.path}:{f.line}:{f.column}: {f.code} {marker}{f.message}")
    return "\n".join(lines) + ("\n" if lines else "")


def as_json(findings: Sequence[Finding], unsafe: bool = False) -> str:
    return json.dumps([f.to_dict() for f in findings], indent=2) + "\n"


FORMATS = {"text": text, "json": as_json}


def summary(findings: Sequence[Finding], models: int, files: int, unsafe: bool = False) -> str:
    if not findings:
        return f"All checks passed! ({models} model{'s' * (models != 1)} in {files} file{'s' * (files != 1)})"
    text = f"Found {len(findings)} finding{'s' * (len(findings) != 1)} in {models} model{'s' * (models != 1)}."
    fixable = sum(_fixable(f, unsafe) for f in findings)
    hidden = sum(_fixable(f, True) for f in findings) - fixable
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


def shape_rows(view) -> list[dict]:
    """One row per tensor in the traced graph, in execution order, with its concrete
    shape and its symbolic sizes (``None`` where a dimension is unknown)."""
    from convlint import sizes as sizes_mod
    from convlint.pretty import show

    analysis = view.analysis
    if analysis.sizes is None:
        return []
    leaves = analysis.trace.leaves if analysis.trace else {}
    rows = []
    for node in analysis.sizes.graph_module.graph.nodes:
        shadow = analysis.sizes.shadows.get(node)
        if not isinstance(shadow, sizes_mod.SymTensor) or node.op in ("output", "get_attr"):
            continue
        row = {
            "node": node.name,
            "op": _op_name(node),
            "type": type(analysis.sizes.graph_module.get_submodule(node.target)).__name__ if node.op == "call_module" else None,
            "shape": list(analysis.sizes.values[node]),
            "size": [None if d is None else show(d) for d in shadow.dims],
            "unknown": [i for i, d in enumerate(shadow.dims) if d is None],
        }
        if node.op == "call_module" and node.target in leaves:
            row["leaf"] = leaves[node.target]
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
                "error": view.analysis.error,
                "nodes": shape_rows(view),
            }
        )
    return json.dumps(out, indent=2) + "\n"


def shapes_text(views) -> str:
    lines = []
    for view in views:
        lines.append(f"{view.name}  input {' '.join('x'.join(map(str, s)) for s in view.input_shapes)}")
        if view.analysis.error:
            lines.append(f"  not analysed: {view.analysis.error}")
        rows = shape_rows(view)
        width = max([len(r["op"]) + (len(r["type"]) + 3 if r["type"] else 0) for r in rows] + [2])
        for r in rows:
            op = f"{r['op']} ({r['type']})" if r["type"] else r["op"]
            size = ", ".join("?" if s is None else s for s in r["size"])
            note = f"  leaf: {r['leaf']}" if "leaf" in r else ""
            lines.append(f"  {op:<{width}}  {'x'.join(map(str, r['shape'])):<18}  ({size}){note}")
        lines.append("")
    return "\n".join(lines)
