"""The quasi-affine size type (work in progress, issue 25) against sympy and Python's own
integer arithmetic: the same value at every size, for expressions that chains of
convolutions, poolings, transposed convolutions and skips build."""

import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

from convlint.affine import Q

H = sympy.Symbol("H", integer=True, positive=True)


def _tree(expr) -> str:
    """A size's expression tree, written out: the affine core's sympy form of an input size
    is a Symbol of its own (hashing as its Q does), written, printed and ordered as sympy's
    (rebuilding the tree with sympy's Symbol would evaluate it again: not the same tree)."""
    return sympy.srepr(sympy.sympify(expr)) if expr is not None else "None"


layer = st.tuples(
    st.sampled_from(["conv", "pool_ceil", "transposed", "mod", "skip"]),
    st.integers(1, 7),  # kernel
    st.integers(1, 4),  # stride
    st.integers(0, 3),  # padding
    st.integers(1, 3),  # dilation
)


def _apply(kind, k, s, p, d, q, e, skip):
    """One layer, on the Q, on the sympy expression, and as Python computes it."""
    if kind == "conv":
        return (q + 2 * p - d * (k - 1) - 1).floor_div(s) + 1, sympy.floor((e + 2 * p - d * (k - 1) - 1) / s) + 1
    if kind == "pool_ceil":
        return (q + 2 * p - d * (k - 1) - 1).ceil_div(s) + 1, sympy.ceiling((e + 2 * p - d * (k - 1) - 1) / s) + 1
    if kind == "transposed":
        return (q - 1) * s - 2 * p + d * (k - 1) + 1, (e - 1) * s - 2 * p + d * (k - 1) + 1
    if kind == "mod":
        return q % (k + 1), sympy.Mod(e, k + 1)
    return q + skip[0], e + skip[1]  # a skip added back (a sum of two paths' sizes)


