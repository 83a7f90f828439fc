"""The engine's index of one analysed model: the facts rules read (``convlint.facts``),
the engine's own findings and the reports are built from it; no rule sees it.

It joins what the earlier stages found: the built model and its construction sites
(load), the fx graph and its leaves (capture), the sizes of every node (sizes), the
declared same intent (intent), and the blocks declared "same" analysed on their own
(analysis). It is frozen once built and only answers queries: it runs nothing and
installs no hooks; the one cost it keeps is arithmetic on sizes, computed on first use
and cached.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from typing import Iterator, NamedTuple, Optional

import torch
import torch.nn as nn

from convlint import analysis as analysis_mod
from convlint import formulas, input_domain, intent, layers, samesize, sites, sizes
from convlint import lazy_sympy as sympy
from convlint.analysis import Analysis
from convlint.capture import ModuleInputs
from convlint.dims import EXPR, free
from convlint.samesize import AxisVerdict
from convlint.sizes.resample import CIRCULAR_PADS, REFLECTION_PADS


@dataclass(frozen=True)
class ModuleInfo:
    qualname: str  # "" for the model itself
    module: nn.Module
    site: Optional[sites.Site]
    intent: Optional[str]  # how same intent was declared, or None

    @property
    def type_name(self) -> str:
        return type(self.module).__name__

    @property
    def uncalled_container(self) -> bool:
        """A ModuleList/ModuleDict: never called itself; its members carry its intent."""
        return self.type_name in intent.UNCALLED_CONTAINERS


@dataclass(frozen=True, eq=False)
class ModelView:
    name: str
    path: str
    model: nn.Module
    input_shapes: tuple
    analysis: Analysis
    same_globs: tuple = ()
    inputs: Optional[ModuleInputs] = None  # what each module was called with (capture)
    blocks: dict = field(default_factory=dict)  # qualified name -> analysis.Block
    inferred_input: bool = False  # the example input was inferred, not declared
    run_every_op: bool = False  # the analysis mode (another analysis of the model runs in it too)
    _smallest: dict = field(default_factory=dict, repr=False)  # a cache: (symbol, upto) -> size
    _spatial: dict = field(default_factory=dict, repr=False)  # a cache: node -> its spatial dims found

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
        """Shapes of the tensors a module was first called with, at the example input
        (recorded by the capture stage when the model declares same intent). A module
        reached by several names (shared by several layers) was called under one of them."""
        if self.inputs is None:
            return None
        if qualname in self.inputs.shapes:
            return self.inputs.shapes[qualname]
        module = self.module(qualname).module
        return next(
            (
                self.inputs.shapes[i.qualname]
                for i in self.modules
                if i.module is module and i.qualname in self.inputs.shapes
            ),
            None,
        )

    # ------------------------------------------------------------ "same" verdicts

    def layer_axes(self, geometry: layers.Geometry) -> tuple[AxisVerdict, ...]:
        return samesize.layer_verdicts(geometry)

    def block(self, qualname: str) -> "analysis_mod.Block":
        """A block declared "same", traced on its own at the input it saw: per-dim verdicts,
        or why there are none (worked out by the engine, before the rules run)."""
        found = self.blocks.get(qualname)
        if found is not None:
            return found
        return analysis_mod.Block(None, (), "it was not analysed on its own")

    # ------------------------------------------------------------ nodes

    @property
    def nodes(self) -> list:
        """The graph's nodes in execution order (empty when the model was not analysed)."""
        return list(self.sizes.graph_module.graph.nodes) if self.sizes is not None else []

    @property
    def example(self) -> dict:
        """The input's symbols at their example sizes: ``{H: 224, W: 224}``."""
        return dict(self.sizes.symbols) if self.sizes is not None else {}

    @staticmethod
    def site_of(node: torch.fx.Node) -> Optional[sites.Site]:
        """The ``forward`` line that made a node."""
        return node.meta.get(sites.NODE_META)

    def sized(self, node: torch.fx.Node) -> bool:
        """Did the analysis reach this node (execution stops at an error)?"""
        return self.sizes is not None and node in self.sizes.shadows

    def broken_merge(self, node: torch.fx.Node) -> Optional[Exception]:
        """The error PyTorch raised at a merge of mismatched sizes, if it did."""
        return self.sizes.broken_merges.get(node) if self.sizes is not None else None

    @staticmethod
    def is_elementwise_merge(node: torch.fx.Node) -> bool:
        """add, sub, mul, div (any spelling): operands that broadcast."""
        return sizes.is_merge(node) and not sizes.is_cat(node)

    def pad_in_front(self, analysis: Analysis, node: torch.fx.Node) -> Optional[torch.fx.Node]:
        """The padding layer or ``F.pad`` whose output ``node`` takes (a pad layer and the
        convolution it feeds are one unit: the pad supplies the conv's padding)."""
        first = node.all_input_nodes[0] if node.all_input_nodes else None
        if first is None:
            return None
        if first.op == "call_module":
            module = self.submodule(analysis, first)
            if layers.torch_family(module) == "padding":
                return first
        if first.op == "call_function" and first.target is torch.nn.functional.pad:
            return first
        return None

    def with_pad_in_front(self, analysis: Analysis, pad: torch.fx.Node, geometry: layers.Geometry):
        """The convolution's geometry with the pad in front folded into its padding (one
        unit), or None when the pad's amounts are not known integers on its spatial dims."""
        found = pad_amounts(analysis.sizes, pad)
        if found is None or len(found[1]) != geometry.ndim:
            return None
        pairs = tuple((a + pa, b + pb) for (a, b), (pa, pb) in zip(geometry.padding, found[1]))
        return dataclasses.replace(geometry, padding=pairs, padding_literal=None)

    @staticmethod
    def submodule(analysis: Analysis, node: torch.fx.Node) -> nn.Module:
        """The module a ``call_module`` node of ``analysis`` calls (every stage asks, node
        by node: the graph's modules are listed once, not walked by path at each)."""
        graph_module = analysis.sizes.graph_module
        modules = graph_module.__dict__.get("_convlint_modules")
        if modules is None:
            modules = graph_module.__dict__["_convlint_modules"] = dict(graph_module.named_modules())
        return modules[node.target] if node.target in modules else graph_module.get_submodule(node.target)

    def nodes_in(self, analysis: Analysis) -> Iterator[torch.fx.Node]:
        if analysis.sizes is not None:
            yield from analysis.sizes.graph_module.graph.nodes

    @property
    def sizes(self) -> Optional[sizes.SizeResult]:
        return self.analysis.sizes

    @property
    def symbols(self) -> list:
        """The input's spatial symbols (``H``, ``W``), in order."""
        return list(self.sizes.symbols) if self.sizes is not None else []

    def spatial(self, node: torch.fx.Node, positions: Optional[tuple] = None) -> Optional[list[tuple]]:
        """(expression or None, concrete size) for each spatial dim of a node's tensor (at
        ``positions``, else where ``spatial_positions`` finds them), or None when the
        tensor has no spatial layout (flattened, or not a tensor)."""
        shadow, value = self.sizes.shadows.get(node), self.sizes.values.get(node)
        ndim = self.sizes.spatial_ndim
        if not ndim or not isinstance(shadow, sizes.SymTensor) or not isinstance(value, tuple) or len(value) < ndim + 2:
            return None
        if positions is not None and max(positions) < len(value):
            return [(shadow.dims[p], value[p]) for p in positions]
        found = self._spatial.get(node)
        if found is None:  # the sizes are fixed once analysed: looked for once per node
            positions = self.spatial_positions([node])
            found = self._spatial[node] = [(shadow.dims[p], value[p]) for p in positions]
        return list(found)

    def spatial_positions(self, nodes: list) -> tuple:
        """Where the spatial dims of these tensors (of one rank) are: the dims after the
        batch that carry the input's sizes, where there are as many as the convolutions
        have (a channels-last tensor's 1 and 2); else their last ones."""
        ndim, symbols = self.sizes.spatial_ndim, set(self.sizes.symbols)
        shadows = [self.sizes.shadows.get(n) for n in nodes]
        rank = len(shadows[0].dims)
        carrying = {
            p
            for shadow in shadows
            if isinstance(shadow, sizes.SymTensor) and len(shadow.dims) == rank
            for p in range(1, rank)
            if shadow.dims[p] is not None and not symbols.isdisjoint(free(shadow.dims[p]))
        }
        trailing = tuple(range(rank - ndim, rank))
        return tuple(sorted(carrying)) if len(carrying) == ndim and carrying != set(trailing) else trailing

    def merges(self) -> Iterator[tuple]:
        """(merge node, [(operand node, spatial dims)]) for every add/sub/mul/div/cat whose
        operands (two at least) have spatial dims, read at the same dims of each."""
        if self.sizes is None:
            return
        for node in self.sizes.graph_module.graph.nodes:
            if node not in self.sizes.shadows or not sizes.is_merge(node):
                continue
            positions = self._merge_positions(node)
            operands = [(a, self.spatial(a, positions)) for a in sizes.merge_operands(node, node.args, node.kwargs)]
            operands = [(a, dims) for a, dims in operands if dims is not None]
            if len(operands) >= 2:
                yield node, operands

    def _merge_positions(self, node: torch.fx.Node) -> Optional[tuple]:
        """The spatial dims of a merge's operands of its highest rank, found in all of them
        (one operand a learned table of constant sizes, the other the input's)."""
        operands = [a for a in sizes.merge_operands(node, node.args, node.kwargs) if isinstance(a, torch.fx.Node)]
        ranks = {
            a: len(self.sizes.shadows[a].dims)
            for a in operands
            if isinstance(self.sizes.shadows.get(a), sizes.SymTensor)
        }
        if not ranks or max(ranks.values()) < self.sizes.spatial_ndim + 2:
            return None
        rank = max(ranks.values())
        return self.spatial_positions([a for a, r in ranks.items() if r == rank])

    @functools.cached_property
    def guards(self) -> tuple:
        """What the model's own Python decided about its input's sizes at the example (an
        execution capture's ``if``, ``assert``, comparisons), as relations on the input's
        symbols, each with the line that decided it: ``(W % 2 == 0, site)``. The graph
        holds within them from that point on: what ran before a decision does not
        depend on it (see ``allowed``)."""
        return tuple((relation, site) for relation, site, _ in self._guards)

    def branches(self) -> list[str]:
        """The example's decisions on sizes that are branches, as relations (``L == 64``,
        a size Python fixed: ``math.sqrt(n)``); the model's own checks, a raise on the
        other side, are conditions of the domain instead."""
        from convlint import pretty

        return [pretty.show(relation) for relation, site in self.guards if not sites.raises_unless(site)]

    @functools.cached_property
    def _guards(self) -> tuple:
        trace = self.analysis.trace
        if trace is None or self.sizes is None:
            return ()
        order = self._order
        found: dict = {}
        for node, value, site in trace.guards:
            relation = _relation(self.sizes.shadows.get(node), value)
            if relation is not None and free(relation) and relation not in found:
                found[relation] = (site, order.get(node, 0))
        return tuple((relation, site, position) for relation, (site, position) in found.items())

    def guards_before(self, node: torch.fx.Node) -> list:
        """The guards decided before ``node`` ran."""
        at = self._position(node)
        return [relation for relation, _, position in self._guards if position < at]

    def holds_before(self, node: torch.fx.Node) -> list:
        """The relations ``node``'s sizes hold within: the guards decided before it, and
        where a broadcast before it was sized by one operand (its Max too large to write),
        that the others equal it or are 1."""
        # Asked once per candidate size of each merge: worked out once per node.
        found = self._holds_before.get(node)
        if found is None:
            at = self._position(node)
            found = self.guards_before(node) + [r for position, r in self._approximations if position < at]
            # each block of a stage decides the same relation: once is enough
            found = self._holds_before[node] = list(dict.fromkeys(found))
        return found

    @functools.cached_property
    def _holds_before(self) -> dict:
        return {}

    @functools.cached_property
    def _within(self) -> dict:
        return {}  # (symbol, relations) -> n -> allowed

    @functools.cached_property
    def _approximations(self) -> tuple:
        if self.sizes is None:
            return ()
        order = self._order
        return tuple((order.get(n, 0), r) for n, relations in self.sizes.within.items() for r in relations)

    def _position(self, node: torch.fx.Node) -> int:
        at = self._order.get(node)
        return len(self._order) if at is None else at

    @functools.cached_property
    def _order(self) -> dict:
        return {n: i for i, n in enumerate(self.nodes)}

    def allowed(self, env: dict, before: Optional[torch.fx.Node] = None) -> bool:
        """Do the input sizes ``env`` take the example's branches and stay where its sizes
        were followed (before ``before``, or everywhere)?"""
        if before is None:
            relations = [r for r, _ in self.guards] + [r for _, r in self._approximations]
        else:
            relations = self.holds_before(before)
        return all(sizes.holds(relation, env) is not False for relation in relations)

    @functools.cached_property
    def coverage(self) -> "Coverage":
        """How each convolution of the model was checked: for every input size (its input's
        sizes are expressions), at the example size only (a leaf before it, or around
        it, could not be followed), or not at all (the model was not analysed)."""
        convs = [m for m in self.model.modules() if layers.is_convolution(m)]
        if self.sizes is None:
            return Coverage(0, 0, len(convs))
        # Where the example raised, the convolutions up to the one that raised were sized
        # (its limit is what CVL401 states); those after it were not run at all.
        ran = set(self.sizes.shadows) | ({self.sizes.error[0]} if self.sizes.error is not None else set())
        every = example = 0
        for node in self.nodes:
            if self.is_convolution(node) and node in ran:
                if self.checked_for_every_size(node):
                    every += 1
                else:
                    example += 1
        leaves = [n.target for n in self.nodes if n.op == "call_module" and self.is_leaf(n)]
        inside = sum(1 for name, m in self.model.named_modules() if layers.is_convolution(m)
                     and any(name.startswith(f"{leaf}.") for leaf in leaves))  # fmt: skip
        stopped = self.analysis.trace is not None and self.analysis.trace.stopped is not None
        if self.sizes.error is not None or stopped:
            # the convolution layers never run (a layer called at every level of a pyramid
            # counts once per call above, and once here if it never ran)
            called = {n.target for n in ran if n.op == "call_module"}
            never = sum(1 for name, m in self.model.named_modules() if layers.is_convolution(m) and name not in called)
            return Coverage(every, example, never)
        return Coverage(every, example + inside, 0)

    def checked_for_every_size(self, node: torch.fx.Node) -> bool:
        """Are the spatial sizes of a node's input expressions of the model's input (or
        constants)? A convolution's are the last dims of its input, as many as its kernel
        has, whatever the model's rank: a Conv1d over a 2-D model's pooled channels
        (efficient channel attention) reads a vector whose size no input size changes."""
        inputs = [a for a in node.all_input_nodes if isinstance(self.sizes.shadows.get(a), sizes.SymTensor)]
        geometry = self.sizes.geometries.get(node)
        if inputs and geometry is not None:
            # Channels that depend on the input's sizes (bands reshaped into channels) are
            # the domain's condition (``input_domain``: the layer runs only where they are
            # its own), so the sizes are what is checked here.
            dims = _trailing(self, inputs[0], geometry.ndim)
            return dims is not None and all(d is not None for d, _ in dims)
        dims = self.spatial(inputs[0]) if inputs else None
        return dims is not None and all(expr is not None for expr, _ in dims)

    def is_convolution(self, node: torch.fx.Node) -> bool:
        geometry = self.sizes.geometries.get(node) if self.sizes is not None else None
        if geometry is not None:
            return geometry.kind in (layers.CONV, layers.TRANSPOSED)
        return node.op == "call_module" and layers.is_convolution(self.sizes.graph_module.get_submodule(node.target))

    def is_leaf(self, node: torch.fx.Node) -> bool:
        """A submodule the capture did not follow inside."""
        trace = self.analysis.trace
        return trace is not None and node.op == "call_module" and node.target in trace.leaves

    def unfollowed(self) -> Iterator[tuple]:
        """(node, why) for each op whose output sizes could not be followed for every size."""
        if self.sizes is not None:
            yield from self.sizes.unknown_ops.items()

    def within(self, symbol, node: torch.fx.Node):
        """``n -> does size n of ``symbol`` take the branches decided before ``node``?``,
        or None when there are none."""
        relations = self.holds_before(node)
        if not relations:
            return None
        example = self.example
        # Merges after the same guards (every block of a windowed ViT) ask the same sizes:
        # one function per set of relations (the same object: callers may key on it), each
        # size decided once.
        key = (symbol, tuple(relations))
        found = self._within.get(key)
        if found is None:
            decided: dict = {}

            def found(n: int) -> bool:
                if n not in decided:
                    decided[n] = self.allowed({**example, symbol: n}, before=node)
                return decided[n]

            self._within[key] = found
        return found

    def cat_axis(self, node: torch.fx.Node) -> Optional[int]:
        """Index among the spatial dims of the dimension a cat joins along, if it is one."""
        shape = self.sizes.values.get(node)
        if not sizes.is_cat(node) or node.target is torch.stack or not isinstance(shape, tuple) or not shape:
            return None
        dim = sizes.cat_dim(node)
        positions = self._merge_positions(node)
        if not isinstance(dim, int) or positions is None:
            return None
        return positions.index(dim % len(shape)) if dim % len(shape) in positions else None

    def merge_pairs(
        self, node: torch.fx.Node, operands: list
    ) -> Iterator[tuple[int, Optional[sympy.Expr], Optional[sympy.Expr]]]:
        """(spatial dim, first operand's size, other operand's size) for each dim where a
        merge needs its operands to agree: each operand against the first, in the dims
        where neither is 1 (broadcasting is CVL303's business), but for a cat's own
        dimension, where sizes add up instead."""
        first, skip = operands[0][1], self.cat_axis(node)
        for _operand, dims in operands[1:]:
            for i, ((a, av), (b, bv)) in enumerate(zip(first, dims)):
                if av != 1 and bv != 1 and i != skip:
                    yield i, a, b

    def geometry(self, node: torch.fx.Node) -> Optional[layers.Geometry]:
        """Kernel, stride, padding, dilation of a conv or pooling node (module or functional),
        also for a layer that raised before its sizes were worked out."""
        geometry = self.sizes.geometries.get(node)
        if geometry is None and node.op == "call_module":
            geometry = layers.geometry_of(self.sizes.graph_module.get_submodule(node.target))
        return geometry

    @staticmethod
    def owner(node: torch.fx.Node) -> Optional[str]:
        """The qualified name of the module whose ``forward`` made the node ("" for the
        model's own), from the module stack the capture recorded."""
        stack = node.meta.get("nn_module_stack")
        if not stack:
            return "" if stack is not None else None
        last = list(stack.values())[-1]
        return last[0] if isinstance(last, tuple) else str(last)

    def describe(self, node: torch.fx.Node, line: bool = True, kind: bool = True) -> str:
        """`layer1.0.conv1` (Conv2d) (without its type unless ``kind``), or an op by its
        source text and module: `out + residual` in `layer2.0` (line 42). Never an fx node
        name, which appears nowhere in the user's code."""
        if node.op == "call_module":
            if not kind:
                return f"`{node.target}`"
            return f"`{node.target}` ({type(self.sizes.graph_module.get_submodule(node.target)).__name__})"
        if node.op == "placeholder":
            return f"the input `{node.name}`"
        site = self.site_of(node)
        text = sites.source_text(site, limit=40) if site is not None else None
        if text is None:
            target = node.target
            text = target if isinstance(target, str) else getattr(target, "__name__", str(target))
        owner = self.owner(node)
        within = f" in `{owner}`" if owner else ""
        at = f" (line {site.line})" if line and site is not None else ""
        return f"`{text}`{within}{at}"

    def constraints(self) -> list["Constraint"]:
        """What every layer needs of its input, as expressions in the model's input symbols:
        a kernel no larger than the padded input, reflect padding below the size,
        circular padding at most the size."""
        return self._constraint_list

    @functools.cached_property
    def domain(self) -> input_domain.Domain:
        """The input sizes at which the model runs (``convlint.input_domain``), computed once.
        Where the example is too small for a layer, what comes after it was never sized:
        the model is analysed again at an input that meets every limit known so far (a few
        times at most), and that domain, which says what the whole model needs, is taken."""
        domain = input_domain.of(self)
        view = self
        for _ in range(3):
            larger = input_domain.past_the_limits(view, domain)
            if larger is None:
                break
            view = dataclasses.replace(
                self, input_shapes=(larger,), analysis=analysis_mod.analyse(self.model, [larger], self.run_every_op),
                inputs=None, blocks={}, _smallest={},
            )  # fmt: skip
            if view.analysis.error or view.sizes is None:
                break
            domain = input_domain.of(view)
        return domain

    @functools.cached_property
    def _constraint_list(self) -> list["Constraint"]:
        return list(_constraints(self)) if self.sizes is not None else []

    def smallest_input(self, symbol, upto: Optional[torch.fx.Node] = None) -> Optional[int]:
        """Smallest size of input dim ``symbol`` for which every layer (up to ``upto``) runs,
        the other dims at their example sizes. None: not within 2**20."""
        key = (symbol, upto)
        if key not in self._smallest:
            self._smallest[key] = self._smallest_input(symbol, upto)
        return self._smallest[key]

    def _smallest_input(self, symbol, upto: Optional[torch.fx.Node]) -> Optional[int]:
        order = {n: i for i, n in enumerate(self.sizes.graph_module.graph.nodes)}
        limit = order[upto] if upto is not None else len(order)
        relevant = [c for c in self.constraints() if order[c.node] <= limit and symbol in free(c.expression)]
        example = dict(self.sizes.symbols)

        def runs(n: int) -> bool:
            env = {**example, symbol: n}
            return all((sizes.evaluate_int(c.expression, env) or 0) >= c.minimum for c in relevant)

        return samesize.smallest_defined(runs, 1 << 20)


