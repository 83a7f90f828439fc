"""Capture by execution, with PyTorch as the oracle: models that stop torch.fx are
recorded by running them, their sizes stay expressions of the input's, the branches the
example took are kept as guards, and the verdicts hold within them."""

import importlib.util
import os

import pytest
import torch
from conftest import FIXTURES, runs

import convlint
from convlint import engine, report, sizes

spec = importlib.util.spec_from_file_location("execution_fixtures", os.path.join(FIXTURES, "execution.py"))
models = importlib.util.module_from_spec(spec)
spec.loader.exec_module(models)


def _view(cls, shape):
    with engine.analysing(cls()) as meta:
        view, _, error = engine.build_view(meta, [shape])
    assert error is None
    return view


def _first_tensor(value):
    while not isinstance(value, torch.Tensor):
        value = next(iter(value.values())) if isinstance(value, dict) else value[0]
        value = getattr(value, "last", value)
    return value


def _predicted(view, h, w):
    out = view.analysis.output
    env = {**view.example, **dict(zip(view.symbols, (h, w)))}
    return tuple(sizes.evaluate_int(d, env) for d in out.dims[2:])


def _real(cls, h, w):
    torch.manual_seed(0)
    with torch.no_grad():
        out = cls()(torch.randn(1, 3, h, w))
    out = getattr(out, "last", out)
    return tuple(_first_tensor(out).shape[2:])


CASES = [
    # model, sizes inside what it accepts, sizes it refuses
    (models.InputCheck, [(32, 48), (64, 64), (16, 160)], [(40, 64), (64, 50)]),
    (models.AssertSquare, [(33, 33), (64, 64), (9, 9)], [(32, 33)]),
    (models.Decorated, [(31, 47), (64, 64)], []),
    (models.RankBranches, [(31, 47), (64, 64), (3, 5)], []),
    (models.BuiltInForward, [(31, 47), (64, 64)], []),
    (models.GlobalPool, [(3, 3), (31, 47), (64, 64)], []),
    (models.HiddenStates, [(31, 47), (64, 64)], []),
    (models.DictOutput, [(31, 47), (64, 64)], []),
]


@pytest.mark.parametrize("cls, inside, refused", CASES, ids=[c[0].__name__ for c in CASES])
def test_sizes_are_expressions_that_pytorch_agrees_with_inside_the_guards(cls, inside, refused):
    view = _view(cls, (1, 3, 64, 64))
    assert view.coverage.every_size == sum(
        isinstance(m, torch.nn.Conv2d) or isinstance(m, torch.nn.ConvTranspose2d) for m in cls().modules()
    )
    assert view.coverage.example_only == view.coverage.unchecked == 0
    for h, w in inside:
        assert view.allowed({**view.example, **dict(zip(view.symbols, (h, w)))})
        assert _predicted(view, h, w) == _real(cls, h, w), (cls.__name__, h, w)
    for h, w in refused:
        assert not view.allowed(dict(zip(view.symbols, (h, w))))
        with pytest.raises((ValueError, AssertionError)):
            _real(cls, h, w)


def test_a_models_own_input_check_is_its_requirement_not_a_merge_warning():
    view = _view(models.InputCheck, (1, 3, 64, 64))
    assert view.analysis.trace.method == "execution"
    assert [str(g) for g, _ in view.guards] == ["Eq(Mod(H, 16), 0)", "Eq(Mod(W, 16), 0)"]
    # the other side raises: a condition of the domain, not a branch
    assert view.domain.exact
    assert report.requirements(view) == ["runs for H, W multiples of 16: the check at line 24"]
    assert convlint.check(models.InputCheck, (1, 3, 64, 64)) == []

    # without the check, the same network needs even sizes, and says so
    class Unchecked(models.InputCheck):
        def forward(self, x):
            skip = self.enc(x)
            return torch.cat([self.up(self.mid(self.pool(skip))), skip], 1)

    (finding,) = convlint.check(Unchecked, (1, 3, 64, 64))
    assert finding.code == "CVL302" and "it needs H, W multiples of 2" in finding.message


