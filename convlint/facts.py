"""Facts: what the analysis found about one model, computed before any rule runs.

A rule reads these and nothing else: the modules with their construction sites and
declared intent, the conv and pooling layers with their geometry and "same" verdicts, the
blocks declared "same", the merges with the dimensions they compare, the input limits of
every layer, the guards the example took, and the ops of ``forward`` as ``Op`` handles
(an op's text, site, sizes; never an fx node). A few named helpers answer what needs a
walk of the graph: an op's ancestors, the layer where two branches part, the smallest
input a layer runs on.

``build(view)`` is the one place facts are born; ``convlint.view.ModelView`` is the
index it reads (the sizes stage's results and the graph).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Callable, Iterator, Optional

from convlint import domain_statement, formulas, graph, input_domain, layers, samesize, sites
from convlint.dims import free
from convlint.intent import Intent
from convlint.layers import Geometry
from convlint.samesize import AxisVerdict

__all__ = ["BlockFact", "Facts", "LayerFact", "Limit", "MergeFact", "ModuleFact", "Op", "Unit", "build"]


class Op:
    """One op of the model's ``forward``: a layer call, a function, a method, an input.

    A handle: equal to itself only, hashable, and every answer read from the analysis.
    """

    __slots__ = ("_node", "_view", "index")

    def __init__(self, node: Any, view: Any, index: int) -> None:
        self._node, self._view, self.index = node, view, index

    def __repr__(self) -> str:
        return f"Op({self.brief})"

    @property
    def text(self) -> str:
        """`conv2` (Conv2d), or `y + x` in `block` (line 14): never an fx node name."""
        return self._view.describe(self._node)

    @property
    def brief(self) -> str:
        """As ``text``, without the line."""
        return self._view.describe(self._node, line=False)

    @property
    def name(self) -> str:
        """As ``text``, without the layer's type: `conv2`."""
        return self._view.describe(self._node, kind=False)

    @property
    def site(self) -> Optional[sites.Site]:
        """The ``forward`` line that made it."""
        return self._view.site_of(self._node)

    @property
    def owner(self) -> Optional[str]:
        """The module whose ``forward`` holds it ("" for the model's own)."""
        return self._view.owner(self._node)

    @property
    def module(self) -> Optional[str]:
        """The qualified name of the module it calls, if it is a module call."""
        return self._node.target if self._node.op == "call_module" else None

    @property
    def spatial(self) -> Optional[list[tuple]]:
        """(expression or None, size at the example) per spatial dim of its output; None
        when it has no spatial layout."""
        return self._view.spatial(self._node)

    @property
    def geometry(self) -> Optional[Geometry]:
        """Kernel, stride, padding, dilation of a conv or pooling op (module or function)."""
        return self._view.geometry(self._node)

    @property
    def sized(self) -> bool:
        """Did the analysis reach it (execution stops at an error)?"""
        return self._view.sized(self._node)

    @property
    def elementwise_merge(self) -> bool:
        """add, sub, mul, div in any spelling: operands that broadcast."""
        return self._view.is_elementwise_merge(self._node)

    @property
    def expands(self) -> bool:
        """``x.expand(...)`` or ``x.expand_as(y)``: broadcasts its first operand."""
        return self._node.op == "call_method" and self._node.target in ("expand", "expand_as")


@dataclass(frozen=True)
class ModuleFact:
    """A module of the model, as built."""

    qualname: str  # "" for the model itself
    type_name: str
    site: Optional[sites.Site]  # the constructor call that built it
    intent: Optional[Intent]  # how "same" was declared, or None
    display: str  # its name in a message: the qualified name, or the model's class
    uncalled_container: bool  # a ModuleList/ModuleDict: its members carry its intent


@dataclass(frozen=True)
class LayerFact(ModuleFact):
    """A conv, transposed conv or pooling module, with its "same" verdict per dim."""

    geometry: Optional[Geometry] = None
    axes: tuple[AxisVerdict, ...] = ()  # does each dim keep ceil(n / stride), for every n?
    input_shapes: Optional[tuple] = None  # what it was first called with at the example, if recorded

    @property
    def keeps(self) -> bool:
        return all(a.verdict.keeps for a in self.axes)


