"""The shapes each module was first called with, at the example input."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import torch
import torch.nn as nn

from convlint.load import describe
from convlint.options import meta_input


@dataclass(frozen=True)
class ModuleInputs:
    shapes: dict = field(default_factory=dict)  # qualified name -> shapes of its tensor arguments
    stopped: Optional[str] = None  # why the run stopped early: modules after that point are missing


def module_inputs(model: nn.Module, input_shapes: Sequence[Sequence[int]]) -> ModuleInputs:
    """Run the model once on meta tensors with a forward pre-hook on every module."""
    seen: dict[str, tuple] = {}
    handles = []

    def hook(name):
        def record(_module, args):
            if name not in seen:
                seen[name] = tuple(tuple(a.shape) for a in args if isinstance(a, torch.Tensor))

        return record

    for name, module in model.named_modules():
        handles.append(module.register_forward_pre_hook(hook(name)))
    stopped = None
    try:
        with torch.no_grad():
            model(*[meta_input(s) for s in input_shapes])
    except Exception as exc:
        # What ran before the failure is still known; the reason is kept for the report.
        stopped = f"the model raised at the example input: {describe(exc)}"
    finally:
        for h in handles:
            h.remove()
    return ModuleInputs(seen, stopped)