def test_assert_on_sizes_is_a_guard_and_len_is_the_batch():
    view = _view(models.AssertSquare, (1, 3, 64, 64))
    assert [str(g) for g, _ in view.guards] == ["Eq(H, W)"]


def test_the_swapped_unet_up_block_is_reported_at_the_non_square_sizes_where_it_breaks():
    view = _view(models.SwappedUNet, (1, 3, 64, 64))
    assert view.analysis.trace.method == "execution"
    (finding,) = convlint.check(models.SwappedUNet, (1, 3, 64, 64))
    assert finding.code == "CVL302"
    assert "H: H vs W + 2*floor(H/2) - 2*floor(W/2)" in finding.detail
    # a joint truth, stated as one: squares always run
    assert "it needs H % 2 = W % 2" in finding.message
    assert "first fails at H = 3, W = 64 (above the example: H = 65, W = 64)" in finding.message
    # PyTorch agrees: 65x64 and 64x65 raise at the cat, 64x64 and 65x65 run
    for h, w in [(65, 64), (64, 65), (3, 64)]:
        with pytest.raises(RuntimeError, match="Sizes of tensors must match"):
            _real(models.SwappedUNet, h, w)
    for h, w in [(64, 64), (65, 65), (3, 3)]:
        assert _real(models.SwappedUNet, h, w) == (h, w)


def test_global_pooling_by_the_maps_own_size_runs_at_any_size():
    view = _view(models.GlobalPool, (1, 3, 64, 64))
    assert [str(d) for d in view.analysis.output.dims[2:]] == ["1", "1"]
    assert report.requirements(view) == ["runs for H, W >= 3"]
    assert _real(models.GlobalPool, 3, 3) == (1, 1)


def test_a_leaf_that_reads_data_is_an_info_finding_and_the_summary_counts_what_was_checked():
    from conftest import ROOT

    spec = importlib.util.spec_from_file_location(
        "untraceable", os.path.join(ROOT, "fixtures", "rules", "untraceable.py")
    )
    untraceable = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(untraceable)
    findings = convlint.check(untraceable.PartlyRunnable, (1, 3, 32, 32))
    assert [(f.code, f.severity) for f in findings] == [("CVL903", "info")]
    assert "1 convolution after it is checked at the example input size only" in findings[0].message
    view = _view(untraceable.PartlyRunnable, (1, 3, 32, 32))
    assert tuple(view.coverage) == (1, 1, 0)


