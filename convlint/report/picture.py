"""A picture of one analysed model (``convlint graph``): one node per op that changes or
joins sizes (convolutions, pooling, padding, resampling, merges, views and slices that
change the spatial size), the ops between them folded into the edges, each edge labelled
with its symbolic size and its size at the example (``floor((H - 1)/2) + 1 · 112x112``).

A finding is drawn where it is: its merge marked, the two operands' paths coloured back to
the op where they fork, the layer where their sizes part (``facts.parting``, the rule's own
answer) and the finding's message shown. ``focus`` keeps only that part, long paths elided,
so that the picture of a 300-layer model stays readable. Blocks deeper than ``depth`` are
one node each, and a chain of blocks of one type is one node ("x 23").

Format-free: ``convlint.report.draw`` renders a ``Picture`` as Mermaid, DOT, SVG or HTML.
"""

from __future__ import annotations

import functools
import re
import weakref
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Optional, Sequence

from convlint import common, graph, layers
from convlint import facts as facts_mod
from convlint import pretty as text
from convlint.finding import Finding
from convlint.report.receptive import UNKNOWN, receptive_fields
from convlint.sizes import SymTensor

# marks: what a node or edge is in a finding's picture
MERGE, PATH_A, PATH_B, PARTING, FLAGGED = "merge", "a", "b", "parting", "flagged"
MAX_NODES = 60  # the automatic depth collapses blocks until the picture has at most this many
FOCUS_KEEP = 4  # a focused path longer than 3 * FOCUS_KEEP is elided between its ends and its parting


@dataclass
class Node:
    id: str
    label: str  # `branch2` Conv2d(kernel 3, dilation 6, padding 1)
    kind: str  # input, output, layer, op, merge, block, repeat, elided
    line: Optional[int] = None  # the source line (forward, or the layer's constructor)
    tooltip: str = ""  # receptive field and jump, where known
    marks: frozenset = frozenset()


@dataclass
class Edge:
    source: str
    target: str
    label: str  # H/2 x W/2 · 112x112
    marks: frozenset = frozenset()


@dataclass
class Picture:
    title: str
    nodes: list[Node]
    edges: list[Edge]
    notes: list[tuple[str, Optional[str]]] = field(default_factory=list)  # (finding as `check` prints it, node id)
    depth: Optional[int] = None  # blocks below this depth are one node (None: none collapsed)

    def node(self, node_id: str) -> Node:
        return next(n for n in self.nodes if n.id == node_id)

    def marked(self, mark: str) -> list[Node]:
        return [n for n in self.nodes if mark in n.marks]


# ---------------------------------------------------------------- what a finding marks


@dataclass
class _Marked:
    marks: dict  # fx node -> set of marks
    focus: set  # fx nodes a focused picture keeps
    paths: list  # [(path a, path b, merge)]: fx nodes from the fork to each operand, and their merge
    notes: list  # [(finding's text, the fx node it is drawn at)]


def _finding_marks(view, model_facts, findings: Sequence[Finding]) -> _Marked:
    marked = _Marked({}, set(), [], [])
    ops = {op._node: op for op in model_facts.ops}
    merges = {m.op._node: m for m in model_facts.merges}
    for finding in findings:
        hit = [n for n in ops if _at(view, n, finding)]
        if not hit:
            continue
        said = f"{finding.path}:{finding.line}:{finding.column}: {finding.code} {finding.message}"
        merge = next((n for n in hit if n in merges and _differ(merges[n])), None)
        marked.notes.append((said, merge or hit[0]))
        if merge is None:
            for n in hit:
                marked.marks.setdefault(n, set()).add(FLAGGED)
                marked.focus |= {n, *n.all_input_nodes}
            continue
        _mark_merge(marked, model_facts, ops, merges[merge])
    return marked


