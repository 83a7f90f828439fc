"""`convlint graph`: the analysed graph drawn, each format read back by a parser of its
own (Mermaid's, pydot, XML, a real browser), the marks where the finding says they are."""

import os
import shutil
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
import zlib

import pytest
from conftest import ROOT, readme_block

from convlint import engine
from convlint.options import Options, Shape
from convlint.report import draw
from convlint.report.picture import MERGE, PARTING, PATH_A, PATH_B

SEED = ("fixtures/seed.py", (1, 256, 19, 19))
SKIP = ("fixtures/rules/CVL302/skip.py", (1, 8, 32, 32))
DOWNSAMPLERS = ("fixtures/rules/domain_patterns.py:ThreeDownsamplers", (1, 3, 64, 64))
DEEP = ("fixtures/graph/deep_unet.py:DeepUNet", (1, 3, 64, 64))
GOLDEN = {"seed": SEED, "unet_skip": SKIP, "downsamplers": DOWNSAMPLERS}
JS = os.path.join(ROOT, "tests", "js")


def pictures(target, shape, **kwargs):
    drawn, _result = engine.pictures([target], Options(input_shapes=(Shape(shape),)), **kwargs)
    return drawn


def ids_of(drawn, mark):
    return {n.id for n in drawn.marked(mark)}


@pytest.fixture(autouse=True)
def _root(in_root):
    return in_root


# ---------------------------------------------------------------- what is drawn


