"""`pytest --convlint`: one item per model, passing or failing as `convlint check` does,
spread by pytest-xdist, sharded by pytest-split, cached on the files each model runs."""

import json
import os
import re
import shutil
import subprocess
import sys

from conftest import FIXTURES, readme_block

CLEAN = """\
import torch.nn as nn


class Clean(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)

    def forward(self, x):
        return self.conv(x)
"""

BROKEN = """\
import torch.nn as nn


class Broken(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        raise RuntimeError("no weights here")

    def forward(self, x):
        return self.conv(x)
"""


def _project(tmp_path):
    """The bundled U-Net configured with its arguments, the seed ASPP (two findings), a
    clean model, and one whose constructor raises."""
    project = tmp_path / "project"
    shutil.copytree(os.path.join(FIXTURES, "repos", "unet"), project, ignore=shutil.ignore_patterns(".convlint_cache"))
    shutil.copyfile(os.path.join(FIXTURES, "seed.py"), project / "aspp.py")
    (project / "clean.py").write_text(CLEAN)
    (project / "broken.py").write_text(BROKEN)
    return project


def _run(project, *args):
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=project, capture_output=True, text=True, timeout=600, env=env
    )


def _outcomes(run) -> dict:
    """node id -> PASSED / FAILED, from -rA's short summary."""
    return dict(
        (m.group(2), m.group(1)) for m in re.finditer(r"^(PASSED|FAILED|ERROR) (\S+(?: \S+\))?)", run.stdout, re.M)
    )


def test_one_item_per_model_failing_as_check_does_spread_over_two_processes(tmp_path):
    project = _project(tmp_path)
    check = _run(project, "convlint", "check")
    assert check.returncode == 1
    collected = _run(project, "pytest", "--convlint", "--collect-only", "-q", "-p", "no:cacheprovider")
    items = sorted(line for line in collected.stdout.splitlines() if "::" in line)
    assert items == [
        "aspp.py::ASPP",
        "broken.py::Broken",
        "clean.py::Clean",
        "pyproject.toml::unet.unet_model:UNet(3, 2)",
    ], collected.stdout
    run = _run(project, "pytest", "--convlint", "-n", "2", "-rA", "-p", "no:cacheprovider")
    assert run.returncode == 1, run.stdout[-3000:]
    assert _outcomes(run) == {
        "aspp.py::ASPP": "FAILED",
        "broken.py::Broken": "FAILED",
        "clean.py::Clean": "PASSED",
        "pyproject.toml::unet.unet_model:UNet(3, 2)": "PASSED",
    }, run.stdout[-3000:]
    for line in check.stdout.splitlines():  # each finding, as `convlint check` prints it
        assert line in run.stdout, line
    assert "no weights here" in check.stdout


def test_an_unchanged_model_is_not_analysed_again_and_a_fix_makes_its_item_pass(tmp_path):
    project = _project(tmp_path)
    (project / "broken.py").unlink()
    first = _run(project, "pytest", "--convlint", "-rA")
    assert _outcomes(first)["aspp.py::ASPP"] == "FAILED"
    entry = project / ".pytest_cache" / "v" / "convlint" / "aspp.py::ASPP"
    kept = json.loads(entry.read_text())
    assert os.path.join(str(project), "aspp.py") in kept["files"] and "CVL101" in kept["said"]
    # the outcome kept is given again without analysing (marked here to tell), and --lf
    # runs only the failed item
    entry.write_text(json.dumps({**kept, "said": kept["said"] + "(from the cache)"}))
    again = _run(project, "pytest", "--convlint", "--lf", "-rA")
    assert _outcomes(again) == {"aspp.py::ASPP": "FAILED"}, again.stdout[-2000:]
    assert "CVL101 [*] `branch2`" in again.stdout and "(from the cache)" in again.stdout
    # a changed file is checked again: fixed, the item passes
    assert _run(project, "convlint", "check", "aspp.py", "--fix").returncode == 0  # the CVL301 goes with it
    fixed = _run(project, "pytest", "--convlint", "-rA")
    assert _outcomes(fixed)["aspp.py::ASPP"] == "PASSED", fixed.stdout[-2000:]


def test_the_readme_matrix_shards_the_models_over_runners(tmp_path):
    """The README's GitHub Actions matrix: each group runs its share of the convlint
    items, and together they run every item once."""
    import yaml

    project = _project(tmp_path)
    workflow = yaml.safe_load(readme_block("pytest-matrix"))
    job = workflow["jobs"]["models"]
    groups = job["strategy"]["matrix"]["group"]
    [command] = [s["run"] for s in job["steps"] if "pytest" in s.get("run", "") and "--convlint" in s["run"]]
    seen = []
    for group in groups:
        args = command.replace("${{ matrix.group }}", str(group)).split()
        assert args[:2] == ["pytest", "--convlint"] and f"--splits {len(groups)}" in command
        run = _run(project, *args, "-rA", "-p", "no:cacheprovider")
        assert run.returncode in (0, 1), run.stdout[-2000:] + run.stderr[-2000:]
        seen += list(_outcomes(run))
    assert sorted(seen) == [
        "aspp.py::ASPP",
        "broken.py::Broken",
        "clean.py::Clean",
        "pyproject.toml::unet.unet_model:UNet(3, 2)",
    ]
