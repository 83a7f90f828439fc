"""Report: where findings are printed. ``formats``: the output formats of ``convlint
check`` (text, grouped, json, sarif, github), the summary and the rule docs, each a
function of the same ``Finding`` records; ``shapes``: the shapes report;
``receptive``: receptive field and jump, for the shapes report."""

from convlint.report.formats import (
    FORMATS,
    Context,
    as_json,
    github,
    grouped,
    rule_doc,
    rules_index,
    rules_markdown,
    sarif,
    summary,
    text,
)
from convlint.report.shapes import requirements, shape_rows, shapes_json, shapes_text

__all__ = [
    "FORMATS",
    "Context",
    "as_json",
    "github",
    "grouped",
    "rule_doc",
    "rules_index",
    "rules_markdown",
    "requirements",
    "sarif",
    "shape_rows",
    "shapes_json",
    "shapes_text",
    "summary",
    "text",
]
