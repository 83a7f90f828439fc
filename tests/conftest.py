import os
import sys

import pytest

# The analysis runs in two modes (convlint.options.Options.run_every_op): the default
# predicts the output of activations, norms, merges, cat, adaptive pooling and
# interpolation from their transfer functions; the other runs every op on meta tensors,
# so that the self-check covers those ops too. The tests of these modules run in both
# modes; every other test runs in the default mode, the one users run.
BOTH_MODES = {"test_sizes", "test_zoo_patterns", "test_whole_model", "test_api", "test_rule_fixtures"}

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "fixtures")


@pytest.fixture
def in_root(monkeypatch):
    """Run with the repository root as working directory (paths in findings are relative)."""
    monkeypatch.chdir(ROOT)
    return ROOT


def pytest_configure(config):
    # The CLI tests run the installed `convlint`; make sure it is this checkout's.
    sys.path.insert(0, ROOT)


def pytest_generate_tests(metafunc):
    if metafunc.module.__name__ in BOTH_MODES:
        metafunc.parametrize("analysis_mode", ["default", "run-every-op"], indirect=True)


@pytest.fixture(autouse=True)
def analysis_mode(request, monkeypatch):
    """The analysis mode of this test: both for the modules in BOTH_MODES."""
    from convlint import options

    mode = getattr(request, "param", "default")
    monkeypatch.setattr(options, "DEFAULT", options.Options(run_every_op=mode == "run-every-op"))
    return mode
