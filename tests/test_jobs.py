"""`convlint check --jobs N`: models analysed in worker processes give the serial run's
report, byte for byte, with fixes planned over every model's modules."""

import json
import re
import subprocess
import sys
import textwrap

from conftest import ROOT


def convlint(*args, cwd=ROOT):
    return subprocess.run(
        [sys.executable, "-m", "convlint", *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )


def test_two_workers_report_what_one_process_reports_on_the_rule_fixtures():
    serial = convlint("check", "fixtures/rules", "--format", "json", "-j", "1")
    parallel = convlint("check", "fixtures/rules", "--format", "json", "-j", "2")
    assert serial.returncode == parallel.returncode == 1
    assert len(json.loads(serial.stdout)) > 50  # every finding, its fix and message
    assert parallel.stdout == serial.stdout
    assert parallel.stderr == serial.stderr  # the summary: models, coverage, fixable counts


def _project(tmp_path):
    """One block call builds a 3x3 convolution in one model (`padding=1` keeps its size)
    and a 4x4 one in another (no symmetric padding does): the call has no safe fix, though
    a worker seeing the first model alone would plan one. A third model ends its process
    while it runs."""
    (tmp_path / "blocks.py").write_text(
        textwrap.dedent(
            """\
            import torch.nn as nn

            KERNELS = {"small": 3, "large": 4}


            class Block(nn.Module):
                def __init__(self, size):
                    super().__init__()
                    self.conv = nn.Conv2d(8, 8, KERNELS[size], padding=0)  # convlint: same

                def forward(self, x):
                    return self.conv(x)
            """
        )
    )
    (tmp_path / "nets.py").write_text(
        textwrap.dedent(
            """\
            import os

            import torch.nn as nn

            from blocks import Block


            class Two(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.block = Block("small")

                def forward(self, x):
                    return self.block(x)


            class Three(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.block = Block("large")

                def forward(self, x):
                    return self.block(x)


            class Exits(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.conv = nn.Conv2d(8, 8, 3, padding=1)

                def forward(self, x):
                    os._exit(3)
            """
        )
    )


def test_a_fix_is_planned_over_the_modules_every_worker_saw(tmp_path):
    _project(tmp_path)
    runs = [
        convlint(
            "check",
            "blocks.py",
            "nets.py:Two",
            "nets.py:Three",
            "--input-shape",
            "1,8,32,32",
            "--format",
            "json",
            "-j",
            j,
            cwd=tmp_path,
        )
        for j in ("1", "2")
    ]
    assert runs[0].stdout == runs[1].stdout and runs[0].returncode == runs[1].returncode == 1
    findings = {f["code"]: f for f in json.loads(runs[1].stdout)}
    assert findings["CVL101"]["path"] == "blocks.py" and findings["CVL101"]["fix"] is None
    assert findings["CVL102"]["fix"]["applicability"] == "unsafe"
    alone = convlint("check", "nets.py:Two", "--input-shape", "1,8,32,32", "--format", "json", "-j", "1", cwd=tmp_path)
    assert json.loads(alone.stdout)[0]["fix"]["applicability"] == "safe"  # what one worker would have planned


def test_a_model_that_ends_its_worker_is_a_finding_and_the_others_are_reported(tmp_path):
    _project(tmp_path)
    run = convlint("check", ".", "--input-shape", "1,8,32,32", "-j", "2", cwd=tmp_path)
    assert run.returncode == 1
    lines = run.stdout.splitlines()
    exits = [line for line in lines if "CVL901" in line]
    assert exits == [
        "nets.py:26:1: CVL901 `nets.py:Exits` could not be analysed: its worker process ended "
        "(the process ended with exit status 3)"
    ], run.stdout
    assert any("blocks.py:9" in line and "CVL101" in line for line in lines)


_STREAM = """
import sys

import torch  # noqa: F401

from convlint import jobs
from convlint.outcome import Outcome

built_before = []  # how many models the parent had built when each child answered
warmed = []


def built():
    for name in ("plain", "slices", "plain2", "raises"):
        built_before.append(name)
        yield (name, None, None, None, None)


def analyse(entry):
    name = entry[0]
    had = "torch._dynamo" in sys.modules
    if name == "slices":
        import torch._dynamo  # noqa: F401  (what an op run on meta imports)
    if name == "raises":
        raise ValueError("no size for this")
    return Outcome([f"{name}: dynamo at start: {had}"], None, (0, 0, 0), {}, True, None)


def warm_meta():
    import torch._dynamo  # noqa: F401

    warmed.append(len(built_before))


def failed(entry, why):
    return Outcome([f"{entry[0]} failed: {why}"], None, (0, 0, 0), {}, False, None)


for entry, outcome in jobs.analysed(built(), analyse, failed, 1, warm_meta):
    print(outcome.findings[0], len(built_before))
print("warmed", warmed)
"""


def test_children_answer_in_order_and_what_one_imported_is_loaded_for_the_next(tmp_path):
    """A child per model, forked as the model is built; answers in the models' order;
    after a child imported torch._dynamo the parent loads it once, so the children forked
    later start with it; a child whose analysis raises gives ``failed`` with the reason."""
    (tmp_path / "stream.py").write_text(_STREAM)
    run = subprocess.run([sys.executable, "stream.py"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert [line.rsplit(" ", 1)[0] for line in lines[:4]] == [
        "plain: dynamo at start: False",
        "slices: dynamo at start: False",
        "plain2: dynamo at start: True",
        "raises failed: ValueError: no size for this",
    ]
    # the parent built ahead of the answers: the next model was built while a child ran
    assert [int(line.rsplit(" ", 1)[1]) for line in lines[:4]][:2] == [2, 3]
    assert lines[4] == "warmed [3]"


def _on_a_terminal(*args):
    """(stdout, what a terminal on stderr showed) of a run."""
    import os
    import pty

    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "convlint", *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=slave, text=True
    )
    os.close(slave)
    shown = []
    while True:
        try:
            chunk = os.read(master, 1 << 16)
        except OSError:  # the run ended: the terminal's other side is gone
            break
        if not chunk:
            break
        shown.append(chunk)
    out = proc.stdout.read()
    proc.wait(timeout=600)
    os.close(master)
    return out, b"".join(shown).decode("utf-8", "replace")


def test_a_long_run_on_a_terminal_draws_a_progress_line_and_json_or_a_pipe_never_does():
    out, terminal = _on_a_terminal("check", "fixtures/rules", "-j", "1")
    assert re.search(r"convlint: .*\d+ models", terminal), terminal[-2000:]
    assert "fixtures/rules/" in terminal.split("Found")[0]  # the model it is on
    assert "\r" in terminal and "Found" in terminal and "models/s" not in out  # stdout: the report alone
    _, terminal = _on_a_terminal("check", "fixtures/rules", "-j", "1", "--format", "json")
    assert " models" not in terminal.split("Found")[0]
    piped = convlint("check", "fixtures/rules", "-j", "1")
    assert "convlint: " not in piped.stderr and "\r" not in piped.stderr
