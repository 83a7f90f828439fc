"""The input contract (convlint.guard, Domain.nearest, Domain.pad_amounts, convlint.fit),
with the real model on real tensors as the judge at every size swept."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import torch.nn as nn
from conftest import FIXTURES, readme_block, runs
from test_domain import _models

import convlint

PATTERNS = {cls.__name__: cls for cls in _models(os.path.join(FIXTURES, "rules", "domain_patterns.py"))}
# a model per kind of rule: multiples (a cat of two downsamplers), residues (rounding
# shortcuts, a tiled window table), squares (a map added to its transpose), a U-Net with
# unpadded convolutions (a lower bound and a period)
CASES = ["ThreeDownsamplers", "RoundingShortcut", "Transposed", "TruncatedPads", "TiledWindowTable", "ValidUNet"]
SIZES = [(n, n) for n in range(1, 50)] + [(h, w) for h in (8, 16, 23, 40) for w in range(1, 50, 3)]
EXAMPLE = (1, 3, 32, 32)


def _model(name: str):
    torch.manual_seed(0)
    return PATTERNS[name]().eval()


def _example(name: str) -> tuple:
    """A size the model runs at (32 x 32 where it does), with its first layer's channels."""
    model = _model(name)
    channels = next(m.in_channels for m in model.modules() if isinstance(m, nn.Conv2d))
    return next((1, channels, n, n) for n in (32, 64, 48, 24, 36, 40) if runs(model, (1, channels, n, n)))


class TwoLevelUNet(nn.Module):
    """Padded convs, a pool, an upsample and a skip joined by cat: it runs at even sizes,
    and its output has its input's size."""

    def __init__(self):
        super().__init__()
        self.enc = nn.Conv2d(3, 4, 3, padding=1)
        self.mid = nn.Sequential(nn.MaxPool2d(2), nn.Conv2d(4, 4, 3, padding=1), nn.Upsample(scale_factor=2))
        self.dec = nn.Conv2d(8, 2, 3, padding=1)

    def forward(self, x):
        skip = self.enc(x)
        return self.dec(torch.cat([skip, self.mid(skip)], dim=1))


def _guard_says(guarded, shape) -> str:
    """ "refused" (InputSizeError), "runs", or "fails" (the guard let through a size the
    model then failed at)."""
    try:
        with torch.no_grad():
            guarded(torch.zeros(shape))
        return "runs"
    except convlint.InputSizeError:
        return "refused"
    except Exception:
        return "fails"


@pytest.mark.parametrize("name", CASES)
def test_the_guard_refuses_exactly_the_sizes_the_model_cannot_run(name):
    bare, guarded = _model(name), convlint.guard(_model(name), _example(name))
    assert convlint.domain(bare, _example(name)).exact
    wrong = []
    c = _example(name)[1]
    for h, w in SIZES:
        said = _guard_says(guarded, (1, c, h, w))
        real = runs(bare, (1, c, h, w))
        if said == "fails" or (said == "refused") == real:
            wrong.append(((h, w), said, "runs" if real else "fails"))
    assert not wrong, wrong[:8]


@pytest.mark.parametrize("name", CASES)
def test_the_nearest_sizes_run_and_no_size_nearer_does(name):
    """Above (and below): the size named runs in PyTorch, and no size between the input's
    and it, by fewer sizes added in all, runs."""
    bare = _model(name)
    c = _example(name)[1]
    domain = convlint.domain(bare, _example(name))
    for h, w in [(5, 5), (13, 29), (33, 33), (41, 18), (47, 47)]:
        near = domain.nearest((1, c, h, w))
        for found, sign in ((near.above, 1), (near.below, -1)):
            if found is None:
                continue
            assert runs(bare, (1, c, *found)), (h, w, found)
            distance = abs(found[0] - h) + abs(found[1] - w)
            nearer = [
                (h + sign * a, w + sign * b)
                for a in range(abs(found[0] - h) + 1)
                for b in range(abs(found[1] - w) + 1)
                if a + b < distance and min(h + sign * a, w + sign * b) >= 1
            ]
            assert not [s for s in nearer if runs(bare, (1, c, *s))], (h, w, found)
        if runs(bare, (1, c, h, w)):
            assert near.above == near.below == (h, w)


