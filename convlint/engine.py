"""The pipeline: load -> trace -> sizes -> rules -> findings.

``check_paths`` is what the CLI runs; ``check_model`` is one model through the rules.
Every problem on the way (a file that does not import, a model that does not build or
trace, a rule that crashes) becomes a located finding, and the run goes on.
"""

from __future__ import annotations

import contextlib
import copy
import fnmatch
import functools
import inspect
import logging
import os
import warnings
from dataclasses import dataclass, field, replace
from typing import Iterable, Iterator, Optional, Sequence

from convlint import comments, common, load, registry, scan
from convlint.finding import ERROR, INFO, Finding, Related
from convlint.options import Options, Shape
from convlint.registry import Report, Rule

log = logging.getLogger(__name__)

# Default spatial sizes when no --input-shape is given (batch 1; channels from the
# first convolution the input reaches).
DEFAULT_SPATIAL = {1: (1024,), 2: (224, 224), 3: (32, 112, 112)}

# Findings the engine itself makes: documented like rules, listed by `convlint rules`.
CVL900 = Rule(
    "CVL900",
    "import-error",
    ERROR,
    "A file or target could not be imported",
    doc="""\
## What it does
Reports a model file or `module:NAME` target that fails to import (a syntax error, a
missing dependency, an exception at import time), at the line that failed.

## Why is this bad?
Nothing in that file was checked. The other files are still checked.

## Fix
Make the file importable from the directory convlint runs in (install its
dependencies; run from the project root).
""",
)
CVL901 = Rule(
    "CVL901",
    "model-not-analysed",
    ERROR,
    "A model could not be built, traced or run on meta tensors",
    doc="""\
## What it does
Reports a model whose sizes convlint could not work out: its constructor raised, its
input shape cannot be inferred, its `forward` could not be traced at all, or it raised
when run on meta tensors (a size mismatch at a merge, say). The message gives the reason
and, where it can, the line in `forward`. Rules that need only a layer's own settings
(CVL101, CVL102) still run on every layer the model built.

## Why is this bad?
Whole-model checks were skipped for this model.

## Fix
Follow the reason: pass `--input-shape` for inputs that cannot be inferred, or fix the
error the model raises.
""",
)
CVL902 = Rule(
    "CVL902",
    "internal-error",
    ERROR,
    "convlint's symbolic sizes disagree with PyTorch, or a rule crashed",
    doc="""\
## What it does
Reports a bug in convlint: at the example input, a symbolic size did not evaluate to the
size PyTorch computed on meta tensors, or a rule raised. The dimension is treated as
unknown from there on, so no other finding rests on the wrong formula.

## Fix
Please report it with the model. `--ignore CVL902` hides it meanwhile.
""",
)
CVL903 = Rule(
    "CVL903",
    "sizes-not-followed",
    INFO,
    "Sizes could not be followed past an op: the convolutions after it were checked at the example size only",
    doc="""\
## What it does
Reports an op or submodule whose output sizes convlint could not follow as expressions
of the input's sizes (a block whose `forward` reads data, `.item()`; an op convlint has
no size rule for), at the line that calls it, with how many convolutions after it (or
inside it) were therefore checked at the example input size only, not for every size.

## Why is this bad?
"All checks passed" is a claim about every convolution for every input size. Past this
point it holds at the example size only; this finding says so instead of passing
silently. The summary counts the convolutions checked each way.

## Fix
Nothing is wrong with the model. Where you can, keep sizes out of data-dependent
control flow; or check the model at each input size you use (`--input-shape`).
""",
)
CVL904 = Rule(
    "CVL904",
    "model-not-checked",
    INFO,
    "A model in a checked file was not checked: its constructor needs arguments, or its input could not be inferred",
    doc="""\
## What it does
Reports a model class (or `hubconf.py` entry) that convlint found but did not check, at
its definition, with the reason: its constructor needs arguments (`UNet(n_channels,
n_classes)`; convlint never invents them), or the input convlint inferred from the first
convolution made the model raise for a reason the size analysis does not explain (a
channel or rank mismatch: the guess was wrong, not the model). A class that a checked
model in the same run builds (a block of that model) is checked through it and is not
reported.

## Why is this bad?
Nothing is wrong with the model, but nothing was checked either. The finding is
information, so a file of building blocks never fails a commit, while a CI log shows
what was skipped; the summary says `No model was checked` when nothing was.

## Fix
Tell convlint how the model is built: the message gives the line to add to
`[tool.convlint] models` (`"unet.unet_model:UNet(3, 2)"`, or a table with `args`,
`kwargs` and `input-shape`), or check it on the command line with a call target,
`convlint check 'unet/unet_model.py:UNet(3, 2)'`, and `--input-shape` where the input
cannot be inferred.
""",
)
ENGINE_RULES = (CVL900, CVL901, CVL902, CVL903, CVL904)


