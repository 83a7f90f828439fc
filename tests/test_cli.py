"""The real `convlint` command on fixtures: output, formats, exit codes, configuration."""

import json
import os
import re
import subprocess
import sys

from conftest import BUILTIN_RULES, ROOT, readme_block

SEED = ["fixtures/seed.py", "--input-shape", "1,256,19,19"]


def convlint(*args, cwd=ROOT):
    return subprocess.run(
        [sys.executable, "-m", "convlint", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_seed_example_prints_the_cvl101_line_with_its_fix_as_the_readme_shows():
    run = convlint("check", *SEED)
    assert run.returncode == 1
    assert run.stdout + run.stderr == readme_block("seed-output")
    assert "CVL101 [*] `branch2` Conv2d(kernel 3, dilation 6, padding 1)" in run.stdout
    assert "H -> H - 10, W -> W - 10; at the example input 19x19 -> 9x9; use padding=6" in run.stdout


def test_clean_model_exits_zero_with_a_summary_on_stderr():
    run = convlint(
        "check", "fixtures/rules/clean.py", "--input-shape", "1,16,33,31", "--select", ",".join(BUILTIN_RULES)
    )
    assert (run.returncode, run.stdout) == (0, "")
    assert run.stderr.startswith("All checks passed!")


def test_exit_zero_and_select_ignore():
    assert convlint("check", *SEED, "--exit-zero").returncode == 0
    only_301 = convlint("check", *SEED, "--select", "CVL3")
    assert [row.split()[1] for row in only_301.stdout.splitlines()] == ["CVL301"]
    none = convlint("check", *SEED, "--ignore", "CVL1,CVL301")
    assert (none.returncode, none.stdout) == (0, "")
    # the longer prefix wins, as in ruff
    back = convlint("check", *SEED, "--select", "CVL101", "--ignore", "CVL1")
    assert [row.split()[1] for row in back.stdout.splitlines()] == ["CVL101"]


def test_json_output_has_the_documented_keys():
    run = convlint("check", *SEED, "--format", "json")
    data = json.loads(run.stdout)
    assert [d["code"] for d in data] == ["CVL101", "CVL301"]
    keys = {"code", "severity", "path", "line", "column", "end_line", "end_column", "message", "model", "module", "fix"}
    keys |= {"related", "detail"}
    assert all(set(d) == keys for d in data)
    first = data[0]
    assert (first["path"], first["line"], first["column"], first["end_line"]) == ("fixtures/seed.py", 17, 24, 17)
    assert first["end_column"] > first["column"]
    assert (first["severity"], first["model"], first["module"]) == ("error", "fixtures/seed.py:ASPP", "branch2")


def test_usage_errors_exit_two():
    assert convlint("check", *SEED[:1], "--input-shape", "1,x,3").returncode == 2
    assert convlint("rules", "CVL999").returncode == 2
    assert convlint("check", "--format", "yaml", SEED[0]).returncode == 2


def test_a_file_that_does_not_import_is_a_finding_and_the_run_goes_on():
    run = convlint("check", "fixtures/rules/broken_import.py", *SEED)
    assert run.returncode == 1
    codes = [row.split()[1] for row in run.stdout.splitlines()]
    assert codes == ["CVL900", "CVL101", "CVL301"]
    assert run.stdout.startswith("fixtures/rules/broken_import.py:4:1: CVL900 cannot import")


def test_missing_path_is_reported():
    run = convlint("check", "no/such/file.py")
    assert run.returncode == 1 and "CVL900 no such file or directory" in run.stdout


def test_targets_by_module_and_by_file_with_relative_imports():
    by_module = convlint("check", "fixtures.pkg.models.net:build_net", "--same", "body.*")
    by_file = convlint("check", "fixtures/pkg/models/net.py:Net", "--same", "body.*")
    whole_file = convlint("check", "fixtures/pkg/models/net.py", "--same", "body.*")
    for run in (by_module, by_file, whole_file):
        assert run.returncode == 1, run.stderr
        lines = run.stdout.splitlines()
        assert len(lines) == 1
        assert lines[0].startswith("fixtures/pkg/models/blocks.py:5:12: CVL101 [*] `body.1`")
        assert lines[0].endswith("use padding=2")


def test_config_in_pyproject_declares_intent_and_rejects_unknown_keys(tmp_path):
    model = tmp_path / "model.py"
    model.write_text(
        "import torch.nn as nn\n\n"
        "class M(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.head = nn.Sequential(nn.Conv2d(3, 3, 3), nn.Conv2d(3, 3, 3, padding=1))\n\n"
        "    def forward(self, x):\n"
        "        return self.head(x)\n"
    )
    (tmp_path / "pyproject.toml").write_text('[tool.convlint]\nsame = ["head"]\ninput-shape = [1, 3, 20, 20]\n')
    run = convlint("check", "model.py", cwd=tmp_path)
    assert run.returncode == 1
    assert run.stdout.startswith("model.py:6:21: CVL103 block `head` (Sequential) does not keep its size: H -> H - 2")
    assert "layers responsible: `head.0` (H -> H - 2, W -> W - 2)" in run.stdout
    (tmp_path / "pyproject.toml").write_text('[tool.convlint]\nsame = "head"\n')
    bad_type = convlint("check", "model.py", cwd=tmp_path)
    assert bad_type.returncode == 2 and "same must be a list of strings" in bad_type.stderr
    (tmp_path / "pyproject.toml").write_text('[tool.convlint]\nsaem = ["head"]\n')
    unknown = convlint("check", "model.py", cwd=tmp_path)
    assert unknown.returncode == 2 and "unknown key [tool.convlint] 'saem'" in unknown.stderr
    (tmp_path / "pyproject.toml").write_text(
        '[tool.convlint]\nmodels = [{target = "model.py:M", input-shape = [1, 3, 9, 9]}]\nsame = ["head"]\n'
    )
    from_config = convlint("check", cwd=tmp_path)
    assert from_config.returncode == 1 and "CVL103" in from_config.stdout


def test_rules_command_lists_every_rule_and_explains_one():
    listing = convlint("rules")
    codes = [row.split()[0] for row in listing.stdout.splitlines()]
    assert codes == sorted(codes) and {"CVL101", "CVL102", "CVL103", "CVL900", "CVL901", "CVL902"} <= set(codes)
    doc = convlint("rules", "cvl101")
    assert doc.returncode == 0
    for heading in ("## What it does", "## Why is this bad?", "## Example", "## Fix"):
        assert heading in doc.stdout


def test_shapes_json_marks_unknown_dimensions_after_a_leaf():
    run = convlint(
        "shapes", "fixtures/rules/untraceable.py:PartlyRunnable", "--input-shape", "1,3,32,32", "--format", "json"
    )
    assert run.returncode == 0, run.stderr
    (model,) = json.loads(run.stdout)
    assert model["symbols"] == {"H": 32, "W": 32}
    assert list(model["leaves"]) == ["dynamic"]
    rows = {r["name"]: r for r in model["layers"]}
    assert rows["stem"]["size"] == ["1", "8", "H", "W"] and rows["stem"]["unknown"] == []
    assert (rows["stem"]["kernel"], rows["stem"]["receptive_field"], rows["stem"]["jump"]) == (
        [3, 3],
        [3, 3],
        ["1", "1"],
    )
    assert rows["dynamic"]["unknown"] == [0, 1, 2, 3] and "control flow" in rows["dynamic"]["leaf"]
    assert "item() cannot be called on meta tensors" in rows["dynamic"]["unknown_because"]
    assert rows["head"]["size"] == [None, "8", None, None] and rows["head"]["shape"] == [1, 8, 32, 32]


def test_shapes_text_has_the_layer_table_and_what_the_model_needs_of_its_input():
    run = convlint("shapes", "fixtures/rules/merges.py:TinyUNet", "--input-shape", "1,3,64,48")
    lines = run.stdout.splitlines()
    assert lines[1].split() == ["layer", "type", "settings", "size", "shape", "rf", "jump"]
    pool = next(row for row in lines if row.strip().startswith("pool ") and "1x8x4x3" in row)
    assert "k2 s2 p0" in pool and "(1, 8, floor(H/16), floor(W/16))" in pool and pool.split()[-2:] == ["48", "16"]
    assert lines[-1] == "  Model input: runs for H, W multiples of 16: `torch.cat([up(x), skips.pop()], dim=1)`."


def test_config_select_ignore_exclude_and_cli_override(tmp_path):
    import shutil

    from conftest import FIXTURES

    (tmp_path / "models").mkdir()
    (tmp_path / "vendored").mkdir()
    shutil.copyfile(os.path.join(FIXTURES, "seed.py"), tmp_path / "models" / "aspp.py")
    shutil.copyfile(os.path.join(FIXTURES, "seed.py"), tmp_path / "vendored" / "aspp_copy.py")
    (tmp_path / "pyproject.toml").write_text(
        '[tool.convlint]\nignore = ["CVL3"]\nexclude = ["vendored"]\ninput-shape = [1, 256, 19, 19]\n'
    )
    run = convlint("check", ".", cwd=tmp_path)
    assert [(row.split(":")[0], row.split()[1]) for row in run.stdout.splitlines()] == [("models/aspp.py", "CVL101")]
    overridden = convlint("check", ".", "--ignore", "CVL1", cwd=tmp_path)  # the flag replaces the file's ignore
    assert [row.split()[1] for row in overridden.stdout.splitlines()] == ["CVL301"]
    (tmp_path / "pyproject.toml").write_text('[tool.convlint]\nselect = "CVL1"\n')
    bad = convlint("check", ".", cwd=tmp_path)
    assert bad.returncode == 2 and "[tool.convlint] select must be a list of strings" in bad.stderr


def test_the_readme_shapes_examples_are_what_convlint_shapes_prints():
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    examples = re.findall(r"```\n\$ convlint shapes (.*?)\n(.*?)```", readme, re.S)
    assert len(examples) >= 2
    for args, shown in examples:
        run = convlint("shapes", *args.split())
        assert run.returncode == 0, run.stderr
        assert run.stdout.rstrip("\n") + "\n" == shown, args


def test_diff_and_fix_say_how_many_fixes_were_left_for_unsafe_fixes(tmp_path):
    import shutil

    diff = convlint("check", "fixtures/fix/unsafe_same.in.py", "--diff")
    assert (diff.returncode, diff.stdout) == (0, "")
    assert diff.stderr == "Would fix 0 findings (1 more fix with `--unsafe-fixes`).\n"
    unsafe = convlint("check", "fixtures/fix/unsafe_same.in.py", "--diff", "--unsafe-fixes")
    assert unsafe.stdout.startswith("---") and unsafe.stderr == "Would fix 1 finding.\n"
    shutil.copyfile(os.path.join(ROOT, "fixtures", "fix", "unsafe_same.in.py"), tmp_path / "model.py")
    fixed = convlint("check", "model.py", "--fix", cwd=tmp_path)
    assert fixed.stderr.startswith("Fixed 0 findings in 0 files (1 more fix with `--unsafe-fixes`).\n")


def test_a_folder_target_checks_the_configured_models_that_run_its_files(tmp_path):
    """fixtures/repos/unet configures `UNet(3, 2)` (a class that needs arguments): given the
    project folder or the package folder, as a CI gate does (`convlint check .`), the
    configured model is built and its bug is reported, as for the file itself."""
    import shutil

    project = tmp_path / "project"
    shutil.copytree(
        os.path.join(ROOT, "fixtures", "repos", "unet"), project, ignore=shutil.ignore_patterns(".convlint_cache")
    )
    parts = project / "unet" / "unet_parts.py"
    parts.write_text(
        parts.read_text().replace("kernel_size=3, padding=1, bias", "kernel_size=3, padding=1, dilation=2, bias", 1)
    )
    for target in (".", "unet", "unet/unet_parts.py"):
        done = subprocess.run(
            [sys.executable, "-m", "convlint", "check", "--no-cache", target],
            cwd=project,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 1, (target, done.stdout, done.stderr)
        assert "unet/unet_parts.py:16:13: CVL201 `inc.double_conv.0`" in done.stdout, target
    elsewhere = subprocess.run(
        [sys.executable, "-m", "convlint", "check", "--no-cache", "train.py"],
        cwd=project,
        capture_output=True,
        text=True,
    )
    assert elsewhere.returncode == 0, elsewhere.stdout + elsewhere.stderr


def test_the_summary_counts_the_convolutions_up_to_a_raise_as_checked_and_after_it_as_not():
    """fixtures/rules/too_small.py: each model raises at its example at a layer CVL401/402
    names; every convolution up to it was sized, so none is "not checked"; a model whose
    example raises before its last convolution leaves that one not checked."""
    run = subprocess.run(
        [sys.executable, "-m", "convlint", "check", "fixtures/rules/too_small.py", "--select", ",".join(BUILTIN_RULES)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert run.stderr.splitlines()[-1] == "Found 5 findings in 5 models."
    import torch.nn as nn

    class Early(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(3, 4, 7)
            self.b = nn.Conv2d(4, 4, 3, padding=1)

        def forward(self, x):
            return self.b(self.a(x))

    from convlint import engine

    view, _, _ = engine.build_view(Early(), [(1, 3, 4, 4)], name="Early", path="<test>", line=1)
    assert tuple(view.coverage) == (1, 0, 1)


def test_check_with_no_target_checks_the_project_as_ruff_checks_dot(tmp_path):
    import shutil

    shutil.copyfile(os.path.join(ROOT, "fixtures", "seed.py"), tmp_path / "aspp.py")
    bare = convlint("check", "--input-shape", "1,256,19,19", cwd=tmp_path)
    dot = convlint("check", ".", "--input-shape", "1,256,19,19", cwd=tmp_path)
    assert bare.returncode == dot.returncode == 1, bare.stderr
    assert bare.stdout == dot.stdout and "aspp.py:17:24: CVL101" in bare.stdout


def test_shapes_exits_1_naming_a_model_it_could_not_analyse():
    run = convlint("shapes", "fixtures/rules/broken_models.py:TwoInputs")
    assert run.returncode == 1
    assert "convlint: fixtures/rules/broken_models.py:TwoInputs: not analysed: input `label`" in run.stderr
    assert convlint("shapes", "fixtures/rules/clean.py").returncode == 0
