"""sympy, imported where it is first used (issue 25).

Its import and its first arithmetic (which imports sympy's tensor and combinatorics
packages) cost 0.3-0.4 s, most of a cold check, and a model whose sizes the exact type
(``convlint.affine``) holds never needs it. ``from convlint import lazy_sympy as sympy``:
``sympy.X`` imports sympy on first use, after which sympy's names are this module's own
(no indirection on the hot paths). ``isinstance`` against a sympy class without importing
it: ``dims.is_sympy``.
"""

from __future__ import annotations

import sys


def loaded() -> bool:
    """Has anything imported sympy (so that a sympy object may exist)?"""
    return "sympy" in sys.modules


def __getattr__(name: str):
    if name.startswith("__"):  # pickle, copy and the import system ask for dunders
        raise AttributeError(name)
    import sympy

    own = globals()
    own.update({k: v for k, v in vars(sympy).items() if not k.startswith("__") and k not in own})
    return getattr(sympy, name)
