"""The wheel ships rules/ as convlint.rules and registers it as a plugin would be."""

import subprocess
import sys
import zipfile

from conftest import ROOT


def test_wheel_maps_rules_into_the_convlint_namespace(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), ROOT],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("convlint-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "convlint/rules/same_intent.py" in names
    assert not any(n.startswith("rules/") for n in names)
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "[convlint.rules]\nbuiltin = convlint.rules" in entry_points


def test_builtin_rules_are_found_through_the_entry_point():
    from convlint import registry

    rules, problems = registry.discover()
    assert problems == []
    assert [r.code for r in rules][:3] == ["CVL101", "CVL102", "CVL103"]
