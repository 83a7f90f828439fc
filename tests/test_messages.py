"""Messages people act on: one finding per root cause, merges named by their source, short
conditions, a size of 1 that broadcasts is no failure, a pad layer and its convolution
judged as one, and `convlint shapes` rows for the calls that change sizes. PyTorch is the
oracle wherever a size is claimed."""

import glob
import json
import os
import re
import subprocess
import sys

import pytest
import torch
from conftest import FIXTURES, ROOT

import convlint as lint
from convlint import engine


def fixture(name):
    """A fixture file imported as a module of its own."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name.replace("/", "_")[:-3], os.path.join(FIXTURES, name))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def convlint(*args, cwd=ROOT):
    return subprocess.run(
        [sys.executable, "-m", "convlint", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def all_fixture_findings():
    files = sorted(glob.glob(os.path.join(FIXTURES, "rules", "*.py")))
    files += [os.path.join(FIXTURES, "seed.py"), os.path.join(FIXTURES, "repos", "drn", "drn.py")]
    return engine.check_paths([os.path.relpath(f, ROOT) for f in files], engine.Options()).findings


@pytest.fixture(scope="module")
def fixture_findings():
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        yield all_fixture_findings()
    finally:
        os.chdir(cwd)


def test_no_message_is_longer_than_320_characters(fixture_findings):
    long = [(f.path, f.line, len(f.message)) for f in fixture_findings if len(f.message) > 320]
    assert not long


def test_no_message_names_an_fx_node(fixture_findings):
    # fx names ops after their function, numbered from the second on: add, add_1, cat_3
    fx_name = re.compile(r"`((add|sub|mul|truediv|cat|getitem)(_\d+)?|(stack|sigmoid|pad|interpolate|mean)_\d+)`")
    assert not [f.message for f in fixture_findings if fx_name.search(f.message)]


def test_a_block_shared_by_two_models_is_one_finding_naming_both():
    run = convlint("check", "fixtures/rules/shared_block.py", "--format", "json")
    found = json.loads(run.stdout)
    assert [(f["code"], f["line"]) for f in found] == [("CVL201", 8), ("CVL301", 11)]
    assert all(
        f["model"] == "fixtures/rules/shared_block.py:Small, fixtures/rules/shared_block.py:Large" for f in found
    )
    assert found[1]["message"].startswith("`self.conv(x) + x` in `block` merges different sizes")


def test_the_merges_one_constructor_line_breaks_are_one_finding_with_the_others_related():
    run = convlint("check", "fixtures/repos/drn/drn.py", "--format", "json")
    merges = [f for f in json.loads(run.stdout) if f["code"] == "CVL301"]
    assert len(merges) == 1  # three blocks built by one line, each breaking its own residual add
    (finding,) = merges
    assert finding["message"].endswith("layers built at the same line break 2 more (in `layer2.1` and `layer2.2`)")
    assert [(r["line"], r["message"].split(" merges")[0]) for r in finding["related"]] == [
        (23, "`self.conv2(self.relu(self.conv1(x))) + …` in `layer2.1`"),
        (23, "`self.conv2(self.relu(self.conv1(x))) + …` in `layer2.2`"),
    ]
    sarif = json.loads(convlint("check", "fixtures/repos/drn/drn.py", "--format", "sarif").stdout)
    (result,) = [r for r in sarif["runs"][0]["results"] if r["ruleId"] == "CVL301"]
    assert [loc["physicalLocation"]["region"]["startLine"] for loc in result["relatedLocations"]] == [23, 23]


def test_merges_at_one_line_are_one_finding_and_the_size_maps_go_to_detail():
    run = convlint("check", "fixtures/rules/merges.py", "--format", "json")
    loop = [f for f in json.loads(run.stdout) if f["code"] == "CVL302" and f["line"] == 39]
    assert len(loop) == 1  # four skip concatenations made by one line in a loop
    (finding,) = loop
    assert finding["message"] == (
        "`torch.cat([up(x), skips.pop()], dim=1)` merges tensors whose sizes agree at the example input (224x224) "
        "but not for every input size: it needs H, W multiples of 16 (with the 3 other merges at this line; "
        "the layers need H, W >= 16); it first fails at H = W = 17 (above the example: H = W = 225)"
    )
    assert finding["detail"] == "H: 16*floor(H/16) vs H; W: 16*floor(W/16) vs W"
    assert len(finding["related"]) == 3


def test_the_first_failing_size_skips_sizes_of_1_that_broadcast():
    module = fixture("rules/merges.py")
    findings = engine.check_model(module.BroadcastGate(), ((1, 3, 224, 224),))
    (finding,) = [f for f in findings if f.code == "CVL302"]
    assert "it first fails at H = W = 33" in finding.message
    model = module.BroadcastGate()
    assert model(torch.zeros(1, 3, 17, 17)).shape[-1] == 2  # 1 x 2 broadcasts: it runs
    with pytest.raises(RuntimeError):
        model(torch.zeros(1, 3, 33, 33))  # 2 x 3 does not


def test_a_pad_layer_and_the_convolution_it_feeds_are_blamed_together_or_not_at_all():
    run = convlint("check", "fixtures/rules/dilated_stack.py", "--input-shape", "1,32,64,64")
    (line,) = [x for x in run.stdout.splitlines() if x.startswith("fixtures/rules/dilated_stack.py:26:")]
    assert line.endswith("layers responsible: `stack.3` and `stack.4` (H -> H - 2, W -> W - 2)")
    stack = fixture("rules/dilated_stack.py").ReflectPaddedStack().stack
    x = torch.zeros(1, 32, 64, 64)
    assert stack[1](stack[0](x)).shape[-2:] == (64, 64)  # stack.0 + stack.1 keep the size: not blamed
    assert stack(x).shape[-2:] == (62, 62)


def test_shapes_has_rows_for_size_changing_calls_and_the_sizes_a_linear_fixes():
    run = convlint("shapes", "fixtures/shapes_calls.py:Classifier")
    rows = [line.split("  ")[1].strip() for line in run.stdout.splitlines()[2:-1]]
    assert rows == [
        "x",
        "conv",
        "act",
        "F.pad(x, (1, 1, 1, 1))",
        "conv2",
        "act",
        "self.act(self.conv2(x))[..., 1:…",
        "torch.flatten(x, 1)",
        "fc",
    ]
    assert run.stdout.splitlines()[-1] == (
        "  Model input: runs for 8*(floor((H - 1)/2) + 1)*(floor((W - 1)/2) + 1) = 100352 "
        "(squares: H = W in 223..224): `fc` (Linear)."
    )
    model = fixture("shapes_calls.py").Classifier()
    for size in (223, 224):
        assert model(torch.zeros(1, 3, size, size)).shape == (1, 10)
    for size in (222, 225):
        with pytest.raises(RuntimeError):
            model(torch.zeros(1, 3, size, size))


def test_a_module_shared_by_two_blocks_is_checked_where_it_is_called():
    run = convlint("check", "fixtures/shapes_calls.py:SharedAct")
    assert (run.returncode, run.stdout) == (0, "")


def test_a_branch_that_rounds_a_stride_differently_is_one_finding_for_the_merges_it_feeds():
    run = convlint("check", "fixtures/rules/rounding_branch.py", "--format", "json")
    (finding,) = json.loads(run.stdout)
    assert finding["message"].endswith("2 more merges need the same")
    assert [r["line"] for r in finding["related"]] == [19, 20]
    model = fixture("rules/rounding_branch.py").RoundingBranch()
    assert model(torch.zeros(1, 3, 3, 3)).shape[-1] == 2  # 2 vs 1: broadcasts, runs
    for size in (5, 225):  # where the finding says it first fails
        with pytest.raises(RuntimeError):
            model(torch.zeros(1, 3, size, size))
    assert model(torch.zeros(1, 3, 224, 224)).shape[-1] == 112


def test_a_long_message_drops_its_optional_parts_to_stay_readable():
    from convlint.rules.merges import LIMIT, _fit

    core = "x" * 250
    parts = [(2, " (above the example: H = W = 225)"), (1, "; 8 more merges need the same"), (3, " (in `stages.2`)")]
    assert _fit(core, parts) == core + " (above the example: H = W = 225); 8 more merges need the same"
    assert len(_fit("y" * 300, parts)) <= LIMIT
    assert _fit("z", parts) == "z" + "".join(text for _, text in parts)


class _Dilated(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(4, 4, 3, padding=1, dilation=2)

    def forward(self, x):
        return self.conv(x)


class _Stage(torch.nn.Module):
    """Twelve dilated blocks built by one line: one mistake, one fix, one finding."""

    def __init__(self):
        super().__init__()
        self.stage = torch.nn.Sequential(*[_Dilated() for _ in range(12)])

    def forward(self, x):
        return self.stage(x)


def test_layers_one_constructor_line_built_are_one_finding_naming_how_many():
    (finding,) = lint.check(_Stage, (1, 4, 64, 64))
    assert finding.code == "CVL201" and finding.message.startswith("`stage.0.conv` Conv2d(kernel 3, dilation 2")
    assert finding.message.endswith("; use padding=2; the same call built 11 more (in `stage`)")
    assert len(finding.related) == 11


class _Projected(torch.nn.Module):
    """A projection whose weight expects 16 features where the conv gives 8: it raises at
    any input, at a functional op (described by its source text and line)."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.weight = torch.nn.Parameter(torch.zeros(16, 4))

    def forward(self, x):
        return torch.matmul(self.conv(x).flatten(2).transpose(1, 2), self.weight)


