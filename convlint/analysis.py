"""Analysis: a model or block traced and sized, and the "same" verdicts of a block.

``analyse`` runs capture (fx) and sizes on one module; ``analyse_block`` does it for a
block declared to keep its size, at the input it saw in the model, and decides per
spatial dim whether it does, for every input size.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from dataclasses import dataclass
from typing import Callable, NamedTuple, Optional, Sequence

import torch
import torch.nn as nn

from convlint import layers, samesize, sizes
from convlint.capture import Trace, execute, trace
from convlint.common import Shape, describe, meta_input, shapes_text, spatial_axes, with_spatial_sizes
from convlint.dims import free
from convlint.samesize import AxisVerdict
from convlint.sites import Site, raised_site

log = logging.getLogger(__name__)


@dataclass
class Analysis:
    """A module traced and its sizes propagated, or the reason it could not be."""

    trace: Optional[Trace] = None
    sizes: Optional[sizes.SizeResult] = None
    error: Optional[str] = None
    error_site: Optional[Site] = None  # the model's line that raised, where running it did
    input_shapes: tuple = ()  # the inputs as sized: their spatial axes those the convolutions read
    unsized_input: bool = False  # ``error`` says why the input's spatial dims are not known

    @property
    def ran_to_end(self) -> bool:
        """Were its sizes followed through the whole graph (no error, no stop at a value
        the data decides)?"""
        stopped = self.trace is not None and self.trace.stopped is not None
        return not self.error and self.sizes is not None and self.sizes.error is None and not stopped

    @property
    def output(self) -> Optional[sizes.SymTensor]:
        """Shadow of the first tensor the graph returns (in a tuple, dict or dataclass)."""
        if self.sizes is None or self.sizes.error is not None:
            return None
        out = next(n for n in self.sizes.graph_module.graph.nodes if n.op == "output")
        return _first_tensor(self.sizes.shadows.get(out), self.sizes.shadows)


def _first_tensor(value, shadows: dict) -> Optional[sizes.SymTensor]:
    """The first tensor shadow in an output: through tuples, dicts, dataclasses and nodes."""
    if isinstance(value, sizes.SymTensor):
        return value
    if isinstance(value, torch.fx.Node):
        return _first_tensor(shadows.get(value), shadows)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = [getattr(value, f.name) for f in dataclasses.fields(value)]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return next((t for t in (_first_tensor(v, shadows) for v in value) if t is not None), None)
    return None


def analyse(
    module: nn.Module,
    input_shapes: Sequence[Sequence[int]],
    run_every_op: bool = False,
    traced=None,
    by_execution: bool = True,
) -> Analysis:
    """Capture and size one module: by fx where it can follow ``forward`` whole; where it
    cannot (the top-level forward, or a submodule it had to leave as a leaf), also by
    execution, and the capture that keeps more convolutions' sizes symbolic is used.
    ``by_execution=False``: fx alone, its leaves probed (what stands when execution fails).

    An input whose spatial axes are not its last ones (a channels-last input permuted in
    ``forward``) is sized again with the axes its convolutions read (``sizes.layout``)."""
    analysis = _captured(module, input_shapes, run_every_op, traced, by_execution)
    analysis.input_shapes = tuple(input_shapes)
    if analysis.sizes is None or not (sizes.misread(analysis.sizes) or sizes.layout.part_spatial(analysis.sizes)):
        return analysis
    shapes = sizes.laid_out(analysis.sizes.graph_module, input_shapes, run_every_op)
    misread = sizes.misread(analysis.sizes)
    if shapes is None and misread is not None:
        # every size stated from these symbols would be about the wrong dims: none is
        node, name = misread
        layer = (
            f"`{node.target}` ({type(module.get_submodule(node.target)).__name__})"
            if node.op == "call_module"
            else f"`{node.name}`"
        )
        error = (
            f"the input's size `{name}` reaches the channels of {layer} and none of its sizes reaches the "
            "spatial dims of a convolution"
        )
        return dataclasses.replace(analysis, sizes=None, error=error, unsized_input=True)
    if shapes is None:
        return analysis
    log.debug("%s: spatial axes %s", type(module).__name__, [spatial_axes(s) for s in shapes])
    relaid = sizes.propagate(analysis.sizes.graph_module, shapes, run_every_op=run_every_op)
    # the tensors rules compare are the convolutions' (tokens of one axis folded to a grid: 2)
    convs = sizes.layout.convolutions(relaid)
    if convs:
        relaid.spatial_ndim = relaid.geometries[convs[0][0]].ndim
    return dataclasses.replace(analysis, sizes=relaid, input_shapes=shapes)


def _captured(module: nn.Module, input_shapes, run_every_op: bool, traced, by_execution: bool) -> Analysis:
    fx_stopped = None
    if traced is None:
        try:
            traced = trace(module, len(input_shapes))
        except Exception as exc:
            # cut: where running it raised too, that reason leads the message
            fx_stopped = f"cannot be traced: {describe(exc, 64)}"
    fx = None
    if traced is not None:
        fx = Analysis(traced, sizes.propagate(traced.graph_module, input_shapes, run_every_op=run_every_op))
        # A function fx keeps whole (torch.fx.wrap) has no size rule; run, it is followed inside.
        unfollowed = [n for n in fx.sizes.unknown_ops if n.op == "call_function" and not _is_torch(n.target)]
        if not by_execution or not (traced.leaves or unfollowed):
            return fx
        fx_stopped = f"fx could not follow {', '.join(f'`{name}`' for name in _unfollowed(traced, unfollowed))}"
    elif not by_execution:
        return Analysis(error=fx_stopped)
    try:
        executed = execute.capture(module, input_shapes, sizes.PREDICTOR)
    except Exception as exc:
        site = raised_site(exc)
        at = f" at line {site.line}" if site is not None else ""
        why = f"running it at the example input ({shapes_text(input_shapes, ' ')}) raised{at}: {describe(exc)}"
        if fx is not None:
            fx.trace.execution_failed = why
            return fx
        executed = _captured_larger(module, input_shapes)
        if executed is None:
            return Analysis(error=f"{fx_stopped}; {why}", error_site=site)
        # Recorded at a larger input; sized at the example, where it raises at the layer
        # that cannot take it (a CVL401 at that line, as for a model fx follows).
        fx_stopped = f"{fx_stopped}; {why}, so it was recorded at {shapes_text(executed.captured_at, ' ')}"
        executed.example_raised = (why, site)
    executed.fx_stopped = fx_stopped
    decided = {node: value for node, value, _site in executed.guards}
    ran = Analysis(
        executed, sizes.propagate(executed.graph_module, input_shapes, run_every_op=run_every_op, guards=decided)
    )
    return ran if fx is None or _symbolic_score(ran) >= _symbolic_score(fx) else fx


def _is_torch(target: Callable) -> bool:
    module = getattr(target, "__module__", None) or ""
    return module == "torch" or module.startswith(("torch.", "_operator", "operator", "builtins"))


def _unfollowed(traced: Trace, functions: list) -> list[str]:
    return [*traced.leaves, *(getattr(n.target, "__name__", str(n.target)) for n in functions)]


LARGER = (2, 4, 8)  # the spatial sizes a model that raised at its example is recorded at


def _captured_larger(module: nn.Module, input_shapes: Sequence[Sequence[int]]) -> Optional[Trace]:
    """An execution capture at the example's spatial sizes times 2, 4 or 8 (the first that
    runs): a model whose example is too small for its layers is still recorded whole, its
    branches as taken there (guards)."""
    for factor in LARGER:
        larger = [with_spatial_sizes(s, [s[a] * factor for a in spatial_axes(s)]) for s in input_shapes]
        try:
            executed = execute.capture(module, larger, sizes.PREDICTOR)
        except Exception as exc:
            log.debug("recording at %s raised %s", larger, describe(exc))
            continue
        executed.captured_at = tuple(larger)
        return executed
    return None


def _symbolic_score(analysis: Analysis) -> tuple:
    """(ran to the end, conv-like layers whose output sizes are all symbolic)."""
    result = analysis.sizes
    kept = 0
    for node in result.geometries:
        shadow = result.shadows.get(node)
        kept += isinstance(shadow, sizes.SymTensor) and all(d is not None for d in shadow.dims[2:])
    return (analysis.ran_to_end, kept)


class Block(NamedTuple):
    """A block analysed on its own: its analysis, per-dim verdicts, or why there are none."""

    analysis: Optional[Analysis]
    axes: tuple[AxisVerdict, ...]
    reason: str


def analyse_block(module: nn.Module, shapes: Optional[tuple], run_every_op: bool = False) -> Block:
    """A block traced on its own at the input it saw, and whether each spatial dim keeps
    "same" (from its size map, or by running it on meta tensors where the map is unknown)."""
    if not shapes:
        return Block(None, (), "it was never called at the example input")
    analysis = analyse(module, shapes, run_every_op)
    if analysis.error or analysis.sizes.error:
        reason = analysis.error or describe(analysis.sizes.error[1])
        return Block(analysis, (), reason)
    out = analysis.output
    if out is None:
        return Block(analysis, (), "it does not return a tensor")
    symbols = analysis.sizes.symbols
    ndim = len(symbols)
    axes = []
    in_dims = list(symbols)
    for i, sym in enumerate(in_dims):
        expr = out.dims[len(out.dims) - ndim + i] if len(out.dims) >= ndim else None
        axes.append(_block_axis(module, shapes, analysis, sym, i, expr))
    return Block(analysis, tuple(axes), "")


def _block_axis(module, shapes, analysis: Analysis, sym, i: int, expr) -> AxisVerdict:
    example = dict(analysis.sizes.symbols)
    if expr is not None:
        tracked = [
            d
            for shadow in analysis.sizes.shadows.values()
            if isinstance(shadow, sizes.SymTensor)
            for d in shadow.dims
            if d is not None and sym in free(d)
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
        out = _executed_axis(module, shapes, i)
        period = _stride_product(module, i)
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


def _executed_axis(module, shapes, i: int) -> Callable[[int], Optional[int]]:
    """Output size along spatial dim ``i`` by running the block on meta tensors."""
    first = list(shapes[0])
    axis = spatial_axes(shapes[0])[i]

    @functools.lru_cache(maxsize=None)
    def out(n: int) -> Optional[int]:
        shape = list(first)
        shape[axis] = n
        try:
            with torch.no_grad():
                y = module(
                    meta_input(Shape(shape, getattr(shapes[0], "dtype", "float32"))),
                    *[meta_input(s) for s in shapes[1:]],
                )
        except Exception as exc:  # the block is not defined at this size: that is the answer
            log.debug("%s raised at size %d of spatial dim %d: %s", type(module).__name__, n, i, describe(exc))
            return None
        while isinstance(y, (tuple, list)):
            y = y[0]
        return int(y.shape[axis]) if isinstance(y, torch.Tensor) and y.dim() == len(shape) else None

    return out


def _stride_product(module: nn.Module, i: int) -> int:
    period = 1
    for sub in module.modules():
        geometry = layers.geometry_of(sub)
        if geometry is not None and i < geometry.ndim:
            period *= geometry.stride[i]
    return period