def test_a_size_with_none_above_or_below_says_none():
    """A U-Net of unpadded convolutions needs H, W >= its lower bound: nothing below runs."""
    domain = convlint.domain(_model("ValidUNet"), EXAMPLE)
    near = domain.nearest((1, 3, 3, 3))
    assert near.below is None and near.above is not None
    assert domain.pad_amounts((1, 3, 3, 3)) == (0, near.above[1] - 3, 0, near.above[0] - 3)


def test_the_guards_message_names_the_rule_the_size_the_failing_layer_and_the_nearest_sizes():
    guarded = convlint.guard(_model("ThreeDownsamplers"), EXAMPLE)
    with pytest.raises(convlint.InputSizeError) as raised:
        guarded(torch.zeros(1, 3, 57, 61))
    assert isinstance(raised.value, ValueError)
    assert str(raised.value) == (
        "`ThreeDownsamplers` cannot run at H = 57, W = 61: it needs H, W multiples of 8 (else it fails at "
        "`torch.cat([self.conv(x), self.pool(x)],…` in `stages.0`, line 19); nearest sizes that run: 56x56 "
        "below, 64x64 above (convlint.fit pads to the one above)"
    )


def test_fit_pads_to_the_nearest_size_that_runs_and_crop_gives_back_the_inputs_size():
    """A U-Net whose output has its input's size where it runs: the padded input runs, and
    the cropped output has the input's size and is the padded run's output, cut."""
    model = TwoLevelUNet().eval()
    domain = convlint.domain(model, EXAMPLE)
    assert str(domain) == "H, W multiples of 2: `torch.cat([skip, self.mid(skip)], dim=1)`"
    for h, w in [(17, 17), (30, 45), (1, 9)]:
        x = torch.randn(1, 3, h, w)
        fitted = convlint.fit(x, domain)
        assert tuple(fitted.input.shape[-2:]) == domain.nearest(x.shape).above
        assert torch.equal(fitted.input[..., :h, :w], x)
        with torch.no_grad():
            out = model(fitted.input)
        cropped = fitted.crop(out)
        assert tuple(cropped.shape[-2:]) == (h, w)
        assert torch.equal(cropped, out[..., : cropped.shape[-2], : cropped.shape[-1]])


def test_the_guard_costs_a_lookup_and_leaves_valid_inputs_untouched():
    bare, guarded = _model("ThreeDownsamplers"), convlint.guard(_model("ThreeDownsamplers"), EXAMPLE)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(guarded(x), bare(x))
    hook = next(iter(guarded._forward_pre_hooks.values()))
    hook(guarded, (x,), {})
    assert hook.__closure__ is not None
    decided = next(c.cell_contents for c in hook.__closure__ if isinstance(c.cell_contents, dict))
    assert decided == {(64, 64): None}  # decided once, kept
    with pytest.raises(convlint.InputSizeError):  # it reads the shape only: any device
        guarded(torch.zeros(1, 3, 57, 61, device="meta"))
    guarded.convlint_guard.remove()
    assert not guarded._forward_pre_hooks


def test_the_guard_holds_under_torch_compile():
    guarded = convlint.guard(_model("ThreeDownsamplers"), EXAMPLE)
    compiled = torch.compile(guarded, backend="eager")
    assert tuple(compiled(torch.zeros(1, 3, 64, 64)).shape) == (1, 32, 8, 8)
    with pytest.raises(convlint.InputSizeError):
        compiled(torch.zeros(1, 3, 57, 57))


def test_guard_takes_a_built_model_only():
    with pytest.raises(TypeError, match="needs a built model"):
        convlint.guard(PATTERNS["ThreeDownsamplers"], EXAMPLE)


def test_the_readme_deploy_example_prints_what_it_shows(tmp_path):
    script = tmp_path / "deploy.py"
    script.write_text(readme_block("deploy"))
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout == readme_block("deploy-output")


EXPORTED = ["ThreeDownsamplers", "Transposed", "TiledWindowTable", "ClassTokenTable"]


