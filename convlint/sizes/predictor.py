"""The sizes stage's answer to the capture stage's ``Predictor``: an op's output from its
transfer function, and a stand-in for a merge of mismatched sizes.

The capture runs before the sizes stage and does not import it; the caller that runs both
(``convlint.analysis``) hands this object to the capture.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Optional

import torch.nn as nn

from convlint import layers
from convlint.sizes import interpreter, transfer
from convlint.sizes.symbolic import constant_shadow


class TransferPredictor:
    """Predicts the fast ops (activations, norms, merges, cat, adaptive pooling) and conv
    and pooling layers (their formula is exact, and the sizes stage runs and checks them
    afterwards) at the example input; everything else is run."""

    def output(self, op: str, target: Any, module: Optional[nn.Module], args: tuple, kwargs: dict) -> Any:
        layer = module is not None and layers.geometry_of(module) is not None
        if not (interpreter.is_fast(op, target, module) or layer):
            return None
        if op == "call_method":
            fn = transfer.for_method(target)
        else:
            fn = transfer.for_module(module) if module is not None else transfer.for_function(target)
        if fn is None:
            return None
        call = transfer.Call(
            None, target, args, kwargs,
            constant_shadow(args), {k: constant_shadow(v) for k, v in kwargs.items()},
            None, module,
        )  # fmt: skip
        predicted = interpreter.predict(fn, call, {})
        return predicted[1] if predicted is not None else None

    def merge_stand_in(self, op: str, target: Any, args: tuple, kwargs: dict) -> Any:
        return interpreter.merge_stand_in(SimpleNamespace(op=op, target=target), args, kwargs)


PREDICTOR = TransferPredictor()
