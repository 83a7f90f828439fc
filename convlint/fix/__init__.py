"""Fix: the edits findings carry (``edits``: libcst, reading a call's arguments, writing a
file safely) and the planning of padding fixes over every module a call built
(``padding``). libcst is imported only when a source is parsed."""

from convlint.fix.edits import (
    SIGNATURES,
    CallRef,
    FixError,
    Outcome,
    Source,
    apply,
    apply_edits,
    argument,
    find_call,
    operand,
    read_source,
    set_argument,
    write_atomically,
)

__all__ = [
    "SIGNATURES",
    "CallRef",
    "FixError",
    "Outcome",
    "Source",
    "apply",
    "apply_edits",
    "argument",
    "find_call",
    "operand",
    "read_source",
    "set_argument",
    "write_atomically",
]