def _python(layers, n):
    """The chain as Python's integers compute it: the oracle (sympy's Mod is not one:
    sympy 1.14 rewrites Mod(2*Mod(H + 3, 8), 7) as Mod(2*Mod(H + 3, 8)**2, 7), sympy#28744)."""
    x = first = n
    for kind, k, s, p, d in layers:
        if kind == "conv":
            x = (x + 2 * p - d * (k - 1) - 1) // s + 1
        elif kind == "pool_ceil":
            x = -(-(x + 2 * p - d * (k - 1) - 1) // s) + 1
        elif kind == "transposed":
            x = (x - 1) * s - 2 * p + d * (k - 1) + 1
        elif kind == "mod":
            x = x % (k + 1)
        else:
            x = x + first
    return x


@settings(max_examples=200, deadline=None)
@given(st.lists(layer, min_size=1, max_size=6))
def test_a_chain_of_layers_has_pythons_value_at_every_size(layers):
    q, e = Q.symbol("H"), H
    first = (q, e)
    for kind, k, s, p, d in layers:
        q, e = _apply(kind, k, s, p, d, q, e, first)
    for n in [*range(1, 80), *range(1, 80)]:  # interpreted, then compiled (after a few)
        env = {"H": n} if n % 2 else {Q.symbol("H"): n}  # by name or by the symbol's Q
        assert q.value(env) == _python(layers, n), (layers, n, q)
    assert q._fn is not None or not q.terms


def test_sympys_mod_is_no_oracle_and_q_is_right_where_it_is_wrong():
    q = (2 * ((Q.symbol("H") + 3) % 8)) % 7
    e = sympy.Mod(2 * sympy.Mod(H + 3, 8), 7)
    python = [(2 * ((n + 3) % 8)) % 7 for n in range(0, 6)]
    assert [q.value({"H": n}) for n in range(0, 6)] == python
    assert [int(e.subs(H, n)) for n in range(0, 6)] != python  # sympy 1.14 (sympy#28744)


def test_the_form_is_canonical():
    h = Q.symbol("H")
    assert (4 * h + 6).floor_div(4) == h + 1  # floor((4H + 6)/4) = H + 1 + floor(2/4)
    assert (2 * h + 1).floor_div(4) == h.floor_div(2)  # floor((2H+1)/4) = floor(H/2)
    assert h.floor_div(2).floor_div(2) == h.floor_div(4)  # floor(floor(H/2)/2) = floor(H/4)
    assert ((h - 1).floor_div(2) + 1 - 1).floor_div(2) == (h - 1).floor_div(4)
    assert h.ceil_div(2).ceil_div(3).same_as(h.ceil_div(6))  # equal, not written alike
    assert (h.floor_div(2) + 3).floor_div(2) == (h + 6).floor_div(4)
    assert hash((h + 1) - 1) == hash(h) and (h + 1) - 1 == h
    assert (h % 2 + h.floor_div(2) * 2) == h


@settings(max_examples=200, deadline=None)
@given(st.lists(layer, min_size=1, max_size=4), st.lists(layer, min_size=1, max_size=4))
def test_same_as_decides_equality_at_every_size(one, two):
    """Two chains are the same size map exactly where Python computes the same sizes at
    every integer (checked over a range wider than both periods)."""
    chains = []
    for layers in (one, two):
        q, e = Q.symbol("H"), H
        first = (q, e)
        for kind, k, s, p, d in layers:
            q, e = _apply(kind, k, s, p, d, q, e, first)
        chains.append(q)
    decided = chains[0].same_as(chains[1])
    if decided is None:
        return
    span = 2 * max(chains[0].period(), chains[1].period()) + 8
    everywhere = all(chains[0].value({"H": n}) == chains[1].value({"H": n}) for n in range(-span, span))
    assert decided == everywhere, (one, two, chains)


def test_same_as_on_two_symbols():
    h, w = Q.symbol("H"), Q.symbol("W")
    assert (h + w).floor_div(2).floor_div(2).same_as((h + w).floor_div(4))
    assert (h + w).floor_div(2).same_as(h.floor_div(2) + w.floor_div(2)) is False  # H = W = 1
    assert h.ceil_div(2).same_as(h.floor_div(2) + h % 2)


conv_layer = st.tuples(
    st.sampled_from(["conv", "pool", "pool_ceil", "transposed"]),
    st.integers(1, 7),  # kernel
    st.integers(1, 4),  # stride
    st.integers(0, 3),  # padding
    st.integers(1, 3),  # dilation
)


def _formula(kind, k, s, p, d, n):
    from convlint import formulas

    if kind == "conv":
        return formulas.conv_out(n, k, s, p, p, d)
    if kind == "transposed":
        return formulas.conv_transpose_out(n, k, s, p, d, 0)
    return formulas.pool_out(n, k, s, min(p, k // 2), d, kind == "pool_ceil")


@settings(max_examples=200, deadline=None)
@given(st.lists(conv_layer, min_size=1, max_size=6))
def test_the_formulas_on_a_q_print_as_the_sympy_path_and_evaluate_as_python(layers):
    """A Q made by PyTorch's formulas replays, in sympy, exactly the expression the sympy
    path makes (so every message reads the same), and is worth the same at every size."""
    q, e = Q.symbol("H"), H
    for kind, k, s, p, d in layers:
        q, e = _formula(kind, k, s, p, d, q), _formula(kind, k, s, p, d, e)
    assert _tree(q) == _tree(e)
    for n in range(1, 64):
        value = int(e.subs(H, n)) if not isinstance(e, int) else e
        got = q.value({"H": n}) if isinstance(q, Q) else int(sympy.sympify(q).subs(H, n))
        assert got == value, (n, q, e)


# ---------------------------------------------------------------- the affine core against the sympy path

import os  # noqa: E402

import pytest  # noqa: E402
from conftest import BUILTIN_RULES  # noqa: E402
from test_domain import CASES as MODELS  # noqa: E402
from test_domain import _arguments  # noqa: E402
from test_rule_fixtures import CASES as EXPECTED  # noqa: E402
from test_rule_fixtures import read_expected  # noqa: E402

import convlint  # noqa: E402
from convlint import engine  # noqa: E402
from convlint.sizes import symbolic  # noqa: E402


def _both(monkeypatch, run):
    """``run()`` with the sizes carried by sympy, then by the affine core."""
    got = []
    for affine in (False, True):
        monkeypatch.setattr(symbolic, "AFFINE", affine)
        got.append(run())
    return got


@pytest.mark.parametrize("expected", EXPECTED, ids=[os.path.basename(c)[: -len(".expected")] for c in EXPECTED])
def test_the_affine_core_gives_every_finding_of_the_sympy_path_word_for_word(expected, in_root, monkeypatch):
    source = os.path.relpath(expected[: -len(".expected")] + ".py")
    shapes, same, _ = read_expected(expected)
    options = engine.Options(input_shapes=shapes, same=same, select=BUILTIN_RULES)

    def run():
        result = engine.check_paths([source], options)
        return [f"{f.line}:{f.column} {f.code} {f.message}" for f in result.findings], result.domains

    with_sympy, with_affine = _both(monkeypatch, run)
    assert with_affine == with_sympy  # the findings, and each model's domain as stated


@pytest.mark.parametrize("path, cls", MODELS, ids=[f"{os.path.basename(p)[:-3]}:{c.__name__}" for p, c in MODELS])
def test_the_affine_core_gives_every_size_of_the_sympy_path(path, cls, monkeypatch):
    """Every node's every dim: the Q's sympy form is the sympy path's expression itself."""
    shapes = _arguments(path)
    shape = shapes[0] if len(shapes) == 1 else shapes

    def run():
        try:
            sizes = convlint._analysed(cls, shape, (), None, False, lambda view: view.sizes)
        except Exception as exc:  # a model convlint cannot build: both paths alike
            return type(exc).__name__
        if sizes is None:
            return None
        return {n.name: s for n, s in sizes.shadows.items()}

    with_sympy, with_affine = _both(monkeypatch, run)
    if not isinstance(with_sympy, dict):
        assert with_affine == with_sympy
        return
    assert with_affine.keys() == with_sympy.keys()
    for name, shadow in with_sympy.items():
        other = with_affine[name]
        if isinstance(shadow, symbolic.SymTensor):
            assert [_tree(d) for d in other.dims] == [_tree(d) for d in shadow.dims], name


CLEAN = """
import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, c, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=2, dilation=2, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.down = nn.Conv2d(c, c, 1, stride=stride) if stride > 1 else nn.Identity()

    def forward(self, x):
        y = self.bn1(self.conv1(x)).relu()
        return (self.bn2(self.conv2(y)) + self.down(x)).relu()


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 7, stride=2, padding=3), nn.ReLU(), nn.MaxPool2d(3, 2, 1))
        self.blocks = nn.Sequential(Block(8, 1), Block(8, 2), Block(8, 1))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)))


class UNet(nn.Module):
    # functional pooling, a transposed convolution, upsampling, a pad by a size difference
    # read in Python, a channels-last block (permute, layer norm, attention)

    def __init__(self):
        super().__init__()
        self.enc = nn.Conv2d(3, 8, 3, padding=1)
        self.mid = nn.Conv2d(8, 8, 3, padding=1)
        self.up = nn.ConvTranspose2d(8, 8, 2, stride=2)
        self.upsample = nn.Upsample(scale_factor=2)
        self.norm, self.qkv = nn.LayerNorm(8), nn.Linear(8, 24)
        self.out = nn.Conv2d(24, 2, 1)

    def forward(self, x):
        skip = self.enc(x)
        y = self.mid(F.max_pool2d(skip, 2))
        y = self.up(y)
        y = F.pad(y, (0, skip.size(3) - y.size(3), 0, skip.size(2) - y.size(2)))
        z = self.upsample(F.avg_pool2d(skip, 2))
        z = F.pad(z, (0, skip.size(3) - z.size(3), 0, skip.size(2) - z.size(2)))
        t = skip.permute(0, 2, 3, 1)
        q, k, v = self.qkv(self.norm(t)).chunk(3, dim=-1)
        t = t + (q @ k.transpose(-1, -2)).softmax(-1) @ v
        return self.out(torch.cat([y, z, t.permute(0, 3, 1, 2)], dim=1))
"""

RUN = """
import sys
from convlint import cli
try:
    cli.main(sys.argv[1:])
except SystemExit as exc:
    print("exit", exc.code)
print("sympy imported:", "sympy" in sys.modules)
print("libcst imported:", "libcst" in sys.modules)
"""


def test_the_affine_core_checks_a_residual_network_without_importing_sympy(tmp_path):
    """The point of the core: a model whose sizes are all of the common form (convolutions,
    poolings, residual adds, a head) is checked, its domain stated, without sympy's import
    (0.3-0.4 s of a cold check), and says what the sympy path says. Nor is libcst imported
    (0.2 s) for a file with no finding to fix and no "same" for the source rule to read."""
    import subprocess
    import sys

    (tmp_path / "net.py").write_text(CLEAN)
    outputs = {}
    for core in ("sympy", "affine"):
        env = {**os.environ, "CONVLINT_SYMBOLIC_CORE": core}
        argv = [sys.executable, "-c", RUN, "check", str(tmp_path / "net.py"), "--input-shape", "1,3,64,64"]
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
        outputs[core] = proc.stdout + proc.stderr  # the summary is on stderr
    assert "All checks passed!" in outputs["sympy"] and "sympy imported: True" in outputs["sympy"]
    assert "sympy imported: False" in outputs["affine"] and "libcst imported: False" in outputs["affine"]
    assert outputs["affine"].replace("sympy imported: False", "sympy imported: True") == outputs["sympy"]
