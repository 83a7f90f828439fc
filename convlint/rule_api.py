"""The rule API: everything a rule may use to find problems, in one module.

A rule is a ``Rule`` record whose ``check`` takes the model's ``Facts`` (computed before
any rule runs: modules, layers, blocks, merges, limits, the ops of ``forward``) and
yields ``Report``s; ``check_source`` reads a file before it is imported. Fixes are
written against ``convlint.fix_api``. The built-in rules in ``rules/`` import only these
two modules (a test and the architecture contract check it), as a third-party plugin
would; register rules under the ``convlint.rules`` entry point (see
``fixtures/plugin_example``). The README's "Writing a rule" documents each name.
"""

from convlint import pretty as text
from convlint.dims import free
from convlint.facts import BlockFact, Facts, LayerFact, Limit, MergeFact, ModuleFact, Op
from convlint.finding import ERROR, INFO, WARNING
from convlint.formulas import same_pad_argument, same_target
from convlint.intent import Intent
from convlint.layers import Geometry, Kind
from convlint.registry import Report, Rule, per_line
from convlint.samesize import agreement, keeping_padding, layer_verdicts, odd_axes
from convlint.sites import Site
from convlint.sizes.symbolic import evaluate_int

__all__ = [
    # a rule and what it says
    "Rule", "Report", "Site", "ERROR", "WARNING", "INFO", "per_line",
    # the facts it reads
    "Facts", "Op", "ModuleFact", "LayerFact", "BlockFact", "MergeFact", "Limit", "Intent",
    # a layer's geometry and "same"
    "Geometry", "Kind", "layer_verdicts", "keeping_padding", "odd_axes", "same_target", "same_pad_argument",
    # sizes: does a merge hold, what is an expression worth at a size, what it depends on
    "agreement", "evaluate_int", "free",
    # writing sizes as people do: text.show, text.literal, text.size_map, text.axes_map, ...
    "text",
]  # fmt: skip
