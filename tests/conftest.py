import os
import sys

import pytest

# The analysis runs in two modes (convlint.options.Options.run_every_op): the default
# predicts the output of activations, norms, merges, cat, adaptive pooling and
# interpolation from their transfer functions; the other runs every op on meta tensors,
# so that the self-check covers those ops too. The tests of these modules run in both
# modes (they pass the `run_every_op` fixture down, as the CLI passes its options); every
# other test runs in the default mode, the one users run.
BOTH_MODES = {
    "test_sizes", "test_zoo_patterns", "test_whole_model", "test_api", "test_rule_fixtures", "test_rule_snapshots",
}  # fmt: skip

# The built-in rules that the integration fixtures and the CLI tests pin together: a new
# rule brings its own fixture folder and snapshots, and changes none of those tests.
BUILTIN_RULES = (
    "CVL101", "CVL102", "CVL103", "CVL201", "CVL301", "CVL302", "CVL303", "CVL401", "CVL402", "CVL403",
    "CVL900", "CVL901", "CVL902", "CVL903", "CVL904",
)  # fmt: skip

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "fixtures")


def pytest_addoption(parser):
    parser.addoption(
        "--update-snapshots",
        action="store_true",
        help="rewrite the per-rule snapshots (fixtures/rules/CODE/NAME.snap) from what convlint now prints",
    )


def pytest_configure(config):
    # The CLI tests run the installed `convlint`; make sure it is this checkout's.
    sys.path.insert(0, ROOT)
    config.addinivalue_line("markers", "sets_mode: the test chooses the analysis mode of each run itself")


@pytest.fixture
def in_root(monkeypatch):
    """Run with the repository root as working directory (paths in findings are relative)."""
    monkeypatch.chdir(ROOT)
    return ROOT


def pytest_generate_tests(metafunc):
    if metafunc.module.__name__ in BOTH_MODES:
        metafunc.parametrize("run_every_op", [False, True], ids=["default", "run-every-op"], indirect=True)


@pytest.fixture(scope="session")  # session: hypothesis tests may take it
def run_every_op(request) -> bool:
    """The analysis mode of this test (``Options.run_every_op``): both for BOTH_MODES."""
    return getattr(request, "param", False)


@pytest.fixture(autouse=True)
def mode_reaches_the_interpreter(request, monkeypatch, run_every_op):
    """In a test run in both modes, every size propagation the test causes runs in the
    test's mode: a call that drops the option on its way down fails the test."""
    if request.module.__name__ not in BOTH_MODES or request.node.get_closest_marker("sets_mode"):
        yield
        return
    from convlint.sizes import interpreter

    mode, seen = run_every_op, []
    original = interpreter.SizeProp.__init__

    def spy(self, graph_module, input_shadows, symbols, run_every_op):
        seen.append(run_every_op)
        original(self, graph_module, input_shadows, symbols, run_every_op)

    monkeypatch.setattr(interpreter.SizeProp, "__init__", spy)
    yield
    assert all(m == mode for m in seen), f"a size propagation ran with run_every_op={not mode}"
