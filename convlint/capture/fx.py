"""Tracing: torch.fx symbolic tracing that survives untraceable submodules.

A submodule whose ``forward`` cannot be traced (control flow on traced values,
``int(proxy)``, ...) becomes a leaf: one ``call_module`` node that is executed, not
traced through. A module-level helper function that stops the top-level ``forward``
(timm's CrossViT resizes its input in one) becomes a leaf ``call_function`` node the
same way. Each reason is kept, so the report can say where sizes went unknown.
Every node remembers the source position of the ``forward`` line that made it.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.fx
import torch.nn as nn

from convlint import sites
from convlint.common import describe

try:  # PyTorch >= 2.2: forward's Python code is generated on its first call, not at build
    from torch.fx._lazy_graph_module import _LazyGraphModule as _GraphModule
except ImportError:  # pragma: no cover - older PyTorch
    _GraphModule = torch.fx.GraphModule


@dataclass
class Trace:
    """A captured graph. ``method``: "fx" (symbolic tracing) or "execution" (recorded by
    running forward on meta tensors); ``guards``: for an execution capture, the decisions
    Python made on sizes, as (node, the value it had at the example, site);
    ``fx_stopped``: why symbolic tracing was not enough, when it was not."""

    graph_module: torch.fx.GraphModule
    leaves: dict = field(default_factory=dict)  # qualified name -> reason it was made a leaf
    method: str = "fx"
    guards: list = field(default_factory=list)
    fx_stopped: Optional[str] = None
    execution_failed: Optional[str] = None  # why the execution capture could not stand in
    captured_at: Optional[tuple] = None  # the input shapes it was recorded at, if not the example's
    example_raised: Optional[tuple] = None  # (why, site): how running it at the example raised, then
    # (code, why, site): an execution capture that stopped where forward reads a value the
    # input's data or the weights decide; the graph holds what ran before it
    stopped: Optional[tuple] = None


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
        site = sites.user_site(self._skipped)
        if site is not None:
            node.meta[sites.NODE_META] = site
        return node


def trace(module: nn.Module, inputs: Optional[int] = None) -> Trace:
    """Trace ``module``; raises if even its own ``forward`` cannot be traced.

    Arguments of ``forward`` past the first ``inputs`` (all that have one, if None) are
    traced at their default value: ``mask=None`` is no mask, not a traced tensor."""
    helpers: dict = {}  # function -> (reason, the globals it is called through)
    defaults = _defaults(module, inputs)
    while True:
        tracer = _Tracer()
        try:
            with _helpers_as_leaves(helpers):
                graph = tracer.trace(module, concrete_args=defaults or None)
            break
        except Exception as exc:
            helper, caller = _failing_helper(exc.__traceback__, tracer._skipped)
            if helper is None or helper in helpers or len(helpers) >= 8:
                raise
            helpers[helper] = (describe(exc), [helper.__globals__, caller])
    name = type(module).__name__
    graph_module = graph_module_of(tracer.root, graph, name)
    if tracer.leaves:
        graph_module.graph.eliminate_dead_code()
        graph_module.recompile()
    leaves = dict(tracer.leaves)
    leaves.update({f"{fn.__module__}.{fn.__qualname__}()": reason for fn, (reason, _) in helpers.items()})
    return Trace(graph_module, leaves)


def graph_module_of(root, graph: torch.fx.Graph, name: str) -> torch.fx.GraphModule:
    """A graph module for analysis: convlint reads its graph and never calls it, so the
    code of its ``forward`` (a tenth of a ResNet-50's analysis) waits for a first call."""
    return _GraphModule(root, graph, name)


def _defaults(module: nn.Module, inputs: Optional[int]) -> dict:
    try:
        parameters = list(inspect.signature(module.forward).parameters.values())
    except (TypeError, ValueError):
        return {}
    simple = (type(None), bool, int, float, str)
    return {
        p.name: p.default
        for i, p in enumerate(parameters)
        if i >= (inputs or 0)
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and p.default is not p.empty
        and isinstance(p.default, simple)
    }


def _failing_helper(tb, skipped: tuple[str, ...]) -> tuple:
    """The module-level function, outside torch, in which tracing stopped, and the
    globals of its caller; (None, None) if it stopped in a method (that is the submodule
    fallback's job) or anywhere else."""
    frames = []
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    for i in range(len(frames) - 1, 0, -1):
        frame = frames[i]
        if frame.f_code.co_filename.startswith(skipped):
            continue
        fn = frame.f_globals.get(frame.f_code.co_name)
        if getattr(fn, "__code__", None) is frame.f_code:
            return fn, frames[i - 1].f_globals
        break
    return None, None


class _helpers_as_leaves:
    """While tracing, a call of one of ``helpers`` with a traced value becomes a single
    ``call_function`` node (like ``torch.fx.wrap``, but for functions found only after a
    trace failed in them): the name is swapped in its module's globals, then restored."""

    def __init__(self, helpers: dict) -> None:
        self.helpers = helpers
        self.saved: list = []

    def __enter__(self):
        for fn, (_, namespaces) in self.helpers.items():
            leaf = _leaf_function(fn)
            for namespace in namespaces:
                for name in [name for name, value in namespace.items() if value is fn]:
                    self.saved.append((namespace, name, fn))
                    namespace[name] = leaf
        return self

    def __exit__(self, *exc):
        for namespace, name, fn in reversed(self.saved):
            namespace[name] = fn
        return False


def _leaf_function(fn):
    @functools.wraps(fn)
    def call(*args, **kwargs):
        proxies: list = []
        torch.fx.node.map_aggregate(
            (args, kwargs), lambda a: proxies.append(a) if isinstance(a, torch.fx.Proxy) else None
        )
        if proxies:
            return proxies[0].tracer.create_proxy("call_function", fn, args, kwargs)
        return fn(*args, **kwargs)

    return call
