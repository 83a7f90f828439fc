"""The read-only view of one analysed model that every rule receives.

It joins what the earlier stages found: the built model and its construction sites
(load), the fx graph and its leaves (trace), the sizes of every node (sizes), and the
declared same intent (intent). Costly answers (a block traced on its own, the inputs
each module saw) are computed on first use and kept.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional, Sequence

import torch
import torch.nn as nn

from convlint import intent, layers, samesize, sites, sizes
from convlint.samesize import AxisVerdict
from convlint.load import describe
from convlint.trace import Trace, trace


@dataclass
class Analysis:
    """A module traced and its sizes propagated, or the reason it could not be."""

    trace: Optional[Trace] = None
    sizes: Optional[sizes.SizeResult] = None
    error: Optional[str] = None

    @property
    def output(self) -> Optional[sizes.SymTensor]:
        """Shadow of the first tensor the graph returns."""
        if self.sizes is None or self.sizes.error is not None:
            return None
        out = next(n for n in self.sizes.graph_module.graph.nodes if n.op == "output")
        shadow = self.sizes.shadows.get(out)
        while isinstance(shadow, (tuple, list)) and shadow:
            shadow = shadow[0]
        return shadow if isinstance(shadow, sizes.SymTensor) else None


def analyse(module: nn.Module, input_shapes: Sequence[Sequence[int]]) -> Analysis:
    try:
        traced = trace(module)
    except Exception as exc:
        return Analysis(error=f"cannot be traced: {describe(exc)}")
    result = sizes.propagate(traced.graph_module, input_shapes)
    return Analysis(traced, result)


@dataclass(frozen=True)
class ModuleInfo:
    qualname: str  # "" for the model itself
    module: nn.Module
    site: Optional[sites.Site]
    intent: Optional[str]  # how same intent was declared, or None

    @property
    def type_name(self) -> str:
        return type(self.module).__name__


@dataclass
class ModelView:
    name: str
    path: str
    model: nn.Module
    input_shapes: tuple
    analysis: Analysis
    same_globs: tuple = ()
    _module_inputs: Optional[dict] = field(default=None, repr=False)
    _blocks: dict = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------ modules

    @functools.cached_property
    def modules(self) -> tuple[ModuleInfo, ...]:
        entries = [(q, m, sites.site_of(m)) for q, m in self.model.named_modules(remove_duplicate=False)]
        declared = intent.declarations(entries, self.same_globs)
        return tuple(ModuleInfo(q, m, site, declared.get(q)) for q, m, site in entries)

    def module(self, qualname: str) -> ModuleInfo:
        return next(m for m in self.modules if m.qualname == qualname)

    def display(self, qualname: str) -> str:
        return qualname or type(self.model).__name__

    # ------------------------------------------------------------ inputs each module saw

    def module_inputs(self, qualname: str) -> Optional[tuple]:
        """Shapes of the tensors a module was first called with, at the example input."""
        if self._module_inputs is None:
            self._module_inputs = self._record_inputs()
        return self._module_inputs.get(qualname)

    def _record_inputs(self) -> dict:
        seen: dict[str, tuple] = {}
        handles = []

        def hook(name):
            def record(_module, args):
                if name not in seen:
                    seen[name] = tuple(tuple(a.shape) for a in args if isinstance(a, torch.Tensor))

            return record

        for name, module in self.model.named_modules():
            handles.append(module.register_forward_pre_hook(hook(name)))
        try:
            with torch.no_grad():
                self.model(*[torch.empty(s, device="meta") for s in self.input_shapes])
        except Exception:
            pass  # what ran before the failure is still known
        finally:
            for h in handles:
                h.remove()
        return seen

    # ------------------------------------------------------------ "same" verdicts

    def layer_axes(self, geometry: layers.Geometry) -> tuple[AxisVerdict, ...]:
        return samesize.layer_verdicts(geometry)

    def block(self, qualname: str) -> tuple[Optional[Analysis], tuple[AxisVerdict, ...], str]:
        """A block traced on its own at the input it saw; per-dim verdicts; or why not."""
        if qualname not in self._blocks:
            self._blocks[qualname] = self._block(qualname)
        return self._blocks[qualname]

    def _block(self, qualname: str) -> tuple[Optional[Analysis], tuple[AxisVerdict, ...], str]:
        shapes = self.module_inputs(qualname)
        if not shapes:
            return None, (), "it was never called at the example input"
        module = self.module(qualname).module
        analysis = analyse(module, shapes)
        if analysis.error or analysis.sizes.error:
            reason = analysis.error or describe(analysis.sizes.error[1])
            return analysis, (), reason
        out = analysis.output
        if out is None:
            return analysis, (), "it does not return a tensor"
        symbols = analysis.sizes.symbols
        ndim = len(symbols)
        axes = []
        in_dims = list(symbols)
        for i, sym in enumerate(in_dims):
            expr = out.dims[len(out.dims) - ndim + i] if len(out.dims) >= ndim else None
            axes.append(self._block_axis(module, shapes, analysis, sym, i, expr))
        return analysis, tuple(axes), ""

    def _block_axis(self, module, shapes, analysis: Analysis, sym, i: int, expr) -> AxisVerdict:
        example = dict(analysis.sizes.symbols)
        if expr is not None:
            tracked = [
                d
                for shadow in analysis.sizes.shadows.values()
                if isinstance(shadow, sizes.SymTensor)
                for d in shadow.dims
                if d is not None and sym in d.free_symbols
            ]

            def out(n: int) -> Optional[int]:
                env = {**example, sym: n}
                if any((sizes.evaluate_int(d, env) or 0) < 1 for d in tracked):
                    return None  # some layer inside is not defined at this size
                return sizes.evaluate_int(expr, env)

            period = 1
            for d in tracked:
                period = max(period, samesize.period_of(d))
        else:
            out = self._executed_axis(module, shapes, i)
            period = self._stride_product(module, i)
        n_min = samesize.smallest_defined(lambda n: out(n) is not None, max(example[sym], 1))
        if n_min is None:
            return AxisVerdict(sym, expr, None, None)
        step = slope_period = max(period, 1)
        rate = samesize.slope(out, n_min, slope_period)
        if rate is None or rate <= 0 or 1 not in (rate.numerator, rate.denominator):
            # neither a downsampling by S nor an upsampling by U: "same" has no meaning
            return AxisVerdict(sym, expr, None, samesize.Verdict(False, n_min, out(n_min), None, n_min))
        stride = 1 / rate
        return AxisVerdict(sym, expr, stride, samesize.keeps_same(out, stride, n_min, step))

    def _executed_axis(self, module, shapes, i: int) -> Callable[[int], Optional[int]]:
        """Output size along spatial dim ``i`` by running the block on meta tensors."""
        first = list(shapes[0])
        axis = len(first) - len(sizes.SPATIAL_NAMES[max(1, min(3, len(first) - 2))]) + i

        @functools.lru_cache(maxsize=None)
        def out(n: int) -> Optional[int]:
            shape = list(first)
            shape[axis] = n
            try:
                with torch.no_grad():
                    y = module(torch.empty(shape, device="meta"), *[torch.empty(s, device="meta") for s in shapes[1:]])
            except Exception:
                return None
            while isinstance(y, (tuple, list)):
                y = y[0]
            return int(y.shape[axis]) if isinstance(y, torch.Tensor) and y.dim() == len(shape) else None

        return out

    @staticmethod
    def _stride_product(module: nn.Module, i: int) -> int:
        period = 1
        for sub in module.modules():
            geometry = layers.geometry_of(sub)
            if geometry is not None and i < geometry.ndim:
                period *= geometry.stride[i]
        return period

    # ------------------------------------------------------------ nodes

    def nodes_in(self, analysis: Analysis) -> Iterator[torch.fx.Node]:
        if analysis.sizes is not None:
            yield from analysis.sizes.graph_module.graph.nodes
