"""Capture: record what a model does at the example input.

- ``fx``: the graph, by ``torch.fx`` symbolic tracing; a submodule or helper that cannot
  be traced becomes a leaf (executed, not traced), with the reason;
- ``execute``: the graph, by running ``forward`` on meta tensors and recording each op,
  where fx cannot follow Python's control flow; the decisions Python made on sizes are
  kept as guards;
- ``inputs``: the shapes each module was first called with, by running the model once
  on meta tensors with forward pre-hooks.
"""

from convlint.capture import execute
from convlint.capture.fx import Trace, trace
from convlint.capture.inputs import ModuleInputs, module_inputs

__all__ = ["ModuleInputs", "Trace", "execute", "module_inputs", "trace"]
