"""Repositories as people write them (fixtures/repos/): models that need constructor
arguments, factory files and hubconf.py, a model that prints, a folder without
__init__.py importing its siblings from the project root, modules without convolutions,
an input convlint cannot infer. The real `convlint` command, exact output."""

import json
import os
import shutil
import subprocess
import sys

from conftest import FIXTURES, ROOT

REPOS = os.path.join(FIXTURES, "repos")
UNET = "fixtures/repos/unet/unet/unet_model.py"


def convlint(*args, cwd=ROOT, env=None):
    return subprocess.run(
        [sys.executable, "-m", "convlint", *args], cwd=cwd, capture_output=True, text=True, timeout=300, env=env
    )


def without_warnings(stderr):
    """stderr of a -v run without the warnings -v also shows (torch's NumPy warning in an
    environment without numpy)."""
    return "".join(line for line in stderr.splitlines(True) if "Warning: " not in line)


def copy_repo(name, tmp_path):
    """A repository copied out of the checkout: convlint writes its cache there."""
    shutil.copytree(os.path.join(REPOS, name), tmp_path / name, ignore=shutil.ignore_patterns(".convlint_cache"))
    return tmp_path / name


def test_a_class_that_needs_arguments_is_reported_not_checked_with_the_line_that_checks_it():
    run = convlint("check", UNET)
    assert run.returncode == 0  # information: a file of models never fails a commit for it
    assert run.stdout == (
        f"{UNET}:8:1: CVL904 model `{UNET}:UNet` was not checked: its constructor needs arguments "
        "(n_channels, n_classes), which convlint does not guess; to check it, add "
        f'models = ["{UNET}:UNet(n_channels=..., n_classes=...)"] to [tool.convlint] with the values it is built with\n'
    )
    assert run.stderr == "Found 1 finding. No model was checked (1 file; 1 model not checked).\n"


def test_a_call_target_builds_the_class_with_its_literal_arguments():
    run = convlint("check", f"{UNET}:UNet(3, 2)")
    assert (run.returncode, run.stdout, run.stderr) == (0, "", "All checks passed! (1 model in 1 file)\n")
    keywords = convlint("check", f"{UNET}:UNet(n_channels=1, n_classes=2, width=4)", "--input-shape", "1,1,67,45")
    assert (keywords.returncode, keywords.stderr) == (0, "All checks passed! (1 model in 1 file)\n")


def test_a_call_target_that_does_not_fit_the_signature_or_is_not_literal_is_a_located_error():
    missing = convlint("check", f"{UNET}:UNet(3)")
    assert missing.returncode == 1
    assert missing.stdout == (
        f"{UNET}:8:1: CVL901 `{UNET}:UNet(3)` does not match the signature "
        "UNet(n_channels, n_classes, width=16): missing a required argument: 'n_classes'\n"
    )
    bare = convlint("check", f"{UNET}:UNet")
    assert bare.returncode == 1 and f"{UNET}:8:1: CVL901 `{UNET}:UNet` cannot be built: its constructor needs" in (
        bare.stdout
    )
    code = convlint("check", f"{UNET}:UNet(3, open('x'))")
    assert code.returncode == 1
    assert "`open('x')` is not a literal" in code.stdout and "never evaluates code from a target" in code.stdout


def test_configured_models_take_a_call_string_or_a_table_of_args_and_kwargs(tmp_path):
    repo = os.path.join(REPOS, "unet")
    run = convlint("check", "--no-cache", cwd=repo)  # its pyproject.toml: "unet.unet_model:UNet(3, 2)", and `.`
    assert (run.returncode, run.stdout, run.stderr) == (0, "", "All checks passed! (1 model in 5 files)\n")
    config = tmp_path / "pyproject.toml"
    config.write_text(
        "[tool.convlint]\nmodels = [\n"
        '  { target = "unet.unet_model:UNet", args = [1], kwargs = { n_classes = 3, width = 8 },'
        " input-shape = [1, 1, 33, 47] },\n"
        '  "unet.unet_model:UNet(3, 2, width=4)",\n]\n'
    )
    table = convlint("check", "--config", str(config), cwd=repo)
    assert (table.returncode, table.stdout, table.stderr) == (0, "", "All checks passed! (2 models in 5 files)\n")
    config.write_text('[tool.convlint]\nmodels = [{ target = "unet.unet_model:UNet(3)", args = [3] }]\n')
    both = convlint("check", "--config", str(config), cwd=repo)
    assert both.returncode == 2
    assert "give the arguments in the target or as args/kwargs, not both" in both.stderr


