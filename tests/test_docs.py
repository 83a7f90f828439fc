"""The rule documentation is generated from the rules' own records: docs/rules.md and the
README's rule table. ``--update-snapshots`` regenerates both (as it does the per-rule
snapshots), so a new rule changes them by a command, not by hand."""

import os
import re

from conftest import ROOT

from convlint import engine, report

README = os.path.join(ROOT, "README.md")
RULES_MD = os.path.join(ROOT, "docs", "rules.md")
TABLE = re.compile(r"(<!-- rules table: [^\n]*-->\n)(.*?)(<!-- end of rules table -->)", re.S)


def _rewrite(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def test_docs_rules_md_is_the_generated_rule_documentation(request):
    generated = report.rules_markdown(engine.all_rules()[0])
    if request.config.getoption("--update-snapshots"):
        _rewrite(RULES_MD, generated)
    with open(RULES_MD, encoding="utf-8") as fh:
        assert fh.read() == generated, "docs/rules.md is stale: run pytest tests/test_docs.py --update-snapshots"


def _generated_part(request, pattern: re.Pattern, generated: str, what: str) -> None:
    """The README's part that ``pattern`` finds (its group 2) is ``generated``;
    ``--update-snapshots`` writes it there."""
    with open(README, encoding="utf-8") as fh:
        readme = fh.read()
    found = pattern.search(readme)
    assert found, f"README.md has no {what}"
    if request.config.getoption("--update-snapshots"):
        readme = readme[: found.start(2)] + generated + readme[found.end(2) :]
        _rewrite(README, readme)
        found = pattern.search(readme)
    assert found.group(2) == generated, f"README's {what} is stale: run pytest tests/test_docs.py --update-snapshots"


def test_readme_rule_table_is_generated_from_every_rule(request):
    _generated_part(request, TABLE, report.rules_index(engine.all_rules()[0], "docs/rules.md"), "rules table")


def test_convlint_rules_markdown_prints_docs_rules_md(in_root):
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-m", "convlint", "rules", "--markdown"], capture_output=True, text=True)
    with open(RULES_MD, encoding="utf-8") as fh:
        assert run.stdout == fh.read()


USAGE = re.compile(r"(<!-- usage -->\n```\n)(.*?)(```)", re.S)


def test_readme_usage_block_is_what_help_prints(request):
    """The usage block is argparse's own, every command's (it once showed `--format
    text|json` while `--help` offered five formats)."""
    import subprocess
    import sys

    from convlint import cli

    generated = cli.usage()
    _generated_part(request, USAGE, generated, "usage block")
    _, commands = cli._parser()
    for command, parser in commands.items():
        helped = subprocess.run([sys.executable, "-m", "convlint", command, "--help"], capture_output=True, text=True)
        assert helped.stdout.split("\n\n")[0] + "\n" in generated, command
        undescribed = [a.dest for a in parser._actions if not a.help]
        assert not undescribed, (command, "arguments without help", undescribed)
