"""Rules: declarative records found through the ``convlint.rules`` entry point.

A rule is a code, a name, a default severity, its documentation and a function from the
model's ``Facts`` (``convlint.facts``) to ``Report``s. Built-in rules come in through the same entry
point as a third-party plugin's; an entry point may name a ``Rule``, a list of them,
or a module (or package) whose module-level ``Rule`` objects are all taken.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import re
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable, Iterable, Iterator, Optional, Union

from convlint.finding import Fix

GROUP = "convlint.rules"
CODE = re.compile(r"^[A-Z]{1,3}[0-9]{3}$")


@dataclass(frozen=True)
class Report:
    """What a rule says; the engine turns it into a located ``Finding``.

    ``module`` is the qualified name of the module the finding is about: the finding
    points at that module's constructor call unless ``site`` gives another place.
    """

    message: str
    module: Optional[str] = None
    site: object = None
    fix: Optional[Fix] = None
    severity: Optional[str] = None  # None: the rule's own
    related: tuple = ()  # ((site, message), ...): other places of the same root cause
    detail: Optional[str] = None  # the full expressions behind the message (JSON, SARIF)


def per_line(found: Iterable[tuple[Any, Report]]) -> Iterator[Report]:
    """One report per constructor line: the layers one call built (a block used many
    times, a loop) share its mistake and its fix, so the first speaks for the line and
    names how many more it built; each one's own message is related. ``found``: (layer
    fact, its report) pairs, in model order."""
    from convlint import pretty  # sympy: not on the path of a check that runs no model

    lines: dict = {}
    for layer, report in found:
        lines.setdefault(layer.site if layer.site is not None else layer.qualname, []).append((layer, report))
    for members in lines.values():
        (_, report), rest = members[0], members[1:]
        if not rest:
            yield report
            continue
        more = f"; the same call built {len(rest)} more{pretty.within([layer.qualname for layer, _ in rest])}"
        shape = {other.message.replace(f"`{layer.display}`", "") for layer, other in members}
        if len(shape) > 1:  # a helper called with other dilations: each needs its own numbers
            more += ", with other settings (each in related)"
        related = tuple((layer.site, other.message) for layer, other in rest if layer.site is not None)
        yield dataclasses.replace(report, message=report.message + more, related=report.related + related)


@dataclass(frozen=True)
class BuiltModule:
    """One module a constructor call built, in one of the models checked."""

    model: str
    qualname: str
    module: object
    intent: Optional[str]  # a convlint.intent.Intent

    @property
    def geometry(self):
        """The module's kernel, stride, padding and dilation (a ``Geometry``)."""
        from convlint.layers import geometry_of

        return geometry_of(self.module)


@dataclass(frozen=True)
class CallSite:
    """A constructor call and every module it built across the models checked in a run.

    A fix edits the call, so it must be right for all of them, not only the one a
    finding is about.
    """

    site: object
    modules: tuple[BuiltModule, ...]


@dataclass(frozen=True)
class Rule:
    """A rule. ``fix``, if given, turns a call site with findings into a ``Fix``, into a
    sentence saying why there is none (added to the findings' messages), or into None
    when the message already says so."""

    code: str
    name: str
    severity: str
    summary: str
    doc: str
    check: Optional[Callable[..., Iterable[Report]]] = None
    fix: Optional[Callable[[CallSite], Union[Fix, str, None]]] = None
    # A rule on the source itself (a convlint.fix.Source), run before the file is
    # imported: it reports even what keeps a model from being built.
    check_source: Optional[Callable[..., Iterable[Report]]] = None

    @property
    def fixable(self) -> bool:
        return self.fix is not None

    def __post_init__(self) -> None:
        if not CODE.match(self.code):
            raise ValueError(f"rule code {self.code!r} does not match [A-Z]{{1,3}}[0-9]{{3}}")


def _rules_in(obj) -> list[Rule]:
    if isinstance(obj, Rule):
        return [obj]
    if isinstance(obj, ModuleType):
        found = [v for v in vars(obj).values() if isinstance(v, Rule)]
        if hasattr(obj, "__path__"):
            for info in pkgutil.iter_modules(obj.__path__, obj.__name__ + "."):
                found.extend(_rules_in(importlib.import_module(info.name)))
        return found
    if isinstance(obj, (list, tuple)):
        return [r for item in obj for r in _rules_in(item)]
    raise TypeError(f"entry point gave {obj!r}, not a Rule, a list of rules or a module")


def discover() -> tuple[list[Rule], list[str]]:
    """All installed rules, sorted by code, and the problems met loading plugins."""
    from importlib.metadata import entry_points

    rules: dict[str, Rule] = {}
    problems: list[str] = []
    for ep in entry_points(group=GROUP):
        try:
            loaded = _rules_in(ep.load())
        except Exception as exc:  # a broken plugin is reported, the others still run
            problems.append(f"plugin {ep.name!r} ({ep.value}) failed to load: {type(exc).__name__}: {exc}")
            continue
        for rule in loaded:
            if rule.code in rules and rules[rule.code] is not rule:
                problems.append(f"plugin {ep.name!r}: rule code {rule.code} is already taken")
                continue
            rules[rule.code] = rule
    return sorted(rules.values(), key=lambda r: r.code), problems
