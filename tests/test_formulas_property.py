"""PyTorch is the oracle: every size formula, evaluated, equals a real layer's output.

Random conv, transposed conv and pooling layers in 1 to 3 dimensions, with random
kernel, stride, padding, dilation, ceil_mode and input size, are run on real tensors.
"""

import torch
import torch.nn as nn
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from convlint import layers, sizes
from convlint.formulas import same_target
from convlint.samesize import keeping_padding, layer_verdicts
from convlint.sizes import symbolic

SETTINGS = settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])

CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
TRANSPOSED = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
MAXPOOL = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}
AVGPOOL = {1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d}


@st.composite
def layer_and_input(draw):
    ndim = draw(st.integers(1, 3))
    kind = draw(st.sampled_from(["conv", "transposed", "maxpool", "avgpool"]))
    per_dim = lambda strat: tuple(draw(strat) for _ in range(ndim))  # noqa: E731
    kernel = per_dim(st.integers(1, 7))
    stride = per_dim(st.integers(1, 4))
    dilation = per_dim(st.integers(1, 4)) if kind in ("conv", "transposed", "maxpool") else (1,) * ndim
    limit = 40 if ndim < 3 else 12
    size = per_dim(st.integers(1, limit))
    if kind == "conv":
        padding = draw(st.one_of(st.just("valid"), st.just("same"), st.tuples(*[st.integers(0, 8)] * ndim)))
        if padding == "same":
            assume(all(s == 1 for s in stride))
        mode = draw(st.sampled_from(["zeros", "reflect", "replicate", "circular"]))
        layer = CONV[ndim](1, 1, kernel, stride, padding, dilation, padding_mode=mode)
    elif kind == "transposed":
        padding = per_dim(st.integers(0, 4))
        output_padding = tuple(draw(st.integers(0, max(0, max(s, d) - 1))) for s, d in zip(stride, dilation))
        layer = TRANSPOSED[ndim](1, 1, kernel, stride, padding, output_padding, dilation=dilation)
    else:
        padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
        ceil_mode = draw(st.booleans())
        if kind == "maxpool":
            layer = MAXPOOL[ndim](kernel, stride, padding, dilation, ceil_mode=ceil_mode)
        else:
            layer = AVGPOOL[ndim](kernel, stride, padding, ceil_mode=ceil_mode)
    return layer, size


def real_output(layer, size):
    """The real layer on a real tensor; None where PyTorch refuses the size."""
    try:
        with torch.no_grad():
            return tuple(layer(torch.zeros((1, 1, *size))).shape[2:])
    except RuntimeError:
        return None


@SETTINGS
@given(layer_and_input())
def test_symbolic_size_of_every_layer_equals_pytorch(case):
    layer, size = case
    real = real_output(layer, size)
    geometry = layers.geometry_of(layer)
    names = sizes.SPATIAL_NAMES[geometry.ndim]
    symbols = [sizes.symbol(n) for n in names]
    expressions = sizes.apply_geometry(geometry, symbols)
    predicted = tuple(sizes.evaluate_int(e, dict(zip(symbols, size))) for e in expressions)
    if real is None:
        # A zero-padded convolution refuses exactly where the formula gives no output;
        # pooling and reflect/circular padding have further limits of their own
        # (input smaller than the kernel, pad larger than the input).
        if isinstance(layer, nn.modules.conv._ConvNd) and not layer.transposed and layer.padding_mode == "zeros":
            assert any(p < 1 for p in predicted), (layer, size, predicted)
        return
    assert predicted == real, (layer, size, expressions)