class Coverage(NamedTuple):
    """Convolutions checked for every input size, at the example size only, not at all."""

    every_size: int
    example_only: int
    unchecked: int


def _relation(shadow, value: bool):
    """The relation a guard states: the node's expression, true or false as at the example."""
    if isinstance(shadow, sympy.logic.boolalg.Boolean):
        return shadow if value else sympy.Not(shadow)
    if isinstance(shadow, EXPR):
        return sympy.Ne(shadow, 0) if value else sympy.Eq(shadow, 0)
    return None  # unknown: nothing to state


@dataclass(frozen=True)
class Constraint:
    """``expression`` (a layer's input size along one dim) must be at least ``minimum``."""

    node: torch.fx.Node
    axis: int  # the layer's own axis (its geometry's); for a pad, the spatial dim
    expression: sympy.Expr
    minimum: int
    kind: str  # "kernel", "reflect", "circular"; "output" (a kernel computed from sizes: 1 at least);
    # "statistics" (a norm over one value per group: the product of the sizes, 2 at least)
    padding: int = 0
    dim: Optional[int] = None  # the spatial dim of the model's input it is about (None: ``axis``)

    def __post_init__(self) -> None:
        if self.dim is None:
            object.__setattr__(self, "dim", self.axis)


def pad_amounts(result: sizes.SizeResult, node: torch.fx.Node) -> Optional[tuple[str, list]]:
    """(mode, [(left, right) per padded dim, last dim last]) of a pad layer or ``F.pad``
    node whose amounts are integers; None for anything else."""
    module = result.graph_module.get_submodule(node.target) if node.op == "call_module" else None
    if module is not None and layers.torch_family(module) == "padding":
        mode = (
            "reflect"
            if isinstance(module, REFLECTION_PADS)
            else "circular"
            if isinstance(module, CIRCULAR_PADS)
            else ""
        )
        amounts = list(module.padding)
    elif node.op == "call_function" and node.target is torch.nn.functional.pad:
        mode = node.kwargs.get("mode", node.args[2] if len(node.args) > 2 else "constant")
        amounts = [result.values.get(a, a) if isinstance(a, torch.fx.Node) else a for a in node.args[1]]
    else:
        return None
    if not all(isinstance(a, int) for a in amounts):
        return None
    return mode, formulas.pad_pairs(amounts)


