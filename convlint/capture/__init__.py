"""Capture: record what a model does at the example input.

- ``fx``: the graph, by ``torch.fx`` symbolic tracing; a submodule or helper that cannot
  be traced becomes a leaf (executed, not traced), with the reason;
- ``inputs``: the shapes each module was first called with, by running the model once
  on meta tensors with forward pre-hooks.
"""

from convlint.capture.fx import Trace, trace
from convlint.capture.inputs import ModuleInputs, module_inputs

__all__ = ["ModuleInputs", "Trace", "module_inputs", "trace"]