def _at(view, node, finding: Finding) -> bool:
    """Is ``node`` where ``finding`` points: its forward line, or its layer's constructor?"""
    site = view.site_of(node)
    if site is not None and site.line == finding.line and common.relpath(site.path) == finding.path:
        return True
    if node.op == "call_module" and finding.module is not None and node.target == finding.module:
        return True
    return False


def _differ(merge) -> bool:
    """Do some of a merge's operands differ in size (at the example or as expressions)?"""
    return merge.broken or len({tuple(e for e, _ in dims) for dims in merge.dims}) > 1


def _mark_merge(marked: _Marked, model_facts, ops: dict, merge) -> None:
    operands = list(merge.operands)
    first = operands[0]
    keyed = [tuple((str(e), v) for e, v in dims) for dims in merge.dims]
    other = next((o for o, k in zip(operands, keyed) if k != keyed[0]), operands[-1])
    a, b = first._node, other._node
    common = graph.ancestors(a) & graph.ancestors(b)
    fork = max(common, key=lambda n: ops[n].index) if common else None
    paths = []
    for operand in (a, b):
        path = graph.branch(operand, fork) if fork is not None else [operand]
        paths.append([*([fork] if fork is not None else []), *path])
    marked.paths.append((paths[0], paths[1], merge.op._node))
    for mark, path in zip((PATH_A, PATH_B), paths):
        for n in path[1:] if fork is not None else path:
            marked.marks.setdefault(n, set()).add(mark)
    marked.marks.setdefault(merge.op._node, set()).add(MERGE)
    for operand, another in ((other, first), (first, other)):
        layer, _change = model_facts.parting(operand, another)
        if layer is not None:
            marked.marks.setdefault(layer._node, set()).add(PARTING)
    marked.focus |= {merge.op._node, *paths[0], *paths[1]}


# ---------------------------------------------------------------- the picture


def picture(view, findings: Sequence[Finding] = (), depth: Optional[int] = -1, focus: Optional[str] = None) -> Picture:
    """The picture of an analysed model (``view``: the engine's ``ModelView``) with
    ``findings`` marked on it. ``depth``: blocks below it are one node each (None: every
    op; -1: the deepest level at which the picture has at most ``MAX_NODES`` nodes).
    ``focus``: a code prefix (``CVL302``) or a line (``42``, ``net.py:42``): only the
    first matching finding's part of the graph."""
    model_facts = facts_mod.build(view)
    chosen = list(findings)
    if focus is not None:
        chosen = [f for f in findings if matches(f, focus)][:1]
    marked = _finding_marks(view, model_facts, chosen)
    title = view.name
    if focus is not None:
        return _focused(view, marked, title)
    if depth == -1:
        deepest = max((len(q.split(".")) for q in _owners(view)), default=0)
        for level in [None, *range(deepest - 1, 0, -1)]:
            drawn = _whole(view, marked, title, level)
            if len(drawn.nodes) <= MAX_NODES:
                return drawn
        return drawn
    return _whole(view, marked, title, depth)


def matches(finding: Finding, focus: str) -> bool:
    """Does ``focus`` (a code prefix, a line, `file.py:line`) name this finding?"""
    if focus.upper().startswith("CVL"):
        return finding.code.startswith(focus.upper())
    where, _, line = focus.rpartition(":")
    if not line.isdigit():
        return False
    return int(line) == finding.line and (not where or finding.path.endswith(where))


def _owners(view) -> set:
    return {_owner(view, n) for n in view.nodes} - {None, ""}


def _owner(view, node) -> Optional[str]:
    """The module a node belongs to: the one it calls, else the one whose forward holds it."""
    return node.target if node.op == "call_module" else view.owner(node)


def _tensors(view) -> list:
    shadows = view.sizes.shadows if view.sizes is not None else {}
    return [n for n in view.nodes if isinstance(shadows.get(n), SymTensor) or n.op == "output" and n in shadows]


