"""Warnings raised while models are imported, built and run are not convlint's report."""

import subprocess
import sys
import textwrap

MODEL = textwrap.dedent(
    """
    import warnings
    import torch.nn as nn

    warnings.warn("a warning raised when the model file is imported", UserWarning)


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            warnings.warn("a deprecation raised when the model is built", DeprecationWarning)
            self.conv = nn.Conv2d(3, 8, 3, padding=1)

        def forward(self, x):
            warnings.warn("a warning raised when the model runs", FutureWarning)
            return self.conv(x)
    """
)


def _run(tmp_path, *extra):
    (tmp_path / "warns.py").write_text(MODEL)
    return subprocess.run(
        [sys.executable, "-m", "convlint", "check", "warns.py", *extra],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_warnings_from_the_model_stay_out_of_the_output(tmp_path):
    run = _run(tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout == ""
    assert run.stderr == "All checks passed! (1 model in 1 file)\n"


def test_verbose_shows_the_warnings_on_stderr(tmp_path):
    run = _run(tmp_path, "-v")
    assert run.returncode == 0, run.stderr
    assert "a warning raised when the model file is imported" in run.stderr
    assert "DeprecationWarning: a deprecation raised when the model is built" in run.stderr
    assert run.stdout == ""
