"""Rules use convlint only through its public rule API, the way a plugin would."""

import ast
import os
import subprocess
import sys

from conftest import ROOT

RULES = os.path.join(ROOT, "rules")


def _convlint_imports(path: str) -> list[tuple[str, str]]:
    """(module, name) for every import of convlint in a file, at any depth."""
    found = []
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "convlint":
            found += [(node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(alias.name, "") for alias in node.names if alias.name.split(".")[0] == "convlint"]
    return found


def test_rules_import_only_public_names_of_the_rule_api():
    files = [f for f in os.listdir(RULES) if f.endswith(".py")]
    assert len(files) >= 6
    for name in files:
        for module, imported in _convlint_imports(os.path.join(RULES, name)):
            assert module == "convlint.rule_api", f"rules/{name} imports {module}"
            assert not imported.startswith("_"), f"rules/{name} imports the private name {imported}"


def test_the_rule_api_exports_what_it_lists():
    from convlint import rule_api

    assert all(hasattr(rule_api, name) for name in rule_api.__all__)


def test_builtin_rules_load_from_an_installed_wheel_as_from_the_checkout(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), ROOT],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("convlint-*.whl")
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    script = (
        "import convlint, json; from convlint import registry; rules, problems = registry.discover();"
        "print(json.dumps([convlint.__file__, [r.code for r in rules], problems]))"
    )
    installed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(site)}, cwd=tmp_path,
    )  # fmt: skip
    checkout = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert installed.returncode == 0, installed.stderr
    assert checkout.returncode == 0, checkout.stderr
    import json

    (where, codes, problems), (where_checkout, codes_checkout, _) = map(json.loads, (installed.stdout, checkout.stdout))
    assert where.startswith(str(site)) and not where_checkout.startswith(str(site))
    assert problems == [] and codes == codes_checkout and "CVL101" in codes
