"""Every code block of the README works as written (issue 22): each block is named by the
``<!-- name -->`` comment before it, and ``COVERED`` names the test that runs it, here or
in the test module closest to what the block is about. A block with no name, or a name
no test covers, fails ``test_every_readme_block_is_run_by_a_test``.

"Run" goes as far as this machine allows: commands are run in a scratch copy, shown
outputs compared byte for byte, configuration parsed by the code that reads it, Python
executed; an editor's configuration is checked to start the same server the server tests
start; a benchmark command's script is run with ``--help`` and must accept every flag the
block gives it (the benchmarks themselves take minutes and run outside the tests).
"""

import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib

from conftest import FIXTURES, ROOT, readme_block, readme_blocks

COVERED = {
    "setup-example": "tests/test_readme.py::test_the_set_up_commands_are_what_ci_runs",
    "setup-tests": "tests/test_readme.py::test_the_set_up_commands_are_what_ci_runs",
    "seed-output": "tests/test_cli.py::test_seed_example_prints_the_cvl101_line_with_its_fix_as_the_readme_shows",
    "ruff-external": "tests/test_readme.py::test_ruff_leaves_convlint_noqa_comments_alone_with_the_readme_setting",
    "usage": "tests/test_docs.py::test_readme_usage_block_is_what_help_prints",
    "graph": "tests/test_graph.py::test_seed_mermaid_shows_the_four_branches_their_sizes_branch2s_path_and_the_cat_marked",
    "graph-picture": "tests/test_graph.py::test_seed_mermaid_shows_the_four_branches_their_sizes_branch2s_path_and_the_cat_marked",
    "call-target": "tests/test_readme.py::test_the_call_target_checks_the_unet_as_written",
    "shapes-merges": "tests/test_cli.py::test_the_readme_shapes_examples_are_what_convlint_shapes_prints",
    "shapes-partly-traceable": "tests/test_cli.py::test_the_readme_shapes_examples_are_what_convlint_shapes_prints",
    "shapes-partly-runnable": "tests/test_cli.py::test_the_readme_shapes_examples_are_what_convlint_shapes_prints",
    "diff": "tests/test_readme.py::test_the_diff_example_is_what_check_diff_prints",
    "pre-commit-remote": "tests/test_precommit.py::test_readme_hook_fails_on_a_broken_layer_and_passes_after_fix",
    "pre-commit-local": "tests/test_precommit.py::test_readme_local_hook_snippet_works_as_copied",
    "github-actions": "tests/test_precommit.py::test_readme_github_actions_commands_run_as_written",
    "problem-matcher": "tests/test_formats.py::test_readme_problem_matcher_reads_severity_location_code_and_message_from_real_output",
    "neovim": "tests/test_readme.py::test_editor_configurations_start_the_language_server",
    "helix": "tests/test_readme.py::test_editor_configurations_start_the_language_server",
    "api-test": "tests/test_readme.py::test_the_api_examples_run",
    "pytest-matrix": "tests/test_pytest_plugin.py::test_the_readme_matrix_shards_the_models_over_runners",
    "configuration": "tests/test_readme.py::test_the_configuration_example_is_read_without_error",
    "api": "tests/test_readme.py::test_the_api_examples_run",
    "deploy": "tests/test_contract.py::test_the_readme_deploy_example_prints_what_it_shows",
    "deploy-output": "tests/test_contract.py::test_the_readme_deploy_example_prints_what_it_shows",
    "pipeline": "tests/test_readme.py::test_the_pipeline_picture_names_modules_that_exist",
    "bench-run": "tests/test_readme.py::test_benchmark_commands_name_extras_and_flags_that_exist",
    "bench-server": "tests/test_readme.py::test_benchmark_commands_name_extras_and_flags_that_exist",
    "bench-zoo": "tests/test_readme.py::test_benchmark_commands_name_extras_and_flags_that_exist",
    "plugin-entry-point": "tests/test_readme.py::test_the_plugin_example_is_the_bundled_plugin_and_its_rule_runs",
    "plugin-rule": "tests/test_readme.py::test_the_plugin_example_is_the_bundled_plugin_and_its_rule_runs",
}