@pytest.mark.parametrize("name", EXPORTED)
def test_dynamic_shapes_export_and_the_program_runs_at_every_size_they_allow(name):
    """torch.export takes the spec (no constraint violated); the exported program gives
    the eager model's output shape at the minimum, optimum, maximum and sizes between,
    and a size the domain refuses is refused by the program's own checks too."""
    from torch.export import export

    model = _model(name)
    domain = convlint.domain(model, _example(name))
    dynamic = domain.dynamic_shapes(max_size=96)
    program = export(model, (torch.zeros(dynamic.optimum),), dynamic_shapes=dynamic.spec).module()
    (axis_h, fh), (axis_w, fw) = dynamic.families
    sizes = {dynamic.minimum, dynamic.optimum, dynamic.maximum}
    for k in range(fh.low, fh.high + 1, 3):
        shape = list(dynamic.optimum)
        shape[axis_h] = fh.size(k)
        shape[axis_w] = fw.size(k) if fw.name == fh.name else shape[axis_w]
        sizes.add(tuple(shape))
    with torch.no_grad():
        for shape in sorted(sizes):
            assert domain.contains(shape), shape
            assert program(torch.zeros(shape)).shape == model(torch.zeros(shape)).shape, shape
    refused = next(
        (
            s
            for s in ((1, 3, n, n) for n in range(2, 97))
            if domain.refuses(s) and dynamic.minimum[2] < s[2] < dynamic.maximum[2]
        ),
        None,
    )
    if refused is not None:
        with pytest.raises(Exception):
            program(torch.zeros(refused))


def test_dynamic_shapes_say_what_torch_export_cannot_state():
    """A period with several residues keeps one; sizes below 2 are torch.export's own
    specialization; a condition on both dims keeps square inputs; the Python source
    builds the same spec."""
    tiled = convlint.domain(_model("TiledWindowTable"), EXAMPLE).dynamic_shapes(max_size=96)
    assert tiled.source() == (
        "from torch.export import Dim\n\n"
        'h = Dim("h", min=2, max=6)\nw = Dim("w", min=2, max=6)\n'
        "dynamic_shapes = ({2: 16 * h, 3: 16 * w},)\n"
    )
    assert "H % 16 in {0} only (the model also runs at 13, 14, 15): one residue per dim" in tiled.narrowed
    assert (tiled.minimum, tiled.optimum, tiled.maximum) == ((1, 3, 32, 32), (1, 3, 32, 32), (1, 3, 96, 96))
    squares = convlint.domain(_model("Transposed"), EXAMPLE).dynamic_shapes()
    assert squares.narrowed[0].endswith("square inputs only (torch.export's dims cannot state the rest)")
    assert "dynamic_shapes = ({2: h_w, 3: h_w},)" in squares.source()
    names: dict = {}
    exec(tiled.source(), names)
    assert str(names["dynamic_shapes"]) == str(tiled.spec)


def test_torch_export_refuses_the_spec_of_a_unet_that_crops_by_computed_sizes_as_the_readme_says():
    """ValidUNet runs at every size from 16 (swept above); torch.export's own reasoning about
    its computed crop adds a guard: the README says so, and this test keeps it true."""
    from torch.export import export

    model = _model("ValidUNet")
    domain = convlint.domain(model, EXAMPLE)
    assert str(domain) == "H, W >= 16" and domain.exact
    dynamic = domain.dynamic_shapes(max_size=128)
    assert dynamic.narrowed == ()
    with pytest.raises(Exception, match="Not all values of h"):
        export(model, (torch.zeros(dynamic.optimum),), dynamic_shapes=dynamic.spec)
    from convlint.contract import ExportRefused

    with pytest.raises(ExportRefused, match="so the constraint is torch.export's own") as refused:
        dynamic.export(model)
    assert "torch.export said: Constraints violated (h, w)!" in str(refused.value)
    program = (
        convlint.domain(_model("ThreeDownsamplers"), EXAMPLE).dynamic_shapes(64).export(_model("ThreeDownsamplers"))
    )
    assert tuple(program.module()(torch.zeros(1, 3, 40, 48)).shape) == (1, 32, 5, 6)


