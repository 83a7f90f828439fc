"""What a run checks: targets (files, directories, ``module:NAME`` and call targets, with
their own input shapes) turned into built models; files and targets that do not import,
models that do not build (findings), classes that need arguments (CVL904 unless a model
of the run contains them), models without a convolution (skipped), and the same model
built twice (checked once)."""

from __future__ import annotations

import contextlib
import fnmatch
import inspect
import os
from dataclasses import dataclass
from typing import Iterable, Iterator, Optional, Sequence

from convlint import common, load, scan
from convlint.diagnostics import CVL900, CVL901, CVL904, CVL905
from convlint.finding import Finding
from convlint.locate import at, report_finding
from convlint.options import Options
from convlint.outcome import Result
from convlint.registry import Report


def _excluded(patterns: Sequence[str]):
    def test(path: str) -> bool:
        rel = common.relpath(path)
        return any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(os.path.basename(path), p) for p in patterns)

    return test


def _drop_nested(built: list) -> list:
    """A class found in a file that another model of the same file contains is a building
    block, checked inside that model, not again on its own."""
    contained = set()
    for _, model in built:
        contained.update(type(m) for m in list(model.modules())[1:])
    return [(c, m) for c, m in built if c.cls is None or c.cls not in contained]


@dataclass(frozen=True)
class Target:
    """What to check: a file, a directory or a ``module:NAME`` / ``path.py:NAME`` target
    (optionally a call, ``NAME(3, 2)``), with its own input shapes (a ``[tool.convlint]
    models`` entry's) or () for the run's."""

    target: str
    input_shapes: tuple = ()
    args: Optional[tuple] = None  # a configuration table's args / kwargs
    kwargs: Optional[tuple] = None  # ((name, value), ...)
    # Pre-commit and targets given: the configured model is checked only if it runs a
    # file in these paths (a ``usage.Given``); the project files it runs are then
    # recorded under ``key`` (convlint.usage).
    only_if_uses: Optional[object] = None
    key: str = ""


def _spatial(model) -> bool:
    """Does the model hold a convolution, pooling (adaptive too) or padding layer (or a
    subclass of one), or a weight of rank 3 or more (a convolution written with ``F.conv2d``)?"""
    from convlint import layers

    return any(layers.torch_family(m) for m in model.modules()) or any(p.dim() >= 3 for p in model.parameters())


def _signature(model, shapes) -> tuple:
    """Two factories that build the same model (same class, same layers) at the same input."""
    return (type(model), repr(model), tuple(map(tuple, shapes)))


def built_models(targets: Sequence, options: Options, result: Result, on_file=None) -> Iterator[tuple]:
    """(candidate, model built on meta, input shapes, target, recorded files) for every
    model the targets name.

    ``targets`` are strings or ``Target``s. Files and targets that do not import, and
    models that do not build, become findings in ``result``; classes that need arguments
    go to ``result.unchecked``; models without a convolution are skipped. The others are
    yielded one file at a time. For a ``Target`` with a ``key``, the files its model runs
    are recorded while it is built (the caller goes on recording while it is analysed).
    """
    excluded = _excluded(options.exclude)
    seen: dict = {}
    for item in targets:
        item = item if isinstance(item, Target) else Target(item)
        shapes = item.input_shapes or options.input_shapes
        explicit = ":" in item.target and not os.path.exists(item.target)
        for loaded in _load(item, explicit, excluded, result, on_file):
            for p in loaded.problems:
                rule = CVL901 if p.code == CVL901.code else CVL900
                result.findings.append(report_finding(rule, Report(p.message), at(p.path, p.line, p.column), p.model))
            result.unchecked.extend(loaded.unchecked)
            built = []
            for candidate in loaded.candidates:
                if explicit:
                    result.configured.append(candidate.obj)
                    result.named.add(os.path.abspath(candidate.path))
                elif any(candidate.obj is obj for obj in result.configured):
                    # met again in a directory: checked as configured (its arguments, its input)
                    result.notes.append(f"{candidate.name}: checked as a configured model")
                    continue
                model, recorded = _build(candidate, item, result)
                if model is None:
                    continue
                signature = _signature(model, shapes)
                if signature in seen:
                    result.notes.append(f"{candidate.name}: skipped: the same model as {seen[signature]}")
                    continue
                seen[signature] = candidate.name
                built.append((candidate, model, recorded))
            kept = [m for _, m in (_drop_nested([(c, m) for c, m, _ in built]) if not explicit else [])]
            for candidate, model, recorded in built:
                if explicit or any(model is m for m in kept):
                    yield candidate, model, shapes, item, recorded