def _tensor_inputs(view, node) -> list:
    shadows = view.sizes.shadows
    return [a for a in node.all_input_nodes if isinstance(shadows.get(a), SymTensor)]


def _matters(view, node) -> bool:
    """Shown by default: an input, the output, a layer with a geometry, a merge, or an op
    whose spatial sizes are not its first input's (a pad, a resample, a crop, a view)."""
    if node.op in ("placeholder", "output"):
        return True
    if view.geometry(node) is not None or view.is_convolution(node):
        return True
    if node in _merge_nodes(view):
        return True
    out = view.spatial(node)
    inputs = _tensor_inputs(view, node)
    if out is None or not inputs:
        return False
    before = view.spatial(inputs[0])
    return before is None or before != out  # sympy's == is structural: no printing needed


_MERGES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # view -> its merge nodes
_FIELDS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # view -> its receptive fields


def _receptive_fields(view) -> dict:
    """Once per view: a picture is drawn at several depths to find one that fits."""
    found = _FIELDS.get(view)
    if found is None:
        found = _FIELDS[view] = receptive_fields(view)
    return found


def _merge_nodes(view) -> set:
    found = _MERGES.get(view)
    if found is None:
        found = _MERGES[view] = {n for n, _ in view.merges()}
    return found


@functools.lru_cache(maxsize=4096)
def _shown(expr) -> str:
    """An edge's size as the findings print it; a deep model's edges repeat a few sizes."""
    return text.show(expr)


def _size_label(view, node) -> str:
    dims = view.spatial(node)
    if dims is None:
        return ""
    symbolic = ", ".join(_shown(e) for e, _ in dims)
    return f"{symbolic} · {'x'.join(str(v) for _, v in dims)}"


def _node_label(view, node) -> tuple[str, str]:
    """(label, kind) of one fx node."""
    if node.op == "placeholder":
        return f"input `{node.target}`", "input"
    if node.op == "output":
        return "output", "output"
    if node.op == "call_module":
        module = view.sizes.graph_module.get_submodule(node.target)
        geometry = layers.geometry_of(module)
        kind = "merge" if node in _merge_nodes(view) else "layer"
        described = text.layer_settings(type(module).__name__, geometry) if geometry else type(module).__name__
        return f"`{node.target}` {described}", kind
    kind = "merge" if node in _merge_nodes(view) else "op"
    return view.describe(node, line=False), kind


def _line(view, node) -> Optional[int]:
    if node.op in ("placeholder", "output"):
        return None
    site = view.site_of(node)
    if site is None and node.op == "call_module":
        site = view.module(node.target).site
    return site.line if site is not None else None


def _tooltip(field_of: dict, node) -> str:
    found = field_of.get(node, UNKNOWN)
    if found == UNKNOWN:
        return ""
    if found is None:
        return "receptive field: the whole input"
    return (
        "receptive field " + " x ".join(str(rf) for rf, _ in found) + ", jump " + " x ".join(str(j) for _, j in found)
    )


class _Drawing:
    """Nodes and edges being put together: fx nodes contracted to the shown ones."""

    def __init__(self, view, marked: _Marked) -> None:
        self.view, self.marked = view, marked
        self.fields = _receptive_fields(view) if view.sizes is not None else {}
        self.nodes: dict = {}  # id -> Node
        self.edges: dict = {}  # (source, target) -> Edge

    def add_fx(self, node, node_id: str) -> None:
        if node_id in self.nodes:
            return
        label, kind = _node_label(self.view, node)
        marks = frozenset(self.marked.marks.get(node, ()))
        self.nodes[node_id] = Node(node_id, label, kind, _line(self.view, node), _tooltip(self.fields, node), marks)

    def connect(self, source: str, target: str, label: str, marks: Iterable = ()) -> None:
        if source == target:
            return
        found = self.edges.get((source, target))
        marks = frozenset(marks)
        if found is None:
            self.edges[(source, target)] = Edge(source, target, label, marks)
        else:
            self.edges[(source, target)] = replace(found, marks=found.marks | marks)

    def picture(self, title: str, notes: list, depth: Optional[int], ids: Optional[dict] = None) -> Picture:
        """``notes``: [(text, fx node)], drawn at the node's id in ``ids`` (its block's)."""
        order = {node_id: i for i, node_id in enumerate(self.nodes)}
        edges = sorted(self.edges.values(), key=lambda e: (order[e.source], order[e.target]))
        ids = ids or {}
        placed = [(said, ids.get(node, _fx_id(node)) if node is not None else None) for said, node in notes]
        placed = [(said, node_id if node_id in self.nodes else None) for said, node_id in placed]
        return Picture(title, list(self.nodes.values()), edges, placed, depth)


