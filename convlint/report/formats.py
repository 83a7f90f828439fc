"""Output formats. Each reads the same ``Finding`` records.

Every format is a function ``(findings, context) -> str``; ``context`` carries what some
formats need besides the findings (the rules, for SARIF; whether unsafe fixes count).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Callable, Sequence

from convlint.common import VERSION
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
        if f.detail:
            result.setdefault("properties", {})["detail"] = f.detail
        if f.related:
            result["relatedLocations"] = [
                {
                    "id": i,
                    "message": {"text": r.message},
                    "physicalLocation": {
                        "artifactLocation": {"uri": _uri(r.path, root), "uriBaseId": "%SRCROOT%"},
                        "region": {
                            "startLine": r.line,
                            "startColumn": r.column,
                            "endLine": r.end_line,
                            "endColumn": r.end_column,
                        },
                    },
                }
                for i, r in enumerate(f.related, start=1)
            ]
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
        "version": VERSION,
        "semanticVersion": VERSION,
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


def rules_index(rules, page: str = "") -> str:
    """The rules as a Markdown table, each code linking to its section of ``page``
    (docs/rules.md's own index, and the README's rule table)."""
    lines = ["| code | name | severity | summary |", "|---|---|---|---|"]
    lines += [
        f"| [{r.code}]({page}#{r.code.lower()}-{r.name}) | {r.name} | {r.severity} | {r.summary} |" for r in rules
    ]
    return "\n".join(lines) + "\n"


def rules_markdown(rules) -> str:
    """docs/rules.md: an index, then every rule's documentation."""
    head = "# convlint rules\n\nGenerated by `convlint rules --markdown`.\n\n"
    return head + rules_index(rules) + "\n" + "\n".join(rule_doc(r, level=2) for r in rules)


def _coverage(coverage: Sequence[int]) -> str:
    every, example, unchecked = coverage
    total = every + example + unchecked
    parts = [f"{every} of {total} convolution{'s' * (total != 1)} checked for every input size"]
    if example:
        parts.append(f"{example} at the example size only")
    if unchecked:
        parts.append(f"{unchecked} not checked")
    return ", ".join(parts) + "."


def _left_out(findings: Sequence[Finding], skipped: int) -> str:
    """``; 1 model not checked, 2 scripts not imported``: what the run left out, or ""."""
    counts = [
        (sum(f.code == "CVL904" for f in findings), "model", "not checked"),
        (sum(f.code == "CVL905" for f in findings), "script", "not imported"),
    ]
    extras = [f"{n} {noun}{'s' * (n != 1)} {what}" for n, noun, what in counts if n]
    extras += [f"{skipped} without convolutions skipped"] * bool(skipped)
    return f"; {', '.join(extras)}" if extras else ""


def summary(
    findings: Sequence[Finding],
    models: int,
    files: int,
    unsafe: bool = False,
    coverage: Sequence[int] = (0, 0, 0),
    skipped: int = 0,
    domains: Sequence[tuple] = (),
    broken_plugins: int = 0,
) -> str:
    """The last lines: what was found, what can be fixed, and, unless every convolution
    was checked for every input size, how many were checked how. "All checks passed!"
    only when at least one model was checked and nothing was left unchecked."""
    extra = _left_out(findings, skipped)
    scope = f"{models} model{'s' * (models != 1)} in {files} file{'s' * (files != 1)}{extra}"
    if domains and not findings:  # what a pass covers, where it is not every size above a bound
        scope += "; " + "; ".join(
            f"runs only for {text}" if models == 1 else f"`{name}` runs only for {text}" for name, text in domains[:3]
        )
    complete = not coverage[1] and not coverage[2]
    if not models:
        where = f"{files} file{'s' * (files != 1)}{extra}" if files else extra[2:]
        text = f"No model was checked ({where})." if where else "No model was checked."
        if findings:
            text = f"Found {len(findings)} finding{'s' * (len(findings) != 1)}. {text}"
    elif not findings and complete and broken_plugins:  # a pass needs every rule to have run
        return f"No problems found by the rules that loaded ({scope}); {broken_plugins} plugin problem(s)"
    elif not findings and complete:
        return f"All checks passed! ({scope})"
    elif not findings:
        return f"No problems found ({scope}); " + _coverage(coverage)
    else:
        text = (
            f"Found {len(findings)} finding{'s' * (len(findings) != 1)} in {models} model{'s' * (models != 1)}{extra}."
        )
        if not complete:
            text += " " + _coverage(coverage)
    fixable = sum(f.fixable(unsafe) for f in findings)
    hidden = sum(f.fixable(True) for f in findings) - fixable
    if fixable:
        text += f"\n[*] {fixable} fixable with the `--fix` option."
    if hidden:
        text += f"\n{hidden} hidden fix{'es' * (hidden != 1)} can be enabled with the `--unsafe-fixes` option."
    return text
