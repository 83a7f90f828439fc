"""The input domain against PyTorch, size by size (issue 20's oracle): for every fixture
model, ``convlint.domain(...).contains`` is compared with a real run of the model on the
CPU, over every square size from 1 to 64 and non-square pairs up to 232.

An exact domain must agree at every size. An inexact one (sizes followed at the example
only, a branch whose other side was never run, a model that raised at its example) must
still be right where it ``refuses`` a size: a condition fails within the branches that
lead to it, and PyTorch raises there.
"""

import importlib.util
import inspect
import math
import os
import sys

import pytest
import torch
import torch.nn as nn
from conftest import FIXTURES, domain_disagreements, runs

import convlint
from convlint import config
from convlint.common import spatial_axes

FILES = [
    *sorted(
        os.path.join(FIXTURES, "rules", f) for f in os.listdir(os.path.join(FIXTURES, "rules")) if f.endswith(".py")
    ),
    os.path.join(FIXTURES, "execution.py"),
    os.path.join(FIXTURES, "dilated_loop.py"),
]


def _arguments(path: str) -> tuple:
    expected = path[:-3] + ".expected"
    lines = open(expected, encoding="utf-8").read().splitlines() if os.path.exists(expected) else []
    words = next((line[len("# args:") :].split() for line in lines if line.startswith("# args:")), [])
    return tuple(config.parse_shape(words[i + 1]) for i, w in enumerate(words) if w == "--input-shape")


def _models(path: str) -> list:
    name = "domain_" + os.path.basename(path)[:-3]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception:  # a fixture that does not import (broken_import.py) has no model
        return []
    found = []
    for obj in vars(module).values():
        if inspect.isclass(obj) and issubclass(obj, nn.Module) and obj.__module__ == name:
            params = inspect.signature(obj).parameters.values()
            if not any(p.default is p.empty and p.kind is p.POSITIONAL_OR_KEYWORD for p in params):
                found.append(obj)
    return found


CASES = [(path, cls) for path in FILES for cls in _models(path)]


def _runs(model, shape, dtype: str) -> bool:
    return runs(model, shape, dtype)


@pytest.mark.parametrize("path, cls", CASES, ids=[f"{os.path.basename(p)[:-3]}:{c.__name__}" for p, c in CASES])
def test_domain_and_its_statement_agree_with_pytorch_at_every_size(path, cls):
    shapes = _arguments(path)
    try:
        domain = convlint.domain(cls, shapes[0] if len(shapes) == 1 else shapes)
    except Exception as exc:  # a model convlint cannot build (it refuses padding="same" at stride 2)
        pytest.skip(f"not built: {type(exc).__name__}")
    if len(domain.input_shapes) != 1 or not domain.symbols:
        pytest.skip("one spatial input only")
    torch.manual_seed(0)
    wrong = domain_disagreements(domain, cls().eval())
    assert not wrong, f"(sizes, what convlint says, PyTorch runs) disagree: {wrong[:8]} ({len(wrong)} in all)"


@pytest.mark.parametrize("path, cls", CASES, ids=[f"{os.path.basename(p)[:-3]}:{c.__name__}" for p, c in CASES])
def test_each_dim_stated_is_the_sizes_pytorch_runs_with_the_others_at_the_example(path, cls):
    """What a summary states of a dim (``H, W multiples of 16``) is exactly the sizes at
    which the real model runs, the other dims at their example sizes."""
    from convlint import domain_statement

    shapes = _arguments(path)
    try:
        domain = convlint.domain(cls, shapes[0] if len(shapes) == 1 else shapes)
    except Exception as exc:
        pytest.skip(f"not built: {type(exc).__name__}")
    if len(domain.input_shapes) != 1 or not domain.symbols or not domain.exact:
        pytest.skip("one spatial input, an exact domain")
    torch.manual_seed(0)
    real = cls().eval()
    example = domain.input_shapes[0]
    for axis, symbol in zip(spatial_axes(example), domain.symbols):
        stated = domain_statement.axis_set(domain, symbol)
        for n in range(1, 97):
            shape = list(example)
            shape[axis] = n
            assert (n in stated) == _runs(real, tuple(shape), getattr(example, "dtype", "float32")), (symbol, n, stated)


