"""``convlint`` on the command line. Exit codes as ruff: 0 clean, 1 findings, 2 error."""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import sys
import warnings
from typing import Optional, Sequence

from convlint.common import VERSION

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


def _analysis_flags(command: argparse.ArgumentParser) -> None:
    """Flags of every command that analyses models."""
    command.add_argument(
        "--run-every-op",
        action="store_true",
        help="run every op on meta tensors, also those whose sizes convlint predicts (slower; a stronger self-check)",
    )
    command.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="also show the warnings raised while models were imported, built and run, and the models skipped; "
        "-vv also what convlint caught and worked around on the way (a debug log)",
    )


def _input_shape(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--input-shape",
        action="append",
        default=[],
        metavar="N,C,H,W[:DTYPE]",
        help="example input shape (DTYPE: int64 for token ids); repeat once per forward() input (default: inferred)",
    )


def _config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", default=None, metavar="PYPROJECT", help="pyproject.toml to read [tool.convlint] from"
    )


class _Formatter(argparse.HelpFormatter):
    """Help and usage at one width, whatever the terminal's: the README shows them as printed."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, width=100)


def usage() -> str:
    """Every command's usage line, as ``--help`` prints it (the README's usage block)."""
    parser, commands = _parser()
    return "".join(p.format_usage() for p in [parser, *commands.values()])


def _parser() -> tuple[argparse.ArgumentParser, dict]:
    parser = argparse.ArgumentParser(
        prog="convlint", description="Static shape checker for PyTorch convolutions.", formatter_class=_Formatter
    )
    parser.add_argument("--version", action="version", version=f"convlint {VERSION}")
    commands = parser.add_subparsers(dest="command", required=True)

    check = commands.add_parser("check", formatter_class=_Formatter, help="check model files or module:NAME targets")
    check.add_argument(
        "targets",
        nargs="*",
        help="files, directories, pkg.module:NAME or path/file.py:NAME (default: . and the configured models)",
    )
    _input_shape(check)
    check.add_argument(
        "--format", choices=["text", "grouped", "json", "sarif", "github"], default="text", help="report format"
    )
    check.add_argument("-o", "--output-file", metavar="FILE", help="write the report to FILE instead of stdout")
    check.add_argument("--select", default=None, metavar="CODES", help="comma-separated code prefixes to check")
    check.add_argument("--ignore", default=None, metavar="CODES", help="comma-separated code prefixes to skip")
    check.add_argument(
        "--same", action="append", default=[], metavar="GLOB", help="qualified module names that keep their size"
    )
    _config(check)
    check.add_argument("--exit-zero", action="store_true", help="exit 0 even when there are findings")
    check.add_argument("--fix", action="store_true", help="apply safe fixes to the source, then report what remains")
    check.add_argument("--unsafe-fixes", action="store_true", help="also apply (and mark) unsafe fixes")
    check.add_argument("--diff", action="store_true", help="print a diff of what --fix would change; write nothing")
    check.add_argument(
        "--no-cache", action="store_true", help="do not read or write the cache of which files each model runs"
    )
    check.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=None,
        metavar="N",
        help="analyse models in N worker processes (default: one per core when there are several models; 1: none)",
    )
    _analysis_flags(check)

    shapes = commands.add_parser(
        "shapes", formatter_class=_Formatter, help="print every tensor's concrete and symbolic sizes"
    )
    shapes.add_argument("targets", nargs="+", help="files, directories, pkg.module:NAME or path/file.py:NAME")
    _input_shape(shapes)
    shapes.add_argument("--format", choices=["text", "json"], default="text", help="report format")
    shapes.add_argument(
        "--dynamic-shapes",
        nargs="?",
        const=0,
        type=int,
        metavar="MAX",
        help="also the dynamic_shapes of torch.export by the input domain, each size at most MAX "
        "(default: 4 times the example's), and the minimum/optimum/maximum shapes",
    )
    _config(shapes)
    _analysis_flags(shapes)

    drawn = commands.add_parser(
        "graph",
        formatter_class=_Formatter,
        help="draw the analysed graph with symbolic sizes on its edges and the findings' merges and paths marked",
    )
    drawn.add_argument("targets", nargs="+", help="files, directories, pkg.module:NAME or path/file.py:NAME")
    _input_shape(drawn)
    drawn.add_argument(
        "--format",
        choices=["mermaid", "markdown", "dot", "svg", "html"],
        default="mermaid",
        help="mermaid (GitHub renders it), markdown (mermaid with the findings, for a job summary), "
        "dot (Graphviz), or a self-contained svg or html file",
    )
    drawn.add_argument("-o", "--output-file", metavar="FILE", help="write the picture to FILE instead of stdout")
    drawn.add_argument(
        "--depth",
        type=int,
        default=-1,
        metavar="N",
        help="draw blocks deeper than N module levels as one node each (0: only the model's own ops and its "
        "children; default: the deepest level that keeps the picture readable)",
    )
    drawn.add_argument(
        "--focus",
        metavar="CODE|LINE",
        help="draw only the part of the graph the first finding with this code (CVL301) or at this line "
        "(42, net.py:42) concerns: its merge, the two operand paths and a little context",
    )
    drawn.add_argument("--select", default=None, metavar="CODES", help="comma-separated code prefixes to draw")
    drawn.add_argument("--ignore", default=None, metavar="CODES", help="comma-separated code prefixes not to draw")
    _config(drawn)
    _analysis_flags(drawn)

    server = commands.add_parser(
        "server",
        formatter_class=_Formatter,
        help='the language server (LSP over stdio) for editors; needs pip install "convlint[server]"',
    )
    server.add_argument(
        "--timeout", type=float, default=120.0, metavar="SECONDS", help="stop a check that runs longer (default 120)"
    )

    rules = commands.add_parser("rules", formatter_class=_Formatter, help="list the rules, or explain one")
    rules.add_argument("code", nargs="?", help="a rule's code (CVL101) or name: its documentation")
    rules.add_argument("--markdown", action="store_true", help="every rule's documentation as one Markdown page")
    return parser, {"check": check, "shapes": shapes, "graph": drawn, "rules": rules, "server": server}


def _codes(text: Optional[str]) -> Optional[tuple[str, ...]]:
    """``--select CVL1,cvl302`` -> ("CVL1", "CVL302"); None when not given."""
    if text is None:
        return None
    return tuple(c.strip().upper() for c in text.split(",") if c.strip())


def _configuration(args):
    """(the [tool.convlint] configuration, the --input-shape shapes), or None after saying
    on stderr why they cannot be read."""
    from convlint import config as config_mod

    try:
        return config_mod.load(args.config), tuple(config_mod.parse_shape(s) for s in args.input_shape)
    except config_mod.ConfigError as exc:
        print(f"convlint: error: {exc}", file=sys.stderr)
        return None


def _check(args) -> int:
    loaded = _configuration(args)
    if loaded is None:
        return EXIT_ERROR
    config, shapes = loaded

    from convlint import engine, report

    options = config.options(
        input_shapes=shapes,
        same=tuple(args.same),
        select=_codes(args.select),
        ignore=_codes(args.ignore),
        run_every_op=args.run_every_op,
    )
    configured = config.targets()
    # no target: the project, as ruff checks `.`, and the configured models
    targets, cache = list(args.targets) or [*configured, "."], None
    if args.targets and configured:
        # File names with models configured (a pre-commit hook): the files themselves, and
        # every configured model that runs one of them.
        from convlint import usage

        cache = usage.Cache(os.path.dirname(os.path.abspath(config.path)), enabled=not args.no_cache)
        touched, untouched_files = usage.touched(configured, args.targets, cache)
        targets += touched
    # In a GitHub Actions job, --format github also writes the job summary: the failing
    # models' pictures (their analysed views are kept for it).
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY") if args.format == "github" and not args.fix else None
    from convlint.report.progress import progress_line

    shown = sys.stderr.isatty() and args.format not in ("json", "sarif")
    with _report_only_stdout(), progress_line(shown) as progress:
        result = engine.check_paths(
            targets, options, cache, keep_views=bool(step_summary), jobs=args.jobs, progress=progress
        )
    if cache is not None:
        cache.save()
        _say_unused(args.targets, untouched_files, result)
    for problem in result.problems:  # a plugin that did not load: an error, as flake8 has it
        print(f"convlint: error: {problem}", file=sys.stderr)
    if args.verbose:
        for note in result.notes:
            print(f"convlint: note: {note}", file=sys.stderr)
    if args.diff or args.fix:
        return _fix(args, result)
    context = report.Context(unsafe=args.unsafe_fixes)
    if args.format == "sarif":
        context.rules = engine.all_rules()[0]
    _emit(report.FORMATS[args.format](result.findings, context), args.output_file)
    summary = report.summary(
        result.findings,
        result.models,
        result.files,
        unsafe=args.unsafe_fixes,
        coverage=result.coverage,
        skipped=result.skipped,
        domains=result.domains,
        broken_plugins=len(result.problems),
    )
    print(summary, file=sys.stderr)
    if step_summary:
        _job_summary(step_summary, result, summary)
    if result.problems:  # the rules it would have run were not: no pass, whatever was found
        return EXIT_ERROR
    # Info findings say what was not checked; they do not fail a commit or a CI gate.
    if any(f.severity != "info" for f in result.findings) and not args.exit_zero:
        return EXIT_FINDINGS
    return EXIT_CLEAN


def _job_summary(path: str, result, summary: str) -> None:
    from convlint import engine
    from convlint.report import draw

    with _report_only_stdout():  # drawing reads facts that can run model code
        pictures = engine.failing_pictures(result)
    with open(path, "a", encoding="utf-8") as fh:  # appended: other steps write theirs
        fh.write(draw.job_summary(pictures, summary))


def _say_unused(given: Sequence[str], others: set, result) -> None:
    """A changed file that no configured model runs is said to be so: the hook checked
    what the file itself defines, and nothing configured rests on it."""
    used = set(others).union(*result.usage.values(), result.checked_files)  # its own models were checked
    for path in given:
        if os.path.isfile(path) and path.endswith(".py") and os.path.abspath(path) not in used:
            print(f"convlint: {path}: no configured model runs this file", file=sys.stderr)


@contextlib.contextmanager
def _report_only_stdout():
    """While user code is imported, built, traced and run, what it prints goes to stderr:
    stdout carries only the report (so --format json and sarif stay valid). Redirected at
    the file descriptor too, for what C extensions and child processes write."""
    sys.stdout.flush()
    real = sys.stdout
    try:
        saved = os.dup(1)
        os.dup2(2, 1)
    except OSError:  # no usable descriptor 1 (an embedding host): Python's prints only
        saved = None
    sys.stdout = sys.stderr
    try:
        yield
    finally:
        sys.stderr.flush()
        sys.stdout = real
        if saved is not None:
            os.dup2(saved, 1)
            os.close(saved)


def _emit(text: str, output_file: Optional[str]) -> None:
    if output_file:
        with open(output_file, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()


def _fix(args, result) -> int:
    """--diff shows what --fix would write; --fix writes it, then checks again.

    The second check runs in a fresh process: the fixed files must be imported anew,
    and whatever remains (a block finding its layers' fixes cured, say) is then exact.
    """
    import subprocess

    from convlint import fix

    outcome = fix.apply(result.findings, unsafe=args.unsafe_fixes, write=not args.diff)
    for path, reason in outcome.errors:
        print(f"convlint: error: {path}: {reason}", file=sys.stderr)
    # What was left for --unsafe-fixes is said, so an empty diff is never a mystery.
    hidden = 0 if args.unsafe_fixes else sum(f.fixable(True) and not f.fixable(False) for f in result.findings)
    left = f" ({hidden} more fix{'es' * (hidden != 1)} with `--unsafe-fixes`)" if hidden else ""
    if args.diff:
        sys.stdout.write("".join(outcome.diffs))
        sys.stdout.flush()
        count = len(outcome.fixed)
        print(f"Would fix {count} finding{'s' * (count != 1)}{left}.", file=sys.stderr)
        return EXIT_FINDINGS if outcome.diffs and not args.exit_zero else EXIT_CLEAN
    count = len(outcome.fixed)
    files = len(outcome.written)
    print(f"Fixed {count} finding{'s' * (count != 1)} in {files} file{'s' * (files != 1)}{left}.", file=sys.stderr)
    sys.stderr.flush()
    again = [a for a in args.argv if a not in ("--fix", "--unsafe-fixes", "--diff")]
    return subprocess.run([sys.executable, "-m", "convlint", *again]).returncode


def _shapes(args) -> int:
    loaded = _configuration(args)
    if loaded is None:
        return EXIT_ERROR
    config, shapes = loaded
    from convlint import engine, report

    result = engine.Result()
    views, unanalysed = [], []
    options = config.options(input_shapes=shapes, run_every_op=args.run_every_op)
    with _report_only_stdout():
        for candidate, model, _shapes, _target, _files in engine.built_models(args.targets, options, result):
            with engine.analysing(model) as model:
                view, _, input_error = engine.build_view(
                    model,
                    options.input_shapes,
                    same=options.same,
                    name=candidate.name,
                    path=candidate.path,
                    line=candidate.line,
                    run_every_op=options.run_every_op,
                )
                views.append(view)
                why = input_error or view.analysis.error
                if why is None and view.sizes is not None and view.sizes.error is not None:
                    why = f"sizes stop at {view.describe(view.sizes.error[0])}" if view.sizes.error[0] else "sizes stop"
                if why:
                    unanalysed.append(f"convlint: {candidate.name}: not analysed: {why}\n")
    dynamic = None if args.dynamic_shapes is None else (args.dynamic_shapes or None,)
    sys.stdout.write((report.shapes_json if args.format == "json" else report.shapes_text)(views, dynamic))
    sys.stdout.flush()
    sys.stderr.write("".join(unanalysed))
    if result.findings:
        sys.stderr.write(report.text(result.findings))
    # a target that could not be analysed (imported, built, traced, run) is no report
    return EXIT_FINDINGS if result.findings or unanalysed else EXIT_CLEAN


def _graph(args) -> int:
    loaded = _configuration(args)
    if loaded is None:
        return EXIT_ERROR
    config, shapes = loaded
    from convlint import engine, report
    from convlint.report import draw

    options = config.options(
        input_shapes=shapes, run_every_op=args.run_every_op, select=_codes(args.select), ignore=_codes(args.ignore)
    )
    depth = None if args.depth is not None and args.depth < -1 else args.depth
    with _report_only_stdout():
        pictures, result = engine.pictures(args.targets, options, depth=depth, focus=args.focus)
    if not pictures and result.views and args.focus:
        print(f"convlint: no finding matches --focus {args.focus}: nothing to draw", file=sys.stderr)
        return EXIT_CLEAN
    if not pictures:
        sys.stderr.write(report.text(result.findings))
        print("convlint: error: no model to draw", file=sys.stderr)
        return EXIT_ERROR
    _emit(draw.FORMATS[args.format](pictures), args.output_file)
    if args.output_file:
        print(f"convlint: wrote {args.output_file}", file=sys.stderr)
    return EXIT_CLEAN


def _server(timeout: float) -> int:
    try:
        import pygls  # noqa: F401
    except ImportError:
        print('convlint: error: the server needs pygls: pip install "convlint[server]"', file=sys.stderr)
        return EXIT_ERROR
    from convlint import server

    return server.main(timeout)


def _rules(args) -> int:
    from convlint import engine, report

    rules, problems = engine.all_rules()
    for problem in problems:
        print(f"convlint: warning: {problem}", file=sys.stderr)
    if args.markdown:
        sys.stdout.write(report.rules_markdown(rules))
        return EXIT_CLEAN
    if args.code:
        rule = next((r for r in rules if r.code == args.code.upper()), None)
        if rule is None:
            print(f"convlint: error: no rule {args.code}", file=sys.stderr)
            return EXIT_ERROR
        sys.stdout.write(report.rule_doc(rule))
        return EXIT_CLEAN
    for rule in rules:
        print(
            f"{rule.code}  {rule.name:<26} {rule.severity:<8} {'fixable' if rule.fixable else '       '}  {rule.summary}"
        )
    return EXIT_CLEAN


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, commands = _parser()
    if argv and argv[0] in commands:
        # options may come between paths, as in ruff: convlint check a.py --format json b.py
        args = commands[argv[0]].parse_intermixed_args(argv[1:])
        args.command = argv[0]
    else:
        args = parser.parse_args(argv)
    args.argv = argv
    # Warnings from torch's import (its NumPy warning where numpy is absent), from the
    # user's code and from deprecations are not convlint's report: collected, and shown
    # on stderr only with --verbose.
    if getattr(args, "verbose", 0) >= 2:
        _debug_log()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            return _run(args)
        finally:
            if getattr(args, "verbose", False):
                for w in caught:
                    print(
                        f"convlint: note: {w.filename}:{w.lineno}: {w.category.__name__}: {w.message}", file=sys.stderr
                    )
            # The process ends now: what is alive is frozen, so that the interpreter's last
            # garbage collection does not walk every object torch and sympy made (0.4 s of
            # a 1.9 s check of one model file).
            gc.freeze()


def _debug_log() -> None:
    """What convlint caught and worked around (an op it ran instead of predicting, a model
    built on the CPU because its constructor needs data) on stderr."""
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("convlint: debug: %(name)s: %(message)s"))
    logger = logging.getLogger("convlint")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)


def _run(args) -> int:
    try:
        if args.command == "check":
            return _check(args)
        if args.command == "shapes":
            return _shapes(args)
        if args.command == "graph":
            return _graph(args)
        if args.command == "server":
            return _server(args.timeout)
        return _rules(args)
    except KeyboardInterrupt:
        return EXIT_ERROR
    except Exception as exc:  # the tool's own failure: exit 2, with the reason
        import traceback

        traceback.print_exc()
        print(f"convlint: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