@dataclass(frozen=True)
class Unit:
    """A conv or pooling layer inside a block, with the pad layer in front of it folded into
    its padding (the pad supplies the padding: they are judged as one)."""

    text: str  # `block.1`, or `block.0` and `block.1`
    geometry: Geometry


@dataclass(frozen=True)
class BlockFact(ModuleFact):
    """A module declared "same" that is not a layer, traced on its own at its input."""

    axes: tuple[AxisVerdict, ...] = ()
    reason: str = ""  # why there is no verdict, if there is none
    units: tuple[Unit, ...] = ()  # its conv and pooling layers, in execution order


@dataclass(frozen=True)
class MergeFact:
    """An add, sub, mul, div or cat of two or more tensors with spatial dims."""

    op: Op
    operands: tuple[Op, ...]
    dims: tuple[tuple, ...]  # per operand: (expression or None, example size) per spatial dim
    pairs: tuple[tuple, ...]  # (spatial dim, first operand's size, another's): where they must agree
    broken: bool  # PyTorch raised here at the example input
    elementwise: bool  # operands broadcast (not a cat)


@dataclass(frozen=True)
class Limit:
    """A layer's input size along one spatial dim (an expression of the model's input)
    must be at least ``minimum``: a kernel within its padded input, reflect padding below
    the size, circular padding at most the size."""

    op: Op
    axis: int  # the layer's own axis (its geometry's); for a pad, the spatial dim
    expression: Any
    minimum: int
    kind: str  # "kernel", "reflect", "circular"; "output" (a kernel computed from sizes: 1 at least);
    # "statistics" (a norm over one value per group: the product of the sizes, 2 at least)
    padding: int = 0
    dim: int = 0  # the spatial dim of the model's input it is about


