"""Integration fixtures, as TorchFix has them: ``fixtures/rules/NAME.py`` beside
``NAME.expected``, checked with the rules below together (per-rule snapshots are in
``fixtures/rules/CODE/``, see test_rule_snapshots.py).

The expected file holds the exact findings, one ``LINE:COL CODE message`` per line,
after an optional ``# args: --input-shape ...`` line; ``--update-snapshots`` rewrites them. A fixture with no findings has an
expected file with no finding lines, so correct designs stay clean.
"""

import glob
import os
import shlex

import pytest
from conftest import BUILTIN_RULES, FIXTURES

from convlint import config, engine

CASES = sorted(glob.glob(os.path.join(FIXTURES, "rules", "*.expected")))


def read_expected(path):
    shapes, same, lines = (), (), []
    with open(path, encoding="utf-8") as fh:
        for raw in fh.read().splitlines():
            if raw.startswith("# args:"):
                words = shlex.split(raw[len("# args:") :])
                shapes = tuple(config.parse_shape(words[i + 1]) for i, w in enumerate(words) if w == "--input-shape")
                same = tuple(words[i + 1] for i, w in enumerate(words) if w == "--same")
            elif raw.strip():
                lines.append(raw)
    return shapes, same, lines


@pytest.mark.parametrize("expected", CASES, ids=[os.path.basename(c)[: -len(".expected")] for c in CASES])
def test_fixture_gives_exactly_its_expected_findings(expected, in_root, run_every_op, request):
    source = expected[: -len(".expected")] + ".py"
    shapes, same, want = read_expected(expected)
    result = engine.check_paths(
        [os.path.relpath(source)],
        engine.Options(input_shapes=shapes, same=same, select=BUILTIN_RULES, run_every_op=run_every_op),
    )
    got = [f"{f.line}:{f.column} {f.code} {f.message}" for f in result.findings]
    if request.config.getoption("--update-snapshots"):  # rewrite the finding lines, keep the header
        with open(expected, encoding="utf-8") as fh:
            header = [line for line in fh.read().splitlines() if line.startswith("# args:")]
        with open(expected, "w", encoding="utf-8") as fh:
            fh.write("".join(line + "\n" for line in [*header, *got]))
        want = got
    assert all(f.path == os.path.relpath(source) for f in result.findings)
    assert got == want
