"""Third-party rules through the convlint.rules entry point."""

import os
import subprocess
import sys

from conftest import ROOT


def convlint(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "convlint", *args], cwd=ROOT, capture_output=True, text=True, timeout=300, env=env
    )


def test_example_plugin_installed_from_fixtures_adds_its_rule(tmp_path):
    site = tmp_path / "site"
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(site),
            os.path.join(ROOT, "fixtures", "plugin_example"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr
    env = {**os.environ, "PYTHONPATH": str(site)}
    listing = convlint("rules", env=env)
    assert any(line.startswith("EXA001  large-kernel") for line in listing.stdout.splitlines())
    run = convlint("check", "fixtures/large_kernel.py", "--input-shape", "1,3,32,32", env=env)
    assert run.returncode == 1
    assert run.stdout == (
        "fixtures/large_kernel.py:8:21: EXA001 `conv` has a (11, 11) kernel; stack smaller ones instead\n"
    )
    assert convlint("check", "fixtures/large_kernel.py", "--ignore", "EXA", env=env).returncode == 0


def test_a_broken_plugin_is_an_error_naming_it_and_the_other_rules_still_report(tmp_path):
    dist = tmp_path / "site" / "broken_plugin-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[convlint.rules]\nbroken = convlint_no_such_plugin_module\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    run = convlint("check", "fixtures/seed.py", env=env)
    assert run.returncode == 2 and "CVL101" in run.stdout  # exit 2 as flake8: its rules never ran
    assert (
        "convlint: error: plugin 'broken' (convlint_no_such_plugin_module) failed to load: ModuleNotFoundError"
        in run.stderr
    )
    clean = convlint("check", "fixtures/rules/clean.py", env=env)
    assert clean.returncode == 2 and "All checks passed!" not in clean.stderr
    assert "No problems found by the rules that loaded (1 model in 1 file); 1 plugin problem(s)" in clean.stderr