def _contract(view, shown) -> tuple[dict, dict]:
    """({shown fx node: [shown fx nodes it takes, through the ops not shown]}, {fx node:
    the shown fx nodes that stand for it: itself if shown, else those that reach it})."""
    feeds: dict = {}
    result: dict = {}
    for node in _tensors(view):
        sources = []
        for a in _tensor_inputs(view, node):
            for s in feeds.get(a, ()):
                if s not in sources:
                    sources.append(s)
        if shown(node):
            result[node] = sources
            feeds[node] = [node]
        else:
            feeds[node] = sources
    return result, feeds


def _edge_marker(marked: _Marked, feeds: dict):
    """The marks of a drawn edge (source, target): on operand path a (b) where both its
    ends stand for nodes of the path, or where it enters the merge from the shown node
    that stands for that operand."""
    paths = [
        (mark, merge, set(feeds.get(path[-1], ())), {s for n in path for s in feeds.get(n, ())})
        for path_a, path_b, merge in marked.paths
        for mark, path in ((PATH_A, path_a), (PATH_B, path_b))
    ]

    def marks(source, target) -> set:
        return {
            mark
            for mark, merge, operand, inside in paths
            if (source in operand if target is merge else source in inside and target in inside)
        }

    return marks


def _whole(view, marked: _Marked, title: str, depth: Optional[int]) -> Picture:
    drawing = _Drawing(view, marked)
    if view.sizes is None:
        return drawing.picture(title, marked.notes, depth)
    keep = {n for n in marked.marks}
    shown = lambda n: _matters(view, n) or n in keep  # noqa: E731
    contracted, feeds = _contract(view, shown)
    expanded: set = set()  # blocks drawn op by op: they hold the merge or the parting layer, or make a cycle
    for n in (n for n, marks in marked.marks.items() if marks & {MERGE, PARTING, FLAGGED}):
        owner = _owner(view, n) or ""
        expanded |= {_block_id(".".join(owner.split(".")[:k])) for k in range(1, len(owner.split(".")) + 1)}
    while True:
        group = _grouping(view, contracted, depth, expanded)
        cycle = _cycle(contracted, group)
        if not cycle:
            break
        expanded |= cycle
    for node in contracted:
        drawing.add_fx(node, group[node]) if group[node] == _fx_id(node) else _add_block(drawing, view, node, group)
    marks = _edge_marker(marked, feeds)
    for node, sources in contracted.items():
        for s in sources:
            drawing.connect(group[s], group[node], _size_label(view, s), marks(s, node))
    result = drawing.picture(title, marked.notes, depth, group)
    return _repeats(result)


def _fx_id(node) -> str:
    return f"n_{node.name}"


def _block_id(qualname: str) -> str:
    """An id every format takes as is (no dots: DOT would need quotes)."""
    return "b_" + re.sub(r"\W", "_", qualname)