def convlint(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "convlint", *args], cwd=cwd, capture_output=True, text=True)


def _defined(test_id: str) -> bool:
    path, name = test_id.split("::")
    with open(os.path.join(ROOT, path), encoding="utf-8") as fh:
        return re.search(rf"^def {name}\(", fh.read(), re.M) is not None


def test_every_readme_block_is_run_by_a_test():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as fh:
        readme = fh.read()
    fences = readme.count("\n```") // 2
    named = readme_blocks()
    assert len(named) == fences, "a README code block without a <!-- name --> comment before it"
    assert sorted(named) == sorted(COVERED), "a README block that no test covers, or a test for a block gone"
    assert all(_defined(test) for test in COVERED.values())


def test_the_set_up_commands_are_what_ci_runs():
    """CI runs the two set-up commands word for word (.ci/readme_commands.py reads them
    from the README); the example's output is compared by the CLI test and by CI."""
    listed = subprocess.run(
        [sys.executable, ".ci/readme_commands.py", "commands"], cwd=ROOT, capture_output=True, text=True
    )
    assert listed.stdout.splitlines() == [readme_block("setup-example").strip(), readme_block("setup-tests").strip()]
    install, example = readme_block("setup-example").strip().split(" && ")
    assert install == readme_block("setup-tests").strip().split(" && ")[0]
    run = subprocess.run(example, shell=True, cwd=ROOT, capture_output=True, text=True, env=_path_env())
    assert run.returncode == 1 and run.stdout + run.stderr == readme_block("seed-output")


def _path_env() -> dict:
    return {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}


def test_ruff_leaves_convlint_noqa_comments_alone_with_the_readme_setting(tmp_path):
    (tmp_path / "net.py").write_text("x = 1  # noqa: CVL101\n")
    # RUF102 (invalid-rule-code) would remove the comment with --fix
    ruff = [sys.executable, "-m", "ruff", "check", "--no-cache", "--extend-select", "RUF100,RUF102", "net.py"]
    without = subprocess.run(ruff, cwd=tmp_path, capture_output=True, text=True)
    assert without.returncode == 1 and "Invalid rule code in `# noqa`: CVL101" in without.stdout
    (tmp_path / "pyproject.toml").write_text(readme_block("ruff-external"))
    with_setting = subprocess.run(ruff, cwd=tmp_path, capture_output=True, text=True)
    assert with_setting.returncode == 0, with_setting.stdout + with_setting.stderr


def test_the_call_target_checks_the_unet_as_written(tmp_path):
    repo = tmp_path / "unet"
    shutil.copytree(os.path.join(FIXTURES, "repos", "unet"), repo)
    run = subprocess.run(readme_block("call-target").strip(), shell=True, cwd=repo, capture_output=True, text=True,
                         env=_path_env())  # fmt: skip
    assert run.returncode == 0 and "All checks passed! (1 model in 1 file)" in run.stderr, run.stdout + run.stderr


def test_the_diff_example_is_what_check_diff_prints():
    command, *shown = readme_block("diff").splitlines(keepends=True)
    run = convlint(*shlex.split(command.strip())[2:])
    assert run.stdout == "".join(shown) and run.stderr == "Would fix 1 finding.\n"


def test_editor_configurations_start_the_language_server():
    """The editors' commands are the one the server tests start (``convlint server``)."""
    lua = readme_block("neovim")
    assert 'cmd = { "convlint", "server" }' in lua and 'pattern = "python"' in lua
    helix = tomllib.loads(readme_block("helix"))
    assert [helix["language-server"]["convlint"]["command"], *helix["language-server"]["convlint"]["args"]] == [
        "convlint",
        "server",
    ]
    assert "convlint" in helix["language"][0]["language-servers"]
    with open(os.path.join(ROOT, "tests", "test_server.py"), encoding="utf-8") as fh:
        assert '"server"' in fh.read()
    helped = convlint("server", "--help")
    assert helped.returncode == 0 and helped.stdout.startswith("usage: convlint server")


