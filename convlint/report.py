"""Output formats. Each reads the same ``Finding`` records."""
from __future__ import annotations

import json
from typing import Sequence

from convlint.finding import Finding


def text(findings: Sequence[Finding]) -> str:
    """``path:line:col: CODE message``, one per line, as flake8 and ruff print."""
    lines = []
    for f in findings:
        marker = "[*] " if f.fix is not None and f.fix.edits else ""
        lines.append(f"{f.path}:{f.line}:{f.column}: {f.code} {marker}{f.message}")
    return "\n".join(lines) + ("\n" if lines else "")


def as_json(findings: Sequence[Finding]) -> str:
    return json.dumps([f.to_dict() for f in findings], indent=2) + "\n"


FORMATS = {"text": text, "json": as_json}


def summary(findings: Sequence[Finding], models: int, files: int) -> str:
    if not findings:
        return f"All checks passed! ({models} model{'s' * (models != 1)} in {files} file{'s' * (files != 1)})"
    return f"Found {len(findings)} finding{'s' * (len(findings) != 1)} in {models} model{'s' * (models != 1)}."
