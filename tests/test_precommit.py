"""The real pre-commit, with this repository as the hook source, on a temporary repo."""

import os
import shutil
import subprocess
import sys

from conftest import FIXTURES, ROOT, readme_block


def run(*args, cwd, env=None):
    return subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, timeout=600, env=env)


def test_readme_hook_fails_on_a_broken_layer_and_passes_after_fix(tmp_path):
    """The README's remote-hook block as written, its placeholder URL made this clone (the
    ``rev`` it names must exist: once it was a tag nobody made)."""
    source = ROOT  # a clone of this repository, with the branch the README names
    project = tmp_path / "project"
    project.mkdir()
    shutil.copyfile(os.path.join(FIXTURES, "seed.py"), project / "aspp.py")
    (project / "notes.py").write_text("def helper():\n    return 1\n")  # no model: not imported
    config = readme_block("pre-commit-remote").replace("https://example.org/your/convlint/mirror", str(source))
    assert str(source) in config
    (project / ".pre-commit-config.yaml").write_text(config)
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


def test_readme_local_hook_snippet_works_as_copied(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    shutil.copyfile(os.path.join(FIXTURES, "seed.py"), project / "aspp.py")
    (project / ".pre-commit-config.yaml").write_text(readme_block("pre-commit-local"))
    env = {
        **os.environ,
        "PRE_COMMIT_HOME": str(tmp_path / "cache"),
        "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
        "GIT_CONFIG_GLOBAL": str(tmp_path / "gitconfig"),
    }
    run("git", "init", "-q", cwd=project)
    run("git", "add", ".", cwd=project)
    pre_commit = [sys.executable, "-m", "pre_commit", "run", "--all-files", "--color", "never"]
    failing = run(*pre_commit, cwd=project, env=env)
    assert failing.returncode == 1 and "aspp.py:17:24: CVL101" in failing.stdout, failing.stdout + failing.stderr
    run(sys.executable, "-m", "convlint", "check", "--fix", "aspp.py", cwd=project, env=env)
    run("git", "add", ".", cwd=project)
    assert run(*pre_commit, cwd=project, env=env).returncode == 0


def test_readme_github_actions_commands_run_as_written(tmp_path):

    import yaml

    workflow = yaml.safe_load(readme_block("github-actions"))
    steps = [s["run"] for s in workflow["jobs"]["convlint"]["steps"] if "convlint check" in s.get("run", "")]
    assert len(steps) == 2
    shutil.copyfile(os.path.join(FIXTURES, "seed.py"), tmp_path / "aspp.py")
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}
    annotations = subprocess.run(
        steps[0],
        shell=True,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**env, "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md")},
        timeout=300,
    )
    assert annotations.returncode == 1  # the job fails on findings
    assert annotations.stdout.startswith("::error file=aspp.py,line=17,")
    summary = (tmp_path / "summary.md").read_text()  # the picture of the merge in the job summary
    assert "### `aspp.py:ASPP`" in summary and "style n_cat fill:#fde0dd" in summary
    upload = subprocess.run(steps[1], shell=True, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
    assert upload.returncode == 0  # --exit-zero: the SARIF is uploaded either way
    assert '"ruleId": "CVL101"' in (tmp_path / "convlint.sarif").read_text()
    assert workflow["jobs"]["convlint"]["steps"][-1]["with"]["sarif_file"] == "convlint.sarif"
    # torch from the CPU index, before anything that could pull the default (CUDA) build
    installs = [s["run"] for s in workflow["jobs"]["convlint"]["steps"] if "pip install" in s.get("run", "")]
    assert installs[0] == "pip install torch --index-url https://download.pytorch.org/whl/cpu", installs


def test_a_commit_checks_the_configured_model_its_change_touches_and_an_unrelated_one_runs_none(tmp_path):
    """fixtures/repos/unet: `models = ["unet.unet_model:UNet(3, 2)"]`, UNet built from the
    blocks in unet/unet_parts.py; pre-commit passes only the changed file names."""
    import time

    project = tmp_path / "project"
    shutil.copytree(os.path.join(FIXTURES, "repos", "unet"), project, ignore=shutil.ignore_patterns(".convlint_cache"))
    (project / ".pre-commit-config.yaml").write_text(readme_block("pre-commit-local"))
    env = {
        **os.environ,
        "PRE_COMMIT_HOME": str(tmp_path / "cache"),
        "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
        "GIT_CONFIG_GLOBAL": str(tmp_path / "gitconfig"),
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.org",
    }
    run("git", "init", "-q", cwd=project, env=env)
    assert run(sys.executable, "-m", "pre_commit", "install", cwd=project, env=env).returncode == 0

    def commit(message):
        run("git", "add", "-A", cwd=project, env=env)
        return run("git", "commit", "-q", "-m", message, cwd=project, env=env)

    first = commit("the U-Net")
    assert first.returncode == 0, first.stdout + first.stderr

    parts = project / "unet" / "unet_parts.py"
    good = parts.read_text()
    parts.write_text(good.replace("kernel_size=3, padding=1, bias", "kernel_size=3, padding=1, dilation=2, bias", 1))
    broken = commit("dilate the first convolution")
    assert broken.returncode == 1  # the block file alone was passed; the configured UNet ran it
    assert "unet/unet_parts.py:16:13: CVL201 `inc.double_conv.0` Conv2d(kernel 3, dilation 2" in broken.stderr

    parts.write_text(good)  # the change is dropped: the tree is as the first commit left it

    train = project / "train.py"
    train.write_text(train.read_text() + "\n# more epochs\n")
    unrelated = commit("a training script change")
    assert unrelated.returncode == 0, unrelated.stdout + unrelated.stderr

    # What the hook ran for that commit, timed on its own against `import torch`.
    def best_of_three(*command):
        times = []
        for _ in range(3):
            start = time.perf_counter()
            done = run(*command, cwd=project, env=env)
            times.append(time.perf_counter() - start)
        return min(times), done

    hook, done = best_of_three("convlint", "check", "train.py")
    assert done.returncode == 0
    assert done.stderr == "convlint: train.py: no configured model runs this file\nNo model was checked (1 file).\n"
    torch_import, _ = best_of_three(sys.executable, "-c", "import torch")
    assert hook < 0.2 * torch_import, (hook, torch_import)
