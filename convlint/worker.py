"""Checks on a fresh copy of the user's code, from a warm process.

The language server imports torch, sympy and the rules once, and never the user's code.
Each check forks a child from it: the child imports the user's modules anew (an edit is
never stale), runs the check, sends the findings back and exits. A check that hangs is
killed at its time limit, one that crashes ends only its child; the server goes on.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

from convlint import forked

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    findings: list = field(default_factory=list)  # Finding.to_dict() records
    hovers: list = field(default_factory=list)  # convlint.report.hover entries
    error: Optional[str] = None  # the check did not finish: why
    drawn: Optional[str] = None  # the HTML file a "show graph" wrote


def warm() -> None:
    """Import what every check needs, once, in the process the checks fork from, and run
    one small check (``engine.warm``), so that the caches it fills come warm to every
    child."""
    from convlint import engine
    from convlint.report import hover  # noqa: F401

    engine.warm()


def _checking(targets: Sequence, options, cache_root: Optional[str]) -> Outcome:
    """A check: the findings and the hover entries of every model ``targets`` name."""
    from convlint import engine, usage
    from convlint.report import hover

    cache = usage.Cache(cache_root) if cache_root else None
    result = engine.check_paths(targets, options, cache, keep_views=True)
    if cache is not None:
        cache.save()
    return Outcome([f.to_dict() for f in result.findings], hover.entries(result.views))


def _drawing(targets: Sequence, options, focus: Optional[str], out_path: str) -> Outcome:
    """The editor's "show graph": the models ``targets`` name drawn as an HTML page
    (``focus``: only the finding at that `file.py:line`, where there is one)."""
    from convlint import engine
    from convlint.report import draw

    result = engine.check_paths(targets, options, keep_views=True)
    # no finding at ``focus``: the whole models
    pictures = (focus is not None and engine.drawn_views(result, focus=focus)) or engine.drawn_views(result)
    if not pictures:
        return Outcome([f.to_dict() for f in result.findings], error="no model to draw in this file")
    with open(out_path, "w", encoding="utf-8") as fh:
        fh.write(draw.html_page(pictures))
    return Outcome([f.to_dict() for f in result.findings], drawn=out_path)


def _in_child(job: Callable[..., Outcome], *args) -> Outcome:
    # The parent's stdout is the language server's protocol stream: what user code prints
    # goes to stderr, here and in anything it starts.
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return job(*args)
    except BaseException as exc:  # convlint's own failure: said, not a dead worker
        return Outcome(error=f"convlint failed: {type(exc).__name__}: {exc}")


class Pending:
    """A check running in a child forked from this process (``convlint.forked``)."""

    def __init__(self, job: Callable[..., Outcome], *args) -> None:
        self._child = forked.Forked(_in_child, job, *args)

    def result(self, timeout: float) -> Outcome:
        """The child's findings, or why there are none (it hung, it crashed)."""
        try:
            return self._child.result(timeout)
        except forked.ChildFailed as exc:
            if exc.timed_out:
                why = f"the check did not finish within {timeout:g} s (a model that hangs?); it was stopped"
            else:
                why = f"the check crashed (exit status {exc.status})"
            return Outcome(error=why)


def checking(targets: Sequence, options, cache_root: Optional[str] = None) -> Pending:
    """``engine.check_paths`` started in a child forked from this process."""
    return Pending(_checking, targets, options, cache_root)


def drawing(targets: Sequence, options, focus: Optional[str], out_path: str) -> Pending:
    """The models ``targets`` name drawn into the HTML file ``out_path``, started in a
    child forked from this process (``Outcome.drawn`` is the path)."""
    return Pending(_drawing, targets, options, focus, out_path)