def _pad_amounts(view: ModelView, node: torch.fx.Node) -> Optional[tuple[str, list]]:
    """(mode, pairs) of a padding node with a limit: reflect or circular."""
    found = pad_amounts(view.sizes, node)
    return found if found is not None and found[0] in ("reflect", "circular") else None


POOL_FUNCTIONS = tuple(f"{kind}_pool{n}d" for kind in ("max", "avg") for n in (1, 2, 3))


def _computed_kernel(view: ModelView, node: torch.fx.Node) -> Iterator[Constraint]:
    """A pooling kernel computed from sizes (``kernel_size=x.size(3)``): no geometry to
    read a limit from, so its output must be 1 at least."""
    if node.op == "call_function" and getattr(node.target, "__name__", "").endswith(POOL_FUNCTIONS):
        for dim, (expr, _) in enumerate(view.spatial(node) or ()):
            if expr is not None and free(expr):
                yield Constraint(node, dim, expr, 1, "output", dim=dim)


def _unfold_limits(view: ModelView, node: torch.fx.Node, dims: list) -> Iterator[Constraint]:
    """``nn.Unfold``/``F.unfold``: each of its two spatial dims must hold a block (a
    convolution's limit; PyTorch raises where the blocks are 0)."""
    from convlint.sizes.conv import UNFOLD_ARGS, block_call, block_geometry

    module = view.submodule(view.analysis, node) if node.op == "call_module" else None
    found = block_call(node, module)
    if found is None or found[0] != "unfold":
        return
    args = [found[1][n] for n in UNFOLD_ARGS]
    if not all(isinstance(a, (int, tuple, list)) for a in args) or len(dims) < 2:
        return
    geometry = block_geometry(*args)
    for i in range(2):
        expr = dims[len(dims) - 2 + i][0]
        if expr is not None and free(expr):
            yield Constraint(node, i, expr, geometry.min_input(i), "kernel", dim=len(dims) - 2 + i)