class InputError(Exception):
    """The model's inputs cannot be inferred; the message says how to declare them."""


@dataclass
class Result:
    findings: list = field(default_factory=list)
    models: int = 0
    files: int = 0
    problems: list = field(default_factory=list)  # plugin load problems
    # convolutions checked for every input size, at the example size only, not at all
    coverage: list = field(default_factory=lambda: [0, 0, 0])
    skipped: int = 0  # models without a convolution, pooling or padding layer
    notes: list = field(default_factory=list)  # what -v says: models skipped and why
    unchecked: list = field(default_factory=list)  # load.Unchecked: classes that need arguments
    used: set = field(default_factory=set)  # classes of every module built in the run
    configured: list = field(default_factory=list)  # objects the targets named
    usage: dict = field(default_factory=dict)  # Target -> project files its model ran


def all_rules() -> tuple[list[Rule], list[str]]:
    rules, problems = registry.discover()
    return sorted([*ENGINE_RULES, *rules], key=lambda r: r.code), problems


def selected(code: str, select: Sequence[str], ignore: Sequence[str]) -> bool:
    """ruff's prefix selection: the longest matching prefix decides."""
    best_select = max((len(p) for p in select if code.startswith(p)), default=-1) if select else 0
    best_ignore = max((len(p) for p in ignore if code.startswith(p)), default=-1)
    return best_select >= 0 and best_select > best_ignore


# ---------------------------------------------------------------- inputs