def _grouping(view, contracted: dict, depth: Optional[int], expanded: set) -> dict:
    """{fx node: id of what draws it}: itself, or the block at ``depth`` that holds it."""
    group = {}
    for node in contracted:
        owner = _owner(view, node)
        key = None
        if depth is not None and owner and node.op not in ("placeholder", "output"):
            parts = owner.split(".")
            if len(parts) > depth or (node.op != "call_module" and len(parts) >= depth):
                prefix = ".".join(parts[:depth])
                if _block_id(prefix) not in expanded:
                    key = prefix
        group[node] = _block_id(key) if key is not None else _fx_id(node)
    return group


def _cycle(contracted: dict, group: dict) -> set:
    """Blocks whose collapsing would make the picture cyclic (a block called twice with
    ops of others between): their names, to be drawn op by op."""
    successors: dict = {}
    for node, sources in contracted.items():
        for s in sources:
            if group[s] != group[node]:
                successors.setdefault(group[s], set()).add(group[node])
    indegree = {g: 0 for g in set(group.values())}
    for targets in successors.values():
        for t in targets:
            indegree[t] += 1
    ready = [g for g, d in indegree.items() if d == 0]
    while ready:
        g = ready.pop()
        for t in successors.get(g, ()):
            indegree[t] -= 1
            if indegree[t] == 0:
                ready.append(t)
    return {g for g, d in indegree.items() if d > 0 and g.startswith("b_")}


def _add_block(drawing: _Drawing, view, node, group: dict) -> None:
    """The node of a collapsed block; a path through it marks it as the path's."""
    block_id = group[node]
    marks = frozenset(drawing.marked.marks.get(node, ())) & {PATH_A, PATH_B}
    if block_id in drawing.nodes:
        found = drawing.nodes[block_id]
        drawing.nodes[block_id] = replace(found, marks=found.marks | marks)
        return
    parts = _owner(view, node).split(".")
    qualname = next(".".join(parts[:k]) for k in range(len(parts), 0, -1) if block_id == _block_id(".".join(parts[:k])))
    try:
        type_name = type(view.model.get_submodule(qualname)).__name__
    except AttributeError:
        type_name = "block"
    drawing.nodes[block_id] = Node(block_id, f"`{qualname}` {type_name}", "block", _line(view, node), "", marks)


def _block_type(node: Node) -> Optional[str]:
    """The type and path marks of a collapsed block (a repeat's members), else None."""
    if node.kind != "block" or node.marks - {PATH_A, PATH_B}:
        return None
    return node.label.rsplit("` ", 1)[-1] + "".join(sorted(node.marks))


def _chains(drawn: Picture) -> list[list[Node]]:
    """Runs of three or more blocks of one type, each the only successor of the one before."""
    out: dict = {}
    into: dict = {}
    for e in drawn.edges:
        out.setdefault(e.source, []).append(e.target)
        into.setdefault(e.target, []).append(e.source)
    by_id = {n.id: n for n in drawn.nodes}
    taken: set = set()
    chains = []
    for node in drawn.nodes:
        kind = _block_type(node)
        if node.id in taken or kind is None:
            continue
        chain = [node]
        while len(out.get(chain[-1].id, [])) == 1:
            nxt = by_id[out[chain[-1].id][0]]
            if _block_type(nxt) != kind or len(into.get(nxt.id, [])) != 1 or nxt.id in taken:
                break
            chain.append(nxt)
        if len(chain) > 2:
            chains.append(chain)
            taken |= {n.id for n in chain}
    return chains


def _repeats(drawn: Picture) -> Picture:
    """A chain of blocks of one type is one node: "`layer3.0` … `layer3.22` Bottleneck x 23"."""
    chains = _chains(drawn)
    if not chains:
        return drawn
    first_of = {n.id: chain[0].id for chain in chains for n in chain}
    heads = {chain[0].id: chain for chain in chains}
    nodes = []
    for node in drawn.nodes:
        if node.id in heads:
            chain = heads[node.id]
            names = [c.label.split("` ")[0] + "`" for c in (chain[0], chain[-1])]
            label = f"{names[0]} … {names[1]} {node.label.rsplit('` ', 1)[-1]} x {len(chain)}"
            nodes.append(replace(node, label=label, kind="repeat"))
        elif node.id not in first_of:
            nodes.append(node)
    edges = []
    for e in drawn.edges:
        source, target = first_of.get(e.source, e.source), first_of.get(e.target, e.target)
        if source != target:
            edges.append(replace(e, source=source, target=target))
    return replace(drawn, nodes=nodes, edges=edges)


