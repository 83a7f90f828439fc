"""--fix: fixture pairs (``fixtures/fix/NAME.in.py`` -> ``NAME.out.py``, byte for byte),
idempotence, --diff, and files that must be left alone."""

import glob
import os
import shlex
import shutil
import stat
import subprocess
import sys
from dataclasses import replace

import pytest
from conftest import BUILTIN_RULES, FIXTURES

from convlint import config, engine, fix

PAIRS = sorted(glob.glob(os.path.join(FIXTURES, "fix", "*.in.py")))
SELECT = ",".join(BUILTIN_RULES)  # the rules these tests pin: a new rule changes none


def fix_args(path):
    with open(path, encoding="utf-8") as fh:
        first = fh.readline()
    words = shlex.split(first.split("fix-args:", 1)[1]) if "fix-args:" in first else []
    shapes = tuple(config.parse_shape(words[i + 1]) for i, w in enumerate(words) if w == "--input-shape")
    return shapes, "--unsafe-fixes" in words


def run_fix(path, shapes, unsafe):
    result = engine.check_paths([path], engine.Options(input_shapes=shapes))
    return result, fix.apply(result.findings, unsafe=unsafe)


@pytest.mark.parametrize("source", PAIRS, ids=[os.path.basename(p)[: -len(".in.py")] for p in PAIRS])
def test_fix_turns_the_in_file_into_the_out_file_byte_for_byte(source, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    name = os.path.basename(source)[: -len(".in.py")]
    shutil.copyfile(source, tmp_path / f"{name}.py")
    shapes, unsafe = fix_args(source)
    result, outcome = run_fix(f"{name}.py", shapes, unsafe)
    assert outcome.errors == []
    with open(source[: -len(".in.py")] + ".out.py", "rb") as fh:
        expected = fh.read()
    assert (tmp_path / f"{name}.py").read_bytes() == expected
    # Every fix offered in JSON is exactly what was applied.
    applied = {e for f in outcome.fixed for e in f.fix.edits}
    offered = {e for f in result.findings if f.fixable(unsafe) for e in f.fix.edits}
    assert applied == offered
    # A second run, on the fixed file, has nothing left to fix.
    shutil.copyfile(tmp_path / f"{name}.py", tmp_path / f"{name}_again.py")
    again, outcome2 = run_fix(f"{name}_again.py", shapes, unsafe)
    assert outcome2.fixed == [] and outcome2.written == []
    assert not any(f.fixable(unsafe) for f in again.findings)


def test_findings_without_a_fix_say_why(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copyfile(os.path.join(FIXTURES, "fix", "loops_helpers.in.py"), tmp_path / "model.py")
    result = engine.check_paths(["model.py"], engine.Options(input_shapes=((1, 8, 64, 64),), select=BUILTIN_RULES))
    nofix = [f for f in result.findings if f.module == "nofix.0"]  # it speaks for nofix.1 too
    assert len(nofix) == 1 and nofix[0].fix is None
    assert nofix[0].message.endswith(
        "no automatic fix: its modules need different paddings, and arithmetic on a tuple argument would repeat it"
    )
    shared = [f for f in result.findings if f.module and f.module.startswith("same_value.")]
    assert {f.fix.applicability for f in shared} == {"unsafe"}  # a literal on a call that builds two modules
    strided = engine.check_paths(
        [os.path.join(FIXTURES, "fix", "unsafe_same.in.py")],
        engine.Options(input_shapes=((1, 8, 32, 32),), select=BUILTIN_RULES),
    )
    (f,) = [f for f in strided.findings if f.module == "strided"]
    assert f.fix is None and f.message.endswith('no automatic fix: PyTorch refuses padding="same" at stride > 1')


def convlint(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "convlint", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_cli_fix_diff_and_idempotence_on_the_seed_example(tmp_path):
    shutil.copyfile(os.path.join(FIXTURES, "seed.py"), tmp_path / "seed.py")
    before = (tmp_path / "seed.py").read_bytes()
    diff = convlint("check", "seed.py", "--diff", cwd=tmp_path)
    assert diff.returncode == 1
    assert "-        self.branch2 = nn.Conv2d(channels, out, 3, padding=1, dilation=6)" in diff.stdout
    assert "+        self.branch2 = nn.Conv2d(channels, out, 3, padding=6, dilation=6)" in diff.stdout
    assert (tmp_path / "seed.py").read_bytes() == before  # --diff writes nothing
    fixed = convlint("check", "seed.py", "--fix", "--input-shape", "1,256,19,19", cwd=tmp_path)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "Fixed 1 finding in 1 file." in fixed.stderr
    after = (tmp_path / "seed.py").read_bytes()
    assert after == before.replace(b"3, padding=1, dilation=6)", b"3, padding=6, dilation=6)")
    again = convlint("check", "seed.py", "--fix", cwd=tmp_path)
    assert again.returncode == 0 and (tmp_path / "seed.py").read_bytes() == after
    assert convlint("check", "seed.py", "--diff", cwd=tmp_path).returncode == 0


def test_exit_code_after_fix_reflects_what_remains(tmp_path):
    shutil.copyfile(os.path.join(FIXTURES, "fix", "unsafe_same.in.py"), tmp_path / "model.py")
    run = convlint("check", "model.py", "--fix", "--input-shape", "1,8,32,32", "--select", SELECT, cwd=tmp_path)
    assert run.returncode == 1
    assert "Fixed 0 findings" in run.stderr  # padding="same" is unsafe: not without --unsafe-fixes
    assert [row.split()[1] for row in run.stdout.splitlines()] == ["CVL102", "CVL102"]


def test_read_only_file_is_reported_not_crashed_on(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copyfile(os.path.join(FIXTURES, "seed.py"), tmp_path / "ro.py")
    os.chmod(tmp_path / "ro.py", stat.S_IRUSR | stat.S_IRGRP)  # no write bit, even for root
    before = (tmp_path / "ro.py").read_bytes()
    result = engine.check_paths(["ro.py"], engine.Options())
    outcome = fix.apply(result.findings)
    assert outcome.written == [] and "read-only" in outcome.errors[0][1]
    assert (tmp_path / "ro.py").read_bytes() == before


def test_a_file_changed_since_it_was_read_is_left_alone(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copyfile(os.path.join(FIXTURES, "seed.py"), tmp_path / "moved.py")
    result = engine.check_paths(["moved.py"], engine.Options())
    assert any(f.fix for f in result.findings)
    (tmp_path / "moved.py").write_text((tmp_path / "moved.py").read_text() + "\n# edited meanwhile\n")
    changed = (tmp_path / "moved.py").read_bytes()
    outcome = fix.apply(result.findings)
    assert outcome.written == [] and "changed on disk" in outcome.errors[0][1]
    assert (tmp_path / "moved.py").read_bytes() == changed


def test_a_file_libcst_cannot_round_trip_is_left_byte_identical_with_a_clear_error(tmp_path, monkeypatch):
    # Python accepts a form feed at the start of a line (old page breaks); libcst does
    # not give such a file back byte for byte, so it is not touched.
    monkeypatch.chdir(tmp_path)
    source = (
        open(os.path.join(FIXTURES, "seed.py"), encoding="utf-8").read().replace("\nclass ASPP", "\n\x0cclass ASPP")
    )
    (tmp_path / "paged.py").write_text(source)
    before = (tmp_path / "paged.py").read_bytes()
    result = engine.check_paths(["paged.py"], engine.Options())
    (finding,) = [f for f in result.findings if f.code == "CVL101"]
    assert finding.fix is None
    assert finding.message.endswith("no automatic fix: libcst does not reproduce paged.py byte for byte")
    outcome = fix.apply(result.findings)
    assert outcome.written == [] and (tmp_path / "paged.py").read_bytes() == before


def test_edits_that_would_not_parse_are_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copyfile(os.path.join(FIXTURES, "seed.py"), tmp_path / "bad.py")
    result = engine.check_paths(["bad.py"], engine.Options())
    (f,) = [f for f in result.findings if f.fix]
    broken = replace(f.fix, edits=(replace(f.fix.edits[0], content="6)("),))
    before = (tmp_path / "bad.py").read_bytes()
    outcome = fix.apply([replace(f, fix=broken)])
    assert outcome.written == [] and "would not parse" in outcome.errors[0][1]
    assert (tmp_path / "bad.py").read_bytes() == before


def test_mode_and_crlf_survive_a_fix(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copyfile(os.path.join(FIXTURES, "fix", "crlf.in.py"), tmp_path / "crlf_mode.py")
    os.chmod(tmp_path / "crlf_mode.py", 0o640)
    result, outcome = run_fix("crlf_mode.py", ((1, 8, 32, 32),), False)
    assert outcome.written == ["crlf_mode.py"]
    data = (tmp_path / "crlf_mode.py").read_bytes()
    assert data.count(b"\r\n") == data.count(b"\n")
    assert stat.S_IMODE(os.stat(tmp_path / "crlf_mode.py").st_mode) == 0o640
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".convlint-")]


def test_fix_on_a_loop_built_dilated_stack_keeps_the_size_on_real_tensors(tmp_path):
    import importlib.util

    import torch

    shutil.copyfile(os.path.join(FIXTURES, "dilated_loop.py"), tmp_path / "dilated_loop.py")
    before = (tmp_path / "dilated_loop.py").read_text()
    first = convlint("check", "dilated_loop.py", "--input-shape", "1,16,37,41", cwd=tmp_path)
    # d = 2, 4, 8 from one line: one finding, one fix
    assert first.returncode == 1 and first.stdout.count("CVL101 [*]") == 1
    assert "the same call built 2 more (in `stack.2` and `stack.3`), with other settings" in first.stdout
    fixed = convlint("check", "dilated_loop.py", "--fix", "--input-shape", "1,16,37,41", cwd=tmp_path)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    after = (tmp_path / "dilated_loop.py").read_text()
    assert after == before.replace("3, padding=1, dilation=d)", "3, padding=d, dilation=d)")
    spec = importlib.util.spec_from_file_location("dilated_loop_fixed", tmp_path / "dilated_loop.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with torch.no_grad():
        for size in [(5, 7), (37, 41), (64, 64)]:
            assert module.DilatedLoop()(torch.zeros(1, 16, *size)).shape[2:] == size
    assert convlint("check", "dilated_loop.py", cwd=tmp_path).returncode == 0


def _import(path, name):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_padding_forwarded_through_a_helper_is_fixed_at_its_caller_for_every_caller_on_real_tensors():
    import torch

    fixed = _import(os.path.join(FIXTURES, "fix", "forwarded_helper.out.py"), "forwarded_helper_out")
    block = fixed.Block()
    x = torch.zeros(1, 16, 33, 33)
    assert block.sep(x).shape[-2:] == (33, 33)  # the caller that passed 1 now passes its dilation
    assert block.valid(x).shape[-2:] == (31, 31)  # the caller that passes padding=0 on purpose: untouched
    assert block(x).shape[-2:] == (31, 31)
    for dilation in (1, 2, 3, 4):  # the expression holds for every dilation the block is built with
        assert fixed.Block(dilation=dilation).sep(x).shape[-2:] == (33, 33)
        assert fixed.BAM(dia_val=dilation)(x).shape[-2:] == (33, 33)
    helper = fixed.SeparableConv2d.__init__.__code__
    original = _import(os.path.join(FIXTURES, "fix", "forwarded_helper.in.py"), "forwarded_helper_in")
    assert helper.co_consts == original.SeparableConv2d.__init__.__code__.co_consts  # the helper is as it was


def test_a_forwarded_padding_whose_caller_cannot_be_followed_is_never_rewritten_in_the_helper(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    source = open(os.path.join(FIXTURES, "fix", "forwarded_helper.in.py"), encoding="utf-8").read()
    source = source.replace(
        "SeparableConv2d(channels, channels, 3, 1, 1, dilation=dilation)",
        "SeparableConv2d(**dict(inplanes=channels, planes=channels, padding=1, dilation=dilation))",
    )
    (tmp_path / "model.py").write_text(source)
    result = engine.check_paths(["model.py"], engine.Options(input_shapes=((1, 16, 33, 33),)))
    (finding,) = [f for f in result.findings if f.module == "sep.depthwise"]
    assert finding.fix is None
    assert finding.message.endswith("no automatic fix: the call passes *args or **kwargs")
