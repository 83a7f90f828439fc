"""The engine's own findings, documented like rules and listed by ``convlint rules``:
CVL900 a file or target not imported, CVL901 a model not built or analysed, CVL902
convlint's own error, CVL903 sizes not followed past an op, CVL904 a model not checked,
CVL905 a script not imported;
and when a model's analysis gives them."""

from __future__ import annotations

from typing import Iterable, Optional

from convlint import common
from convlint.finding import ERROR, INFO
from convlint.registry import Report, Rule

MESSAGE_LIMIT = 320  # a message people read (tests/test_messages.py holds every fixture to it)

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
when run on meta tensors (a size mismatch at a merge, say), at its example input or,
where the sizes that disagree do not depend on the input, at every input size tried
(located at the line that raised). The message gives the reason and, where it can, the
line in `forward`. Rules that need only a layer's own settings
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
Where `forward` itself needs a value that the input's data or the weights decide (`if
x.mean() > 0:`, the boxes an object detector keeps: `torch.where(keep)`, `nms`), the
analysis stops there: the convolutions before it are checked for every size, those
after it are not, and the finding counts them. Values that sizes alone decide (a mask
of zeros made from `x.shape`, `torch.tensor(x.shape[-2:]).tolist()`) are followed.

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
channel or rank mismatch, or the model's own `assert` on its input's sizes, whose line the
message names: the guess was wrong, not the model; convlint tries the channels-last form
too, (1, 224, 224, C), and takes it where the model runs there), or an input size reaches
a convolution's channels while none reaches a convolution's spatial dims (so no dim of
the input can be sized as H or W). A class that a checked
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
CVL905 = Rule(
    "CVL905",
    "script-not-imported",
    INFO,
    "A file that runs a script when it is imported was not imported",
    doc="""\
## What it does
Reports a file that could define a model but whose top level does more than define it:
it trains, evaluates, parses its command line or calls its entry point when it is
imported (`main()`, `args = parser.parse_args()`, `loss.backward()` in a loop), at the
line of the first such call. A directory or pre-commit run never imports it, so no hook
starts a training run. Definitions, imports, constants, registrations, `print` and
`sys.path` set-up do not count, nor does `if __name__ == "__main__":`.

## Why is this bad?
Nothing in that file was checked. The finding is information: it never fails a run.

## Fix
Move the script under `if __name__ == "__main__":`, or name the model so that convlint
imports the file on purpose: `convlint check 'train.py:Net'`, or a `[tool.convlint]
models` entry (`"train:Net"`).
""",
)
ENGINE_RULES = (CVL900, CVL901, CVL902, CVL903, CVL904, CVL905)


def _not_sized_right(view) -> Optional[tuple]:
    """(rule, report) where the sizes, though followed, are not the model's at its input:
    it raised at the example for a reason no op sized there explains (its own Python
    refused the input: an assert)."""
    trace = view.analysis.trace
    if trace is None or trace.example_raised is None or view.sizes.error is not None:
        return None
    why, site = trace.example_raised
    if view.inferred_input:
        return CVL904, Report(f"model `{view.name}` was not checked: {why}; declare its input with --input-shape", "")
    shapes = common.shapes_text(trace.captured_at)
    return CVL901, Report(f"model `{view.name}`: {why}; check the input shape (it runs at {shapes})", "", site)


def _wants_integers(view, node, exc: BaseException) -> Optional[str]:
    """The hint for an input given as floats that an embedding looks up (class labels,
    timesteps, token ids): PyTorch's dtype error names neither the input nor the fix."""
    from convlint import graph

    if node is None or "scalar types: Long, Int" not in str(exc):
        return None
    placeholders = [n for n in view.sizes.graph_module.graph.nodes if n.op == "placeholder"]
    reaching = [i for i, p in enumerate(placeholders) if p in graph.ancestors(node)]
    shapes = view.input_shapes
    which = [i for i in reaching if i < len(shapes) and getattr(shapes[i], "dtype", "float32").startswith("float")]
    if not which:
        return None
    i = which[0]
    given = "x".join(map(str, shapes[i]))
    return (
        f"input {i + 1} ({given}) is looked up by {view.describe(node, line=False)}, which takes integers; "
        f"declare it so: --input-shape {','.join(map(str, shapes[i]))}:int64"
    )


def reports(view, input_error: Optional[str]) -> Iterable[tuple[Rule, Report]]:
    from convlint.pretty import show

    analysis = view.analysis
    if input_error:
        yield CVL904, Report(f"model `{view.name}` was not checked: {input_error}", "")
        return
    if analysis.error:
        if analysis.unsized_input or (analysis.error_site is not None and view.inferred_input):
            # The model's own line refused the input convlint guessed: declare the input.
            yield (
                CVL904,
                Report(
                    f"model `{view.name}` was not checked: {analysis.error}; declare its input with --input-shape", ""
                ),
            )
            return
        # At the line that raised, where running it did (an assert on the input's sizes).
        yield (
            CVL901,
            Report(f"model `{view.name}` {analysis.error}; only layer-level rules ran", "", analysis.error_site),
        )
        return
    result = analysis.sizes
    early = _not_sized_right(view)
    if early is not None:
        yield early
        return
    if result.error is not None and not _explained(view, result.error[0]):
        node, exc = result.error
        site = view.site_of(node) if node is not None else None
        at = f" at {view.describe(node, line=False)}" if node is not None else ""
        line = f" (line {site.line})" if site is not None else ""
        integers = _wants_integers(view, node, exc)
        if integers is not None:  # an input declared float where the model indexes with it
            yield CVL901, Report(f"model `{view.name}`: {integers}", "", site)
            return
        if node is not None and _at_every_size(view, node):
            # No input size runs it (operands whose fixed sizes disagree): the model's
            # error, at its line, whatever input convlint was given or guessed.
            shapes = common.shapes_text(view.input_shapes)
            yield (
                CVL901,
                Report(
                    f"model `{view.name}` raises at {view.describe(node, line=False)} at {shapes} and at every "
                    f"other input size tried (the sizes that disagree do not depend on the input): "
                    f"{common.describe(exc, 160)}",
                    "",
                    site,
                ),
            )
            return
        if view.inferred_input:
            # A channel or rank mismatch at an input convlint guessed says the guess was
            # wrong, not the model: information, with the way to declare it.
            shapes = common.shapes_text(view.input_shapes)
            head = (
                f"model `{view.name}` was not checked: on the input convlint inferred ({shapes}) it raised{at}{line}: "
            )
            tail, where = (
                "; declare its input with --input-shape",
                " (or input-shape in its [tool.convlint] models entry)",
            )
            error = common.describe(exc)
            if len(head + error + tail + where) > MESSAGE_LIMIT:
                where = ""  # the optional part goes first, PyTorch's reason last
                error = common.describe(exc, limit=max(80, MESSAGE_LIMIT - len(head) - len(tail)))
            yield CVL904, Report(head + error + tail + where, "")
            return
        yield (
            CVL901,
            Report(f"model `{view.name}` raised when run on meta tensors{at}: {common.describe(exc, 200)}", "", site),
        )  # at its line: the finding's location names it
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
    """CVL903 for each op whose sizes could not be followed, if a convolution depends on it;
    and where the capture stopped at a value the input's data decides."""
    from convlint import graph, layers

    trace = view.analysis.trace
    if trace is not None and trace.stopped is not None:
        code, why, site = trace.stopped
        count = view.coverage.unchecked
        convolutions = f"the {count} convolutions after it are" if count != 1 else "the convolution after it is"
        yield (
            CVL903,
            Report(
                f"sizes are not followed past {code}: {why}; convlint follows sizes, not data, so "
                f"{convolutions if count else 'what comes after it is'} not checked (give that part a "
                "[tool.convlint] models entry of its own)",
                site=site,
            ),
        )

    # a merge with an operand of unknown size is compared at the example only
    unsized = [m for m, operands in view.merges() if any(None in (a, b) for _, a, b in view.merge_pairs(m, operands))]
    for node, why in view.unfollowed():
        later = graph.descendants(node) - {node}
        after = sum(view.is_convolution(n) and not view.checked_for_every_size(n) for n in later)
        inside = 0
        if view.is_leaf(node):
            prefix = f"{node.target}."
            inside = sum(1 for q, m in view.model.named_modules() if q.startswith(prefix) and layers.is_convolution(m))
        merges = [m for m in unsized if m in later]
        count = after + inside
        if not count and not merges:
            continue
        where = " after it" if not inside else " in it and after it" if after else " in it"
        what = [f"{count} convolution{'s' * (count != 1)}{where}"] if count else []
        if len(merges) == 1:
            what.append(f"the merge {view.describe(merges[0])}")
        elif merges:
            what.append(f"{len(merges)} merges after it ({view.describe(merges[0])} first)")
        plural = count + len(merges) != 1
        message = (
            f"sizes are not followed past {view.describe(node, line=False)}: {why}; {' and '.join(what)}"
            f" {'are' if plural else 'is'} checked at the example input size only"
        )
        yield CVL903, Report(message, site=view.site_of(node))


def _at_every_size(view, node) -> bool:
    """Does the op that raised at the example raise at every input size tried? For an
    inferred input only where a convolution ran before it: the rank and channels guessed
    from the first convolution held there (else the guess may be what is wrong)."""
    from convlint.sizes import probe

    if view.inferred_input:
        before = view.nodes[: view.nodes.index(node)] if node in view.nodes else []
        if not any(view.is_convolution(n) and n in view.sizes.values for n in before):
            return False
    return probe.raises_everywhere(view.sizes, node) is True


def count_convs(model) -> int:
    from convlint import layers

    return sum(1 for m in model.modules() if layers.is_convolution(m))


def _explained(view, node) -> bool:
    """Did the example input break one of the layer's limits (CVL401/CVL402 say so)?"""
    example = dict(view.sizes.symbols)
    from convlint import sizes

    return any(
        c.node is node and (sizes.evaluate_int(c.expression, example) or 0) < c.minimum for c in view.constraints()
    )
