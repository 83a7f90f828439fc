"""Sizes: concrete shapes from meta execution, symbolic ones beside them.

- ``symbolic``: the shadow of a tensor (a sympy expression per dim), exact evaluation;
- ``transfer``: the transfer-function registry and what a transfer function sees;
- ``conv``, ``resample``, ``elementwise``, ``views``: the transfer functions, by family;
- ``probe``: sizes of a leaf, measured by running it at a few sizes;
- ``interpreter``: ``SizeProp``, the fx interpreter that runs a graph and records both;
- ``layout``: which axes of an input are spatial (those its convolutions read);
- ``predictor``: what the capture stage is handed to predict ops instead of running them.
"""

from convlint.sizes import conv, elementwise, layout, resample, views  # noqa: F401  (registers the transfer functions)
from convlint.sizes.elementwise import cat_dim, is_cat, is_merge, merge_operands
from convlint.sizes.interpreter import Mismatch, SizeResult, propagate
from convlint.sizes.layout import laid_out, misread
from convlint.sizes.predictor import PREDICTOR
from convlint.sizes.symbolic import (
    SPATIAL_NAMES,
    Dim,
    SymTensor,
    evaluate,
    evaluate_int,
    has_symbols,
    holds,
    integer,
    symbol,
)
from convlint.sizes.transfer import apply_geometry

__all__ = [
    "PREDICTOR",
    "SPATIAL_NAMES",
    "Dim",
    "Mismatch",
    "SizeResult",
    "SymTensor",
    "apply_geometry",
    "cat_dim",
    "evaluate",
    "evaluate_int",
    "has_symbols",
    "holds",
    "integer",
    "is_cat",
    "is_merge",
    "laid_out",
    "merge_operands",
    "misread",
    "propagate",
    "symbol",
]
