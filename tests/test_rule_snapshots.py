"""Per-rule snapshots, as ruff has them: ``fixtures/rules/CODE/NAME.py`` is checked with
only rule CODE selected, and ``NAME.snap`` beside it holds the findings exactly as
``convlint check`` prints them, then the ``--diff --unsafe-fixes`` of their fixes.

A fixture's first line may give the run's arguments: ``# args: --input-shape 1,8,32,32``.
``python -m pytest tests/test_rule_snapshots.py --update-snapshots`` rewrites the
snapshots; review them with ``git diff``.
"""

import glob
import os
import re
import shlex

import pytest
from conftest import FIXTURES

from convlint import config, engine, fix, report

CODE = re.compile(r"^[A-Z]{1,3}[0-9]{3}$")  # a folder per rule, named by its code
CASES = sorted(
    p
    for p in glob.glob(os.path.join(FIXTURES, "rules", "*", "*.py"))
    if CODE.match(os.path.basename(os.path.dirname(p)))
)


def arguments(source: str) -> list[str]:
    with open(source, encoding="utf-8") as fh:
        first = fh.readline()
    return shlex.split(first[len("# args:") :]) if first.startswith("# args:") else []


def snapshot(source: str, run_every_op: bool) -> str:
    """What the CLI prints for the fixture with its rule alone, then the fixes' diff."""
    code, path = os.path.basename(os.path.dirname(source)), os.path.relpath(source)
    words = arguments(source)
    shapes = tuple(config.parse_shape(words[i + 1]) for i, w in enumerate(words) if w == "--input-shape")
    options = engine.Options(input_shapes=shapes, select=(code,), run_every_op=run_every_op)
    result = engine.check_paths([path], options)
    diff = "".join(fix.apply(result.findings, unsafe=True, write=False).diffs)
    command = shlex.join(["convlint", "check", path, "--select", code, *words])
    return f"$ {command}\n{report.text(result.findings)}\n$ {command} --diff --unsafe-fixes\n{diff}"


@pytest.mark.parametrize("source", CASES, ids=[os.path.relpath(c, os.path.join(FIXTURES, "rules")) for c in CASES])
def test_rule_alone_gives_its_snapshot(source, in_root, run_every_op, request):
    got = snapshot(source, run_every_op)
    path = source[: -len(".py")] + ".snap"
    if request.config.getoption("--update-snapshots"):
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(got)
    assert os.path.exists(path), f"no snapshot: run pytest {__file__} --update-snapshots"
    with open(path, encoding="utf-8") as fh:
        assert got == fh.read()


def test_every_rule_has_a_fixture_folder_with_a_snapshot_that_reports_it(in_root):
    rules = [r for r in engine.all_rules()[0] if not r.code.startswith("CVL9")]
    for rule in rules:
        folder = os.path.join(FIXTURES, "rules", rule.code)
        snaps = glob.glob(os.path.join(folder, "*.snap"))
        assert snaps, f"{rule.code} has no fixture folder with snapshots ({folder})"
        texts = [open(s, encoding="utf-8").read() for s in snaps]
        assert any(f": {rule.code} " in t for t in texts), f"no snapshot of {rule.code} shows a finding"