def _statistics_of(view: ModelView, node: torch.fx.Node, batch: int, channels: int) -> Optional[int]:
    """How many values a normalisation takes each statistic over, besides the spatial
    sizes (PyTorch raises where the whole count is 1); None for an op that takes none
    from its input. The model is analysed in eval mode: a BatchNorm uses its running
    statistics there, and an InstanceNorm its input's unless it tracks running ones."""
    if node.op == "call_module":
        module = view.submodule(view.analysis, node)
        if isinstance(module, nn.GroupNorm):
            return batch * (channels // module.num_groups)  # F.group_norm's _verify_batch_size
        if isinstance(module, nn.modules.instancenorm._InstanceNorm):
            return 1 if module.training or not module.track_running_stats else None  # _verify_spatial_size
    elif node.op == "call_function" and node.target is nn.functional.group_norm:
        groups = node.args[1] if len(node.args) > 1 else node.kwargs.get("num_groups")
        return batch * (channels // groups) if isinstance(groups, int) and groups > 0 else None
    elif node.op == "call_function" and node.target is nn.functional.instance_norm:
        return 1 if node.kwargs.get("use_input_stats", node.args[5] if len(node.args) > 5 else True) else None
    return None


_STATISTICS_MODULES = (nn.GroupNorm, nn.modules.instancenorm._InstanceNorm)


def _statistics_limits(view: ModelView, node: torch.fx.Node, first: torch.fx.Node) -> Iterator[Constraint]:
    """A normalisation over one value per channel group raises ("Expected more than 1
    value per channel"): the product of the spatial sizes must be 2 at least where the
    batch and the group's channels alone are 1 (GroupNorm with one channel per group at
    batch 1, InstanceNorm)."""
    if node.op == "call_module":
        if not isinstance(view.submodule(view.analysis, node), _STATISTICS_MODULES):
            return
    elif node.target not in (nn.functional.group_norm, nn.functional.instance_norm):
        return
    shadow, value = view.sizes.shadows.get(first), view.sizes.values.get(first)
    if not isinstance(value, tuple) or len(value) < 3 or len(shadow.dims) != len(value):
        return
    spatial = shadow.dims[2:]
    if None in spatial or not any(free(d) for d in spatial):
        return
    if _statistics_of(view, node, value[0], value[1]) == 1:
        yield Constraint(node, 0, sympy.Mul(*spatial), 2, "statistics", dim=0)


def _trailing(view: ModelView, node: torch.fx.Node, ndim: int) -> Optional[list[tuple]]:
    """(expression, concrete size) of a tensor's last ``ndim`` dims; None if it has fewer."""
    shadow, value = view.sizes.shadows.get(node), view.sizes.values.get(node)
    if not isinstance(value, tuple) or len(value) < ndim or len(shadow.dims) != len(value):
        return None
    return [(shadow.dims[p], value[p]) for p in range(len(value) - ndim, len(value))]


def _constraints(view: ModelView) -> Iterator[Constraint]:
    for node in view.sizes.graph_module.graph.nodes:
        inputs = [a for a in node.all_input_nodes if isinstance(view.sizes.shadows.get(a), sizes.SymTensor)]
        if not inputs:
            continue
        yield from _statistics_limits(view, node, inputs[0])
        dims = view.spatial(inputs[0])
        geometry = view.geometry(node)
        if dims is None and geometry is not None:
            # a layer of another rank than the model's (an AvgPool1d over a 2-D model's
            # tokens): its sizes are the last dims of its input, as many as its kernel has
            dims = _trailing(view, inputs[0], geometry.ndim)
        if dims is None:
            continue
        if geometry is not None:
            # Aligned from the last dim: a Conv3d on a map with two spatial symbols (after an
            # unsqueeze) has a first axis of constant size, which ran at the example.
            for i in range(max(0, geometry.ndim - len(dims)), geometry.ndim):
                dim = len(dims) - geometry.ndim + i
                expr = dims[dim][0]
                if expr is None:
                    continue
                yield Constraint(node, i, expr, geometry.min_input(i), "kernel", dim=dim)
                left = geometry.padding[i][0]
                if geometry.padding_mode in ("reflect", "circular") and left:
                    minimum = left + 1 if geometry.padding_mode == "reflect" else left
                    yield Constraint(node, i, expr, minimum, geometry.padding_mode, left, dim=dim)
        else:
            yield from _computed_kernel(view, node)
            yield from _unfold_limits(view, node, dims)
        pads = _pad_amounts(view, node)
        if pads is not None:
            mode, pairs = pads
            for i, (left, right) in enumerate(pairs):
                axis = len(dims) - len(pairs) + i
                expr, biggest = dims[axis][0], max(left, right)
                if expr is None or axis < 0 or not biggest:
                    continue
                yield Constraint(node, axis, expr, biggest + 1 if mode == "reflect" else biggest, mode, biggest)