def test_a_file_of_building_blocks_reports_each_block_not_checked_and_passes():
    run = convlint("check", "fixtures/repos/unet/unet/unet_parts.py")
    assert run.returncode == 0
    rows = [line.split(" was not checked")[0] for line in run.stdout.splitlines()]
    parts = "fixtures/repos/unet/unet/unet_parts.py"
    assert rows == [
        f"{parts}:8:1: CVL904 model `{parts}:DoubleConv`",
        f"{parts}:28:1: CVL904 model `{parts}:Down`",
        f"{parts}:39:1: CVL904 model `{parts}:Up`",
        f"{parts}:56:1: CVL904 model `{parts}:OutConv`",
    ]
    assert run.stderr == "Found 4 findings. No model was checked (1 file; 4 models not checked).\n"


def test_a_block_file_given_with_configured_models_checks_the_model_that_runs_it(tmp_path):
    repo = copy_repo("unet", tmp_path)
    run = convlint("check", "unet/unet_parts.py", "train.py", cwd=repo)
    # UNet(3, 2) runs unet_parts.py: checked, and its blocks with it (no CVL904 for them)
    assert (run.returncode, run.stdout) == (0, "")
    assert run.stderr == (
        "convlint: train.py: no configured model runs this file\nAll checks passed! (1 model in 3 files)\n"
    )
    cache = json.loads((repo / ".convlint_cache" / "usage.json").read_text())
    ((record,),) = cache["models"].values()
    assert sorted(record) == ["unet/unet_model.py", "unet/unet_parts.py"]
    assert (repo / ".convlint_cache" / ".gitignore").read_text().endswith("*\n")

    # The cache now knows train.py is no model's: nothing is imported, torch included.
    quiet = convlint("check", "train.py", "-v", cwd=repo)
    assert quiet.returncode == 0
    assert quiet.stderr == "convlint: train.py: no configured model runs this file\nNo model was checked (1 file).\n"

    # An edit to the blocks makes the entry stale: the model is built and checked again.
    parts = repo / "unet" / "unet_parts.py"
    parts.write_text(
        parts.read_text().replace("kernel_size=3, padding=1, bias", "kernel_size=3, padding=1, dilation=2, bias", 1)
    )
    broken = convlint("check", "unet/unet_parts.py", cwd=repo)
    assert broken.returncode == 1
    assert (
        "unet/unet_parts.py:16:13: CVL201 `inc.double_conv.0` Conv2d(kernel 3, dilation 2, padding 1)" in broken.stdout
    )


def test_factories_and_hub_entries_are_models_and_a_download_is_refused_by_name(tmp_path):
    env = {**os.environ, "TORCH_HOME": str(tmp_path / "torch")}  # no cached weights
    run = convlint("check", "fixtures/repos/drn", "-v", env=env)
    assert run.returncode == 1
    drn, hub = "fixtures/repos/drn/drn.py", "fixtures/repos/drn/hubconf.py"
    codes = [line.split(" ", 2)[:2] for line in run.stdout.splitlines()]
    # drn_d_24 (wrong paddings) is checked once, though hubconf.py exports it too; the
    # library function it imports (load_state_dict_from_url) is no entry point
    assert codes == [
        [f"{drn}:14:22:", "CVL201"],  # one line built the three wrong layers: one finding each
        [f"{drn}:23:26:", "CVL301"],
        [f"{hub}:10:1:", "CVL901"],
        [f"{hub}:19:1:", "CVL904"],
    ]
    lines = run.stdout.splitlines()
    assert lines[0].endswith("the same call built 2 more (in `layer2.1.conv1` and `layer2.2.conv1`)")
    assert lines[2].endswith(
        "cannot be built: DownloadRefused: its constructor tries to download "
        "https://example.invalid/weights/drn_d_22.pth; convlint builds models without network; build it without "
        "weights: `convlint check 'fixtures/repos/drn/hubconf.py:drn_d_22_pretrained(pretrained=False)'`"
    )
    assert 'add models = ["fixtures/repos/drn/hubconf.py:drn_custom(layers=...)"]' in lines[3]
    assert f"convlint: note: {hub}:drn_d_22: skipped: the same model as {drn}:drn_d_22\n" in run.stderr
    assert without_warnings(run.stderr).endswith(
        "Found 4 findings in 2 models; 1 model not checked.\n[*] 1 fixable with the `--fix` option.\n"
    )


