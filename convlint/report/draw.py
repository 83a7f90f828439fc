"""``Picture``s drawn: Mermaid (GitHub renders it in Markdown, PR comments and the job
summary), Graphviz DOT, and SVG or HTML files that need nothing installed to open (laid
out here, in layers: no system binary). Every format reads the same ``Picture``; the
marks are drawn alike: the merge red, operand path a blue and b orange, the layer where
they part with a thick red border, the findings' messages beside the graph."""

from __future__ import annotations

import html
import textwrap
from typing import Callable, Sequence

from convlint.report.picture import FLAGGED, MERGE, PARTING, PATH_A, PATH_B, Edge, Node, Picture

RED, BLUE, ORANGE, GREY = "#d62728", "#1f77b4", "#ff7f0e", "#888888"
WRAP = 56  # characters per line of a node's label


def _wrapped(label: str, width: int = WRAP) -> list[str]:
    return textwrap.wrap(label, width, break_long_words=True, break_on_hyphens=False) or [""]


def _edge_colour(edge: Edge) -> str:
    if PATH_B in edge.marks:
        return ORANGE
    if PATH_A in edge.marks:
        return BLUE
    return GREY


def _node_style(node: Node) -> tuple[str, str, float]:
    """(fill, stroke, stroke width) of a node by its marks."""
    if MERGE in node.marks:
        return "#fde0dd", RED, 3.0
    if PARTING in node.marks or FLAGGED in node.marks:
        return "#fff5eb", RED, 3.0
    if PATH_B in node.marks:
        return "#fff5eb", ORANGE, 2.0
    if PATH_A in node.marks:
        return "#eef5fb", BLUE, 2.0
    if node.kind in ("input", "output"):
        return "#f0f0f0", "#555555", 1.0
    if node.kind in ("block", "repeat", "elided"):
        return "#fafafa", "#999999", 1.0
    return "#ffffff", "#555555", 1.0


# ---------------------------------------------------------------- Mermaid


def _mermaid_text(value: str) -> str:
    """A label inside Mermaid's quotes: its own entity codes for what would end or start
    markup (a backtick would make a Markdown string)."""
    for char, code in (("#", "#35;"), ('"', "#quot;"), ("`", "#96;"), ("<", "#lt;"), (">", "#gt;")):
        value = value.replace(char, code)
    return value


def _mermaid_label(node: Node) -> str:
    lines = [_mermaid_text(part) for part in _wrapped(node.label)]
    if node.line is not None:
        lines[-1] += f" · line {node.line}"
    return "<br/>".join(lines)


def mermaid(pictures: Sequence[Picture]) -> str:
    """One flowchart; several models are one subgraph each."""
    out = ["flowchart TD"]
    link = 0
    styles: list[str] = []
    for index, drawn in enumerate(pictures):
        prefix = f"m{index}_" if len(pictures) > 1 else ""
        indent = "    " if len(pictures) > 1 else "  "
        if len(pictures) > 1:
            out.append(f'  subgraph {prefix}model["{_mermaid_text(drawn.title)}"]')
        for node in drawn.nodes:
            opening, closing = ("([", "])") if node.kind in ("input", "output") else ("[", "]")
            out.append(f'{indent}{prefix}{node.id}{opening}"{_mermaid_label(node)}"{closing}')
            fill, stroke, width = _node_style(node)
            if (fill, stroke, width) != _node_style(Node("", "", "op")):
                styles.append(f"  style {prefix}{node.id} fill:{fill},stroke:{stroke},stroke-width:{width:g}px")
        for edge in drawn.edges:
            label = f' -- "{_mermaid_text(edge.label)}" -->' if edge.label else " -->"
            out.append(f"{indent}{prefix}{edge.source}{label} {prefix}{edge.target}")
            colour = _edge_colour(edge)
            if colour != GREY:
                styles.append(f"  linkStyle {link} stroke:{colour},stroke-width:3px")
            link += 1
        for number, (note, at) in enumerate(drawn.notes):
            note_id = f"{prefix}note{number}"
            text = "<br/>".join(_mermaid_text(part) for part in _wrapped(note, 72))
            out.append(f'{indent}{note_id}["{text}"]')
            styles.append(f"  style {note_id} fill:#fff8dc,stroke:{RED},stroke-dasharray:4 3")
            if at is not None:
                out.append(f"{indent}{note_id} -.- {prefix}{at}")
                link += 1
        if len(pictures) > 1:
            out.append("  end")
    return "\n".join(out + styles) + "\n"


