"""The engine composes the stages, as the README's "How it works" table reads:

    targets (load) -> analysis (capture, sizes) -> view -> rules -> locate -> fix plan -> suppress

``check_paths`` is what the CLI runs; ``check_model`` is one model through the rules.
Every problem on the way (a file that does not import, a model that does not build or
trace, a rule that crashes) becomes a located finding, and the run goes on.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import logging
import os
import warnings
from typing import Callable, Iterator, Optional, Sequence

from convlint import common, diagnostics, inference, locate, registry, suppress
from convlint.diagnostics import CVL901, CVL902, CVL904
from convlint.finding import INFO, Finding
from convlint.fix import plan
from convlint.intent import Intent
from convlint.options import Options, Shape
from convlint.outcome import Outcome, Result
from convlint.registry import Report, Rule
from convlint.targets import Target, built_models, unchecked_reports

__all__ = [
    "Options", "Outcome", "Result", "Target", "all_rules", "analyse_model", "analysing", "build_view",
    "built_models", "check_model", "check_paths", "check_source", "visible",
]  # fmt: skip

visible = suppress.visible
log = logging.getLogger(__name__)


def all_rules() -> tuple[list[Rule], list[str]]:
    """Every rule (the engine's own and the installed ones), sorted by code, and the
    problems met loading plugins."""
    rules, problems = registry.discover()
    return sorted([*diagnostics.ENGINE_RULES, *rules], key=lambda r: r.code), problems


@contextlib.contextmanager
def analysing(model):
    """The model as analysis wants it: on meta, in eval mode, without autograd, PyTorch's
    warnings muted.

    A model with real weights is copied to meta (the caller's stays as it was); eval
    mode because batch norm in training mode costs far more on meta tensors and changes
    no size. The caller's training flags are put back afterwards.
    """
    import torch

    training = [(m, m.training) for m in model.modules()]
    try:
        with warnings.catch_warnings():
            # PyTorch's own warnings while convlint runs the model (padding="same"
            # copies, deprecated arguments) are not the user's findings.
            warnings.simplefilter("ignore")
            model.eval()
            # No autograd: nothing here needs gradients, and a tensor a module caches
            # while it runs stays a plain one that the leaf probe can copy.
            with torch.no_grad():
                if any(p.device.type != "meta" for p in [*model.parameters(), *model.buffers()]):
                    yield copy.deepcopy(model).to("meta")
                else:
                    yield model
    finally:
        for m, flag in training:
            m.training = flag


def build_view(model, input_shapes=(), *, same=(), name=None, path=None, line=None, run_every_op=False):
    """Trace and size one model: (view, where findings about it point, input error)."""
    from convlint.analysis import Analysis, analyse
    from convlint.capture import trace
    from convlint.view import ModelView

    where = locate.place_of(model, name, path, line)
    input_error = None
    shapes = tuple(s if isinstance(s, Shape) else Shape(s) for s in input_shapes)
    if shapes:
        analysis = analyse(model, shapes, run_every_op)
    else:
        try:
            traced, trace_error = trace(model), None
        except Exception as exc:
            traced, trace_error = None, f"cannot be traced: {common.describe(exc)}"
        try:
            shapes = inference.infer_input_shapes(model, traced.graph_module if traced else None)
        except inference.InputError as exc:
            input_error = str(exc)
        if input_error:
            analysis = Analysis(error=input_error if traced is not None else f"{trace_error}; {input_error}")
        else:
            analysis = _inferred_analysis(model, shapes, run_every_op, traced)
    shapes = analysis.input_shapes or shapes
    view = ModelView(
        where.name, where.path, model, shapes, analysis, tuple(same), inferred_input=not input_shapes,
        run_every_op=run_every_op,
    )  # fmt: skip
    if shapes and any(info.intent for info in view.modules):
        view = _with_intent_analysed(view, run_every_op)
    return view, where, input_error


def _inferred_analysis(model, shapes: tuple, run_every_op: bool, traced):
    """The analysis at the inferred input, or, where that did not run, at the same sizes
    channels-last (N, H, W, C) if the model runs there: an input convlint suggests is
    one it has seen run."""
    from convlint.analysis import analyse

    analysis = analyse(model, shapes, run_every_op, traced=traced)
    if _ran(analysis) or not 3 <= len(shapes[0]) <= 5:
        return analysis
    last = inference.channels_last(model, shapes[0], traced.graph_module if traced is not None else None)
    other = analyse(model, (last, *shapes[1:]), run_every_op, traced=traced)
    return other if _ran(other) else analysis


def _ran(analysis) -> bool:
    """Did the model run to its end at the input it was analysed at (not only at a larger
    one it was recorded at)?"""
    return analysis.ran_to_end and (analysis.trace is None or analysis.trace.example_raised is None)


def _with_intent_analysed(view, run_every_op):
    """The view with what the same-intent rules need beyond the model's own graph, when
    they need it: the inputs each module saw (one more run of the model) for a layer that
    misses "same" (its message shows the example) or a block declared "same", which is
    then analysed on its own at that input."""
    import dataclasses

    from convlint import analysis, capture, layers, sizes

    blocks, missing = [], False
    for info in view.modules:
        geometry = layers.geometry_of(info.module)
        if not info.intent or info.uncalled_container:
            continue
        if geometry is None:
            blocks.append(info)
        elif info.intent is not Intent.PADDING_SAME and not all(a.verdict.keeps for a in view.layer_axes(geometry)):
            missing = True
    if not blocks and not missing:
        return view
    view = dataclasses.replace(view, inputs=capture.module_inputs(view.model, view.input_shapes, sizes.PREDICTOR))
    analysed = {}
    for info in blocks:
        if info.qualname not in analysed:
            shapes = view.module_inputs(info.qualname)
            analysed[info.qualname] = analysis.analyse_block(info.module, shapes, run_every_op)
    return dataclasses.replace(view, blocks=analysed)


def analyse_model(
    model,
    input_shapes: Sequence[Sequence[int]] = (),
    *,
    rules: Sequence[Rule],
    options: Options = Options(),
    name: Optional[str] = None,
    path: Optional[str] = None,
    line: Optional[int] = None,
) -> Outcome:
    """One built model through the engine's checks and ``rules``: its findings, fixes not
    yet planned (a run plans them over every model it checks)."""
    from convlint import domain_statement, facts

    with analysing(model) as model:
        view, place, input_error = build_view(
            model, input_shapes, same=options.same, name=name, path=path, line=line, run_every_op=options.run_every_op
        )
        calls: dict = {}
        plan.collect_calls(view, calls)
        findings = [
            locate.on_model(rule, report, view, place) for rule, report in diagnostics.reports(view, input_error)
        ]
        checked = not any(f.code == CVL904.code for f in findings)
        coverage = tuple(view.coverage) if checked else (0, 0, diagnostics.count_convs(model))
        domain = None
        model_facts = facts.build(view) if rules else None  # what every rule reads, computed once
        for rule in rules:
            try:
                findings += [locate.on_model(rule, report, view, place) for report in rule.check(model_facts)]
            except Exception as exc:  # one broken rule must not hide the others
                report = Report(f"internal: rule {rule.code} crashed: {common.describe(exc)}", "")
                findings.append(locate.on_model(CVL902, report, view, place))
        if checked and view.sizes is not None and all(f.severity == INFO for f in findings):
            # What a pass covers (the summary of a clean check says it): only then worth its cost.
            domain = domain_statement.statement(view.domain)
            branches = view.branches()
            if branches:  # a pass holds within them: say so, as the shapes report does
                said = domain or view.domain.stated.lower
                listed = ", ".join(branches)
                if len(listed) > 120:  # a window partition's padding decisions: named, not written
                    listed = f"{len(branches)} decisions on sizes; `convlint shapes` lists them"
                domain = f"{said}, within the branches the example took ({listed})"
    return Outcome(findings, view, coverage, calls, checked, domain)


def warm(meta: bool = True) -> None:
    """Import what every analysis needs and run one small check, in a process that forks
    the ones that analyse (the language server, ``--jobs``): the caches it fills (the size
    formulas') come warm to every child. ``meta``: also an op that runs on meta
    (its first import of torch._dynamo, 0.8 s), and libcst (fixes are planned with it),
    which a language server's every check needs and a ``--jobs`` run may not. What is
    alive then is frozen: the garbage collector need not walk it, and a child that did
    would touch, and so copy, every page it shares with the parent."""
    import gc

    import torch
    import torch.nn as nn

    from convlint.report import formats  # noqa: F401

    all_rules()
    if meta:  # a long-lived process: sympy too, for what the exact sizes (convlint.affine) do not hold
        import libcst  # noqa: F401
        import sympy  # noqa: F401

        from convlint.fix import edits, padding  # noqa: F401

    class Warm(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            # with ``meta``, a finding (CVL201): its message printed, sympy's printer loaded
            self.conv = nn.Conv2d(3, 4, 3, padding=1 if meta else 2, dilation=2)
            self.pool = nn.MaxPool2d(2)

        def forward(self, x):
            y = self.pool(self.conv(x))
            return y + self.pool(x[:, :4]) if meta else y + y  # the slice runs on meta

    with torch.device("meta"):
        model = Warm()
    try:
        check_model(model, ((1, 3, 32, 32),))
    except Exception as exc:  # warming is an optimisation: never a reason not to check
        log.warning("warming the check failed: %s: %s", type(exc).__name__, exc)
    gc.freeze()


def check_model(
    model,
    input_shapes: Sequence[Sequence[int]] = (),
    *,
    rules: Optional[Sequence[Rule]] = None,
    options: Options = Options(),
    name: Optional[str] = None,
    path: Optional[str] = None,
    line: Optional[int] = None,
) -> list[Finding]:
    """Every rule (or ``rules``) on one built model: its findings with their fixes,
    suppressions applied, sorted by location."""
    if rules is None:
        rules = [r for r in all_rules()[0] if r.check is not None]
    outcome = analyse_model(model, input_shapes, rules=rules, options=options, name=name, path=path, line=line)
    return suppress.visible(plan.plan_fixes(outcome.findings, outcome.calls, rules))


def check_source(path: str, rules: Sequence[Rule]) -> list[Finding]:
    """Source rules on one file, before it is imported."""
    findings = []
    for rule in rules:
        try:
            findings += [locate.report_finding(rule, report, report.site) for report in rule.check_source(path)]
        except Exception as exc:  # one broken rule must not hide the others
            report = Report(f"internal: rule {rule.code} crashed: {common.describe(exc)}")
            findings.append(locate.report_finding(CVL902, report, locate.at(path)))
    return findings


def check_paths(
    targets: Sequence,
    options: Options,
    cache=None,
    keep_views: bool = False,
    jobs: Optional[int] = 1,
    progress: Optional[Callable[[str], None]] = None,
) -> Result:
    """Check every model the targets name, in one run: fixes are planned once, over every
    module each constructor call built in any of the models.

    With a ``usage.Cache``, the project files that each keyed ``Target``'s model runs are
    recorded into it (and a model that runs none of its ``only_if_uses`` is not reported).
    ``keep_views``: the analysed models stay in ``result.views`` (the editor's hover).
    ``jobs``: models analysed in that many worker processes at once (None: one per core
    when there are several models); the result is the serial one. Views stay in one
    process: ``keep_views`` analyses serially. ``progress(model)`` is called as each model's
    analysis ends.
    """
    from convlint import usage

    result = Result()
    rules: Optional[list] = None
    calls: dict = {}
    files_of_targets: set = set()

    def selected_rules() -> list:
        nonlocal rules
        if rules is None:  # only now: discovering rules imports them, and torch with them
            rules, result.problems = all_rules()
            rules = [r for r in rules if suppress.selected(r.code, options.select, options.ignore)]
        return rules

    def on_file(path: str) -> None:
        result.findings.extend(check_source(path, [r for r in selected_rules() if r.check_source is not None]))

    def analyse(entry: tuple) -> Outcome:
        return _analyse_entry(entry, [r for r in selected_rules() if r.check is not None], options)

    analysed = _analysed(
        built_models(targets, options, result, on_file), analyse, jobs, keep_views, selected_rules, _several(targets)
    )
    for (candidate, _model, _shapes, item, recorded), outcome in analysed:
        if progress is not None:
            progress(candidate.name)
        if recorded is not None and cache is not None:
            files = usage.project_files(recorded, cache.root)
            cache.store(item.key, files)
            result.usage[item.key] = files
            if item.only_if_uses is not None and not item.only_if_uses.any_of(files):
                result.notes.append(f"{candidate.name}: not checked: it runs none of the files given")
                continue
        result.checked_files.add(os.path.abspath(candidate.path))
        if candidate.kind == "target" and os.path.abspath(candidate.path) not in files_of_targets:
            files_of_targets.add(os.path.abspath(candidate.path))  # a file named by a target counts once
            result.files += 1
        _merge_calls(calls, outcome.calls)
        result.coverage = [a + b for a, b in zip(result.coverage, outcome.coverage)]
        result.models += outcome.checked
        if outcome.domain is not None:
            result.domains.append((candidate.name, outcome.domain))
        result.findings.extend(outcome.findings)
        if keep_views:
            result.views.append(outcome.view)
    result.findings.extend(unchecked_reports(result))
    findings = plan.plan_fixes(result.findings, calls, rules or [])
    result.findings = suppress.visible(findings, options.select, options.ignore)
    return result


def _merge_calls(calls: dict, more: dict) -> None:
    """A model's constructor calls into the run's; a module two models share counts once."""
    for key, (site, built) in more.items():
        merged = calls.setdefault(key, (site, {}))[1]
        for module_id, module in built.items():
            merged.setdefault(module_id, module)


def _analyse_entry(entry: tuple, rules: Sequence[Rule], options: Options) -> Outcome:
    """One of built_models' models through ``analyse_model``, the files it runs recorded."""
    from convlint import usage

    candidate, model, shapes, _item, recorded = entry
    common.freeze_once()
    where = dict(name=candidate.name, path=candidate.path, line=candidate.line)
    with usage.recording(recorded) if recorded is not None else contextlib.nullcontext():
        return analyse_model(model, shapes, rules=rules, options=options, **where)


def _several(targets: Sequence) -> bool:
    """Do ``targets`` name more than one file (a directory, several targets)?"""
    paths = [t.target if isinstance(t, Target) else t for t in targets]
    return len(paths) > 1 or any(os.path.isdir(p) for p in paths)


def _analysed(built, analyse, jobs: Optional[int], keep_views: bool, selected_rules, several: bool) -> Iterator:
    """(entry, Outcome) for each built model: here, one model in memory at a time, or in child processes (``convlint.jobs``) as they are built.
    ``jobs`` None: children where there are several models; where the targets name one
    file, that is known when a second model is built; where they name several (``several``)
    or ``jobs`` is given, the first child starts at once (the longest analysis is often the
    first model's)."""
    from convlint import jobs as jobs_mod

    if jobs == 1 or keep_views:
        return ((entry, analyse(entry)) for entry in built)
    eager = jobs is not None or several
    built = iter(built)
    first = list(itertools.islice(built, 1 if eager else 2))
    jobs = jobs or jobs_mod.default_jobs()
    if jobs <= 1 or len(first) < (1 if eager else 2):  # one model: no process to fork
        return ((entry, analyse(entry)) for entry in itertools.chain(first, built))
    selected_rules()  # imported here, once: every child is forked with them
    warm(meta=False)  # and what every analysis loads (sympy's caches, the formulas')

    def failed(entry: tuple, why: str) -> Outcome:
        candidate, model = entry[0], entry[1]
        report = Report(f"`{candidate.name}` could not be analysed: its worker process ended ({why})")
        finding = locate.report_finding(CVL901, report, locate.at(candidate.path, candidate.line), candidate.name)
        return Outcome([finding], None, (0, 0, diagnostics.count_convs(model)), {}, False)

    def warm_meta() -> None:
        warm(meta=True)

    return jobs_mod.analysed(itertools.chain(first, built), analyse, failed, jobs, warm_meta)


def pictures(targets: Sequence, options: Options, depth: Optional[int] = -1, focus: Optional[str] = None):
    """``convlint graph``: (a ``report.picture.Picture`` per analysed model, its findings
    marked, with ``focus`` only the models that have a matching finding; the run's Result)."""
    result = check_paths(targets, options, keep_views=True)
    return drawn_views(result, depth, focus), result


def drawn_views(result: Result, depth: Optional[int] = -1, focus: Optional[str] = None) -> list:
    """The pictures of a run checked with ``keep_views`` (see ``pictures``)."""
    from convlint.report import picture

    drawn = []
    for view in result.views:
        own = _findings_of(result.findings, view.name)
        if focus is not None and not any(picture.matches(f, focus) for f in own):
            continue
        drawn.append(picture.picture(view, own, depth=depth, focus=focus))
    return drawn


def failing_pictures(result: Result) -> list:
    """The focused picture of each model with a finding that fails a check (a job summary):
    at its first merge finding (CVL3xx), else at its first finding. ``result`` must have
    been checked with ``keep_views``."""
    from convlint.report import picture

    drawn = []
    for view in result.views:
        own = _findings_of(result.findings, view.name)
        failing = [f for f in own if f.severity != INFO]
        if failing:
            first = next((f for f in failing if f.code.startswith("CVL3")), failing[0])
            drawn.append(picture.picture(view, own, focus=f"{first.path}:{first.line}"))
    return drawn


def _findings_of(findings: Sequence[Finding], model: str) -> list[Finding]:
    """A model's findings (one that several models share names them all: "A, B")."""
    # not split on ", ": a configured model's name can hold one (`unet:UNet(3, 2)`)
    return [f for f in findings if f.model and f", {model}, " in f", {f.model}, "]