class Facts:
    """Everything the rules may read about one analysed model (see the module's doc)."""

    def __init__(self, view: Any) -> None:
        self._view = view
        self.name: str = view.name
        nodes = view.nodes
        self._ops = {node: Op(node, view, i) for i, node in enumerate(nodes)}
        self.ops: tuple[Op, ...] = tuple(self._ops.values())
        self.symbols: tuple = tuple(view.symbols)
        self.example: dict = view.example
        self.guards: tuple = view.guards
        self.modules: tuple[ModuleFact, ...] = tuple(_module_facts(view))
        self.layers: tuple[LayerFact, ...] = tuple(m for m in self.modules if isinstance(m, LayerFact))
        self.blocks: tuple[BlockFact, ...] = tuple(m for m in self.modules if isinstance(m, BlockFact))
        self.merges: tuple[MergeFact, ...] = tuple(
            MergeFact(
                self._ops[node],
                tuple(self._ops[a] for a, _ in operands),
                tuple(tuple(dims) for _, dims in operands),
                tuple(view.merge_pairs(node, operands)),
                view.broken_merge(node) is not None,
                view.is_elementwise_merge(node),
            )
            for node, operands in view.merges()
        )
        self.limits: tuple[Limit, ...] = tuple(
            Limit(self._ops[c.node], c.axis, c.expression, c.minimum, c.kind, c.padding, c.dim)
            for c in view.constraints()
        )

    def symbol_of(self, dim: int, *sizes: Any) -> Optional[Any]:
        """The input symbol a spatial dim's sizes are about: the one they carry (a
        channels-last tensor's first spatial dim carries ``H``), else the ``dim``-th."""
        carried = {s for size in sizes if size is not None for s in free(size)}
        carried &= set(self.symbols)
        if len(carried) == 1:
            return carried.pop()
        return self.symbols[dim] if dim < len(self.symbols) else None

    # ------------------------------------------------------------ the graph, walked for the rules

    def inputs(self, op: Op) -> tuple[Op, ...]:
        """The ops whose outputs ``op`` takes."""
        return tuple(self._ops[a] for a in op._node.all_input_nodes if a in self._ops)

    def ancestors(self, op: Op) -> frozenset:
        """``op`` and every op it depends on."""
        return frozenset(self._ops[n] for n in graph.ancestors(op._node) if n in self._ops)

    def parting(self, operand: Op, other: Op) -> tuple[Optional[Op], Optional[str]]:
        """The first layer on ``operand``'s branch, after the last op it shares with
        ``other``'s, that changes the size other than by a clean stride or scale, and
        the change at the example (``224x224 -> 222x222``); (None, None) if there is none."""
        a, b = operand._node, other._node
        common = graph.ancestors(a) & graph.ancestors(b)
        if not common:
            return None, None
        fork = max(common, key=lambda n: self._ops[n].index)
        path = graph.branch(a, fork)
        lasting = self._lasting_change(path, fork)
        if lasting is not False:  # sizes followed as functions of the input: they decide
            return (self._ops[lasting], self._change(lasting)) if lasting is not None else (None, None)
        for node in path:
            if self._view.broken_merge(node) is not None:
                return None, None  # past a broken merge, sizes are a stand-in's: they say nothing
            change = self._unclean(node)
            if change:
                return self._ops[node], change
        return None, None

    def _lasting_change(self, path: list, fork) -> Any:
        """The first node on ``path`` after which its sizes are never again an exact
        scaling of the fork's, as functions of the input (a pad and the convolution that
        undoes it are one unit; a stride-2 layer that rounds is where odd sizes part);
        None when the branch ends an exact scaling; False when sizes were not followed."""
        base = self._view.spatial(fork)
        if not base or any(e is None for e, _ in base):
            return False
        scaled = []
        for node in path:
            if self._view.broken_merge(node) is not None:
                return False  # past a broken merge, sizes are a stand-in's
            dims = self._view.spatial(node)
            if dims is None or len(dims) != len(base):
                scaled.append(None)  # no spatial layout here (a size read, a flatten): no say
            elif any(e is None for e, _ in dims):
                return False
            else:
                scaled.append(all(self._scales(e, b) for (e, _), (b, _) in zip(dims, base)))
        for i, node in enumerate(path):
            if scaled[i] is False and not any(later for later in scaled[i + 1 :]):
                return node
        return None

    def _scales(self, e, base) -> bool:
        """Is ``e`` a constant multiple of ``base`` at every input size (checked where the
        sizes' periods show: the example and the next sizes, and two far ones)?"""
        from convlint.sizes.symbolic import evaluate_int

        example = self.example
        at = evaluate_int(base, example)
        if not at:
            return False
        ratio = Fraction(evaluate_int(e, example) or 0, at)
        for symbol in self.symbols:
            n0 = example.get(symbol, 16)
            for n in [*range(n0 + 1, n0 + 17), 2 * n0 + 5, 3 * n0 + 7]:
                env = {**example, symbol: n}
                got, want = evaluate_int(e, env), evaluate_int(base, env)
                if got is None or want is None or Fraction(got) != ratio * want:
                    return False
        return True

    def _change(self, node) -> str:
        """``37x41 -> 35x39``: a node's sizes at the example, in and out."""
        view = self._view
        inputs = [a for a in node.all_input_nodes if view.spatial(a) is not None]
        after = "x".join(str(v) for _, v in view.spatial(node))
        before = "x".join(str(v) for _, v in view.spatial(inputs[0])) if inputs else "?"
        return f"{before} -> {after}"

    def _unclean(self, node) -> Optional[str]:
        """``224 -> 222`` if the node changes the size other than by a clean stride or scale."""
        view = self._view
        inputs = [a for a in node.all_input_nodes if view.spatial(a) is not None]
        out = view.spatial(node)
        if not inputs or out is None:
            return None
        before = [v for _, v in view.spatial(inputs[0])]
        after = [v for _, v in out]
        if len(before) != len(after) or before == after:
            return None
        geometry = view.geometry(node)
        if geometry is not None:
            want = [formulas.same_target(n, geometry.scale_stride(i)) for i, n in enumerate(before[-geometry.ndim :])]
            if after[-geometry.ndim :] == want:
                return None
        else:
            ratios = {Fraction(x, y) for x, y in zip(after, before) if y}
            if len(ratios) == 1 and 1 in (next(iter(ratios)).numerator, next(iter(ratios)).denominator):
                return None  # an exact resampling by one factor
        return f"{'x'.join(map(str, before))} -> {'x'.join(map(str, after))}"

    def construction(self, op: Op) -> Any:
        """What one fix changes for an op: the constructor call that built its module (a
        block used many times repeats its layer's mistake), else the op itself."""
        if op.module is not None:
            site = self._view.module(op.module).site
            if site is not None:
                return site
        return op

    # ------------------------------------------------------------ sizes the input may take

    def guards_before(self, op: Op) -> list:
        """The guards decided before ``op`` ran: the ones its sizes hold within."""
        return self._view.guards_before(op._node)

    def within(self, symbol, op: Op) -> Optional[Callable[[int], bool]]:
        """``n -> does size n of ``symbol`` take the branches decided before ``op``?``, or
        None when there are none."""
        return self._view.within(symbol, op._node)

    @property
    def domain(self) -> input_domain.Domain:
        """The input sizes at which the model runs (``convlint.input_domain``)."""
        return self._view.domain

    def sizes_that_run(self, ops: Optional[Iterator[Op]] = None) -> domain_statement.Statement:
        """Where the model runs, stated (``convlint.domain_statement``): by every condition,
        or, given ``ops``, by theirs (the merges one finding groups) with the layers' lower
        bound; its ``needs``, ``bounds``, ``first`` failure and ``str()`` are what a message
        says, the same as ``convlint shapes`` and the summary."""
        if ops is None:
            return self.domain.stated
        nodes = {op._node for op in ops}
        return domain_statement.state(self.domain, lambda c: c.origin in nodes)

    def smallest_input(self, symbol, upto: Optional[Op] = None) -> Optional[int]:
        """Smallest size of input dim ``symbol`` for which every layer (up to ``upto``) runs,
        the other dims at their example sizes; None: not within 2**20."""
        return self._view.smallest_input(symbol, upto=upto._node if upto is not None else None)