def test_a_factory_returning_a_helpers_result_is_built_and_other_functions_are_passed_over_with_a_note(tmp_path):
    """fixtures/repos/factories/zoo.py: `seg_small()` returns `_load_model(...)`, no class
    named at its level; the functions beside it return settings or raise when called; one
    that reaches for weights builds a model, so its refused download is a finding."""
    env = {**os.environ, "TORCH_HOME": str(tmp_path / "torch")}  # no cached weights
    run = convlint("check", "fixtures/repos/factories/zoo.py", "-v", env=env)
    assert run.returncode == 1
    zoo = "fixtures/repos/factories/zoo.py"
    assert [line.split(" ", 2)[:2] for line in run.stdout.splitlines()] == [
        ["fixtures/repos/factories/nets.py:11:24:", "CVL201"],
        [f"{zoo}:29:1:", "CVL901"],
    ]
    assert run.stdout.splitlines()[1].endswith(
        "tries to download https://example.invalid/seg_small.pth; convlint builds models without network; "
        "build it without weights (weights=None or pretrained=False where it loads them)"
    )
    assert f"note: {zoo}:default_settings: not a model factory:" in run.stderr
    assert f"note: {zoo}:newest_checkpoint: not checked: calling it raised FileNotFoundError" in run.stderr
    assert without_warnings(run.stderr).endswith(
        "Found 2 findings in 1 model.\n[*] 1 fixable with the `--fix` option.\n"
    )


def test_a_target_naming_an_imported_model_is_located_at_the_line_that_imports_it():
    """`zoo.py:SegNet` is nets.py's class: a finding about the target is at zoo.py's import
    of it, never at the class's line read as a line of zoo.py."""
    run = convlint("check", "fixtures/repos/factories/zoo.py:SegNet(num_classes=-1, dilation=2)")
    assert run.returncode == 1
    assert run.stdout.startswith(
        "fixtures/repos/factories/zoo.py:7:1: CVL901 model `fixtures/repos/factories/zoo.py:SegNet("
    )


def test_a_namespace_package_imports_relatively_as_from_the_project_root():
    """fixtures/repos/namespace/models has no __init__.py and net.py does `from .layers
    import Block`: as a file and as a folder it is imported as `models.net` (no CVL900),
    and the block is checked through the model (one module, so no CVL904 for Block)."""
    for target in ("fixtures/repos/namespace/models/net.py", "fixtures/repos/namespace"):
        run = convlint("check", target)
        assert run.returncode == 1, run.stdout + run.stderr
        assert [line.split(" ", 2)[:2] for line in run.stdout.splitlines()] == [
            ["fixtures/repos/namespace/models/layers.py:9:21:", "CVL201"],
            ["fixtures/repos/namespace/models/layers.py:12:16:", "CVL301"],
        ], target


def test_what_a_model_prints_goes_to_stderr_so_json_and_sarif_stay_valid():
    for fmt in ("json", "sarif"):
        run = convlint("check", "fixtures/repos/printing", "--format", fmt)
        assert run.returncode == 1
        report = json.loads(run.stdout)  # nothing but the report on stdout
        assert report
        for line in ("loading noisy.py", "building Noisy", "input: (1, 3, 224, 224)", "from a child process"):
            assert line in run.stderr
    text = convlint("check", "fixtures/repos/printing")
    assert [line.split(" ")[1] for line in text.stdout.splitlines()] == ["CVL201", "CVL301"]


def test_a_folder_without_init_imports_its_siblings_from_the_project_root():
    run = convlint("check", "fixtures/repos/attention/model", "-v")
    assert run.returncode == 1  # broken.py's import error
    base = "fixtures/repos/attention/model"
    assert run.stdout.splitlines() == [
        f"{base}/attention/CBAM.py:19:1: CVL904 model `{base}/attention/CBAM.py:CBAMBlock` was not checked: on the "
        "input convlint inferred (1x2x224x224) it raised at `ca.fc.0` (Linear) (line 18): RuntimeError: a and b must have "
        "same reduction dim, but got [1, 2] X [64, 4].; declare its input with --input-shape",
        f"{base}/attention/SEAttention.py:4:1: CVL904 model `{base}/attention/SEAttention.py:SEAttention` was not "
        "checked: input `x` of forward() reaches no convolution, so its shape cannot be inferred; pass its shape, "
        "for example --input-shape 1,3,224,224",
        f"{base}/backbone/broken.py:3:1: CVL900 cannot import {base}/backbone/broken.py: ModuleNotFoundError: "
        "No module named 'model.attention.Missing'",
    ]
    assert without_warnings(run.stderr) == (
        f"convlint: note: {base}/attention/SimAM.py:SimAM: skipped: no convolution, pooling or padding layer\n"
        f"convlint: note: {base}/attention/SimAM.py:Swish: skipped: no convolution, pooling or padding layer\n"
        "Found 3 findings. No model was checked (4 files; 2 models not checked, 2 without convolutions skipped).\n"
    )
    # Declared, the input checks the block: its even spatial kernel grows the map by one.
    declared = convlint("check", f"{base}/attention/CBAM.py:CBAMBlock", "--input-shape", "1,64,32,32")
    assert declared.returncode == 1
    assert "CVL301" in declared.stdout and "33x33" in declared.stdout