def _forward_inputs(model) -> list[str]:
    try:
        params = inspect.signature(model.forward).parameters.values()
    except (TypeError, ValueError) as exc:  # a forward without a signature: one input
        log.debug("%s.forward has no signature (%s): one input assumed", type(model).__name__, common.describe(exc))
        return ["input"]
    return [p.name for p in params if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def _first_conv(model, graph_module, placeholder) -> Optional[object]:
    """The first convolution (in execution order) that an input reaches."""
    import torch.nn as nn
    import torch.nn.functional as F

    convs = (F.conv1d, F.conv2d, F.conv3d, F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)
    reached = {placeholder}
    for node in graph_module.graph.nodes:
        if node is placeholder or not any(a in reached for a in node.all_input_nodes):
            continue
        reached.add(node)
        if node.op == "call_module":
            sub = graph_module.get_submodule(node.target)
            if isinstance(sub, nn.modules.conv._ConvNd):
                return sub
        if node.op == "call_function" and node.target in convs:
            weight = node.args[1] if len(node.args) > 1 else node.kwargs.get("weight")
            if weight is not None and weight.op == "get_attr":
                w = functools.reduce(getattr, weight.target.split("."), graph_module)
                groups = node.args[6] if len(node.args) > 6 else node.kwargs.get("groups", 1)
                transposed = "transpose" in node.target.__name__
                channels = w.shape[0] if transposed else w.shape[1] * groups
                return (w.dim() - 2, channels)
    return None


def _indexes_an_embedding(graph_module, placeholder) -> bool:
    """Is an input's first use an embedding lookup (so it holds integers)?"""
    import torch.nn as nn
    import torch.nn.functional as F

    for user in placeholder.users:
        if user.op == "call_module" and isinstance(graph_module.get_submodule(user.target), nn.Embedding):
            return True
        if user.op == "call_function" and user.target is F.embedding:
            return True
    return False


def infer_input_shapes(model, graph_module=None) -> tuple:
    """Rank and channels from the first convolution each input reaches, default sizes.

    Without a graph (a model whose forward cannot be traced) the first convolution
    the model built stands in, for a single-input model.
    """
    import torch.nn as nn

    names = _forward_inputs(model)
    if not names:
        raise InputError("its forward() takes no tensor input, so there is nothing to infer; pass --input-shape")
    shapes = []
    if graph_module is not None:
        placeholders = [n for n in graph_module.graph.nodes if n.op == "placeholder"][: len(names)]
        for name, placeholder in zip(names, placeholders):
            if _indexes_an_embedding(graph_module, placeholder):
                shapes.append(Shape((1,), "int64"))  # class labels, timesteps, token ids
                continue
            conv = _first_conv(model, graph_module, placeholder)
            if conv is None:
                raise InputError(
                    f"input `{name}` of forward() reaches no convolution, so its shape cannot be inferred; "
                    + _how_to_declare(names)
                )
            shapes.append(_shape_for(conv))
        return tuple(shapes)
    if len(names) > 1:
        raise InputError(f"forward() takes {len(names)} inputs and could not be traced; " + _how_to_declare(names))
    conv = next((m for m in model.modules() if isinstance(m, nn.modules.conv._ConvNd)), None)
    if conv is None:
        raise InputError("it has no convolution to infer its input from; " + _how_to_declare(names))
    return (_shape_for(conv),)


def _shape_for(conv) -> tuple:
    if isinstance(conv, tuple):
        ndim, channels = conv
    else:
        ndim, channels = len(conv.kernel_size), conv.in_channels
    if not channels:
        raise InputError("its first convolution is lazy (in_channels unknown); pass --input-shape")
    return (1, channels, *DEFAULT_SPATIAL[ndim])


def _how_to_declare(names: Sequence[str]) -> str:
    if len(names) == 1:
        return "pass its shape, for example --input-shape 1,3,224,224"
    example = " ".join("--input-shape ..." for _ in names)
    return f"pass one --input-shape per input of forward({', '.join(names)}), in order: {example}"


# ---------------------------------------------------------------- one model


@dataclass
class _Where:
    """Where findings about a model point when no module site applies."""

    name: str
    path: str
    line: int


def _model_location(model, name: Optional[str], path: Optional[str], line: Optional[int]) -> _Where:
    cls = type(model)
    try:
        path = path or inspect.getsourcefile(cls)
        line = line or inspect.getsourcelines(cls)[1]
    except (OSError, TypeError) as exc:  # a class without source: findings point at what is known
        log.debug("no source for %s: %s", cls.__name__, common.describe(exc))
    return _Where(name or cls.__name__, path or "<unknown>", line or 1)


def _site_for(view, qualname: Optional[str], where: _Where):
    from convlint import sites

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


def _at(path: str, line: int = 1, column: int = 1):
    from convlint import sites

    return sites.Site(path, line, column, line, column)


def _finding(rule: Rule, report: Report, view, where: _Where) -> Finding:
    return report_finding(rule, report, report.site or _site_for(view, report.module, where), where.name)


def _engine_reports(view, input_error: Optional[str]) -> Iterable[tuple[Rule, Report]]:
    from convlint.pretty import show

    analysis = view.analysis
    if input_error:
        yield CVL904, Report(f"model `{view.name}` was not checked: {input_error}", "")
        return
    if analysis.error:
        yield CVL901, Report(f"model `{view.name}` {analysis.error}; only layer-level rules ran", "")
        return
    result = analysis.sizes
    if result.error is not None and not _explained(view, result.error[0]):
        node, exc = result.error
        site = view.site_of(node) if node is not None else None
        at = f" at {view.describe(node)}" if node is not None else ""
        if view.inferred_input:
            # A channel or rank mismatch at an input convlint guessed says the guess was
            # wrong, not the model: information, with the way to declare it.
            line = f" (line {site.line})" if site is not None else ""
            shapes = ", ".join("x".join(map(str, s)) for s in view.input_shapes)
            yield (
                CVL904,
                Report(
                    f"model `{view.name}` was not checked: on the input convlint inferred ({shapes}) it raised{at}"
                    f"{line}: {common.describe(exc)}; declare its input with --input-shape "
                    "(or input-shape in its [tool.convlint] models entry)",
                    "",
                ),
            )
            return
        yield (
            CVL901,
            Report(f"model `{view.name}` raised when run on meta tensors{at}: {common.describe(exc)}", "", site),
        )
    for m in result.mismatches:
        axis = f"dimension {m.axis}" if m.axis >= 0 else "value"
        yield (
            CVL902,
            Report(
                f"internal: symbolic size {show(m.expression)} of {axis} of {view.describe(m.node)} gives {m.actual}, "
                f"PyTorch gives {m.expected}; treated as unknown",
                "",
                view.site_of(m.node),
            ),
        )
    yield from _unfollowed_reports(view)
    for node, exc in result.transfer_errors:
        yield (
            CVL902,
            Report(
                f"internal: size rule for {view.describe(node)} failed: {common.describe(exc)}",
                "",
                view.site_of(node),
            ),
        )


def _unfollowed_reports(view) -> Iterable[tuple[Rule, Report]]:
    """CVL903 for each op whose sizes could not be followed, if a convolution depends on it."""
    for node, why in view.unfollowed():
        after, seen, stack = 0, {node}, [node]
        while stack:
            for user in stack.pop().users:
                if user not in seen:
                    seen.add(user)
                    stack.append(user)
                    after += view.is_convolution(user) and not view.checked_for_every_size(user)
        inside = 0
        if view.is_leaf(node):
            prefix = f"{node.target}."
            inside = sum(1 for q, m in view.model.named_modules() if q.startswith(prefix) and _is_conv(m))
        count = after + inside
        if not count:
            continue
        where = " after it" if not inside else " in it and after it" if after else " in it"
        message = (
            f"sizes are not followed past {view.describe(node)}: {why}; {count} convolution{'s' * (count != 1)}"
            f"{where} {'are' if count != 1 else 'is'} checked at the example input size only"
        )
        yield CVL903, Report(message, site=view.site_of(node))


def _count_convs(model) -> int:
    return sum(1 for m in model.modules() if _is_conv(m))


def _is_conv(module) -> bool:
    import torch.nn as nn

    return isinstance(module, nn.modules.conv._ConvNd)


def _explained(view, node) -> bool:
    """Did the example input break one of the layer's limits (CVL401/CVL402 say so)?"""
    example = dict(view.sizes.symbols)
    from convlint import sizes

    return any(
        c.node is node and (sizes.evaluate_int(c.expression, example) or 0) < c.minimum for c in view.constraints()
    )


def check_model(
    model,
    input_shapes: Sequence[Sequence[int]] = (),
    *,
    rules: Optional[Sequence[Rule]] = None,
    same: Sequence[str] = (),
    name: Optional[str] = None,
    path: Optional[str] = None,
    line: Optional[int] = None,
    calls: Optional[dict] = None,
    run_every_op: bool = False,
    coverage: Optional[list] = None,
    views: Optional[list] = None,
) -> list[Finding]:
    """Run every rule on one built model; findings sorted by location.

    ``calls`` collects, across a run, the modules each constructor call built, so that
    fixes are planned once every model is seen; without it this model's fixes are
    planned here.
    """

    if rules is None:
        rules = [r for r in all_rules()[0] if r.check is not None]
    plan_here = calls is None
    calls = {} if calls is None else calls
    with analysing(model) as model:
        view, where, input_error = build_view(
            model, input_shapes, same=same, name=name, path=path, line=line, run_every_op=run_every_op
        )
        _collect_calls(view, calls)
        if views is not None:  # kept for the editor's hover (convlint.report.hover)
            views.append(view)
        findings = [_finding(rule, report, view, where) for rule, report in _engine_reports(view, input_error)]
        if coverage is not None:
            checked = not any(f.code == CVL904.code for f in findings)
            for i, count in enumerate(view.coverage if checked else (0, 0, _count_convs(model))):
                coverage[i] += count
        for rule in rules:
            try:
                for report in rule.check(view):
                    findings.append(_finding(rule, report, view, where))
            except Exception as exc:  # one broken rule must not hide the others
                report = Report(f"internal: rule {rule.code} crashed: {common.describe(exc)}", "")
                findings.append(_finding(CVL902, report, view, where))
    if plan_here:
        findings = plan_fixes(findings, calls, rules)
    return visible(findings)


def _site_key(path: str, line: int, column: int, end_line: int, end_column: int) -> tuple:
    return (os.path.abspath(path), line, column, end_line, end_column)


def _collect_calls(view, calls: dict) -> None:
    from convlint import layers

    for info in view.modules:
        if info.site is not None and layers.geometry_of(info.module) is not None:
            s = info.site
            entry = calls.setdefault(_site_key(s.path, s.line, s.column, s.end_line, s.end_column), (s, {}))
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
            groups.setdefault((f.code, _site_key(f.path, f.line, f.column, f.end_line, f.end_column)), []).append(f)
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

    where = _model_location(model, name, path, line)
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
            shapes = infer_input_shapes(model, traced.graph_module if traced else None)
        except InputError as exc:
            input_error = str(exc)
        if input_error:
            analysis = Analysis(error=input_error if traced is not None else f"{trace_error}; {input_error}")
        else:
            analysis = analyse(model, shapes, run_every_op, traced=traced)
    view = ModelView(where.name, where.path, model, shapes, analysis, tuple(same))
    view.inferred_input = not input_shapes
    if shapes and any(info.intent for info in view.modules):
        _analyse_intent(view, run_every_op)
    return view, where, input_error


def _analyse_intent(view, run_every_op) -> None:
    """What the same-intent rules need beyond the model's own graph, when they need it:
    the inputs each module saw (one more run of the model) for a layer that misses "same"
    (its message shows the example) or a block declared "same", which is then analysed on
    its own at that input."""
    from convlint import analysis, capture, layers, sizes

    blocks, missing = [], False
    for info in view.modules:
        geometry = layers.geometry_of(info.module)
        if not info.intent or info.uncalled_container:
            continue
        if geometry is None:
            blocks.append(info)
        elif info.intent != 'padding="same"' and not all(a.verdict.keeps for a in view.layer_axes(geometry)):
            missing = True
    if not blocks and not missing:
        return
    view.inputs = capture.module_inputs(view.model, view.input_shapes, sizes.PREDICTOR)
    for info in blocks:
        if info.qualname not in view.blocks:
            shapes = view.module_inputs(info.qualname)
            view.blocks[info.qualname] = analysis.analyse_block(info.module, shapes, run_every_op)


# ---------------------------------------------------------------- files and targets


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
    # Pre-commit: the configured model is checked only if it runs one of these files;
    # the project files it runs are then recorded under ``key`` (convlint.usage).
    only_if_uses: Optional[frozenset] = None
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
                result.findings.append(report_finding(rule, Report(p.message), _at(p.path, p.line, p.column), p.model))
            result.unchecked.extend(loaded.unchecked)
            built = []
            for candidate in loaded.candidates:
                if explicit:
                    result.configured.append(candidate.obj)
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
            report_finding(CVL900, Report(f"no such file or directory: {item.target}"), _at(item.target))
        )
        return []
    files = load.python_files(item.target, excluded)
    result.files += len(files)
    # the fast path: a file that cannot define a model is not imported
    return (_with_callback(on_file, f) or load.candidates_in_file(f) for f in files if scan.needs_import(f))