def markdown(pictures: Sequence[Picture]) -> str:
    """Per model: a heading, its findings and its Mermaid picture (a job summary, a PR comment)."""
    parts = []
    for drawn in pictures:
        parts.append(f"### `{drawn.title}`\n")
        parts += [f"- {note}" for note, _ in drawn.notes]
        parts.append(f"\n```mermaid\n{mermaid([drawn])}```\n")
    return "\n".join(parts)


def job_summary(pictures: Sequence[Picture], summary: str) -> str:
    """A GitHub Actions job summary: the run's summary line, and each failing model's
    focused picture (``markdown``)."""
    head = f"## convlint\n\n{summary.strip()}\n"
    if not pictures:
        return head + "\n"
    return (
        f"{head}\nEach failing model at its first merge finding, else at its first finding:\n\n{markdown(pictures)}\n"
    )


# ---------------------------------------------------------------- DOT


def _dot_text(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def dot(pictures: Sequence[Picture]) -> str:
    """A Graphviz digraph; several models are one cluster each."""
    out = [
        "digraph convlint {",
        "  rankdir=TB;",
        '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10];',
        '  edge [fontname="Helvetica", fontsize=9];',
    ]
    for index, drawn in enumerate(pictures):
        prefix = f"m{index}_" if len(pictures) > 1 else ""
        indent = "  "
        if len(pictures) > 1:
            out.append(f'  subgraph cluster_{index} {{\n    label="{_dot_text(drawn.title)}";')
            indent = "    "
        for node in drawn.nodes:
            fill, stroke, width = _node_style(node)
            label = "\\n".join(_dot_text(part) for part in _wrapped(node.label))
            if node.line is not None:
                label += f"\\nline {node.line}"
            attrs = [f'label="{label}"', f'fillcolor="{fill}"', f'color="{stroke}"', f"penwidth={width:g}"]
            if node.tooltip:
                attrs.append(f'tooltip="{_dot_text(node.tooltip)}"')
            if node.marks:
                attrs.append(f'class="{" ".join(sorted(node.marks))}"')
            out.append(f"{indent}{prefix}{node.id} [{', '.join(attrs)}];")
        for edge in drawn.edges:
            colour = _edge_colour(edge)
            attrs = [f'label="{_dot_text(edge.label)}"', f'color="{colour}"']
            if colour != GREY:
                attrs.append("penwidth=3")
            out.append(f"{indent}{prefix}{edge.source} -> {prefix}{edge.target} [{', '.join(attrs)}];")
        for number, (note, at) in enumerate(drawn.notes):
            label = "\\n".join(_dot_text(part) for part in _wrapped(note, 72))
            out.append(
                f'{indent}{prefix}note{number} [shape=note, label="{label}", fillcolor="#fff8dc", color="{RED}"];'
            )
            if at is not None:
                out.append(f"{indent}{prefix}note{number} -> {prefix}{at} [style=dashed, arrowhead=none];")
        if len(pictures) > 1:
            out.append("  }")
    out.append("}")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- layout (for SVG)

CHAR, LINE, PAD, ROW_GAP, COLUMN_GAP = 6.1, 14.0, 8.0, 56.0, 28.0


class Layout:
    """Positions of a picture's nodes, in layers: each node one row below its lowest
    input, the order within a row by the mean position of its inputs (a few sweeps), long
    edges routed through points on the rows between."""

    def __init__(self, drawn: Picture) -> None:
        self.drawn = drawn
        ids = [n.id for n in drawn.nodes]
        self.size = {n.id: self._box(n) for n in drawn.nodes}
        preds: dict = {i: [] for i in ids}
        for e in drawn.edges:
            preds[e.target].append(e.source)
        self.rank: dict = {}
        for i in ids:  # the nodes come in execution order: inputs before users
            self.rank[i] = 1 + max((self.rank[p] for p in preds[i] if p in self.rank), default=-1)
        # long edges: a point on every row they cross
        self.routes: dict = {}
        chains: dict = {i: [] for i in ids}
        for number, e in enumerate(drawn.edges):
            low, high = self.rank[e.source], self.rank[e.target]
            points = [f"d{number}_{r}" for r in range(low + 1, high)]
            for point, r in zip(points, range(low + 1, high)):
                self.rank[point] = r
                self.size[point] = (2.0, 2.0)
            self.routes[number] = points
            hops = [e.source, *points, e.target]
            for a, b in zip(hops, hops[1:]):
                chains.setdefault(b, []).append(a)
        self.inputs = chains
        rows: dict = {}
        for i, r in self.rank.items():
            rows.setdefault(r, []).append(i)
        self.rows = [rows[r] for r in sorted(rows)]
        self._order()
        self._place()

    @staticmethod
    def _box(node: Node) -> tuple[float, float]:
        lines = _wrapped(node.label) + ([f"line {node.line}"] if node.line is not None else [])
        return max(len(line) for line in lines) * CHAR + 2 * PAD, len(lines) * LINE + 2 * PAD

    def _order(self) -> None:
        outputs: dict = {}
        for b, sources in self.inputs.items():
            for a in sources:
                outputs.setdefault(a, []).append(b)
        position = {i: k for row in self.rows for k, i in enumerate(row)}
        for sweep in range(4):
            rows = self.rows[1:] if sweep % 2 == 0 else list(reversed(self.rows[:-1]))
            neighbours = self.inputs if sweep % 2 == 0 else outputs
            for row in rows:

                def centre(i, row=row):
                    near = [position[n] for n in neighbours.get(i, []) if n in position]
                    return sum(near) / len(near) if near else position[i]

                row.sort(key=centre)
                for k, i in enumerate(row):
                    position[i] = k

    def _place(self) -> None:
        self.x: dict = {}
        self.y: dict = {}
        top = 0.0
        for row in self.rows:
            height = max(self.size[i][1] for i in row)
            wanted = []
            for i in row:
                near = [self.x[n] for n in self.inputs.get(i, []) if n in self.x]
                wanted.append(sum(near) / len(near) if near else 0.0)
            # keep the order; push right where boxes would overlap, then centre the row on its wishes
            placed, edge = [], None
            for i, want in zip(row, wanted):
                half = self.size[i][0] / 2
                x = want if edge is None else max(want, edge + COLUMN_GAP + half)
                placed.append(x)
                edge = x + half
            shift = (sum(wanted) - sum(placed)) / len(placed)
            for i, x in zip(row, placed):
                self.x[i] = x + shift
                self.y[i] = top + height / 2
            top += height + ROW_GAP
        left = min(self.x[i] - self.size[i][0] / 2 for i in self.x)
        for i in self.x:
            self.x[i] -= left - PAD
        self.width = max(self.x[i] + self.size[i][0] / 2 for i in self.x) + PAD
        self.height = top - ROW_GAP + PAD


# ---------------------------------------------------------------- SVG and HTML


def _svg_one(drawn: Picture, top: float, prefix: str) -> tuple[list[str], float, float]:
    """The SVG elements of one picture from ``top`` down: (elements, width, height)."""
    out: list[str] = []
    esc = html.escape
    notes = [line for note, _ in drawn.notes for line in _wrapped(note, 110)]
    y = top + 18
    out.append(f'<text class="title" x="{PAD}" y="{y:.1f}" font-weight="bold">{esc(drawn.title)}</text>')
    for line in notes:
        y += LINE
        out.append(f'<text class="note" x="{PAD}" y="{y:.1f}" fill="{RED}">{esc(line)}</text>')
    y += LINE
    if not drawn.nodes:
        return out, 400.0, y - top
    layout = Layout(drawn)
    for number, edge in enumerate(drawn.edges):
        points = [edge.source, *layout.routes[number], edge.target]
        coords = []
        for k, p in enumerate(points):
            half = layout.size[p][1] / 2
            dy = half if k == 0 else (-half if k == len(points) - 1 else 0)
            coords.append((layout.x[p], y + layout.y[p] + dy))
        colour = _edge_colour(edge)
        classes = " ".join(["edge", *sorted(edge.marks)])
        path = " ".join(f"{x:.1f},{yy:.1f}" for x, yy in coords)
        width = 3 if colour != GREY else 1.2
        out.append(
            f'<g class="{classes}"><polyline points="{path}" fill="none" stroke="{colour}" '
            f'stroke-width="{width}" marker-end="url(#{prefix}arrow)"/>'
        )
        if edge.label:  # on the last stretch, above the arrow: the size entering the target
            (x0, y0), (x1, y1) = coords[-2], coords[-1]
            lx, ly = x0 + 0.62 * (x1 - x0), y0 + 0.62 * (y1 - y0)
            out.append(
                f'<text x="{lx + 3:.1f}" y="{ly:.1f}" font-size="10" fill="#333" stroke="white" '
                f'stroke-width="3" paint-order="stroke">{esc(edge.label)}</text>'
            )
        out.append("</g>")
    for node in drawn.nodes:
        w, h = layout.size[node.id]
        x, yy = layout.x[node.id] - w / 2, y + layout.y[node.id] - h / 2
        fill, stroke, width = _node_style(node)
        classes = " ".join(["node", node.kind, *sorted(node.marks)])
        out.append(f'<g class="{classes}" id="{prefix}{node.id}">')
        tip = "\n".join(part for part in (node.label, node.tooltip) if part)
        out.append(f"<title>{esc(tip)}</title>")
        rx = 14 if node.kind in ("input", "output") else 4
        out.append(
            f'<rect x="{x:.1f}" y="{yy:.1f}" width="{w:.1f}" height="{h:.1f}" rx="{rx}" '
            f'fill="{fill}" stroke="{stroke}" stroke-width="{width:g}"/>'
        )
        lines = _wrapped(node.label) + ([f"line {node.line}"] if node.line is not None else [])
        for k, line in enumerate(lines):
            ty = yy + PAD + LINE * (k + 0.8)
            colour = "#777" if line.startswith("line ") and k == len(lines) - 1 else "#111"
            out.append(f'<text x="{x + PAD:.1f}" y="{ty:.1f}" fill="{colour}">{esc(line)}</text>')
        out.append("</g>")
    width = max(layout.width, max((len(line) * CHAR for line in notes), default=0) + 2 * PAD)
    return out, width, y - top + layout.height


def svg(pictures: Sequence[Picture]) -> str:
    """One SVG document; several models one below the other."""
    body: list[str] = []
    top, width = 0.0, 200.0
    for index, drawn in enumerate(pictures):
        prefix = f"m{index}_" if len(pictures) > 1 else ""
        elements, w, h = _svg_one(drawn, top, prefix)
        body += [
            f'<marker id="{prefix}arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="9" '
            'markerHeight="9" markerUnits="userSpaceOnUse" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#555"/></marker>',
            *elements,
        ]
        top += h + 30
        width = max(width, w)
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{top:.0f}" '
        f'viewBox="0 0 {width:.0f} {top:.0f}" font-family="Helvetica, Arial, sans-serif" font-size="11">'
    )
    return "\n".join([head, '<rect width="100%" height="100%" fill="white"/>', *body, "</svg>"]) + "\n"


def html_page(pictures: Sequence[Picture]) -> str:
    """A self-contained page: the SVG inline, the findings above it, hover for receptive fields."""
    title = ", ".join(p.title for p in pictures) or "convlint graph"
    legend = (
        f'<p class="legend"><span style="color:{RED}">■ the merge, and the layer where the paths part</span> · '
        f'<span style="color:{BLUE}">■ operand path a</span> · <span style="color:{ORANGE}">■ operand path b</span> · '
        "hover a node for its receptive field</p>"
    )
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>convlint graph: {html.escape(title)}</title>"
        "<style>body{font-family:Helvetica,Arial,sans-serif;margin:16px}"
        ".legend{font-size:13px;color:#333}svg{max-width:none}</style></head>\n<body>\n"
        f"<h1>convlint graph: {html.escape(title)}</h1>\n{legend}\n{svg(pictures)}</body></html>\n"
    )


FORMATS: dict[str, Callable[[Sequence[Picture]], str]] = {
    "mermaid": mermaid,
    "markdown": markdown,
    "dot": dot,
    "svg": svg,
    "html": html_page,
}