class _NeedsSeven(torch.nn.Module):
    """A Linear after a flatten that needs 7x7 maps: the inferred 224 raises, 112 runs."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, stride=16, padding=1)
        self.fc = torch.nn.Linear(8 * 7 * 7, 10)

    def forward(self, x):
        return self.fc(self.conv(x).flatten(1))


def test_a_raise_no_input_size_fixes_is_an_error_at_its_line_and_one_a_size_fixes_is_info():
    (error,) = lint.check(_Projected)
    assert error.code == "CVL901" and "at every other input size tried" in error.message
    assert not re.findall(r"\(line \d+\)", error.message), error.message  # the location says it, once
    (info,) = lint.check(_NeedsSeven)
    assert info.code == "CVL904" and "declare its input" in info.message
    real = _NeedsSeven()
    real(torch.zeros(1, 3, 112, 112))  # a size fixes it: PyTorch runs there
    with pytest.raises(RuntimeError):
        _Projected()(torch.zeros(1, 3, 112, 112))


def test_a_float_input_an_embedding_looks_up_gets_the_int64_hint():
    import importlib.util

    from convlint.common import Shape

    spec = importlib.util.spec_from_file_location("execution_fixture", os.path.join(FIXTURES, "execution.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (error,) = [f for f in lint.check(module.TinyDenoiser, [(1, 3, 32, 32), (1,)]) if f.code == "CVL901"]
    assert error.message.endswith(
        "input 2 (1) is looked up by `embed` (Embedding), which takes integers; declare it so: --input-shape 1:int64"
    )
    assert error.line == 168
    assert not [
        f for f in lint.check(module.TinyDenoiser, [(1, 3, 32, 32), Shape((1,), "int64")]) if f.code == "CVL901"
    ]