def test_the_api_examples_run(tmp_path):
    """The Python API blocks, executed with the names they assume bound to real models:
    ``MyNet`` a clean model, ``UNet`` the bundled U-Net (it needs arguments)."""
    import torch.nn as nn

    sys.path.insert(0, os.path.join(FIXTURES, "repos", "unet"))
    try:
        from unet.unet_model import UNet
    finally:
        sys.path.pop(0)

    class MyNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)

        def forward(self, x):
            return self.conv(x)

    class Owner:  # `self.block = ...` in the example is a module's attribute
        pass

    names = {"MyNet": MyNet, "UNet": UNet, "model_instance": MyNet(), "nn": nn, "self": Owner()}
    exec(compile(readme_block("api"), "README.md:api", "exec"), names)
    assert names["findings"] == [] and isinstance(names["self"].block, nn.Sequential)
    test = {"UNet": UNet}
    exec(compile(readme_block("api-test"), "README.md:api-test", "exec"), test)
    test["test_unet_keeps_its_sizes"]()  # assert_clean: raises on findings


def test_the_configuration_example_is_read_without_error(tmp_path):
    from convlint import config

    (tmp_path / "pyproject.toml").write_text(readme_block("configuration"))
    loaded = config.load(str(tmp_path / "pyproject.toml"))
    options = loaded.options()
    assert options.select == ("CVL1",) and options.same == ("encoder.aspp.*", "decoder.*.block")
    targets = loaded.targets()
    assert len(targets) == 3 and targets[2].args == (80,) and dict(targets[2].kwargs) == {"depth": 50}
    assert targets[2].input_shapes == ((1, 3, 640, 640),)


def test_the_pipeline_picture_names_modules_that_exist():
    words = re.findall(r"--(\w+)-->", readme_block("pipeline"))
    assert words == ["load", "capture", "sizes", "view", "facts", "rules", "locate", "report", "fix"]
    for stage in words:
        found = [os.path.join(where, stage + ext) for where in ("convlint", ".") for ext in (".py", "")]
        assert any(os.path.exists(os.path.join(ROOT, f)) for f in found), stage


def test_benchmark_commands_name_extras_and_flags_that_exist():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as fh:
        extras = tomllib.load(fh)["project"]["optional-dependencies"]
    for name in ("bench-run", "bench-server", "bench-zoo"):
        for command in " ".join(readme_block(name).replace("\\\n", " ").split()).split(" && "):
            words = shlex.split(command)
            for extra in re.findall(r'-e "?\.\[(\w+)\]', command):
                assert extra in extras, (name, extra)
            scripts = [w for w in words if w.startswith("bench/") and w.endswith(".py")]
            if not scripts:
                continue
            helped = subprocess.run([sys.executable, scripts[0], "--help"], cwd=ROOT, capture_output=True, text=True)
            assert helped.returncode == 0, (name, helped.stderr)
            for flag in [w for w in words[words.index(scripts[0]) + 1 :] if w.startswith("--")]:
                assert flag in helped.stdout, (name, flag)


def test_the_plugin_example_is_the_bundled_plugin_and_its_rule_runs():
    from convlint import engine, rule_api

    with open(os.path.join(FIXTURES, "plugin_example", "pyproject.toml"), "rb") as fh:
        bundled = tomllib.load(fh)["project"]["entry-points"]["convlint.rules"]
    shown = tomllib.loads(readme_block("plugin-entry-point"))["project"]["entry-points"]["convlint.rules"]
    assert list(shown) != [] and list(bundled) != []  # one entry point naming a module, in both
    names = {"DOC": "A kernel larger than 7."}
    exec(compile(readme_block("plugin-rule"), "README.md:plugin-rule", "exec"), names)
    rule = names["EXA001"]
    assert isinstance(rule, rule_api.Rule) and rule.code == "EXA001"
    sys.path.insert(0, FIXTURES)
    try:
        import large_kernel
    finally:
        sys.path.pop(0)
    model = next(v for v in vars(large_kernel).values() if isinstance(v, type) and v.__module__ == "large_kernel")
    found = engine.check_model(model(), [(1, 3, 32, 32)], rules=[rule])
    assert [f.code for f in found] == ["EXA001"] and "(11, 11) kernel" in found[0].message