@SETTINGS
@given(layer_and_input(), st.data())
def test_suggested_padding_keeps_the_size_of_the_real_layer(case, data):
    layer, _ = case
    geometry = layers.geometry_of(layer)
    fix = keeping_padding(geometry)
    if fix is None:
        # Only when nothing can work: an odd d*(k-1), pooling limits, ceil_mode, or a
        # transposed conv whose output_padding cannot make up the parity.
        odd = any((d * (k - 1)) % 2 for d, k in zip(geometry.dilation, geometry.kernel))
        too_big = any(d * (k - 1) // 2 > k // 2 for d, k in zip(geometry.dilation, geometry.kernel))
        if geometry.kind == layers.TRANSPOSED:
            assert any(
                max(s, d) == 1 and (d * (k - 1) + 1 - s) % 2
                for s, d, k in zip(geometry.stride, geometry.dilation, geometry.kernel)
            )
        else:
            assert odd or (geometry.kind != layers.CONV and (too_big or geometry.ceil_mode))
        return
    padding = fix["padding"]
    layer.padding = padding
    if "output_padding" in fix:
        layer.output_padding = fix["output_padding"]
    if hasattr(layer, "_reversed_padding_repeated_twice"):
        layer._reversed_padding_repeated_twice = [p for p in reversed(padding) for _ in range(2)]
    fixed = geometry.with_padding(padding, fix.get("output_padding"))
    limit = 40 if geometry.ndim < 3 else 12
    for _ in range(3):
        # reflect padding needs p < n; avg_pool3d needs n >= kernel
        lowest = [max(fixed.min_input(i), padding[i] + 1 if layer_mode(layer) else 1) for i in range(geometry.ndim)]
        size = tuple(data.draw(st.integers(lowest[i], limit + lowest[i])) for i in range(geometry.ndim))
        real = real_output(layer, size)
        assert real == tuple(same_target(n, geometry.scale_stride(i)) for i, n in enumerate(size)), (layer, size, real)


def layer_mode(layer):
    return getattr(layer, "padding_mode", "zeros") != "zeros"


@settings(max_examples=400, deadline=None)
@given(layer_and_input())
def test_same_verdict_agrees_with_brute_force_over_many_sizes(case):
    layer, _ = case
    geometry = layers.geometry_of(layer)
    for i, axis in enumerate(layer_verdicts(geometry)):
        start = geometry.min_input(i)
        brute = all(
            geometry.out_dim(i, n) == same_target(n, geometry.scale_stride(i)) for n in range(start, start + 200)
        )
        assert axis.verdict.keeps == brute


@settings(max_examples=400, deadline=None)
@given(layer_and_input())
def test_the_smallest_input_a_layer_runs_on_is_where_pytorch_starts_running(case):
    """CVL401's limit, ceil_mode pooling included: a window that hangs over the input's
    end still counts, so a 3x3 ceil_mode pool runs on 2x2 (and returns 1x1)."""
    layer, _ = case
    assume(not layer_mode(layer))  # reflect and circular padding have limits of their own (CVL402)
    geometry = layers.geometry_of(layer)
    lowest = [geometry.min_input(i) for i in range(geometry.ndim)]
    for n in range(1, max(lowest) + 2):
        # conv_transpose3d returns an empty tensor where the others raise: no output either way
        real = real_output(layer, (n,) * geometry.ndim)
        runs = real is not None and all(real)
        assert runs == all(n >= low for low in lowest), (layer, n, lowest)


def _written(data, values):
    """One of the forms PyTorch accepts for a per-dimension argument: a tuple or a list,
    and where every dimension agrees an int or a one-element tuple or list."""
    forms = ["tuple", "list"] + (["int", "one-tuple", "one-list"] if len(set(values)) == 1 else [])
    form = data.draw(st.sampled_from(forms))
    return {
        "tuple": tuple(values),
        "list": list(values),
        "int": values[0],
        "one-tuple": (values[0],),
        "one-list": [values[0]],
    }[form]


@settings(max_examples=500, deadline=None)
@given(st.data())
def test_every_argument_form_pytorch_accepts_gives_the_sizes_of_the_real_layer(data):
    ndim = data.draw(st.integers(1, 3))
    kind = data.draw(st.sampled_from(["conv", "transposed", "maxpool", "avgpool"]))
    equal = data.draw(st.booleans())

    def per_dim(low, high):
        if equal:
            return (data.draw(st.integers(low, high)),) * ndim
        return tuple(data.draw(st.integers(low, high)) for _ in range(ndim))

    kernel, stride = per_dim(1, 5), per_dim(1, 3)
    padding = tuple(min(p, k // 2) for p, k in zip(per_dim(0, 2), kernel))
    dilation = per_dim(1, 3) if kind != "avgpool" else (1,) * ndim
    args = {name: _written(data, v) for name, v in dict(k=kernel, s=stride, p=padding, d=dilation).items()}
    try:
        if kind == "conv":
            layer = CONV[ndim](1, 1, args["k"], args["s"], args["p"], args["d"])
        elif kind == "transposed":
            layer = TRANSPOSED[ndim](1, 1, args["k"], args["s"], args["p"], dilation=args["d"])
        elif kind == "maxpool":
            layer = MAXPOOL[ndim](args["k"], args["s"], args["p"], args["d"])
        else:
            layer = AVGPOOL[ndim](args["k"], args["s"], args["p"])
    except (TypeError, ValueError, RuntimeError):
        assume(False)  # a form this layer refuses (a one-element tuple for a Conv2d's kernel)
    size = tuple(data.draw(st.integers(1, 24 if ndim < 3 else 10)) for _ in range(ndim))
    real = real_output(layer, size)
    assume(real is not None)
    geometry = layers.geometry_of(layer)
    symbols = [sizes.symbol(n) for n in sizes.SPATIAL_NAMES[ndim]]
    predicted = tuple(sizes.evaluate_int(e, dict(zip(symbols, size))) for e in sizes.apply_geometry(geometry, symbols))
    assert predicted == real, (layer, args, size)


@SETTINGS
@given(
    st.integers(1, 40),
    st.integers(1, 7),
    st.one_of(st.none(), st.integers(1, 4)),
    st.integers(0, 3),
    st.integers(1, 3),
    st.booleans(),
    st.booleans(),
)
def test_pool_formula_with_a_computed_kernel_and_stride_equals_pytorch(n, k, s, p, d, ceil_mode, maxpool):
    """One pooling formula (formulas.pool_out) also where the kernel and stride are
    expressions (global pooling by ``kernel_size=x.size()[2:]``): with the kernel and
    stride as symbols it gives PyTorch's size, ceil_mode's last-window rule included."""
    import sympy

    from convlint import formulas

    assume(p <= k // 2)
    stride = k if s is None else s
    kernel_symbol, stride_symbol, n_symbol = sympy.symbols("K S N", integer=True, positive=True)
    expression = formulas.pool_out(n_symbol, kernel_symbol, stride_symbol, p, d if maxpool else 1, ceil_mode)
    if maxpool:
        layer = nn.MaxPool1d(k, stride, p, d, ceil_mode=ceil_mode)
    else:
        layer = nn.AvgPool1d(k, stride, p, ceil_mode=ceil_mode)
    want = real_output(layer, (n,))
    assume(want is not None)
    got = sizes.evaluate_int(expression, {kernel_symbol: k, stride_symbol: stride, n_symbol: n})
    assert (got,) == want


@st.composite
def size_expression(draw, depth: int = 3):
    """A random size expression as the sizes stage builds them (floor, ceil, Max of sums of
    rational multiples of H and W), with the same arithmetic written in plain Python."""
    import math
    from fractions import Fraction

    import sympy

    h, w = sizes.symbol("H"), sizes.symbol("W")
    if depth == 0 or draw(st.booleans()):
        name = draw(st.sampled_from(["H", "W"]))
        return (h if name == "H" else w), (lambda env, name=name: env[name])
    a, fa = draw(size_expression(depth - 1))
    b, fb = draw(size_expression(depth - 1))
    p, q = draw(st.integers(-5, 9)), draw(st.integers(1, 8))
    r, s = draw(st.integers(-9, 9)), draw(st.integers(1, 8))
    kind = draw(st.sampled_from(["floor", "ceiling", "max"]))
    if kind == "max":
        return sympy.Max(a, b, evaluate=False), lambda env: max(fa(env), fb(env))
    inner = sympy.Rational(p, q) * a + b + sympy.Rational(r, s)
    rounding = math.floor if kind == "floor" else math.ceil
    return getattr(sympy, kind)(inner), lambda env: rounding(Fraction(p, q) * fa(env) + fb(env) + Fraction(r, s))


@settings(max_examples=500, deadline=None)
@given(size_expression(), st.integers(1, 300), st.integers(1, 300))
def test_compiled_evaluation_equals_python_arithmetic(case, h, w):
    """The compiled evaluator (integer floor division where a floor's argument is whole
    once scaled) gives what Python's exact arithmetic gives."""
    expr, python = case
    env = {sizes.symbol("H"): h, sizes.symbol("W"): w}
    assert symbolic.exact_value(expr, env) == python({"H": h, "W": w})