def _build(candidate, item: Target, result: Result) -> tuple:
    """(model, files recorded while building it) or (None, None) when it is not checked:
    a build error (a finding), a function that builds no model, no convolution."""
    from convlint import usage

    recorded = set() if item.key else None
    try:
        with usage.recording(recorded) if recorded is not None else contextlib.nullcontext():
            model = load.build(candidate)
    except load.NotAModel as exc:
        if candidate.kind != "factory":
            result.findings.append(_not_built(candidate, exc))
        else:
            result.notes.append(f"{candidate.name}: not a model factory: {exc}")
        return None, None
    except Exception as exc:
        result.findings.append(_not_built(candidate, exc))
        return None, None
    result.used.update(type(m) for m in model.modules())
    if not _spatial(model):
        result.skipped += 1
        result.notes.append(f"{candidate.name}: skipped: no convolution, pooling or padding layer")
        return None, None
    return model, recorded


def _not_built(candidate, exc: Exception) -> Finding:
    report = Report(f"model `{candidate.name}` cannot be built: {common.describe(exc)}")
    return report_finding(CVL901, report, _at(candidate.path, candidate.line), candidate.name)


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


def _with_callback(callback, path: str) -> None:
    if callback is not None:
        callback(path)


def check_source(path: str, rules: Sequence[Rule]) -> list[Finding]:
    """Source rules on one file, before it is imported."""
    findings = []
    for rule in rules:
        try:
            findings += [report_finding(rule, report, report.site) for report in rule.check_source(path)]
        except Exception as exc:  # one broken rule must not hide the others
            report = Report(f"internal: rule {rule.code} crashed: {common.describe(exc)}")
            findings.append(report_finding(CVL902, report, _at(path)))
    return findings


