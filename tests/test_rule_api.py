"""Rules use convlint only through its public rule API and fix API, the way a plugin would;
both APIs are small, and their names are pinned here (a change to them is a change to
what every plugin author learns)."""

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


RULE_API = {
    "Rule", "Report", "Site", "ERROR", "WARNING", "INFO", "per_line",
    "Facts", "Op", "ModuleFact", "LayerFact", "BlockFact", "MergeFact", "Limit", "Intent",
    "Geometry", "Kind", "layer_verdicts", "keeping_padding", "odd_axes", "same_target", "same_pad_argument",
    "agreement", "evaluate_int", "free", "text",
}  # fmt: skip
FIX_API = {
    "CallSite", "BuiltModule", "Fix", "Edit", "SAFE", "UNSAFE", "DISPLAY", "FixError",
    "read_source", "find_call", "CallRef", "argument", "set_argument", "MODULE_SIGNATURES", "FUNCTION_SIGNATURES",
    "fix_padding", "declared_same",
}  # fmt: skip


def test_rules_import_only_public_names_of_the_rule_and_fix_apis():
    files = [f for f in os.listdir(RULES) if f.endswith(".py")]
    assert len(files) >= 6
    for name in files:
        for module, imported in _convlint_imports(os.path.join(RULES, name)):
            assert module in ("convlint.rule_api", "convlint.fix_api"), f"rules/{name} imports {module}"
            assert not imported.startswith("_"), f"rules/{name} imports the private name {imported}"


def test_no_rule_imports_torch():
    for name in [f for f in os.listdir(RULES) if f.endswith(".py")]:
        tree = ast.parse(open(os.path.join(RULES, name), encoding="utf-8").read())
        for node in ast.walk(tree):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            modules += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not [m for m in modules if m.split(".")[0] == "torch"], f"rules/{name} imports torch"


def test_the_rule_and_fix_apis_are_the_pinned_lists_and_export_them():
    from convlint import fix_api, rule_api

    assert set(rule_api.__all__) == RULE_API and set(fix_api.__all__) == FIX_API
    assert all(hasattr(rule_api, name) for name in rule_api.__all__)
    assert all(hasattr(fix_api, name) for name in fix_api.__all__)


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