def test_an_integer_input_is_declared_with_its_dtype_or_inferred_from_an_embedding(tmp_path):
    import subprocess
    import sys

    from conftest import ROOT

    target = "fixtures/execution.py:TinyDenoiser"
    declared = subprocess.run(
        [sys.executable, "-m", "convlint", "check", target, "--input-shape", "1,3,32,32", "--input-shape", "1:int64"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    inferred = subprocess.run(
        [sys.executable, "-m", "convlint", "check", target], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    for run in (declared, inferred):
        assert run.returncode == 1, run.stderr
        (line,) = run.stdout.splitlines()
        assert "CVL101" in line and "`out` Conv2d(kernel 3, dilation 2, padding 1)" in line and "use padding=2" in line
    assert "at the example input 32x32 -> 30x30" in declared.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "convlint", "check", target, "--input-shape", "1:int65"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert bad.returncode == 2 and "unknown dtype 'int65'" in bad.stderr


def test_a_branch_late_in_forward_does_not_hide_a_merge_that_breaks_before_it():
    """The example (64x64) takes the branch that keeps the table as it is (the map is
    64x64 from that point on); the residual before it breaks at odd sizes all the same."""
    view = _view(models.LateBranch, (1, 3, 64, 64))
    assert view.analysis.trace.method == "execution"
    assert {str(s) for g, _ in view.guards for s in g.free_symbols} == {"H", "W"}
    (finding,) = convlint.check(models.LateBranch, (1, 3, 64, 64))
    assert finding.code == "CVL302"
    assert "it needs H, W = 1 or H, W multiples of 2" in finding.message and "branches" not in finding.message
    with pytest.raises(RuntimeError, match="must match the size"):
        _real(models.LateBranch, 65, 64)
    assert _real(models.LateBranch, 66, 66) == (66, 66)


# ---------------------------------------------------------------- values sizes decide

values_spec = importlib.util.spec_from_file_location("size_values", os.path.join(FIXTURES, "rules", "size_values.py"))
size_values = importlib.util.module_from_spec(values_spec)
values_spec.loader.exec_module(size_values)


def _runs(cls, h, w) -> bool:
    try:
        with torch.no_grad():
            cls()(torch.randn(1, 3, h, w))
    except RuntimeError:
        return False
    return True


@pytest.mark.parametrize(
    "cls", [size_values.MaskedResidual, size_values.CountedCrop, size_values.CenterCropUNet, size_values.GridStride]
)
def test_masks_counts_and_offsets_computed_from_sizes_keep_every_convolution_symbolic(cls):
    view = _view(cls, (1, 3, 64, 64))
    assert not view.sizes.unknown_ops and not view.sizes.mismatches
    coverage = view.coverage
    assert coverage.example_only == 0 and coverage.unchecked == 0 and coverage.every_size > 0
    domain = convlint.domain(cls, (1, 3, 64, 64))
    assert domain.exact
    wrong = [(h, w) for h in range(1, 41) for w in (h, h + 3) if domain.contains((1, 3, h, w)) != _runs(cls, h, w)]
    assert not wrong


def test_item_of_a_count_and_tolist_of_a_shape_tensor_are_size_expressions():
    view = _view(size_values.CountedCrop, (1, 3, 64, 64))
    [item] = [n for n in view.nodes if n.op == "call_method" and n.target == "item"]
    assert str(view.sizes.shadows[item]) == "H"
    view = _view(size_values.CenterCropUNet, (1, 3, 64, 64))
    [listed] = [n for n in view.nodes if n.op == "call_method" and n.target == "tolist"]
    # (H - 2 - (2*floor(H/2) - 6)) // 2 is 2 at every size, and sympy proves it: the
    # offsets are known for every input, not only the example's
    assert view.sizes.shadows[listed] == [2, 2]


def test_a_branch_on_a_mask_of_zeros_is_no_condition_on_the_input():
    view = _view(size_values.MaskedResidual, (1, 3, 64, 64))
    assert view.guards == ()  # mask.any() is False at every size: nothing to state


def test_a_read_of_the_inputs_data_stops_at_its_line_and_what_ran_before_is_checked(tmp_path):
    source = tmp_path / "net.py"
    source.write_text(
        "import torch.nn as nn\n\n\n"
        "class Gate(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.a = nn.Conv2d(3, 8, 3, padding=1)\n"
        "        self.b = nn.Conv2d(8, 8, 3, padding=1)\n\n"
        "    def forward(self, x):\n"
        "        y = self.a(x)\n"
        "        if y.amax() > 0:\n"
        "            return self.b(y)\n"
        "        return y\n"
    )
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "convlint", "check", str(source), "--input-shape", "1,3,32,32"],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr  # the stop is a note (CVL903): nothing it checked failed
    assert ":12:12: CVL903" in out.stdout and "`y.amax() > 0`" in out.stdout and "not data" in out.stdout
    assert "1 of 2 convolutions checked for every input size, 1 not checked" in out.stderr


def test_values_written_with_the_inputs_data_are_no_longer_known():
    from convlint.capture.values import UNKNOWN, Values

    values = Values()
    mask = torch.zeros(2, 3, device="meta", dtype=torch.bool)
    values.bind(mask, torch.zeros(2, 3, dtype=torch.bool))
    view = mask[0]
    values.after(
        "__getitem__", (mask, 0), {}, view, values.compute("__getitem__", torch.Tensor.__getitem__, (mask, 0), {})
    )
    assert values.of(view) is not None
    data = torch.empty(3, device="meta", dtype=torch.bool)  # the input's: no value
    args = (view, slice(None), data)
    values.after("__setitem__", args, {}, None, values.compute("__setitem__", torch.Tensor.__setitem__, args, {}))
    assert values.of(view) is None and values.of(mask) is None  # the view and what it views
    assert values.compute("add", torch.add, (data, 1), {}) is UNKNOWN


def test_a_buffer_read_as_a_value_is_known_and_never_written_by_the_analysis():
    from convlint.capture.values import Values

    buffer = torch.ones(3)
    values = Values()
    values.constant(buffer)
    values.compute("add_", torch.Tensor.add_, (buffer, 1), {})
    assert buffer.tolist() == [1.0, 1.0, 1.0] and values.of(buffer).tolist() == [2.0, 2.0, 2.0]
    weight = torch.nn.Parameter(torch.ones(3))
    values.constant(weight)
    assert values.of(weight) is None  # a weight's value is not the sizes'


def test_a_function_fx_keeps_whole_is_followed_by_running_it():
    view = _view(models.WrappedHelper, (1, 3, 64, 64))
    assert view.coverage.every_size == 2 and view.coverage.example_only == 0
    assert [_predicted(view, h, w) for h, w in ((31, 47), (64, 64))] == [
        _real(models.WrappedHelper, h, w) for h, w in ((31, 47), (64, 64))
    ]


def test_squeeze_removes_only_axes_of_size_one_at_every_size():
    view = _view(models.SqueezedAxis, (1, 3, 64, 64))
    assert not view.sizes.unknown_ops and view.coverage.every_size == 2
    for h, w in ((31, 47), (64, 64), (1, 9)):
        assert _predicted(view, h, w) == _real(models.SqueezedAxis, h, w)


class _TensorSplit(torch.nn.Module):
    def __init__(self, how):
        super().__init__()
        self.how = how
        self.conv = torch.nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        return self.conv(x).flatten(2).tensor_split(self.how, dim=2)


@pytest.mark.parametrize("how", [3, 5, [1], [2, 7], [0, 40], [5, 3]])
def test_tensor_split_pieces_are_expressions_pytorch_agrees_with_at_every_size(how):
    model = _TensorSplit(how)
    with engine.analysing(model) as meta:
        view, _, error = engine.build_view(meta, [(1, 3, 8, 8)])
    [node] = [n for n in view.nodes if n.target == "tensor_split"]
    pieces = view.sizes.shadows[node]
    for h in range(1, 12):
        for w in (1, 3, 7):
            env = {**view.example, **dict(zip(view.symbols, (h, w)))}
            real = [p.shape[2] for p in model(torch.randn(1, 3, h, w))]
            assert [sizes.evaluate_int(p.dims[2], env) for p in pieces] == real, (h, w)


def test_a_check_that_raises_otherwise_is_part_of_the_domain_and_a_branch_is_not():
    domain = convlint.domain(models.OwnChecks, (1, 3, 64, 64))
    kinds = [(c.kind, str(c.expressions[0])) for c in domain.conditions if c.kind in ("assert", "guard")]
    assert kinds == [
        ("assert", "H >= 8"), ("assert", "W >= 8"), ("assert", "Eq(Mod(H, 4), 0)"), ("assert", "Eq(Mod(W, 2), 0)"),
        ("guard", "H <= 1000"),
    ]  # fmt: skip
    assert not domain.exact  # the `if h > 1000 and ...` branch: its other side was not run
    model = models.OwnChecks()
    for h in range(1, 40):
        for w in (h, h + 1, 2 * h):
            x = torch.randn(1, 3, h, w)
            try:
                model(x)
                runs = True
            except (AssertionError, ValueError, RuntimeError):
                runs = False
            assert domain.refuses(x.shape) == (not runs), (h, w)


def test_an_assert_that_refuses_the_input_is_reported_at_its_line(tmp_path):
    import subprocess
    import sys

    source = tmp_path / "net.py"
    source.write_text(
        "import torch.nn as nn\n\n\n"
        "class Fixed(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.conv = nn.Conv2d(3, 8, 3, padding=1)\n\n"
        "    def forward(self, x):\n"
        '        assert x.shape[-1] == 256, "trained at 256"\n'
        "        return self.conv(x)\n"
    )

    def check(*args):
        argv = [sys.executable, "-m", "convlint", "check", "net.py", *args]
        return subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path)

    inferred = check()  # 224 and its multiples all fail the assert: declare the input
    assert inferred.returncode == 0, inferred.stderr
    assert (
        "net.py:4:1: CVL904" in inferred.stdout
        and "raised at line 10: AssertionError: trained at 256" in inferred.stdout
    )
    declared = check("--input-shape", "1,3,64,64")  # recorded at 256, where it runs: the input given is refused
    assert declared.returncode == 1
    assert "net.py:10:1: CVL901" in declared.stdout and "(it runs at 1x3x256x256)" in declared.stdout
    assert "All checks passed!" in check("--input-shape", "1,3,64,256").stderr


def test_a_channels_last_input_is_sized_on_the_axes_its_convolutions_read(monkeypatch):
    class ChannelsLast(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.down = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1)

        def forward(self, x):  # N, H, W, C
            x = x.permute(0, 3, 1, 2)
            return torch.nn.functional.interpolate(self.down(x), scale_factor=2.0) + x.mean(1, keepdim=True)

    # PyTorch: H and W must each be 1 or even. Sized with W, C as the spatial dims,
    # convlint once said "H = 1 or a multiple of 2; any W" and passed.
    (finding,) = convlint.check(ChannelsLast, (1, 64, 64, 3))
    assert finding.code == "CVL302" and "it needs H, W = 1 or H, W multiples of 2" in finding.message
    domain = convlint.domain(ChannelsLast, (1, 64, 64, 3))
    assert domain.input_shapes[0].spatial == (1, 2)
    model = ChannelsLast()
    for h in range(1, 14):
        for w in range(1, 14):
            assert domain.refuses((1, h, w, 3)) == (not runs(model, (1, h, w, 3), "float32")), (h, w)
    # no input given: (1, 3, 224, 224) does not run; the channels-last one convlint takes does
    inferred = convlint.domain(ChannelsLast)
    assert tuple(inferred.input_shapes[0]) == (1, 224, 224, 3) and runs(model, (1, 224, 224, 3), "float32")

    # where no axis of the input reaches a convolution's spatial dims, it is not sized at all
    monkeypatch.setattr(sizes, "laid_out", lambda *args: None)
    (finding,) = convlint.check(ChannelsLast, (1, 64, 64, 3))
    assert finding.code == "CVL904" and "reaches the channels of `down` (Conv2d)" in finding.message


def test_a_size_python_fixes_is_pinned_to_the_example_and_a_pass_says_so(tmp_path):
    """``int(math.sqrt(length))`` makes a plain number of a size (math.sqrt calls
    ``__float__``): what follows holds at that size only. Once the size was lost without
    a word and the pass claimed every L >= 1 (PyTorch raises at 63)."""
    import subprocess
    import sys

    source = tmp_path / "grid.py"
    source.write_text(
        "import math\n\nimport torch.nn as nn\n\n\n"
        "class SqrtGrid(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.conv = nn.Conv2d(16, 16, 3, stride=2, padding=1)\n"
        "        self.up = nn.Upsample(scale_factor=2)\n\n"
        "    def forward(self, x):\n"
        "        n, c, length = x.shape\n"
        "        side = int(math.sqrt(length))\n"
        "        grid = x.reshape(n, c, side, side)\n"
        "        return grid + self.up(self.conv(grid))\n"
    )
    argv = [sys.executable, "-m", "convlint", "check", "grid.py", "--input-shape", "1,16,64"]
    run = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "within the branches the example took (L == 64)" in run.stderr
    spec = importlib.util.spec_from_file_location("grid_fixture", source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    domain = convlint.domain(module.SqrtGrid, (1, 16, 64))
    assert not domain.exact
    model = module.SqrtGrid()
    assert not runs(model, (1, 16, 63), "float32")
    assert not [n for n in range(1, 130) if domain.refuses((1, 16, n)) and runs(model, (1, 16, n), "float32")]


def test_numpy_on_sizes_pins_them_rather_than_losing_them():
    np = pytest.importorskip("numpy")

    class Anchors(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3, stride=2, padding=1)

        def forward(self, x):
            cells = np.array(x.shape[-2:]) // 2  # a plain array: the sizes it came from are pinned
            return self.conv(x).view(1, 4, int(cells[0]), int(cells[1]))

    domain = convlint.domain(Anchors, (1, 3, 64, 64))
    pinned = {str(c.expressions[0]) for c in domain.conditions if c.kind == "guard"}
    assert not domain.exact and pinned == {"Eq(H, 64)", "Eq(W, 64)"}


def test_arange_from_a_fraction_to_a_size_has_the_size_pytorch_gives():
    """``torch.arange(0.5, s)`` (a rotary embedding's positions) has ceil(s - 0.5) = s
    numbers; the rule once kept ``s - 1/2`` and the self-check reported an internal error."""

    class Rotary(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 16, stride=16)

        def forward(self, x):
            y = self.conv(x)
            return y + torch.arange(0.5, y.shape[-1], dtype=torch.float32)

    assert convlint.check(Rotary, (1, 3, 64, 64)) == []
    domain = convlint.domain(Rotary, (1, 3, 64, 64))
    model = Rotary()
    for h, w in [(16, 16), (17, 40), (64, 100), (15, 64), (70, 31)]:
        assert domain.contains((1, 3, h, w)) == runs(model, (1, 3, h, w), "float32"), (h, w)


class _ChannelAttention(torch.nn.Module):
    """Efficient channel attention: a Conv1d over the pooled channels of a 2-D model."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.eca = torch.nn.Conv1d(1, 1, 3, padding=1, bias=False)

    def forward(self, x):
        x = self.conv(x)
        b, c = x.shape[:2]
        y = self.eca(x.mean((2, 3)).view(b, 1, c)).view(b, c, 1, 1)
        return x * y.sigmoid()


def test_a_conv1d_over_the_channels_of_a_2d_model_is_checked_for_every_size():
    # its input, (1, 1, 8), is the same at every input size: no size leaves it unchecked
    view = _view(_ChannelAttention, (1, 3, 32, 32))
    assert (view.coverage.every_size, view.coverage.example_only, view.coverage.unchecked) == (2, 0, 0)


class _TokenPool(torch.nn.Module):
    """A 2-D model whose tokens (B, C, H*W) an AvgPool1d shortens (spatial reduction
    attention): the pool needs H*W >= 16, a limit on a layer of another rank."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.pool = torch.nn.AvgPool1d(16, 16)

    def forward(self, x):
        x = self.conv(x)
        return x.flatten(2).mean(2) + self.pool(x.flatten(2)).mean(2)


def test_a_limit_of_a_pool_over_tokens_is_in_the_domain_and_pytorch_agrees():
    view = _view(_TokenPool, (1, 3, 32, 32))
    model = _TokenPool().eval()
    for h, w in [(1, 1), (3, 5), (4, 4), (2, 8), (15, 1), (16, 1), (5, 3), (7, 9), (32, 32)]:
        try:
            model(torch.zeros(1, 3, h, w))
            runs = True
        except RuntimeError:
            runs = False
        assert view.domain.contains((1, 3, h, w)) == runs, (h, w, runs)
