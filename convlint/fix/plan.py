"""Fix planning: each fixable finding gets the fix of its constructor call, decided once
from every module that call built in the run (a fix edits the call, so it must be right
for all of them)."""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Sequence

from convlint import registry
from convlint.finding import Finding
from convlint.registry import Rule


def site_key(path: str, line: int, column: int, end_line: int, end_column: int) -> tuple:
    return (os.path.abspath(path), line, column, end_line, end_column)


def collect_calls(view, calls: dict) -> None:
    """Add the model's conv and pooling modules to ``calls``, by the constructor call that
    built them (``calls`` gathers a whole run)."""
    from convlint import layers  # sympy with it: not on the path of a run that checks nothing

    for info in view.modules:
        if info.site is not None and layers.geometry_of(info.module) is not None:
            s = info.site
            entry = calls.setdefault(site_key(s.path, s.line, s.column, s.end_line, s.end_column), (s, {}))
            # a module reached twice (shared, or via remove_duplicate=False) counts once
            entry[1].setdefault(
                id(info.module), registry.BuiltModule(view.name, info.qualname, info.module, info.intent)
            )


def plan_fixes(findings: Sequence[Finding], calls: dict, rules: Sequence[Rule]) -> list[Finding]:
    """Give each fixable finding the fix of its constructor call.

    One fix per (rule, call), decided from every module that call built in the run; a
    call with no possible fix gets the reason appended to its findings' messages.
    """
    by_code = {r.code: r for r in rules if r.fix is not None}
    groups: dict[tuple, list[Finding]] = {}
    for f in findings:
        if f.code in by_code and f.module is not None:
            groups.setdefault((f.code, site_key(f.path, f.line, f.column, f.end_line, f.end_column)), []).append(f)
    planned = {}
    for (code, key), group in groups.items():
        if key not in calls:
            continue
        site, built = calls[key]
        outcome = by_code[code].fix(registry.CallSite(site, tuple(built.values())))
        for f in group:
            if outcome is None:
                continue  # the message already says nothing can be fixed
            if isinstance(outcome, str):
                planned[f] = replace(f, message=f"{f.message}; no automatic fix: {outcome}")
            else:
                planned[f] = replace(f, fix=outcome)
    return [planned.get(f, f) for f in findings]
