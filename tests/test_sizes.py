"""Symbolic sizes through whole graphs, checked against real PyTorch at many sizes.

Each model is propagated once, symbolically, at one example size; its output
expressions are then evaluated at other sizes and compared with the model run on real
tensors at those sizes.
"""

import itertools
import operator

import pytest
import sympy
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convlint import engine, sizes
from convlint.analysis import analyse
from convlint.capture import trace


class UNetStage(nn.Module):
    """Down, up, then F.interpolate / F.pad to the skip connection's size, and cat."""

    def __init__(self):
        super().__init__()
        self.down = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.pool = nn.MaxPool2d(2, ceil_mode=True)
        self.up = nn.ConvTranspose2d(8, 8, 2, stride=2)
        self.up2 = nn.ConvTranspose2d(8, 3, 4, stride=2, padding=1)

    def forward(self, x):
        skip = x
        y = self.up(self.pool(self.down(x)))
        y = F.interpolate(y, size=(skip.size(2) // 2, skip.shape[-1] // 2))
        y = self.up2(y)
        dy, dx = skip.size(2) - y.size(2), skip.size(3) - y.size(3)
        y = F.pad(y, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
        return torch.cat([y, skip], dim=1)


class CausalTCN(nn.Module):
    """Causal 1-d convolutions: pad both sides, then chomp the right side off."""

    def __init__(self):
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv1d(4, 4, 3, padding=2 * d, dilation=d) for d in (1, 2, 4)])

    def forward(self, x):
        for conv, d in zip(self.convs, (1, 2, 4)):
            x = F.relu(conv(x)[:, :, : -2 * d]) + x
        return x


class ValidWithCrop(nn.Module):
    """Valid convolutions; the skip path is center-cropped to match."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(2, 2, 3)
        self.b = nn.Conv2d(2, 2, 5, dilation=2)

    def forward(self, x):
        y = self.b(self.a(x))
        top = (x.size(2) - y.size(2)) // 2
        left = (x.size(3) - y.size(3)) // 2
        return y + x[:, :, top : top + y.size(2), left : left + y.size(3)]


class Functional(nn.Module):
    """F.conv2d with its own weight, functional pooling, resampling by scale factor."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(4, 2, 3, 5))
        self.se = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(4, 4, 1), nn.Sigmoid())

    def forward(self, x):
        y = F.conv2d(x, self.weight, padding=(1, 0), stride=(1, 2), dilation=(2, 1))
        y = F.max_pool2d(y, 3, 2, 1, ceil_mode=True)
        y = F.avg_pool2d(y, 2, ceil_mode=True, count_include_pad=False)
        y = y * self.se(y)
        y = F.interpolate(y, scale_factor=2.0, mode="bilinear", align_corners=False)
        return F.interpolate(y, scale_factor=0.5)


class Shuffle3D(nn.Module):
    def __init__(self):
        super().__init__()
        self.pad = nn.ReflectionPad2d((1, 2, 0, 3))
        self.conv = nn.Conv2d(2, 8, 3, stride=(2, 1))
        self.shuffle = nn.PixelShuffle(2)
        self.conv3 = nn.Conv3d(1, 1, (3, 1, 3), padding=(1, 0, 0))
        self.up = nn.Upsample(scale_factor=(1, 2, 3))

    def forward(self, x):
        y = self.shuffle(self.conv(self.pad(x)))
        y = self.up(self.conv3(y.unsqueeze(1)))
        return y.flatten(1, 2)


def drop_path(x, p: float = 0.0, training: bool = False):
    """timm's and torchvision's stochastic depth, known to convlint by name."""
    return x


torch.fx.wrap("drop_path")


