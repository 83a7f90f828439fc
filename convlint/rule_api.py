"""The public API for rules: everything a rule may use, in one module.

The built-in rules in ``rules/`` import only this module (a test checks it), as a
third-party plugin would: a rule is a ``Rule`` record whose ``check`` takes a read-only
``ModelView`` and yields ``Report``s; ``fix`` turns a ``CallSite`` into a ``Fix``;
``check_source`` reads a file before it is imported. Register rules under the
``convlint.rules`` entry point (see ``fixtures/plugin_example``).
"""

from convlint.finding import DISPLAY, ERROR, INFO, SAFE, UNSAFE, WARNING, Edit, Fix
from convlint.fix.edits import SIGNATURES, CallRef, FixError, argument, find_call, read_source, set_argument
from convlint.fix.padding import declared_same, fix_padding
from convlint.formulas import same_pad_argument, same_target
from convlint.layers import AVGPOOL, CONV, MAXPOOL, TRANSPOSED, Geometry, geometry_of
from convlint.pretty import axes_map, fix_arguments, layer_settings, literal, show, size_map
from convlint.registry import BuiltModule, CallSite, Report, Rule
from convlint.samesize import AxisVerdict, agreement, keeping_padding, layer_verdicts, odd_axes
from convlint.signatures import FUNCTIONS as FUNCTION_SIGNATURES
from convlint.signatures import MODULES as MODULE_SIGNATURES
from convlint.sites import Site
from convlint.sizes import evaluate_int
from convlint.view import Constraint, ModelView, ModuleInfo

__all__ = [
    # records
    "Rule", "Report", "CallSite", "BuiltModule", "Fix", "Edit", "Site",
    "ERROR", "WARNING", "INFO", "SAFE", "UNSAFE", "DISPLAY",
    # the view of one analysed model
    "ModelView", "ModuleInfo", "Constraint",
    # geometry and "same"
    "Geometry", "geometry_of", "CONV", "TRANSPOSED", "MAXPOOL", "AVGPOOL",
    "AxisVerdict", "layer_verdicts", "odd_axes", "keeping_padding", "same_target", "same_pad_argument",
    "agreement", "evaluate_int",
    # text
    "show", "literal", "size_map", "axes_map", "fix_arguments", "layer_settings",
    # fixes
    "fix_padding", "declared_same", "find_call", "set_argument", "argument", "read_source",
    "CallRef", "FixError", "SIGNATURES", "MODULE_SIGNATURES", "FUNCTION_SIGNATURES",
]  # fmt: skip