def test_a_wrong_inferred_input_is_information_and_a_declared_one_is_checked():
    run = convlint("check", "fixtures/repos/tcn/spectrogram.py")
    assert run.returncode == 0
    assert run.stdout == (
        "fixtures/repos/tcn/spectrogram.py:4:1: CVL904 model `fixtures/repos/tcn/spectrogram.py:SpectrogramTCN` was "
        "not checked: on the input convlint inferred (1x16x1024) it raised at `tcn.0` (Conv1d) (line 20): RuntimeError: "
        "Invalid channel dimensions; declare its input with --input-shape (or input-shape in its [tool.convlint] "
        "models entry)\n"
    )
    assert run.stderr == "Found 1 finding. No model was checked (1 file; 1 model not checked).\n"
    declared = convlint("check", "fixtures/repos/tcn/spectrogram.py", "--input-shape", "1,1,64,100")
    # the bands become channels, so the Conv1d runs for 64 bands only (pooled by 4: H in
    # 64..67), which the summary says; within that, every W is checked
    assert declared.returncode == 0
    assert declared.stderr.startswith("All checks passed! (1 model in 1 file; runs only for H in 64..67; any W:")


def test_the_channels_a_reshape_makes_of_the_input_sizes_bound_the_domain_as_pytorch_does():
    import torch

    import convlint

    sys.path.insert(0, os.path.join(ROOT, "fixtures", "repos", "tcn"))
    try:
        from spectrogram import SpectrogramTCN
    finally:
        sys.path.pop(0)
    model = SpectrogramTCN().eval()
    domain = convlint.domain(model, (1, 1, 64, 100))
    for h in range(1, 80):
        for w in (1, 3, 100):
            try:
                with torch.no_grad():
                    model(torch.zeros(1, 1, h, w))
                runs = True
            except RuntimeError:
                runs = False
            assert domain.contains((1, 1, h, w)) == runs, (h, w)


SCRIPT = '''"""A model and its training in one file, no __main__ guard."""
import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)

    def forward(self, x):
        return self.conv(x)


print("training starts")
model = Net()
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for epoch in range(2):
    loss = model(torch.zeros(1, 3, 8, 8)).sum()
    loss.backward()
    opt.step()
open("TRAINED", "w").write("yes")
'''


def test_a_script_is_never_imported_by_a_directory_or_file_run_only_by_a_target_that_names_it(tmp_path):
    (tmp_path / "train.py").write_text(SCRIPT)
    (tmp_path / "blocks.py").write_text(SCRIPT.split("\n\nprint(")[0] + '\n\nif __name__ == "__main__":\n    main()\n')
    for target in (".", "train.py"):  # a CI run; pre-commit hands over the file
        run = convlint("check", target, cwd=tmp_path)
        assert run.returncode == 0 and not (tmp_path / "TRAINED").exists(), run.stdout + run.stderr
        assert "training starts" not in run.stdout + run.stderr
        assert run.stdout.startswith(
            "train.py:20:5: CVL905 `train.py` was not imported: line 20 runs a script when it is imported "
            "(`loss.backward()`); name its model to check it: `convlint check 'train.py:Net'`"
        ), run.stdout
        assert "1 script not imported" in run.stderr and "blocks.py" not in run.stdout
    (tmp_path / "pyproject.toml").write_text('[tool.convlint]\nmodels = ["train:Net"]\n')
    named = convlint("check", ".", cwd=tmp_path)  # named on purpose: imported, and its script runs
    assert "CVL905" not in named.stdout and (tmp_path / "TRAINED").exists(), named.stdout + named.stderr


def test_a_file_whose_own_model_was_checked_is_not_said_to_be_run_by_no_model(tmp_path):
    repo = copy_repo("unet", tmp_path)
    (repo / "extra.py").write_text(
        "import torch.nn as nn\n\n\nclass Head(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.conv = nn.Conv2d(3, 8, 3, padding=1)\n\n    def forward(self, x):\n        return self.conv(x)\n"
    )
    run = convlint("check", "extra.py", cwd=repo)
    assert run.returncode == 0 and "no configured model runs this file" not in run.stderr, run.stderr
    assert "All checks passed! (1 model in 1 file)" in run.stderr