def test_seed_mermaid_shows_the_four_branches_their_sizes_branch2s_path_and_the_cat_marked():
    command = readme_block("graph").split()  # the README's command, as it shows it
    assert command[:2] == ["convlint", "graph"]
    run = subprocess.run(
        [sys.executable, "-m", "convlint", *command[1:]],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    out = run.stdout
    for n in range(1, 5):
        assert f'n_branch{n}["#96;branch{n}#96; Conv2d(' in out
        assert f'n_x -- "H, W · 19x19" --> n_branch{n}' in out
    assert 'n_branch2 -- "H - 10, W - 10 · 9x9" --> n_cat' in out
    assert "style n_cat fill:#fde0dd,stroke:#d62728" in out  # the merge
    assert "style n_branch2 fill:#fff5eb,stroke:#d62728" in out  # where the paths part
    lines = [line.strip() for line in out.splitlines() if " --> " in line or " -.- " in line]
    orange = {int(line.split()[1]) for line in out.splitlines() if "linkStyle" in line and draw.ORANGE in line}
    assert {lines[i] for i in orange} == {
        'n_x -- "H, W · 19x19" --> n_branch2',
        'n_branch2 -- "H - 10, W - 10 · 9x9" --> n_cat',
    }
    assert "CVL301 #96;torch.cat(branches, dim=1)#96; merges" in out
    assert readme_block("graph-picture") == out  # the README's picture is what it prints


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_mermaid_picture_of_each_fixture_kind_is_its_golden_picture(name, request):
    target, shape = GOLDEN[name]
    got = draw.mermaid(pictures(target, shape))
    path = os.path.join(ROOT, "fixtures", "graph", f"{name}.mmd")
    if request.config.getoption("--update-snapshots") or not os.path.exists(path):
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(got)
    with open(path, encoding="utf-8") as fh:
        assert got == fh.read()


def test_the_marks_are_the_findings_merge_its_operand_paths_and_the_parting_layer():
    (drawn,) = pictures(*SEED)
    assert ids_of(drawn, MERGE) == {"n_cat"}
    assert ids_of(drawn, PARTING) == {"n_branch2"}
    assert ids_of(drawn, PATH_B) == {"n_branch2"}
    assert ids_of(drawn, PATH_A) == {"n_branch1"}
    (skip,) = pictures(*SKIP)
    assert ids_of(skip, MERGE) == {"n_cat"}
    assert {"n_down", "n_up"} <= ids_of(skip, PATH_A)  # the pooled and upsampled branch
    into = {e.source: e for e in skip.edges if e.target == "n_cat"}
    assert PATH_A in into["n_up"].marks and PATH_B in into["n_x"].marks  # the skip itself


def test_a_deep_model_is_folded_into_repeats_and_its_focused_picture_has_under_40_nodes():
    (whole,) = pictures(*DEEP)
    assert len(whole.nodes) <= 60
    assert [n.label for n in whole.nodes if n.kind == "repeat"][0] == "`enc.0.0` … `enc.0.59` Block x 60"
    (focused,) = pictures(*DEEP, focus="CVL302")
    assert len(focused.nodes) < 40
    assert len(ids_of(focused, MERGE)) == 1 and any(n.kind == "elided" for n in focused.nodes)
    (by_line,) = pictures(*DEEP, focus="deep_unet.py:39")
    assert ids_of(by_line, MERGE) == ids_of(focused, MERGE)
    assert pictures(*DEEP, focus="CVL101") == []  # no such finding: no picture


def test_depth_draws_deeper_blocks_as_one_node_each():
    (drawn,) = pictures(*DOWNSAMPLERS, depth=1)
    labels = [n.label for n in drawn.nodes]
    assert "`stages` Sequential" in labels or any("`stages." in label for label in labels)
    (full,) = pictures(*DOWNSAMPLERS, depth=None)
    assert len(full.nodes) > len(drawn.nodes) or any(n.marks for n in drawn.nodes)


def test_graph_of_a_target_with_no_model_is_an_error_with_exit_2():
    run = subprocess.run(
        [sys.executable, "-m", "convlint", "graph", "fixtures/rules/broken_import.py"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 2
    assert "no model to draw" in run.stderr


def test_check_in_a_github_job_writes_each_failing_models_focused_picture_to_the_job_summary(tmp_path):
    summary = tmp_path / "summary.md"
    summary.write_text("from an earlier step\n")
    target, shape = SKIP
    command = [sys.executable, "-m", "convlint", "check", target, "--input-shape", ",".join(map(str, shape))]
    env = {**os.environ, "GITHUB_STEP_SUMMARY": str(summary)}
    run = subprocess.run([*command, "--format", "github"], capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 1 and run.stdout.startswith("::warning file=fixtures/rules/CVL302/skip.py"), run.stderr
    text = summary.read_text()
    assert text.startswith("from an earlier step\n## convlint\n\nFound 1 finding in 1 model.")  # appended
    assert text.count("```mermaid") == 1 and "style n_cat fill:#fde0dd,stroke:#d62728" in text
    block = text.split("```mermaid\n")[1].split("```")[0]
    assert block == draw.mermaid(pictures(target, shape, focus="CVL302"))  # the focused picture
    if shutil.which("node"):
        parsed = subprocess.run(_mermaid_parser(), input=block, capture_output=True, text=True, timeout=120)
        assert parsed.returncode == 0, parsed.stdout + parsed.stderr
    # another format, or no job: no summary written
    run = subprocess.run([*command, "--format", "text"], capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 1 and summary.read_text() == text


# ---------------------------------------------------------------- each format, read back


def _mermaid_parser() -> list:
    if shutil.which("node") is None:
        pytest.skip("node is not installed: Mermaid's parser runs on it")
    if not os.path.isdir(os.path.join(JS, "node_modules", "mermaid")):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=JS, check=True, capture_output=True, timeout=600)
    return ["node", os.path.join(JS, "mermaid_parse.mjs")]


@pytest.mark.parametrize("target", [SEED, SKIP, DOWNSAMPLERS, DEEP], ids=["seed", "skip", "downsamplers", "deep"])
def test_mermaid_output_parses_with_mermaids_own_parser(target):
    command = _mermaid_parser()
    drawn = pictures(*target)
    for text in (draw.mermaid(drawn), draw.mermaid(pictures(*target, focus="CVL3") or drawn)):
        run = subprocess.run(command, input=text, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stdout + run.stderr


def test_mermaids_parser_rejects_a_broken_diagram():
    """The parser test can fail: a label with an unclosed bracket is refused."""
    command = _mermaid_parser()
    run = subprocess.run(command, input="flowchart TD\n  a[x --> \n", capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and '"ok":false' in run.stdout


def test_dot_output_parses_with_a_dot_parser_and_keeps_every_node_edge_and_mark():
    pydot = pytest.importorskip("pydot")
    (drawn,) = pictures(*SEED)
    (graph,) = pydot.graph_from_dot_data(draw.dot([drawn]))
    nodes = {n.get_name(): n for n in graph.get_nodes() if n.get_name() not in ("node", "edge")}
    assert set(nodes) >= {n.id for n in drawn.nodes}
    edges = {(e.get_source(), e.get_destination()) for e in graph.get_edges()}
    assert edges >= {(e.source, e.target) for e in drawn.edges}
    assert nodes["n_cat"].get("color").strip('"') == draw.RED
    assert nodes["n_branch2"].get("class").strip('"') == "b flagged parting"


def _svg_groups(svg_text):
    root = ET.fromstring(svg_text)
    ns = "{http://www.w3.org/2000/svg}"
    return [(g.get("class", "").split(), g) for g in root.iter(f"{ns}g")], ns


def test_svg_is_valid_xml_whose_marked_elements_are_the_merges_operands():
    (drawn,) = pictures(*SKIP)
    groups, ns = _svg_groups(draw.svg([drawn]))
    merge = [g.get("id") for classes, g in groups if "node" in classes and MERGE in classes]
    assert merge == ["n_cat"]
    operands = {e.source for e in drawn.edges if e.target == "n_cat" and e.marks}
    coloured = [classes for classes, g in groups if "edge" in classes and ({PATH_A, PATH_B} & set(classes))]
    assert len(coloured) == len([e for e in drawn.edges if e.marks]) and operands == {"n_up", "n_x"}
    titles = {g.get("id"): g.find(f"{ns}title").text for classes, g in groups if "node" in classes}
    assert "receptive field" in titles["n_conv"]


# ---------------------------------------------------------------- a real browser


def _png_pixels(path):
    """(width, height, rows of RGB tuples) of an 8-bit RGB or RGBA PNG, without a library."""
    with open(path, "rb") as fh:
        data = fh.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks, header = 8, [], None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            chunks.append(body)
        pos += 12 + length
    width, height, depth, colour = header[:4]
    assert depth == 8 and colour in (2, 6)
    step = 3 if colour == 2 else 4
    raw, stride, rows, previous = zlib.decompress(b"".join(chunks)), width * step, [], bytearray(width * step)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - step] if i >= step else 0
            b, c = previous[i], previous[i - step] if i >= step else 0
            p = {0: 0, 1: a, 2: b, 3: (a + b) // 2}.get(kind)
            if kind == 4:
                q = a + b - c
                pa, pb, pc = abs(q - a), abs(q - b), abs(q - c)
                p = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            line[i] = (line[i] + p) & 0xFF
        rows.append([tuple(line[i : i + 3]) for i in range(0, stride, step)])
        previous = line
    return width, height, rows


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.skip("no Chromium installed (apt-get install chromium)")


def _red_runs(rows, colour, least):
    """Lengths of the horizontal runs of ``colour`` (within a small tolerance) at least ``least`` long."""
    runs = []
    for row in rows:
        length = 0
        for pixel in [*row, (255, 255, 255)]:
            if sum(abs(a - b) for a, b in zip(pixel, colour)) < 60:
                length += 1
                continue
            if length >= least:
                runs.append(length)
            length = 0
    return runs


def test_html_opens_in_a_real_browser_and_renders_the_marked_merge(tmp_path):
    """The page Chromium renders has the merge's red box: a red line as wide as the box the
    SVG gives it (text in red, the legend and the messages, makes no such line)."""
    browser = _chromium()
    (drawn,) = pictures(*SEED)
    page, shot = tmp_path / "seed.html", tmp_path / "seed.png"
    page.write_text(draw.html_page([drawn]), encoding="utf-8")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"]
    flags += ["--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]
    subprocess.run(
        [browser, *flags, f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1600,1000"]
        + [f"file://{page}"],
        capture_output=True,
        timeout=120,
    )
    assert shot.exists(), "Chromium wrote no screenshot"
    _w, _h, rows = _png_pixels(shot)
    groups, ns = _svg_groups(draw.svg([drawn]))
    red = tuple(int(draw.RED[i : i + 2], 16) for i in (1, 3, 5))
    widths = {
        round(float(g.find(f"{ns}rect").get("width")))
        for classes, g in groups
        if "node" in classes and ({MERGE, PARTING} & set(classes))
    }
    runs = _red_runs(rows, red, 60)
    for width in widths:  # the box's top and bottom edges, each as wide as the box (give or take its stroke)
        assert sum(1 for r in runs if abs(r - width) <= 6) >= 2, (width, runs)
    html = page.read_text(encoding="utf-8")
    assert "<script" not in html and "src=" not in html  # self-contained: nothing to fetch