def _load(item: Target, explicit: bool, excluded, result: Result, on_file) -> Iterable:
    """The ``load.Loaded`` of a target, or of each file under a path (imported lazily)."""
    if explicit:
        return [load.candidate_for_target(item.target, item.args, item.kwargs and dict(item.kwargs))]
    if not os.path.exists(item.target):
        result.findings.append(
            report_finding(CVL900, Report(f"no such file or directory: {item.target}"), at(item.target))
        )
        return []
    files = load.python_files(item.target, excluded)
    result.files += len(files)
    # the fast path: a file that cannot define a model is not imported, nor is a script
    return (
        _with_callback(on_file, f) or load.candidates_in_file(f)
        for f in files
        if scan.needs_import(f) and not _script(f, result)
    )


def _script(path: str, result: Result) -> bool:
    """Does importing ``path`` run a script? Then it is set aside (CVL905 unless a target
    names one of its models)."""
    runs = scan.runs_at_import(path)
    if runs is not None:
        result.scripts.append((path, runs))
    return runs is not None


def _build(candidate, item: Target, result: Result) -> tuple:
    """(model, files recorded while building it) or (None, None) when it is not checked:
    a build error (a finding), a function that builds no model, no convolution."""
    from convlint import usage

    recorded = set() if item.key else None
    try:
        with usage.recording(recorded) if recorded is not None else contextlib.nullcontext():
            model = load.build(candidate)
    except load.NotAModel as exc:
        if candidate.kind not in ("factory", "function"):
            result.findings.append(_not_built(candidate, exc))
        else:
            result.notes.append(f"{candidate.name}: not a model factory: {exc}")
        return None, None
    except Exception as exc:
        # nothing says it builds a model: calling it told (reaching for weights says it does)
        if candidate.kind == "function" and not isinstance(exc, load.DownloadRefused):
            result.notes.append(f"{candidate.name}: not checked: calling it raised {common.describe(exc)}")
        else:
            result.findings.append(_not_built(candidate, exc))
        return None, None
    result.used.update(type(m) for m in model.modules())
    if not _spatial(model):
        result.skipped += 1
        result.notes.append(f"{candidate.name}: skipped: no convolution, pooling or padding layer")
        return None, None
    return model, recorded


def _not_built(candidate, exc: Exception) -> Finding:
    report = Report(
        f"model `{candidate.name}` cannot be built: {common.describe(exc)}{_without_weights(candidate, exc)}"
    )
    return report_finding(CVL901, report, at(candidate.path, candidate.line), candidate.name)


def _without_weights(candidate, exc: Exception) -> str:
    """How to build a model that downloads its weights without them: its own weights
    parameters turned off, when it has some (torchvision's ``weights_backbone``)."""
    if not isinstance(exc, load.DownloadRefused):
        return ""
    try:
        params = inspect.signature(candidate.obj).parameters.values()
    except (TypeError, ValueError):
        params = []
    off = [
        f"{p.name}={False if p.default is True else None}"
        for p in params
        if ("weight" in p.name or "pretrain" in p.name) and p.default not in (None, False, inspect.Parameter.empty)
    ]
    if off and ":" in candidate.name and "(" not in candidate.name:
        return f"; build it without weights: `convlint check '{candidate.name}({', '.join(off)})'`"
    return "; build it without weights (weights=None or pretrained=False where it loads them)"


def _with_callback(callback, path: str) -> None:
    if callback is not None:
        callback(path)


def unchecked_reports(result: Result) -> Iterator[Finding]:
    """CVL904 for each class that needs arguments, unless a target names it or a model of
    the run built it (a block checked through that model); CVL905 for each script not
    imported, unless a target named a model of it."""
    for path, (line, column, source) in result.scripts:
        if os.path.abspath(path) in result.named:
            continue
        name = scan.model_class_name(path)
        how = f"`convlint check '{common.relpath(path)}:{name}'`" if name else "a target that names its model"
        report = Report(
            f"`{common.relpath(path)}` was not imported: line {line} runs a script when it is imported "
            f"(`{source[:60]}`); name its model to check it: {how} or a [tool.convlint] models entry"
        )
        yield report_finding(CVL905, report, at(path, line, column))
    configured = {id(obj) for obj in result.configured}
    for u in result.unchecked:
        if u.obj in result.used or id(u.obj) in configured:
            continue
        report = Report(f"model `{u.name}` was not checked: {u.reason}")
        yield report_finding(CVL904, report, at(u.path, u.line), u.name)
