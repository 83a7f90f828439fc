"""The fix API: what a rule's ``fix`` may use to turn a constructor call into edits.

A rule's ``fix`` receives a ``CallSite``: the call and every module it built across the
models of the run (``BuiltModule``: model, qualified name, module, its ``geometry`` and
declared intent), and returns a ``Fix`` (edits with an applicability: ``SAFE``, ``UNSAFE``
or ``DISPLAY``), a sentence saying why there is none, or None.
"""

from convlint.finding import DISPLAY, SAFE, UNSAFE, Edit, Fix
from convlint.fix.edits import CallRef, FixError, argument, find_call, read_source, set_argument
from convlint.fix.padding import declared_same, fix_padding
from convlint.registry import BuiltModule, CallSite
from convlint.signatures import FUNCTIONS as FUNCTION_SIGNATURES
from convlint.signatures import MODULES as MODULE_SIGNATURES

__all__ = [
    # what a fix gets and gives
    "CallSite", "BuiltModule", "Fix", "Edit", "SAFE", "UNSAFE", "DISPLAY", "FixError",
    # the source: find the call, read or set an argument (PyTorch's argument positions)
    "read_source", "find_call", "CallRef", "argument", "set_argument", "MODULE_SIGNATURES", "FUNCTION_SIGNATURES",
    # the padding fix the built-in rules share
    "fix_padding", "declared_same",
]  # fmt: skip