class ConvNeXtBlock(nn.Module):
    """Depthwise conv, channels-last LayerNorm and Linear layers, stochastic depth."""

    def __init__(self, channels: int = 8):
        super().__init__()
        self.dw = nn.Conv2d(channels, channels, 7, padding=3, groups=channels)
        self.norm = nn.LayerNorm(channels)
        self.fc1, self.fc2 = nn.Linear(channels, 4 * channels), nn.Linear(4 * channels, channels)

    def forward(self, x):
        y = self.dw(x).permute(0, 2, 3, 1)
        y = self.fc2(F.gelu(self.fc1(self.norm(y)))).permute(0, 3, 1, 2)
        return x + drop_path(y, 0.1, self.training)


class ChannelShuffle(nn.Module):
    """ShuffleNet's split, shuffle and concatenate."""

    def __init__(self, channels: int = 8):
        super().__init__()
        self.branch = nn.Conv2d(channels // 2, channels // 2, 3, stride=1, padding=1)

    def forward(self, x):
        a, b = x.chunk(2, dim=1)
        x = torch.cat([a, self.branch(b)], dim=1)
        n, c, h, w = x.size()
        x = x.view(n, 2, c // 2, h, w).transpose(1, 2).contiguous()
        return x.view(n, -1, h, w)


CASES = [
    (UNetStage, (1, 3, 40, 36), [(17, 9), (33, 64), (20, 21), (64, 64)]),
    (CausalTCN, (2, 4, 50), [(9,), (100,), (31,)]),
    (ValidWithCrop, (1, 2, 30, 30), [(13, 20), (31, 16), (50, 51)]),
    (Functional, (1, 2, 41, 37), [(20, 20), (33, 47), (64, 9)]),
    (Shuffle3D, (1, 2, 20, 22), [(8, 8), (15, 31), (40, 17)]),
    (ConvNeXtBlock, (1, 8, 21, 17), [(7, 9), (32, 33)]),
    (ChannelShuffle, (1, 8, 13, 11), [(5, 6), (30, 31)]),
]


def real_spatial(model, shape):
    with torch.no_grad():
        return tuple(model(torch.zeros(shape)).shape[2:])


@pytest.mark.parametrize("cls,example,others", CASES, ids=[c[0].__name__ for c in CASES])
def test_graph_sizes_are_symbolic_everywhere_and_match_pytorch_at_other_sizes(cls, example, others, run_every_op):
    torch.manual_seed(0)
    model = cls()
    with engine.analysing(model) as meta:  # a copy on meta; the real model stays on the CPU
        analysis = analyse(meta, [example], run_every_op)
    result = analysis.sizes
    assert result.error is None and not result.mismatches and not result.transfer_errors
    assert not result.unknown_ops, [n.format_node() for n in result.unknown_ops]
    out = analysis.output
    ndim = len(example) - 2
    symbols = list(result.symbols)
    assert all(d is not None for d in out.dims)
    for spatial in others:
        env = dict(zip(symbols, spatial))
        predicted = tuple(sizes.evaluate_int(d, env) for d in out.dims[2:])
        real = real_spatial(model, (*example[:2], *spatial))
        assert predicted == real[-ndim:] if len(real) == ndim else predicted == real, (spatial, out.dims)


def test_untraceable_submodule_becomes_a_leaf_and_sizes_after_it_are_unknown(run_every_op):
    class Dynamic(nn.Module):
        def forward(self, x):
            if x.shape[-1] % 2:
                x = F.pad(x, [0, 1])
            return x

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 3, padding=1)
            self.dynamic = Dynamic()

        def forward(self, x):
            return self.conv(self.dynamic(self.conv(x)))

    traced = trace(Model())
    assert list(traced.leaves) == ["dynamic"]
    assert "control flow" in traced.leaves["dynamic"]
    result = sizes.propagate(traced.graph_module, [(1, 1, 9, 9)], run_every_op=run_every_op)
    out = result.shadows[next(n for n in traced.graph_module.graph.nodes if n.op == "output")]
    assert out.dims[2:] == (None, None)  # unknown from the leaf on, not a guess
    assert result.values[next(n for n in traced.graph_module.graph.nodes if n.op == "output")] == (1, 1, 9, 10)


def test_a_dtype_cast_keeps_its_sizes(run_every_op):
    """Relative positions computed from the input's size and cast to indices (`.long()`,
    multiscale ViTs): the sizes are followed past the cast."""

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)

        def forward(self, x):
            x = self.conv(x)
            h = x.shape[2]
            dist = (torch.arange(h)[:, None] - torch.arange(h)[None, :]).long()
            return x + dist.float()

    result = sizes.propagate(trace(Model()).graph_module, [(1, 3, 12, 12)], run_every_op=run_every_op)
    assert not result.unknown_ops
    out = result.shadows[next(n for n in result.graph_module.graph.nodes if n.op == "output")]
    assert [str(d) for d in out.dims[2:]] == ["H", "Max(H, W)"]  # (H, H) broadcast against (H, W)


