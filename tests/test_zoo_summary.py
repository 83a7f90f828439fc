"""The zoo summary in the README and docs/zoo.md is the one bench/zoo.json gives.

The zoo run itself needs torchvision and timm (never installed in CI); its records are
committed, and the pages shown to users must not drift from them.
"""

import importlib.util
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_zoo():
    spec = importlib.util.spec_from_file_location("zoo", os.path.join(ROOT, "bench", "zoo.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_and_zoo_page_show_the_table_of_the_committed_records():
    zoo = load_zoo()
    with open(os.path.join(ROOT, "bench", "zoo.json")) as fh:
        records = sorted(json.load(fh), key=lambda r: r["model"])
    table = zoo.table(records)
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    assert f"{zoo.README_START}\n{table}\n{zoo.README_END}" in readme
    page = open(os.path.join(ROOT, "docs", "zoo.md"), encoding="utf-8").read()
    versions = page.splitlines()[2].split("(", 1)[1].rsplit(")", 1)[0]
    assert page == zoo.markdown(records, versions)


def test_zoo_records_meet_the_targets():
    """No crash; at least 95% of models with symbolic sizes for every convolution; no
    error-severity finding; every warning checked on the real model, and true."""
    zoo = load_zoo()
    with open(os.path.join(ROOT, "bench", "zoo.json")) as fh:
        records = json.load(fh)
    assert len(records) > 1000
    assert not [r["model"] for r in records if r["status"] in ("crashed", "timeout")]
    assert sum(map(zoo._fully_symbolic, records)) >= 0.95 * len(records)
    assert not [
        (r["model"], f["message"])
        for r in records
        for f in r.get("findings", [])
        if f["severity"] == "error" and r["status"] != "failed"
    ]
    warnings = [(r["model"], f) for r in records for f in r.get("findings", []) if f["severity"] == "warning"]
    assert all(f.get("verified", "").startswith("raises") for _, f in warnings), [
        (m, f.get("verified")) for m, f in warnings if not f.get("verified", "").startswith("raises")
    ]
