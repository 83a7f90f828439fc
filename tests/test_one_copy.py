"""Logic that existed twice and had diverged: one copy now, one behaviour."""

import subprocess
import sys
import textwrap

import torch
import torch.nn as nn

import convlint


class CatAlongWidth(nn.Module):
    """A cat along W joins a map with its W-halved copy: their W differ by design."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.pool = nn.MaxPool2d((1, 2))

    def forward(self, x):
        y = self.conv(x)
        return torch.cat([y, self.pool(y)], dim=-1)


def test_a_cat_along_w_needs_nothing_of_w_in_check_and_in_shapes():
    assert convlint.check(CatAlongWidth, (1, 3, 32, 32)) == []
    requirements = convlint.shapes(CatAlongWidth, (1, 3, 32, 32))["requirements"]
    assert requirements == ["runs for H >= 1, W >= 2"]
    for w in (2, 3, 31, 32, 33):  # PyTorch agrees: it runs at every W >= 2
        CatAlongWidth()(torch.zeros(1, 3, 5, w))


SHARED_HELPER = textwrap.dedent(
    """
    import torch.nn as nn


    def conv3x3(c, d):
        return nn.Conv2d(c, c, 3, padding=1, dilation=d)  # convlint: same


    class A(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = conv3x3(4, 2)

        def forward(self, x):
            return self.conv(x)


    class B(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = conv3x3(4, 4)

        def forward(self, x):
            return self.conv(x)
    """
)


def test_two_configured_models_sharing_a_helper_get_one_expression_fix(tmp_path):
    (tmp_path / "models.py").write_text(SHARED_HELPER)
    (tmp_path / "pyproject.toml").write_text(
        '[tool.convlint]\nmodels = [{ target = "models.py:A", input-shape = [1, 4, 16, 16] }, "models.py:B"]\n'
    )
    run = subprocess.run(
        [sys.executable, "-m", "convlint", "check", "--diff"], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 1, run.stderr
    assert "+    return nn.Conv2d(c, c, 3, padding=d, dilation=d)  # convlint: same" in run.stdout
    assert run.stderr.endswith("Would fix 2 findings.\n"), run.stderr
    summary = subprocess.run(
        [sys.executable, "-m", "convlint", "check"], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert "[*] 2 fixable" in summary.stderr and "in 2 models" in summary.stderr and "0 files" not in summary.stderr
    fixed = subprocess.run(
        [sys.executable, "-m", "convlint", "check", "--fix"], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    namespace: dict = {}
    exec((tmp_path / "models.py").read_text(), namespace)
    for cls in (namespace["A"], namespace["B"]):  # PyTorch agrees: both keep their size
        assert cls()(torch.zeros(1, 4, 13, 16)).shape[-2:] == (13, 16)