# ---------------------------------------------------------------- a finding's part only


def _focused(view, marked: _Marked, title: str) -> Picture:
    """The finding's merge, its operands' paths back to their fork (the ops that matter on
    them, long stretches elided around the parting layer), one op of context each side."""
    drawing = _Drawing(view, marked)
    if view.sizes is None or not marked.focus:
        return drawing.picture(title, marked.notes or [("no finding to focus on", None)], None)
    keep = {n for n in marked.focus if _matters(view, n) or marked.marks.get(n, set()) & {MERGE, PARTING, FLAGGED}}
    context = set()
    for path_a, _path_b, _merge in marked.paths:
        fork = path_a[0]
        keep.add(fork)  # where the operands' paths part ways: drawn, whatever it is
        before = next(iter(_contract(view, lambda n: _matters(view, n) or n is fork)[0].get(fork, [])), None)
        context |= {before} if before is not None else set()
    merges = [n for n, m in marked.marks.items() if MERGE in m]
    for merge in merges:
        users = [u for u in merge.users if u in view.sizes.shadows]
        after = _first_shown_after(view, users)
        context |= {after} if after is not None else set()
    keep |= context
    elided: dict = {}  # fx node -> id of the elision that stands for it
    for path_a, path_b, _merge in marked.paths:
        for path in (path_a, path_b):
            _elide(view, [n for n in path if n in keep], marked, elided)
    shown = lambda n: n in keep  # noqa: E731
    contracted, feeds = _contract(view, shown)
    for node in contracted:
        if node in elided:
            eid = elided[node]
            if eid not in drawing.nodes:
                count = sum(1 for v in elided.values() if v == eid)
                drawing.nodes[eid] = Node(eid, f"… {count} more ops", "elided", None, "", frozenset())
        else:
            drawing.add_fx(node, _fx_id(node))
    marks = _edge_marker(marked, feeds)
    for node, sources in contracted.items():
        for s in sources:
            source = elided.get(s, _fx_id(s))
            target = elided.get(node, _fx_id(node))
            drawing.connect(source, target, "" if s in elided else _size_label(view, s), marks(s, node))
    return drawing.picture(title, marked.notes, None, {n: elided.get(n, _fx_id(n)) for n in contracted})


def _first_shown_after(view, users: list) -> Any:
    seen = list(users)
    while seen:
        node = seen.pop(0)
        if node.op == "output" or _matters(view, node):
            return node
        seen += [u for u in node.users if u in view.sizes.shadows]
    return None


def _elide(view, path: list, marked: _Marked, elided: dict) -> None:
    """Past 3 * FOCUS_KEEP nodes, a path keeps its ends and the nodes around its parting
    layer; each stretch between is one elision node."""
    if len(path) <= 3 * FOCUS_KEEP:
        return
    parting = next((i for i, n in enumerate(path) if PARTING in marked.marks.get(n, ())), len(path) // 2)
    kept = set(range(FOCUS_KEEP)) | set(range(len(path) - FOCUS_KEEP, len(path)))
    kept |= set(range(max(parting - 2, 0), min(parting + 3, len(path))))
    kept |= {i for i, n in enumerate(path) if MERGE in marked.marks.get(n, ())}
    stretch = None
    for i, node in enumerate(path):
        if i in kept:
            stretch = None
            continue
        if stretch is None:
            stretch = f"e_{node.name}"
        elided.setdefault(node, stretch)