def _module_facts(view) -> Iterator[ModuleFact]:
    for info in view.modules:
        base = dict(
            qualname=info.qualname,
            type_name=info.type_name,
            site=info.site,
            intent=info.intent,
            display=view.display(info.qualname),
            uncalled_container=info.uncalled_container,
        )
        geometry = layers.geometry_of(info.module)
        if geometry is not None:
            yield LayerFact(
                **base,
                geometry=geometry,
                axes=samesize.layer_verdicts(geometry),
                input_shapes=view.module_inputs(info.qualname) if info.intent else None,
            )
        elif info.intent and not info.uncalled_container:
            analysis, axes, reason = view.block(info.qualname)
            units = tuple(_units(view, info.qualname, analysis)) if analysis is not None else ()
            yield BlockFact(**base, axes=tuple(axes), reason=reason, units=units)
        else:
            yield ModuleFact(**base)


def _units(view, qualname: str, analysis) -> Iterator[Unit]:
    """The conv and pooling layers of a block's own analysis, a pad in front folded in."""
    prefix = f"{qualname}." if qualname else ""
    for node in view.nodes_in(analysis):
        if node.op != "call_module":
            continue
        geometry = layers.geometry_of(view.submodule(analysis, node))
        if geometry is None:
            continue
        text = f"`{prefix}{node.target}`"
        pad = view.pad_in_front(analysis, node)
        unit = view.with_pad_in_front(analysis, pad, geometry) if pad is not None else None
        if unit is not None:
            geometry = unit
            text = f"{view.describe(pad) if pad.op != 'call_module' else f'`{prefix}{pad.target}`'} and {text}"
        yield Unit(text, geometry)


def build(view) -> Facts:
    """The facts of one analysed model (``view``: the engine's ``ModelView``)."""
    return Facts(view)
