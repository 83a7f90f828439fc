import os
import re
import sys

import pytest

# A transfer function that raises where PyTorch runs the op fails the test that meets it
# (convlint.sizes.interpreter.STRICT_TRANSFERS); users' runs fall back to running the op.
os.environ.setdefault("CONVLINT_STRICT_TRANSFERS", "1")

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
    "CVL900", "CVL901", "CVL902", "CVL903", "CVL904", "CVL905",
)  # fmt: skip

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "fixtures")


# PyTorch as the oracle of the input domain: every square size from 1 to 64 and non-square
# pairs up to 232 (sides swapped, and products kept: 16x64 has the features of 32x32).
SQUARES = range(1, 65)
PAIRS = [(a, b) for a in (1, 2, 3, 16, 17, 31, 32, 33, 64, 65, 224, 232) for b in (1, 2, 5, 19, 32, 63, 224, 231)]
PAIRS += [(8, 128), (128, 8), (16, 64), (64, 16), (17, 65), (96, 48), (48, 96)]


README_BLOCK = re.compile(r"<!-- ([\w-]+) -->\n```(\w*)\n(.*?)```", re.S)


def readme_blocks() -> dict:
    """The README's code blocks by the name of the ``<!-- name -->`` comment before each:
    name -> (language, text)."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as fh:
        return {m.group(1): (m.group(2), m.group(3)) for m in README_BLOCK.finditer(fh.read())}


def readme_block(name: str) -> str:
    return readme_blocks()[name][1]


def runs(model, shape, dtype: str = "float32") -> bool:
    """Does the real model run on a tensor of this shape?"""
    import torch

    try:
        with torch.no_grad():
            model(torch.zeros(shape, dtype=getattr(torch, dtype)))
        return True
    except Exception:  # PyTorch refuses the size (or the model raises on it): not in the domain
        return False


def domain_disagreements(domain, model, squares=SQUARES, pairs=PAIRS) -> list:
    """Where the domain and its statement disagree with the real model, size by size: an
    exact domain (``contains`` and every part of the statement) everywhere, an inexact
    one wherever it ``refuses`` a size. [(sizes, what convlint says, PyTorch runs)]"""
    from convlint import domain_statement
    from convlint.common import with_spatial_sizes

    example = domain.input_shapes[0]
    ndim, dtype = len(domain.symbols), getattr(example, "dtype", "float32")

    def at(spatial):  # the example with these spatial sizes, at its spatial axes
        return tuple(with_spatial_sizes(example, spatial))

    said = domain_statement.state(domain) if domain.exact else None
    wrong = []
    for spatial in [(n,) * ndim for n in squares] + (list(pairs) if ndim == 2 else []):
        real = runs(model, at(spatial), dtype)
        if said is not None:
            claims = {
                "contains": domain.contains(at(spatial)),
                "statement": dict(zip(domain.symbols, spatial)) in said,
            }
            wrong += [(spatial, f"{k}: {v}", real) for k, v in claims.items() if v != real]
        elif real and domain.refuses(at(spatial)):
            wrong.append((spatial, "refuses", real))
    if said is not None and said.first is not None:  # the first failure it names fails, no square before it
        first = tuple(said.first[s] for s in domain.symbols)
        if runs(model, at(first), dtype):
            wrong.append((first, f"first fails at {first}", True))
        if len(set(first)) == 1:
            low = max(said.lowest.values())
            wrong += [
                ((n,) * ndim, "runs before the first failure", False)
                for n in range(low, first[0])
                if not runs(model, at((n,) * ndim), dtype)
            ]
    return wrong


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

    def spy(self, graph_module, input_shadows, symbols, run_every_op, guards=None):
        seen.append(run_every_op)
        original(self, graph_module, input_shadows, symbols, run_every_op, guards)

    monkeypatch.setattr(interpreter.SizeProp, "__init__", spy)
    yield
    assert all(m == mode for m in seen), f"a size propagation ran with run_every_op={not mode}"