def test_a_wrong_formula_is_reported_as_a_mismatch_not_ignored(monkeypatch, run_every_op):
    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.ReflectionPad2d(1)

        def forward(self, x):
            return self.conv(x) + 1

    # wrong on purpose; a reflection pad runs on meta in both modes (a layer whose size the
    # default mode predicts is checked this way with --run-every-op: the next test)
    monkeypatch.setitem(sizes.transfer.MODULE_TRANSFERS, nn.ReflectionPad2d, lambda call: call.sargs[0])
    result = sizes.propagate(trace(Model()).graph_module, [(1, 1, 9, 9)], run_every_op=run_every_op)
    assert [(m.node.name, m.axis, m.expected, m.actual) for m in result.mismatches] == [
        ("conv", 2, 11, 9),
        ("conv", 3, 11, 9),
    ]
    out = result.shadows[next(n for n in result.graph_module.graph.nodes if n.op == "output")]
    assert out.dims[2:] == (None, None)


@pytest.mark.sets_mode
def test_a_transfer_that_raises_where_pytorch_runs_the_op_fails_under_the_suite(monkeypatch):
    """A bug in a fast op's transfer (a NameError in a guard) would only make users' runs
    slower (the op is run instead): the suite runs with STRICT_TRANSFERS and fails on it,
    while a transfer that raises as PyTorch does is left to the op."""

    class Model(nn.Module):
        def forward(self, x):
            return F.relu(x) + 1

    def broken(call):
        return undefined_name  # noqa: F821

    graph_module = trace(Model()).graph_module
    monkeypatch.setitem(sizes.transfer.FUNCTION_TRANSFERS, F.relu, broken)
    monkeypatch.setenv(sizes.interpreter.STRICT_TRANSFERS, "1")
    with pytest.raises(sizes.interpreter.TransferDefect, match="NameError"):
        sizes.propagate(graph_module, [(1, 1, 9, 9)])
    monkeypatch.delenv(sizes.interpreter.STRICT_TRANSFERS)
    result = sizes.propagate(graph_module, [(1, 1, 9, 9)])  # users' runs: the op is run
    assert not result.mismatches

    class Broken(nn.Module):
        def forward(self, x):
            return x + x[..., 1:]

    # the merge's transfer raises, and so does PyTorch: CVL301's bug, not a defect
    monkeypatch.setenv(sizes.interpreter.STRICT_TRANSFERS, "1")
    result = sizes.propagate(trace(Broken()).graph_module, [(1, 1, 9, 9)])
    assert [n.name for n in result.broken_merges] == ["add"]


def test_run_every_op_checks_the_formulas_of_the_layers_the_default_predicts(monkeypatch, run_every_op):
    """The default mode predicts a convolution's size from its formula without running it
    (a wrong formula would go unseen there: the formulas are what the rest of the suite
    and this mode check); --run-every-op runs it too, and a wrong formula is a mismatch."""

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 3)

        def forward(self, x):
            return self.conv(x) + 1

    monkeypatch.setitem(sizes.transfer.MODULE_TRANSFERS, nn.Conv2d, lambda call: call.sargs[0])  # wrong on purpose
    result = sizes.propagate(trace(Model()).graph_module, [(1, 1, 9, 9)], run_every_op=run_every_op)
    found = [(m.node.name, m.axis, m.expected, m.actual) for m in result.mismatches]
    assert found == ([("conv", 2, 7, 9), ("conv", 3, 7, 9)] if run_every_op else [])


