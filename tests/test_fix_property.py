"""Random layers with a same-intent comment, fixed by the real CLI, then imported and
run on real tensors: every layer the fixer touched keeps its size; the others are left
as they were written."""

import importlib.util
import subprocess
import sys

import torch
from conftest import BUILTIN_RULES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convlint import formulas, layers

CLASSES = {
    1: ("Conv1d", "ConvTranspose1d", "MaxPool1d", "AvgPool1d"),
    2: ("Conv2d", "ConvTranspose2d", "MaxPool2d", "AvgPool2d"),
    3: ("Conv3d", "ConvTranspose3d", "MaxPool3d", "AvgPool3d"),
}


@st.composite
def layer_source(draw, ndim):
    kind = draw(st.sampled_from(["conv", "conv", "conv", "transposed", "maxpool", "avgpool"]))
    k = draw(st.integers(1, 6))
    s = draw(st.integers(1, 3))
    d = draw(st.integers(1, 3)) if kind != "avgpool" else 1
    p = draw(st.integers(0, k // 2))
    style = draw(st.sampled_from(["keyword", "positional", "absent"]))
    conv, transposed, maxpool, avgpool = CLASSES[ndim]
    if kind in ("conv", "transposed"):
        name = conv if kind == "conv" else transposed
        if style == "positional":
            args = f"1, 1, {k}, {s}, {p}" + (f", 0, 1, True, {d}" if kind == "transposed" else f", {d}")
        else:
            args = f"1, 1, {k}, stride={s}, dilation={d}" + (f", padding={p}" if style == "keyword" else "")
    else:
        name = maxpool if kind == "maxpool" else avgpool
        extra = f", dilation={d}" if kind == "maxpool" else ""
        if style == "positional":
            args = f"{k}, {s}, {p}" + (f", {d}" if kind == "maxpool" else "")
        else:
            args = f"{k}, stride={s}{extra}" + (f", padding={p}" if style == "keyword" else "")
    return f"nn.{name}({args})"


@st.composite
def model_source(draw):
    ndim = draw(st.integers(1, 3))
    calls = draw(st.lists(layer_source(ndim), min_size=1, max_size=8))
    lines = [
        "import torch.nn as nn",
        "",
        "",
        "class Model(nn.Module):",
        "    def __init__(self):",
        "        super().__init__()",
    ]
    lines += [f"        self.l{i} = {call}  # convlint: same" for i, call in enumerate(calls)]
    lines += [
        "",
        "    def forward(self, x):",
        f"        return ({', '.join(f'self.l{i}(x)' for i in range(len(calls)))},)",
        "",
    ]
    return ndim, len(calls), "\n".join(lines)


def load(path):
    spec = importlib.util.spec_from_file_location(f"fixed_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Model()


def keeps_size(layer, ndim, sizes):
    geometry = layers.geometry_of(layer)
    for n in sizes:
        if any(n < geometry.min_input(i) for i in range(ndim)):
            continue
        with torch.no_grad():
            out = layer(torch.zeros((1, 1) + (n,) * ndim)).shape[2:]
        want = tuple(formulas.same_target(n, geometry.scale_stride(i)) for i in range(ndim))
        if tuple(out) != want:
            return False
    return True


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(model_source())
def test_cli_fix_makes_every_fixed_layer_keep_its_size_on_real_tensors(tmp_path_factory, case):
    ndim, count, source = case
    work = tmp_path_factory.mktemp("fixprop")
    (work / "model.py").write_text(source)
    shape = ",".join(["1", "1"] + ["24"] * ndim)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "convlint",
            "check",
            "model.py",
            "--fix",
            "--unsafe-fixes",
            "--input-shape",
            shape,
            "--select",
            ",".join(BUILTIN_RULES),
        ],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode in (0, 1), run.stderr
    assert "Traceback" not in run.stderr
    fixed_lines = (work / "model.py").read_text().splitlines()
    original_lines = source.splitlines()
    model = load(str(work / "model.py"))
    sizes = [1, 2, 3, 5, 8, 13, 17, 24] if ndim < 3 else [1, 2, 5, 8, 11]
    for i in range(count):
        line = next(j for j, text in enumerate(original_lines) if text.strip().startswith(f"self.l{i} ="))
        layer = getattr(model, f"l{i}")
        if fixed_lines[line] != original_lines[line]:
            assert keeps_size(layer, ndim, sizes), (original_lines[line], fixed_lines[line])
            assert (
                f"model.py:{line + 1}:" not in run.stdout
                or "CVL1" not in run.stdout.split(f"model.py:{line + 1}:")[1].split("\n")[0]
            )
        elif not keeps_size(layer, ndim, sizes):
            # left alone: convlint must still report it, saying there is no automatic fix
            report = [row for row in run.stdout.splitlines() if row.startswith(f"model.py:{line + 1}:")]
            assert report, (original_lines[line], run.stdout)
