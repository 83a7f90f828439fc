"""The shapes each module was first called with, at the example input."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import torch.nn as nn


@dataclass(frozen=True)
class ModuleInputs:
    shapes: dict = field(default_factory=dict)  # qualified name -> shapes of its tensor arguments
    stopped: Optional[str] = None  # why the run stopped early: modules after that point are missing


def module_inputs(model: nn.Module, input_shapes: Sequence[Sequence[int]], predictor=None) -> ModuleInputs:
    """One run of the model on meta tensors, watched as the execution capture watches it
    (with the sizes stage's predictor, the ops whose sizes it gives are not run: no
    torch._dynamo import)."""
    from convlint.capture import execute

    shapes, stopped = execute.module_inputs(model, input_shapes, predictor)
    return ModuleInputs(shapes, stopped)