def test_a_clean_check_says_which_sizes_it_covers_when_the_model_runs_at_one_size(in_root):
    import subprocess

    run = subprocess.run(
        [sys.executable, "-m", "convlint", "check", "fixtures/rules/fixed_size.py", "--input-shape", "1,3,32,32"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert run.stderr.endswith(
        "All checks passed! (1 model in 1 file; runs only for 8*floor(H/2)*floor(W/2) = 2048 "
        "(squares: H = W in 32..33): `fc` (Linear))\n"
    )
    model = _models(os.path.join(FIXTURES, "rules", "fixed_size.py"))[0]().eval()
    assert [n for n in range(1, 129) if _runs(model, (1, 3, n, n), "float32")] == [32, 33]
    assert _runs(model, (1, 3, 16, 64), "float32")  # not a square: the condition is the truth


class TinyViT(nn.Module):
    """Patches of 8, a class token and a position table for 4x4 patches, and an assert on
    the height as timm writes it: runs at 32x32 only (and the table alone allows 32..39)."""

    def __init__(self):
        super().__init__()
        self.patch = nn.Conv2d(3, 16, 8, stride=8)
        self.cls = nn.Parameter(torch.zeros(1, 1, 16))
        self.pos = nn.Parameter(torch.zeros(1, 17, 16))

    def forward(self, x):
        torch._assert(x.shape[2] == 32, "height must be 32")
        tokens = self.patch(x).flatten(2).transpose(1, 2)
        return torch.cat([self.cls.expand(x.shape[0], -1, -1), tokens], dim=1) + self.pos


def test_token_merges_and_traced_asserts_bound_the_domain_as_pytorch_does():
    domain = convlint.domain(TinyViT, (1, 3, 32, 32))
    assert domain.exact
    assert {c.kind for c in domain.conditions} >= {"merge", "assert"}
    real = TinyViT().eval()
    for h, w in [(n, n) for n in range(1, 65)] + [(32, n) for n in range(1, 65)] + [(n, 32) for n in range(1, 65)]:
        assert domain.contains((1, 3, h, w)) == _runs(real, (1, 3, h, w), "float32"), (h, w)


def test_or_one_of_them_1_is_said_only_where_a_side_of_the_merge_can_be_1():
    """A broadcast is a way out only where an operand's size can be 1: a map added to its
    transpose runs at 1 x 32; a token count with a class token is 2 at least."""
    patterns = {cls.__name__: cls for cls in _models(os.path.join(FIXTURES, "rules", "domain_patterns.py"))}
    transposed = str(convlint.domain(patterns["Transposed"], (1, 3, 32, 32)))
    table = convlint.domain(patterns["ClassTokenTable"], (1, 3, 32, 32))
    assert "H = W (or one of them 1)" in transposed and _runs(patterns["Transposed"]().eval(), (1, 3, 1, 32), "float32")
    assert str(table).startswith("65 = floor(H/4)*floor(W/4) + 1 (squares") and "one of them 1" not in str(table)
    assert not domain_disagreements(table, patterns["ClassTokenTable"]().eval())


def test_shapes_json_carries_the_domain(in_root):
    import json
    import subprocess

    run = subprocess.run(
        [sys.executable, "-m", "convlint", "shapes", "fixtures/rules/fixed_size.py", "--input-shape", "1,3,32,32",
         "--format", "json"],
        capture_output=True, text=True,
    )  # fmt: skip
    (model,) = json.loads(run.stdout)
    domain = model["domain"]
    assert domain["exact"] and domain["statement"].startswith("8*floor(H/2)*floor(W/2) = 2048")
    assert {"kind": "fixed", "where": "`fc` (Linear)", "line": 13} in domain["conditions"]


@pytest.mark.parametrize("name", ["too_small", "domain_patterns", "merges"])
def test_check_shapes_hover_and_json_state_the_same_sizes(name, in_root):
    """One fact, one renderer: what a CVL401/402 says the model runs for, the `Model input`
    line of `convlint shapes`, every hover over its layers and JSON's statement agree."""
    from convlint import report
    from convlint.report import hover

    path = os.path.join(FIXTURES, "rules", f"{name}.py")
    shapes = _arguments(path)
    for cls in _models(path):
        view = convlint._analysed(cls, shapes[0] if shapes else (), (), None, False, lambda view: view)
        runs = report.requirements(view)[0]
        assert runs == f"runs for {view.domain}" + ("" if view.domain.exact else " as far as its sizes were followed")
        assert all(f"model input: {runs}" in entry["text"] for entry in hover.entries([view]))
        assert report.shapes.domain_json(view)["statement"] in (None, str(view.domain))
        for finding in convlint.check(cls, shapes[0] if shapes else ()):
            if finding.code in ("CVL401", "CVL402"):
                assert finding.message.endswith(f"The model {runs}"), (finding.message, runs)


def test_a_sum_too_large_to_size_exactly_makes_the_domain_inexact_and_its_refusals_true(monkeypatch):
    """Past the expression budget a broadcast is sized by one operand: the domain says it is
    not exact, and every size it still refuses is one PyTorch refuses."""
    from convlint.sizes import elementwise

    patterns = _models(os.path.join(FIXTURES, "rules", "domain_patterns.py"))
    cls = next(c for c in patterns if c.__name__ == "RoundingShortcuts")
    monkeypatch.setattr(elementwise, "MAX_BROADCAST_SIZE", 0)
    domain = convlint.domain(cls, (1, 3, 32, 32))
    assert not domain.exact
    assert any("broadcast" in why for why in domain.why_inexact)
    real = cls().eval()
    sizes = [(n, n) for n in range(1, 70)] + [(32, n) for n in range(1, 70)]
    refused = [s for s in sizes if domain.refuses((1, 3, *s))]
    assert (5, 5) in refused and (12, 12) not in refused
    assert not [s for s in refused if _runs(real, (1, 3, *s), "float32")]


class OneChannelGroups(nn.Module):
    """GroupNorm with one channel per group after two stride-2 convs: at batch 1 it
    raises where the map is 1 x 1 (``Expected more than 1 value per channel``)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.down = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.norm = nn.GroupNorm(8, 8)

    def forward(self, x):
        return self.norm(self.down(self.stem(x)))


class InputStatistics(nn.Module):
    """InstanceNorm takes its statistics from the input: a 1 x 1 map raises."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=3)
        self.norm = nn.InstanceNorm2d(4)

    def forward(self, x):
        return torch.nn.functional.group_norm(self.norm(self.conv(x)), 2)


@pytest.mark.parametrize("cls", [OneChannelGroups, InputStatistics])
def test_a_norm_over_one_value_per_group_bounds_the_domain_as_pytorch_does(cls):
    domain = convlint.domain(cls, (1, 3, 32, 32))
    assert domain.exact and any(c.kind == "limit" and "Norm" in c.where for c in domain.conditions), domain.conditions
    small = [(h, w) for h in range(1, 13) for w in range(1, 13)]
    wrong = domain_disagreements(domain, cls().eval(), pairs=small)
    assert not wrong, wrong[:8]


def test_a_norm_over_one_value_per_group_at_the_example_is_a_cvl401_where_pytorch_raises():
    findings = [f for f in convlint.check(OneChannelGroups, (1, 3, 4, 4)) if f.code == "CVL401"]
    assert len(findings) == 1 and "Expected more than 1 value per channel" in findings[0].message, findings
    assert "gets a 1x1 map" in findings[0].message
    assert not runs(OneChannelGroups().eval(), (1, 3, 4, 4), "float32")
    assert runs(OneChannelGroups().eval(), (1, 3, 4, 5), "float32")
    assert not [f for f in convlint.check(OneChannelGroups, (1, 3, 4, 5)) if f.code == "CVL401"]


class Outlooker(nn.Module):
    """VOLO's outlook attention, reduced: unfold with stride 2, weights pooled alike,
    fold back at the input's own sizes (read from its shape)."""

    def __init__(self, dim=8, stride=2):
        super().__init__()
        self.stride = stride
        self.stem = nn.Conv2d(3, dim, 3, padding=1)
        self.unfold = nn.Unfold(kernel_size=3, padding=1, stride=stride)
        self.pool = nn.AvgPool2d(kernel_size=stride, stride=stride, ceil_mode=True)

    def forward(self, x):
        x = self.stem(x)
        B, C, H, W = x.shape
        h, w = math.ceil(H / self.stride), math.ceil(W / self.stride)
        v = self.unfold(x).reshape(B, C, 9, h * w) * self.pool(x).reshape(B, C, 1, h * w)
        return torch.nn.functional.fold(
            v.reshape(B, C * 9, h * w), output_size=(H, W), kernel_size=3, padding=1, stride=self.stride
        )


class RefoldedWithAnotherStride(nn.Module):
    """Unfolds with stride 2, folds back with stride 3: the block counts agree at some sizes only."""

    def __init__(self):
        super().__init__()
        self.unfold = nn.Unfold(kernel_size=3, padding=1, stride=2)

    def forward(self, x):
        H, W = x.shape[-2:]
        return torch.nn.functional.fold(self.unfold(x), output_size=(H, W), kernel_size=3, padding=1, stride=3)


class UnfoldedTwice(nn.Module):
    """Sliding blocks need an input at least their kernel: 5 x 5, then 2 blocks."""

    def __init__(self):
        super().__init__()
        self.unfold = nn.Unfold(kernel_size=5, stride=3)

    def forward(self, x):
        return torch.nn.functional.unfold(self.unfold(x).unsqueeze(1), kernel_size=(1, 2))


@pytest.mark.parametrize("cls", [Outlooker, RefoldedWithAnotherStride, UnfoldedTwice])
def test_unfold_and_fold_are_sized_for_every_input_and_bound_the_domain_as_pytorch_does(cls):
    domain = convlint.domain(cls, (1, 3, 4, 4))
    assert domain.exact, domain.why_inexact
    small = [(h, w) for h in range(1, 20) for w in range(1, 20)]
    wrong = domain_disagreements(domain, cls().eval(), pairs=small)
    assert not wrong, wrong[:8]
    assert not [f for f in convlint.check(cls, (1, 3, 8, 8)) if f.code == "CVL903"]


class PositionsAfterOutlook(nn.Module):
    """A 16x16 position table added to the patch grid (a grid of 1 broadcasts) and an
    outlook fold that ties H and W without refusing any size: the sizes that run are
    H, W in {127..134} and, broadcast, {7..14}, far apart."""

    def __init__(self):
        super().__init__()
        self.patch = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.Conv2d(8, 8, 4, stride=4))
        self.pos = nn.Parameter(torch.zeros(1, 8, 16, 16))
        self.outlook = Outlooker(dim=8)
        self.outlook.stem = nn.Identity()

    def forward(self, x):
        return self.outlook(self.patch(x)) + self.pos


def test_a_joint_domain_stated_per_dim_keeps_the_sizes_near_the_example():
    from convlint import domain_statement

    domain = convlint.domain(PositionsAfterOutlook, (1, 3, 128, 128))
    said = domain_statement.state(domain)
    assert str(said).startswith("H, W in {7..14, 127..134}"), str(said)
    sizes = [*range(1, 17), *range(124, 137)]
    pairs = [(h, w) for h in sizes for w in sizes]
    wrong = domain_disagreements(domain, PositionsAfterOutlook().eval(), squares=range(1, 140), pairs=pairs)
    assert not wrong, wrong[:8]
