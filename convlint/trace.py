"""Tracing: torch.fx symbolic tracing that survives untraceable submodules.

A submodule whose ``forward`` cannot be traced (control flow on traced values,
``int(proxy)``, ...) becomes a leaf: one ``call_module`` node that is executed, not
traced through. Its reason is kept, so the report can say where sizes went unknown.
Every node remembers the source position of the ``forward`` line that made it.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field

import torch
import torch.fx
import torch.nn as nn

from convlint import sites
from convlint.load import describe


@dataclass
class Trace:
    graph_module: torch.fx.GraphModule
    leaves: dict = field(default_factory=dict)  # qualified name -> reason it was made a leaf


class _Tracer(torch.fx.Tracer):
    def __init__(self) -> None:
        super().__init__()
        self.leaves: dict[str, str] = {}
        self._skipped = sites._skipped_dirs()

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return qualname in self.leaves or super().is_leaf_module(m, qualname)

    def call_module(self, m, forward, args, kwargs):
        qualname = self.path_of_module(m)
        if self.is_leaf_module(m, qualname):
            return super().call_module(m, forward, args, kwargs)
        stack = list(self.module_stack.keys())
        try:
            return super().call_module(m, forward, args, kwargs)
        except Exception as exc:
            # Undo the half-traced call's bookkeeping; its dangling nodes are removed
            # by dead-code elimination once the trace is done.
            while len(self.module_stack) > len(stack):
                self.module_stack.popitem(last=True)
            self.leaves[qualname] = describe(exc)
            return super().call_module(m, forward, args, kwargs)

    def create_node(self, *args, **kwargs):
        node = super().create_node(*args, **kwargs)
        frame = sys._getframe(1)
        while frame is not None and frame.f_code.co_filename.startswith(self._skipped):
            frame = frame.f_back
        if frame is not None:
            node.meta["convlint_site"] = sites.frame_site(frame)
        return node


def trace(module: nn.Module) -> Trace:
    """Trace ``module``; raises if even its own ``forward`` cannot be traced."""
    tracer = _Tracer()
    graph = tracer.trace(module)
    name = type(module).__name__
    graph_module = torch.fx.GraphModule(tracer.root, graph, name)
    if tracer.leaves:
        graph_module.graph.eliminate_dead_code()
        graph_module.recompile()
    return Trace(graph_module, dict(tracer.leaves))