# ------------------------------------------------------------------ random stacks

LAYERS = st.sampled_from(["conv", "pool", "avgceil", "pad", "reflect", "up", "down", "transposed", "chomp", "interp"])


def build(kinds, params):
    mods = []
    for kind, (k, s, p, d) in zip(kinds, params):
        if kind == "conv":
            mods.append(nn.Conv2d(1, 1, k, stride=s, padding=p, dilation=d))
        elif kind == "pool":
            mods.append(nn.MaxPool2d(k, stride=s, padding=min(p, k // 2), dilation=d, ceil_mode=True))
        elif kind == "avgceil":
            mods.append(nn.AvgPool2d(k, stride=s, padding=min(p, k // 2), ceil_mode=True))
        elif kind == "pad":
            mods.append(nn.ZeroPad2d((p, k, d, s)))
        elif kind == "reflect":
            mods.append(nn.ReplicationPad2d((p, 1, 0, d)))
        elif kind == "up":
            mods.append(nn.Upsample(scale_factor=s))
        elif kind == "down":
            mods.append(nn.Upsample(scale_factor=1 / s))
        elif kind == "transposed":
            mods.append(nn.ConvTranspose2d(1, 1, k, stride=s, padding=min(p, k - 1), dilation=d))
        elif kind == "chomp":
            mods.append(Chomp(p + 1))
        else:
            mods.append(Interp(s))
    return nn.Sequential(*mods)


class Chomp(nn.Module):
    def __init__(self, p):
        super().__init__()
        self.p = p

    def forward(self, x):
        return x[..., : -self.p]


class Interp(nn.Module):
    def __init__(self, s):
        super().__init__()
        self.s = s

    def forward(self, x):
        return F.interpolate(x, size=(x.size(2) * self.s, x.size(3) + self.s))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(LAYERS, st.tuples(st.integers(1, 5), st.integers(1, 3), st.integers(0, 3), st.integers(1, 3))),
        min_size=1,
        max_size=5,
    ),
    st.tuples(st.integers(24, 70), st.integers(24, 70)),
    st.lists(st.tuples(st.integers(1, 90), st.integers(1, 90)), min_size=3, max_size=3),
)
def test_random_stacks_symbolic_sizes_equal_pytorch(run_every_op, layers_, example, others):
    model = build([k for k, _ in layers_], [p for _, p in layers_])
    try:
        real_spatial(model, (1, 1, *example))  # must run at the example size
    except RuntimeError:
        return  # the stack does not run at the example size: nothing to compare
    analysis = analyse(model, [(1, 1, *example)], run_every_op)
    result = analysis.sizes
    assert result.error is None and not result.mismatches and not result.transfer_errors, (model, result.mismatches)
    out = analysis.output
    assert all(d is not None for d in out.dims[2:]), model
    symbols = list(result.symbols)
    for spatial in others:
        try:
            real = real_spatial(model, (1, 1, *spatial))
        except RuntimeError:
            continue
        env = dict(zip(symbols, spatial))
        if any(
            sizes.evaluate_int(d, env) < 1
            for sh in result.shadows.values()
            if isinstance(sh, sizes.SymTensor)
            for d in sh.dims
        ):
            continue  # outside the sizes where every op is defined: expressions make no claim there
        predicted = tuple(sizes.evaluate_int(d, env) for d in out.dims[2:])
        assert predicted == real, (model, spatial, out.dims)


@pytest.mark.sets_mode
def test_fast_path_gives_the_sizes_that_running_every_op_gives():
    """The default skips running activations, norms, merges, cat, adaptive pooling and
    interpolation on meta tensors; with run_every_op every op runs. Same result."""
    import importlib.util

    from conftest import FIXTURES

    spec = importlib.util.spec_from_file_location("bench_models", FIXTURES.replace("fixtures", "bench") + "/models.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    cases = [(bench.DilatedResNetASPP, (1, 3, 67, 45)), (bench.UNet, (1, 3, 50, 37)), (bench.TCN, (1, 1, 300))]
    cases += [(cls, example) for cls, example, _ in CASES]
    for cls, example in cases:
        with torch.device("meta"):
            model = cls().eval()
        results = []
        for full in (True, False):
            result = analyse(model, [example], run_every_op=full).sizes
            results.append(
                ({n.name: v for n, v in result.values.items()}, {n.name: s for n, s in result.shadows.items()})
            )
        assert results[0] == results[1], cls.__name__


@pytest.mark.sets_mode
def test_fast_path_still_reports_a_broken_merge():

    class Broken(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(1, 1, 3), nn.Conv2d(1, 1, 3, padding=1)

        def forward(self, x):
            return torch.cat([self.a(x), self.b(x)], 1) + self.a(x)

    result = analyse(Broken(), [(1, 1, 9, 9)], run_every_op=False).sizes
    assert [n.name for n in result.broken_merges] == ["cat"]
    assert "Sizes of tensors must match except in dimension 1" in str(
        result.broken_merges[next(iter(result.broken_merges))]
    )


def test_an_untraceable_block_that_keeps_its_size_at_three_sizes_keeps_symbolic_sizes(run_every_op):
    class Attention(nn.Module):
        """Control flow on a traced size: a leaf; but it keeps its input's size."""

        def __init__(self):
            super().__init__()
            self.calls = 0

        def forward(self, x):
            self.calls += 1  # state: the probe runs on a copy
            if x.shape[-1] > 4:
                return x * torch.softmax(x.flatten(2), -1).view_as(x)
            return x

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 2, 3, stride=2)
            self.attention = Attention()
            self.head = nn.Conv2d(2, 2, 3)

        def forward(self, x):
            return self.head(self.attention(self.conv(x)))

    model = Model()
    with engine.analysing(model) as meta:
        analysis = analyse(meta, [(1, 2, 33, 31)], run_every_op, by_execution=False)
        calls = meta.attention.calls
    assert list(analysis.trace.leaves) == ["attention"]
    out = analysis.output
    assert [sizes.evaluate_int(d, {s: 33 for s in analysis.sizes.symbols}) for d in out.dims[2:]] == [14, 14]
    assert all(d is not None and d.free_symbols for d in out.dims[2:])
    assert calls == 2  # one attempt to trace it, one run; the two probes ran on copies


def test_evaluation_is_exact_with_negative_powers():
    """A view's -1 is a quotient of size products: an int to a negative power must stay a
    fraction (a float truncated to 0 once made a whole model's sizes disagree)."""
    import sympy

    h = sympy.Symbol("H", integer=True, positive=True)
    assert sizes.evaluate_int(49 / (h * h), {h: 7}) == 1
    assert sizes.evaluate_int(49 / (h * h), {h: 14}) is None  # 1/4: not a size
    assert sizes.evaluate_int(3136 * sympy.floor(h / 8) ** -2, {h: 449}) == 1


class _PaddedWindows(nn.Module):
    """Blocks that pad the map to a multiple of the window only when it is not one, attend
    within windows, and crop back (SAM's image encoder): at 28 no block pads."""

    def __init__(self, blocks: int = 4, window: int = 7):
        super().__init__()
        self.window = window
        self.convs = nn.ModuleList(nn.Conv2d(8, 8, 3, padding=1) for _ in range(blocks))

    def forward(self, x):
        for conv in self.convs:
            h, w = x.shape[-2:]
            ws = self.window
            pad_h, pad_w = (ws - h % ws) % ws, (ws - w % ws) % ws
            y = conv(x)
            if pad_h > 0 or pad_w > 0:
                y = F.pad(y, (0, pad_w, 0, pad_h))
            hp, wp = h + pad_h, w + pad_w
            y = y.view(1, 8, hp // ws, ws, wp // ws, ws).permute(0, 2, 4, 1, 3, 5).reshape(1, 8, hp, wp)
            if pad_h > 0 or pad_w > 0:
                y = y[:, :, :h, :w]
            x = x + y
        return x


def test_a_padding_the_example_does_not_take_is_zero_within_its_branches(run_every_op):
    """Not taken at the example, `pad = (7 - h % 7) % 7` is 0 within the example's branches:
    the residual sum is `H`, not a Max with `H + pad` nesting through every block (a 24-block
    windowed ViT took 60 s of sympy on it), and the sizes claimed hold where PyTorch runs
    the same branches."""
    from convlint.sizes.interpreter import zero_sizes

    H = sympy.Symbol("H", integer=True, positive=True)
    pad = sympy.Mod(6 * H, 7)
    assert zero_sizes(sympy.StrictGreaterThan(pad, 0), False) == {pad: 0}
    assert zero_sizes(sympy.Eq(pad, 0), True) == {pad: 0}
    assert zero_sizes(sympy.StrictGreaterThan(pad, 0), True) == {}  # taken: pad > 0, no zero
    assert zero_sizes(sympy.StrictGreaterThan(H - 3, 0), False) == {}  # H - 3 may be negative

    with torch.device("meta"):
        model = _PaddedWindows().eval()
    result = analyse(model, [(1, 8, 28, 28)], run_every_op).sizes
    out = next(n for n in result.shadows if n.op == "output")
    symbols = {str(s): s for s in result.symbols}
    assert tuple(result.shadows[out].dims[2:]) == (symbols["H"], symbols["W"])
    real = _PaddedWindows().eval()
    for h in range(7, 50):
        size = (1, 8, h, 35)
        taken = h % 7 == 0  # the example's branch: no padding
        with torch.no_grad():
            got = real(torch.zeros(size)).shape
        if taken:
            assert got[2:] == (h, 35)  # the claimed H, W


@pytest.mark.sets_mode
def test_a_windowed_vit_is_analysed_without_importing_torch_dynamo():
    """Layer norms, Linear, matmul and `scores * scale` are predicted, not run on meta: the
    first op run there imports torch._dynamo (0.8 s a process, every worker of --jobs)."""
    import subprocess
    import sys

    from conftest import ROOT

    code = (
        "import sys; from convlint import engine; from convlint.options import Options, Shape; "
        "r = engine.check_paths(['bench/models.py:WindowViT'], Options(input_shapes=(Shape((1, 3, 224, 224)),))); "
        "print(r.models, 'torch._dynamo' in sys.modules)"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.stdout.split() == ["1", "False"], run.stdout + run.stderr[-2000:]


class _PadFromAModOfAMod(nn.Module):
    """A pad computed as `(2 * ((w + 3) % 8)) % 7`: sympy 1.14 rewrites that Mod wrongly
    (the inner Mod squared). Here it disagrees at the example, so the self-check made the
    width unknown; where the two agree at the example, it was wrong elsewhere, silently."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        w = x.shape[-1]
        return F.pad(self.conv(x), (0, (2 * ((w + 3) % 8)) % 7))


def test_a_size_from_a_mod_of_a_multiple_of_a_mod_is_pytorchs_at_every_size(run_every_op):
    from convlint.sizes import evaluate_int

    with torch.device("meta"):
        model = _PadFromAModOfAMod().eval()
    result = analyse(model, [(1, 3, 16, 16)], run_every_op).sizes
    out = next(n for n in result.shadows if n.op == "output")
    width = result.shadows[out].dims[3]
    symbols = {str(s): s for s in result.symbols}
    real = _PadFromAModOfAMod().eval()
    for w in range(1, 40):
        with torch.no_grad():
            expected = real(torch.zeros(1, 3, 16, w)).shape[-1]
        assert evaluate_int(width, {symbols["H"]: 16, symbols["W"]: w}) == expected, (w, width)


# ---------------------------------------------------------------- the strides of a predicted output


def _laid_out(shape: tuple, order: tuple) -> torch.Tensor:
    """A dense CPU tensor of ``shape`` whose dims lie in memory in ``order``, outermost first."""
    return torch.zeros([shape[d] for d in order]).permute(*[order.index(d) for d in range(len(shape))])


_UNARY = {
    "F.relu": F.relu,
    "nn.GELU": nn.GELU(),
    "nn.ReLU(inplace=True)": nn.ReLU(inplace=True),
    "nn.Identity": nn.Identity(),
    "nn.Dropout, eval": nn.Dropout(0.1).eval(),
    "clone": "clone",
    "relu_": "relu_",
    "softmax": "softmax",
    "F.log_softmax": F.log_softmax,
    "F.layer_norm": F.layer_norm,
    "nn.LayerNorm": nn.LayerNorm(5),
}
_BINARY = {"+": operator.add, "torch.mul": torch.mul, "+=": operator.iadd, "@": operator.matmul}


def _call(target, args: tuple):
    """The op ``target`` (a function, a method's name or a module) on ``args``: its output,
    and the Call its transfer sees."""
    from convlint.sizes import transfer

    extra = {F.log_softmax: (-1,), "softmax": (1,), F.layer_norm: ((4, 5),)}.get(target, ())
    args = (*args, *extra)
    if isinstance(target, nn.Module):
        fn, out, module = transfer.for_module(target), target(*args), target
    elif isinstance(target, str):
        fn, out, module = transfer.for_method(target), getattr(args[0], target)(*args[1:]), None
    else:
        fn, out, module = transfer.for_function(target), target(*args), None
    return fn, transfer.Call(None, target, args, {}, (), {}, None, module), out


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("name", list(_UNARY))
def test_a_predicted_output_has_the_strides_pytorch_gives_it(name, batch):
    """relu(x.transpose(2, 3)).view(...) raises in PyTorch: a prediction laid out
    contiguously whatever its input said it ran. Every layout of the input, and sliced,
    non-dense ones (a TCN's causal chomp before its ReLU): the predicted strides are PyTorch's."""
    from convlint.sizes.interpreter import _strides

    shape = (batch, 3, 4, 5)
    dense = [_laid_out(shape, order) for order in itertools.permutations(range(4))]
    # sliced, non-dense: a causal chomp, a stride, a crop of channels, of a permuted map too
    wide = [_laid_out((batch, 4, 5, 10), order) for order in [(0, 1, 2, 3), (0, 2, 3, 1), (3, 2, 1, 0)]]
    sliced = [w[:, 1:, :4, :5] for w in wide] + [w[:, :3, :4, ::2] for w in wide] + [w[:, :3, 1:, 5:] for w in wide]
    for x in dense + sliced:
        fn, call, out = _call(_UNARY[name], (x,))
        laid = _strides(fn, call, [x])
        assert laid is not None and laid(list(out.shape)) == out.stride(), (name, x.stride())


@pytest.mark.parametrize("other", [(2, 3, 4, 5), (3, 1, 1), (1, 3, 1, 5), (5,)])
@pytest.mark.parametrize("name", list(_BINARY))
def test_a_predicted_merge_has_the_strides_pytorch_gives_it(name, other):
    """Operands of two layouts (a permuted NHWC map plus a contiguous one, a broadcast
    bias): the output's dims ordered as PyTorch orders them, at every pair of layouts."""
    from convlint.sizes.interpreter import _strides

    shape = (2, 3, 4, 5)
    if name == "@" and other != shape:
        pytest.skip("a product of two maps of one shape")
    decided = 0
    for first in itertools.permutations(range(4)):
        for second in itertools.permutations(range(len(other))):
            a, b = _laid_out(shape, first), _laid_out(other, second)
            b = b.transpose(-1, -2) if name == "@" else b
            fn, call, out = _call(_BINARY[name], (a, b))
            laid = _strides(fn, call, [a, b])
            if laid is not None:
                decided += 1
                assert laid(list(out.shape)) == out.stride(), (name, a.stride(), b.stride())
    assert decided > 0
    if name != "@":  # a residual add of a cropped (non-dense) map, on either side
        wide = _laid_out((2, 3, 6, 5), (0, 2, 3, 1))[:, :, 1:5]
        for a, b in [(wide, _laid_out(other, tuple(range(len(other))))), (_laid_out(shape, (0, 2, 3, 1)), wide)]:
            fn, call, out = _call(_BINARY[name], (a, b))
            laid = _strides(fn, call, [a, b])
            assert laid is not None and laid(list(out.shape)) == out.stride(), (name, a.stride(), b.stride())


@pytest.mark.parametrize("batch", [1, 2])
def test_a_predicted_concatenation_has_the_strides_pytorch_gives_it(batch):
    """A U-Net's skip concatenation of NHWC maps: torch.cat lays its output out in the
    memory format its operands agree on (channels-last, 3-d too), else contiguously;
    every pair of 4-d layouts, sliced maps among them, along each dim."""
    from convlint.sizes.interpreter import _strides

    shape = (batch, 3, 4, 5)
    maps = [_laid_out(shape, order) for order in itertools.permutations(range(4))]
    maps += [
        _laid_out((batch, 4, 5, 6), (0, 2, 3, 1))[:, 1:, :4, :5],
        _laid_out((batch, 3, 4, 10), (0, 1, 2, 3))[..., ::2],
    ]
    volumes = [_laid_out((batch, 3, 2, 4, 5), order) for order in [(0, 1, 2, 3, 4), (0, 2, 3, 4, 1), (4, 3, 2, 1, 0)]]
    for group in (maps, volumes):
        for a, b in itertools.product(group, repeat=2):
            for dim in range(a.dim()):
                fn, call, out = _call(torch.cat, ([a, b], dim))
                laid = _strides(fn, call, [a, b])
                assert laid is not None and laid(list(out.shape)) == out.stride(), (a.stride(), b.stride(), dim)


_RAISES_IN_PYTORCH = """
import torch.nn as nn
import torch.nn.functional as F


class ReluThenView(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        return F.relu(self.conv(x).transpose(2, 3)).view(1, -1)


class TrilinearOn4d(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        return F.interpolate(self.conv(x), scale_factor=2, mode="trilinear")


class UpsampleTrilinearOn4d(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.up = nn.Upsample(scale_factor=2, mode="trilinear")

    def forward(self, x):
        return self.up(self.conv(x))
"""


def test_an_op_pytorch_refuses_is_not_predicted_to_pass(tmp_path, run_every_op):
    """Predicted outputs once passed where PyTorch raises: a view of a relu of a transposed
    map (the prediction was contiguous), a trilinear resampling of a 4-d map. Each model
    raises in PyTorch and gets a CVL901 at its line."""
    import importlib.util

    from convlint.options import Options, Shape

    path = tmp_path / "refused.py"
    path.write_text(_RAISES_IN_PYTORCH)
    spec = importlib.util.spec_from_file_location("refused", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    names = ["ReluThenView", "TrilinearOn4d", "UpsampleTrilinearOn4d"]
    for name in names:
        with pytest.raises((RuntimeError, NotImplementedError)):
            getattr(module, name)()(torch.zeros(1, 3, 8, 8))
    options = Options(input_shapes=(Shape((1, 3, 8, 8)),), run_every_op=run_every_op)
    result = engine.check_paths([f"{path}:{name}" for name in names], options)
    assert sorted((f.code, f.line) for f in result.findings) == [("CVL901", 12), ("CVL901", 21), ("CVL901", 31)]
