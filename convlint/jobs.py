"""``--jobs``: models analysed in child processes forked from this one.

The parent imports and builds the models (on meta: small) one after another and keeps
them; as each is built, a child forked then (``convlint.forked``: torch, the rules, the
user's modules and the built model all loaded) analyses it, while the parent builds the
next. A child sends back what the run needs: the findings, the coverage, the domain, the
files the model ran, and the modules each constructor call built, as qualified names.
The parent resolves those on its own copy of the model, so fixes are planned over the
same modules as in a serial run, and it takes the answers in the models' order, so the
report is the serial one.
"""

from __future__ import annotations

import os
import select
import sys
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Optional

from convlint import forked
from convlint.outcome import Outcome


def default_jobs() -> int:
    """One worker per core this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@dataclass
class _Shipped:
    """A model's analysis as a child sends it: ``Outcome`` without the analysed view,
    its calls as {site key: (site, [(model, qualified name, intent)])}."""

    findings: list
    coverage: tuple
    calls: dict
    checked: bool
    domain: Optional[str]
    recorded: Optional[set]


def _shipped(outcome: Outcome, recorded: Optional[set]) -> _Shipped:
    calls = {
        key: (site, [(b.model, b.qualname, b.intent) for b in built.values()])
        for key, (site, built) in outcome.calls.items()
    }
    return _Shipped(outcome.findings, outcome.coverage, calls, outcome.checked, outcome.domain, recorded)


def _received(shipped: _Shipped, model) -> Outcome:
    """The child's answer as the serial ``Outcome``: the calls' modules found again on the
    parent's copy of the model (the same objects the serial run would hold)."""
    from convlint import registry

    calls = {}
    for key, (site, refs) in shipped.calls.items():
        built = {}
        for name, qualname, intent in refs:
            module = model.get_submodule(qualname)
            built.setdefault(id(module), registry.BuiltModule(name, qualname, module, intent))
        calls[key] = (site, built)
    return Outcome(shipped.findings, None, shipped.coverage, calls, shipped.checked, shipped.domain)


def analysed(
    built: Iterable[tuple],
    analyse: Callable[[tuple], Outcome],
    failed: Callable[[tuple, str], Outcome],
    jobs: int,
    warm_meta: Callable[[], None],
) -> Iterator[tuple[tuple, Outcome]]:
    """(entry, its Outcome) for each of ``built`` (built_models' tuples: candidate, model,
    shapes, target, recorded files) in their order, ``analyse`` run in up to ``jobs``
    children at once while this process builds the next models (up to ``jobs`` ahead). A
    child that fails (the model's code ended the process, convlint raised) gives
    ``failed(entry, why)``. The files a child recorded go into the entry's set. Once a
    child has had to import torch._dynamo (an op its model runs on meta), ``warm_meta``
    loads it here, so that the children forked after it have it."""
    built = iter(built)
    waiting: list = []  # (index, entry): built, no child yet
    running: dict = {}  # child -> (index, entry)
    answers: dict = {}  # index -> (entry, Outcome)
    count = following = 0
    more = True
    try:
        while more or waiting or running or answers:
            while waiting and len(running) < jobs:
                index, entry = waiting.pop(0)
                running[forked.Forked(_analysis, analyse, entry)] = (index, entry)
            while following in answers:
                yield answers.pop(following)
                following += 1
            if more and len(waiting) < jobs:
                _collect(running, answers, failed, warm_meta, wait=False)
                entry = next(built, None)
                if entry is None:
                    more = False
                else:
                    waiting.append((count, entry))
                    count += 1
            elif running:
                _collect(running, answers, failed, warm_meta, wait=True)
    finally:
        for child in running:  # the caller stopped early (an interrupt): no child outlives the run
            child.kill()


def _analysis(analyse: Callable[[tuple], Outcome], entry: tuple) -> tuple:
    """In the child: the model's analysis as it is sent, and whether it imported torch._dynamo."""
    had_dynamo = "torch._dynamo" in sys.modules
    shipped = _shipped(analyse(entry), entry[4])
    return shipped, not had_dynamo and "torch._dynamo" in sys.modules


def _collect(running: dict, answers: dict, failed, warm_meta, wait: bool) -> None:
    """Take the answers of the children that have finished (``wait``: at least one)."""
    if not running:
        return
    ready, _, _ = select.select(list(running), [], [], None if wait else 0)
    for child in ready:
        if not child.read():
            continue
        index, entry = running.pop(child)
        try:
            shipped, imported_dynamo = child.answer()
        except forked.ChildFailed as exc:
            answers[index] = (entry, failed(entry, str(exc)))
            continue
        if imported_dynamo and "torch._dynamo" not in sys.modules:
            warm_meta()
        if entry[4] is not None and shipped.recorded:
            entry[4].update(shipped.recorded)
        answers[index] = (entry, _received(shipped, entry[1]))
