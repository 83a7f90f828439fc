"""Where a finding points: a rule's ``Report`` made a located ``Finding`` (the one place a
finding is born), at the report's own site, the constructor call of the module it names
(or its nearest parent with one), or the model's class."""

from __future__ import annotations

import functools
import inspect
import linecache
import logging
import re
from dataclasses import dataclass
from typing import Optional

from convlint import common, sites
from convlint.finding import Finding, Related
from convlint.registry import Report, Rule

log = logging.getLogger(__name__)


@dataclass
class Place:
    """Where findings about a model point when no module site applies."""

    name: str
    path: str
    line: int


def place_of(model, name: Optional[str], path: Optional[str], line: Optional[int]) -> Place:
    cls = type(model)
    if not (path and line):
        found_path, found_line = _class_source(cls)
        path, line = path or found_path, line or found_line
    return Place(name or cls.__name__, path or "<unknown>", line or 1)


@functools.lru_cache(maxsize=256)
def _class_source(cls: type) -> tuple:
    """(file, line) of a class, once per class: inspect parses the whole file to find a
    class's line (5 ms for a model file), and a process checks a class again and again
    (the language server, a second input shape)."""
    try:
        path = inspect.getsourcefile(cls)
        return path, _class_line(cls, path) or inspect.getsourcelines(cls)[1]
    except (OSError, TypeError) as exc:  # a class without source: findings point at what is known
        log.debug("no source for %s: %s", cls.__name__, common.describe(exc))
        return None, None


def _class_line(cls: type, path: Optional[str]) -> Optional[int]:
    """The ``class`` statement's line read upwards from the first method's (no parse); None
    where that is not certain (no method of its own, a decorated class, another file)."""
    firstlineno = getattr(cls, "__firstlineno__", None)  # Python >= 3.13
    if firstlineno is not None:
        return firstlineno
    starts = [
        code.co_firstlineno
        for value in vars(cls).values()
        if (code := getattr(getattr(value, "__func__", value), "__code__", None)) is not None
        and code.co_filename == path
        and getattr(value, "__qualname__", "").startswith(cls.__qualname__ + ".")
    ]
    lines = linecache.getlines(path) if path and starts else []
    line = min(starts, default=0) - 1
    while 0 < line <= len(lines):
        match = _CLASS.match(lines[line - 1])
        if match and match.group(1) == cls.__name__:
            above = lines[line - 2].strip() if line > 1 else ""
            decorated = above.startswith("@") or above.endswith(")")
            return None if decorated else line
        line -= 1
    return None


_CLASS = re.compile(r"\s*class\s+(\w+)")


def site_for(view, qualname: Optional[str], where: Place):
    if qualname is not None:
        # A module built outside convlint has no site: use the nearest parent that has one.
        parts = qualname.split(".") if qualname else []
        while True:
            name = ".".join(parts)
            try:
                site = view.module(name).site
            except StopIteration:
                site = None
            if site is not None:
                return site
            if not parts:
                break
            parts.pop()
    return sites.Site(where.path, where.line, 1, where.line, 1)


def report_finding(rule: Rule, report: Report, site, model: Optional[str] = None) -> Finding:
    """The one place a finding is made: a rule's (or the engine's) ``Report``, located at
    ``site`` (the report's own site wins)."""
    site = report.site or site
    related = tuple(
        Related(common.relpath(s.path), s.line, s.column, s.end_line, s.end_column, text) for s, text in report.related
    )
    return Finding(
        code=rule.code,
        severity=report.severity or rule.severity,
        path=common.relpath(site.path),
        line=site.line,
        column=site.column,
        end_line=site.end_line,
        end_column=site.end_column,
        message=report.message,
        model=model,
        module=report.module,
        fix=report.fix,
        related=related,
        detail=report.detail,
    )


def at(path: str, line: int = 1, column: int = 1):
    return sites.Site(path, line, column, line, column)


def on_model(rule: Rule, report: Report, view, where: Place) -> Finding:
    return report_finding(rule, report, report.site or site_for(view, report.module, where), where.name)