def test_convlint_shapes_prints_the_export_spec_and_the_profile_as_the_api_gives_them(in_root):
    import json

    target = "fixtures/rules/domain_patterns.py:ThreeDownsamplers"
    args = [sys.executable, "-m", "convlint", "shapes", target, "--input-shape", "1,3,32,32", "--dynamic-shapes", "128"]
    text = subprocess.run(args, capture_output=True, text=True)
    spec = convlint.domain(PATTERNS["ThreeDownsamplers"], EXAMPLE).dynamic_shapes(128)
    assert text.returncode == 0, text.stderr
    assert (
        "  torch.export:\n" + "".join(f"    {line}\n" if line else "\n" for line in spec.source().splitlines())
        in text.stdout
    )
    assert "  Optimisation profile: min 1x3x16x16, opt 1x3x32x32, max 1x3x128x128.\n" in text.stdout
    assert (
        "  Not stated by the dims: H from 16 (the model also runs at 8): torch.export specializes sizes 0 and 1.\n"
        in text.stdout
    )
    (model,) = json.loads(subprocess.run([*args, "--format", "json"], capture_output=True, text=True).stdout)
    assert model["dynamic_shapes"]["source"] == spec.source()
    assert model["dynamic_shapes"]["maximum"] == [1, 3, 128, 128]


def test_torch_jit_script_of_a_guarded_model_says_how_and_a_script_module_is_refused_clearly():
    guarded = convlint.guard(_model("ThreeDownsamplers"), EXAMPLE)
    with pytest.raises(TypeError, match="torch.jit.script cannot compile convlint.guard's check"):
        torch.jit.script(guarded)
    guarded.convlint_guard.remove()
    scripted = torch.jit.script(guarded)  # the check off: it scripts
    assert tuple(scripted(torch.zeros(1, 3, 64, 64)).shape) == (1, 32, 8, 8)
    from convlint import contract

    with pytest.raises(TypeError, match="a ScriptModule takes no forward hooks"):
        contract.guard(scripted, convlint.domain(_model("ThreeDownsamplers"), EXAMPLE))
    with pytest.raises(TypeError, match="a ScriptModule takes no forward hooks"):
        convlint.guard(scripted, EXAMPLE)


@pytest.mark.parametrize("name", ["ChannelsLastSkip", "ChannelsLastUNet"])
def test_the_guard_reads_a_channels_last_inputs_sizes_where_its_convolutions_do(name):
    """N, H, W, C input: the guard reads dims 1 and 2 (counted from the end, so an unbatched
    H, W, C input too), and refuses exactly where the real model fails."""
    models = {cls.__name__: cls for cls in _models(os.path.join(FIXTURES, "rules", "layouts.py"))}
    bare, guarded = models[name]().eval(), convlint.guard(models[name]().eval(), (1, 64, 64, 3))
    wrong = []
    for h, w in [(n, n) for n in range(4, 40)] + [(h, w) for h in (8, 13, 30) for w in range(4, 40, 3)]:
        said = _guard_says(guarded, (1, h, w, 3))
        real = runs(bare, (1, h, w, 3))
        if said == "fails" or (said == "refused") == real:
            wrong.append(((h, w), said, real))
    assert not wrong, wrong[:8]
    assert _guard_says(guarded, (61, 59, 3)) == "refused"


def test_a_domain_of_one_size_exports_static():
    """A Linear after a flatten: H * W = 1024, of squares only 32 x 32. A Dim of one value
    is no Dim (torch.export specializes it): the spec is static and says why."""
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 1, 3, padding=1), torch.nn.Flatten(), torch.nn.Linear(1024, 2))
    dynamic = convlint.domain(model, EXAMPLE).dynamic_shapes()
    assert dynamic.spec == ({},)
    assert dynamic.minimum == dynamic.optimum == dynamic.maximum == EXAMPLE
    assert dynamic.narrowed and dynamic.narrowed[0].endswith(
        "square inputs only (torch.export's dims cannot state the rest)"
    )
    assert tuple(dynamic.export(model.eval()).module()(torch.zeros(EXAMPLE)).shape) == (1, 2)
