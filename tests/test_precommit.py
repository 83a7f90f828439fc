"""The real pre-commit, with this repository as the hook source, on a temporary repo."""
import os
import shutil
import subprocess
import sys

from conftest import FIXTURES, ROOT


def run(*args, cwd, env=None):
    return subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, timeout=600, env=env)


def test_hook_fails_on_a_broken_layer_and_passes_after_fix(tmp_path):
    head = run("git", "rev-parse", "HEAD", cwd=ROOT).stdout.strip()
    project = tmp_path / "project"
    project.mkdir()
    shutil.copyfile(os.path.join(FIXTURES, "seed.py"), project / "aspp.py")
    (project / "notes.py").write_text("def helper():\n    return 1\n")  # no model: not imported
    (project / ".pre-commit-config.yaml").write_text(
        f"repos:\n  - repo: {ROOT}\n    rev: {head}\n    hooks:\n      - id: convlint\n"
    )
    env = {
        **os.environ,
        "PRE_COMMIT_HOME": str(tmp_path / "cache"),
        "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
        "GIT_CONFIG_GLOBAL": str(tmp_path / "gitconfig"),
    }
    assert run("git", "init", "-q", cwd=project).returncode == 0
    run("git", "add", ".", cwd=project)
    pre_commit = [sys.executable, "-m", "pre_commit", "run", "--all-files", "--color", "never"]

    failing = run(*pre_commit, cwd=project, env=env)
    assert failing.returncode == 1, failing.stdout + failing.stderr
    assert "aspp.py:17:24: CVL101" in failing.stdout and "use padding=6" in failing.stdout

    fixed = run(sys.executable, "-m", "convlint", "check", "--fix", "aspp.py", cwd=project, env=env)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    run("git", "add", ".", cwd=project)
    passing = run(*pre_commit, cwd=project, env=env)
    assert passing.returncode == 0, passing.stdout + passing.stderr
    assert "convlint" in passing.stdout and "Passed" in passing.stdout
