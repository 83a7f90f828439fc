"""Which findings are shown: ruff's ``--select``/``--ignore`` prefixes, ``# noqa`` and
``# convlint: ignore`` on a line of a finding's span, ``# convlint: skip-file``; the same
finding from several models shown once."""

from __future__ import annotations

from dataclasses import replace
from typing import Iterable, Sequence

from convlint import comments
from convlint.finding import Finding


def selected(code: str, select: Sequence[str], ignore: Sequence[str]) -> bool:
    """ruff's prefix selection: the longest matching prefix decides."""
    best_select = max((len(p) for p in select if code.startswith(p)), default=-1) if select else 0
    best_ignore = max((len(p) for p in ignore if code.startswith(p)), default=-1)
    return best_select >= 0 and best_select > best_ignore


def visible(findings: Iterable[Finding], select: Sequence[str] = (), ignore: Sequence[str] = ()) -> list[Finding]:
    """Selected findings that no ``# noqa`` / ``# convlint: ignore`` on a line of their span,
    and no ``# convlint: skip-file`` in their file, suppresses; sorted, without repeats.

    The same finding from several models (a block two models share) is one finding,
    naming the models: ``model`` lists them, comma-separated."""
    models: dict = {}
    for f in findings:
        names = models.setdefault(replace(f, model=None), [])
        if f.model and f.model not in names:
            names.append(f.model)
    kept = [
        replace(f, model=", ".join(names) or None)
        for f, names in models.items()
        if selected(f.code, select, ignore)
        and not comments.skip_file(f.path)
        and not comments.suppressed(f.code, f.path, f.line, f.end_line)
    ]
    return sorted(kept, key=Finding.sort_key)