def check_paths(targets: Sequence, options: Options, cache=None, views: Optional[list] = None) -> Result:
    """Check every model the targets name, in one run: fixes are planned once, over every
    module each constructor call built in any of the models.

    With a ``usage.Cache``, the project files that each keyed ``Target``'s model runs are
    recorded into it (and a model that runs none of its ``only_if_uses`` is not reported).
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
            rules = [r for r in rules if selected(r.code, options.select, options.ignore)]
        return rules

    def on_file(path: str) -> None:
        result.findings.extend(check_source(path, [r for r in selected_rules() if r.check_source is not None]))

    for candidate, model, shapes, item, recorded in built_models(targets, options, result, on_file):
        selected_rules()
        with usage.recording(recorded) if recorded is not None else contextlib.nullcontext():
            found = check_model(
                model,
                shapes,
                rules=[r for r in rules if r.check is not None],
                same=options.same,
                name=candidate.name,
                path=candidate.path,
                line=candidate.line,
                calls=calls,
                run_every_op=options.run_every_op,
                coverage=result.coverage,
                views=views,
            )
        if recorded is not None and cache is not None:
            files = usage.project_files(recorded, cache.root)
            cache.store(item.key, files)
            result.usage[item.key] = files
            if item.only_if_uses is not None and not files & item.only_if_uses:
                result.notes.append(f"{candidate.name}: not checked: it runs none of the files given")
                continue
        if candidate.kind == "target" and os.path.abspath(candidate.path) not in files_of_targets:
            files_of_targets.add(os.path.abspath(candidate.path))  # a file named by a target counts once
            result.files += 1
        result.models += not any(f.code == CVL904.code for f in found)
        result.findings.extend(found)
    result.findings.extend(_unchecked_reports(result))
    findings = plan_fixes(result.findings, calls, rules or [])
    result.findings = visible(findings, options.select, options.ignore)
    return result


def _unchecked_reports(result: Result) -> Iterator[Finding]:
    """CVL904 for each class that needs arguments, unless a target names it or a model of
    the run built it (a block checked through that model)."""
    configured = {id(obj) for obj in result.configured}
    for u in result.unchecked:
        if u.obj in result.used or id(u.obj) in configured:
            continue
        report = Report(f"model `{u.name}` was not checked: {u.reason}")
        yield report_finding(CVL904, report, _at(u.path, u.line), u.name)
