"""Patterns from torchvision and timm that once tripped convlint, in our own words.

The zoo run (bench/zoo.py) needs torchvision and timm, which CI does not install; these
small models keep its fixes fixed. Each must come out with symbolic sizes for every
layer that agree with real PyTorch at other input sizes, and with no finding.
"""

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from conftest import domain_disagreements

import convlint
from convlint import engine, sizes
from convlint.analysis import analyse


def tf_same_pad(x, kernel, stride, dilation, value=0.0):
    """TensorFlow's "SAME": pad so that the output is ceil(n / s), worked out per call
    from the input's size (``max`` of a traced size is control flow: fx cannot follow)."""
    pads = []
    for n, k, s, d in reversed(list(zip(x.shape[-2:], kernel, stride, dilation))):
        total = max((math.ceil(n / s) - 1) * s + (k - 1) * d + 1 - n, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads, value=value)


class SameConv2d(nn.Conv2d):
    """A convolution padded at run time (timm's Conv2dSame): padding=0 on the layer."""

    def forward(self, x):
        return F.conv2d(
            tf_same_pad(x, self.kernel_size, self.stride, self.dilation),
            self.weight,
            self.bias,
            self.stride,
            0,
            self.dilation,
            self.groups,
        )


class SameMaxPool2d(nn.MaxPool2d):
    def forward(self, x):
        x = tf_same_pad(x, (self.kernel_size,) * 2, (self.stride,) * 2, (1, 1), value=-float("inf"))
        return F.max_pool2d(x, self.kernel_size, self.stride, 0)


class SameAvgPool2d(nn.AvgPool2d):
    def forward(self, x):
        x = tf_same_pad(x, (self.kernel_size,) * 2, (self.stride,) * 2, (1, 1))
        return F.avg_pool2d(x, self.kernel_size, self.stride, 0, self.ceil_mode, self.count_include_pad)


class TFStem(nn.Module):
    """EfficientNet ported from TensorFlow: strided, even-kernel and depthwise convolutions
    with run-time "same" padding, a "same" max pool, and a residual add after them."""

    def __init__(self):
        super().__init__()
        self.stem = SameConv2d(3, 8, 3, stride=2)
        self.pool = SameMaxPool2d(3, stride=2)
        self.dw = SameConv2d(8, 8, 5, stride=1, groups=8)
        self.even = SameConv2d(8, 8, 4, stride=1, dilation=1)
        self.down = SameConv2d(8, 16, 5, stride=2, dilation=1)

    def forward(self, x):
        x = self.pool(self.stem(x))
        x = x + self.even(self.dw(x))
        return self.down(x)


class DilatedResNetDDownsample(nn.Module):
    """A ResNet-D block at output stride 8: the shortcut's 2x2 average pool keeps stride
    1 and pads at run time ("same"), so that it lines up with the dilated 3x3."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 8, 3, padding=2, dilation=2)
        self.shortcut = nn.Sequential(
            SameAvgPool2d(2, stride=1, ceil_mode=True, count_include_pad=False), nn.Conv2d(4, 8, 1)
        )

    def forward(self, x):
        return self.conv(x) + self.shortcut(x)


class SqueezeExcite(nn.Module):
    """A squeeze-and-excitation gate: global mean, two 1x1 convs, sigmoid, broadcast product."""

    def __init__(self, channels=8):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)
        self.reduce = nn.Conv2d(channels, channels // 4, 1)
        self.expand = nn.Conv2d(channels // 4, channels, 1)

    def forward(self, x):
        x = self.conv(x)
        gate = self.expand(F.relu(self.reduce(x.mean((2, 3), keepdim=True))))
        return x * gate.sigmoid()


class FeaturePyramid(nn.Module):
    """A top-down pathway: the coarse map resized with F.interpolate to the skip's size."""

    def __init__(self):
        super().__init__()
        self.c3 = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.c4 = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.c5 = nn.Conv2d(8, 8, 3, stride=2, padding=1)

    def forward(self, x):
        c3 = self.c3(x)
        c4 = self.c4(c3)
        p4 = c4 + F.interpolate(self.c5(c4), size=c4.shape[-2:], mode="nearest")
        return c3 + F.interpolate(p4, size=c3.shape[-2:], mode="bilinear", align_corners=False)


class MaskedEncoder(nn.Module):
    """Optional arguments (timm's Hiera: ``forward(x, mask=None)``): traced at their
    defaults, not as extra traced inputs that the size pass would have to invent."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Conv2d(3, 8, 4, stride=4)
        self.mix = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x, mask=None, return_intermediates=False):
        x = self.embed(x)
        if mask is not None:
            x = x * mask.view(x.shape[0], 1, *x.shape[2:])
        y = self.mix(x)
        if return_intermediates:
            return y, [x]
        return y


class RotaryPrefixTokens(nn.Module):
    """A ViT with rotary position embedding on the patch tokens only: the prefix tokens
    (none, or two register tokens) are split off and joined back with a cat along the
    token dimension, whose sizes add up and need not agree."""

    def __init__(self, prefix=0):
        super().__init__()
        self.prefix = prefix
        self.patch = nn.Conv2d(3, 16, 14, stride=14)
        self.tokens = nn.Parameter(torch.zeros(1, prefix, 16))

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.tokens.expand(x.shape[0], -1, -1), x], dim=1)
        q = x.view(x.shape[0], x.shape[1], 2, 8).transpose(1, 2)  # (B, heads, tokens, dim)
        rotated = torch.cat([-q[..., 4:], q[..., :4]], dim=-1)
        q = torch.cat([q[:, :, : self.prefix], rotated[:, :, self.prefix :]], dim=2)
        return q.transpose(1, 2).flatten(2).mean(1)


class RegisterTokens(RotaryPrefixTokens):
    def __init__(self):
        super().__init__(prefix=2)


class InterleavedHalves(nn.Module):
    """Even and odd columns of a fixed-size map, added (EdgeNeXt's positional encoding
    splits a fixed grid this way): slices with a step of a constant size."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        grid = F.adaptive_avg_pool2d(self.conv(x), 8)
        return grid[..., 0::2] + grid[..., 1::2]


class PadToMultiple(nn.Module):
    """Pad up to a multiple of the patch size, then patchify (DaViT, Swin): the pad
    amounts are computed with % from the input's size."""

    def __init__(self, patch=4):
        super().__init__()
        self.patch = patch
        self.embed = nn.Conv2d(3, 8, patch, stride=patch)
        self.mix = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x):
        _, _, h, w = x.shape
        x = F.pad(x, (0, (self.patch - w % self.patch) % self.patch, 0, (self.patch - h % self.patch) % self.patch))
        x = self.embed(x)
        return x + self.mix(x)


class WindowAttention(nn.Module):
    """Swin/DaViT: pad the map to a multiple of the window (amounts with %), cut it into
    windows with view/permute, attend within each (matmul and scaled_dot_product_attention),
    put the windows back and crop the padding off, then a residual conv."""

    def __init__(self, window=7, channels=8):
        super().__init__()
        self.window = window
        self.embed = nn.Conv2d(3, channels, 4, stride=4)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.mix = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        x = self.embed(x)
        b, c, h, w = x.shape
        ws = self.window
        pad_b, pad_r = (ws - h % ws) % ws, (ws - w % ws) % ws
        y = F.pad(x, (0, pad_r, 0, pad_b)).permute(0, 2, 3, 1)
        hp, wp = y.shape[1], y.shape[2]
        windows = y.view(b, hp // ws, ws, wp // ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, ws * ws, c)
        q, k, v = self.qkv(windows).chunk(3, dim=-1)
        mixed = (q @ k.transpose(-2, -1)).softmax(-1) @ v
        mixed = mixed + F.scaled_dot_product_attention(q, k, v)
        y = mixed.view(b, hp // ws, wp // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, c)
        y = y[:, :h, :w, :].permute(0, 3, 1, 2)
        return y + self.mix(x)


class SinePositions(nn.Module):
    """A positional encoding built for this map's size (XCiT, EdgeNeXt): zeros(B, H, W),
    cumsum along H and W, arange over channels, repeat to the grid, added to the map."""

    def __init__(self, channels=8):
        super().__init__()
        self.embed = nn.Conv2d(3, channels, 4, stride=4)

    def forward(self, x):
        x = self.embed(x)
        b, c, h, w = x.shape
        mask = torch.zeros((b, h, w), dtype=torch.bool, device=x.device)  # a tuple: fx cannot trace zeros(b, h, w)
        rows = (~mask).cumsum(1, dtype=torch.float32)
        cols = torch.arange(1, w + 1, dtype=torch.float32, device=x.device).view(1, 1, w).repeat(b, h, 1)
        scale = torch.arange(c // 2, dtype=torch.float32, device=x.device) + 1
        pos = torch.cat([rows[..., None] / scale, cols[..., None] / scale], dim=3).permute(0, 3, 1, 2)
        return x + pos


class PooledNormHead(nn.Module):
    """A norm after global pooling, called as F.batch_norm (MobileNetV4's head): its
    (C,) statistics must not broadcast against the pooled map's last dim of 1."""

    def __init__(self, channels=8):
        super().__init__()
        self.conv = nn.Conv2d(3, channels, 3, stride=2, padding=1)
        self.register_buffer("mean", torch.zeros(channels))
        self.register_buffer("var", torch.ones(channels))
        self.alpha = nn.Parameter(torch.full((channels,), 0.25))

    def forward(self, x):
        x = self.conv(x).mean((2, 3), keepdim=True)
        return F.prelu(F.batch_norm(x, self.mean, self.var), self.alpha)


class PatchRounding(nn.Module):
    """MobileViTv2: a block that resizes its input up to a multiple of its patch size
    (control flow: a leaf), unfolds patches, and leaves the map at the rounded size."""

    def __init__(self, patch=2):
        super().__init__()
        self.patch = patch
        self.mix = nn.Conv2d(8, 8, 1)

    def forward(self, x):
        h, w = x.shape[-2:]
        size = (math.ceil(h / self.patch) * self.patch, math.ceil(w / self.patch) * self.patch)
        if size != (h, w):
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=True)
        return self.mix(x)


class RoundingStage(nn.Module):
    def __init__(self):
        super().__init__()
        self.down = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.block = PatchRounding()
        self.head = nn.Conv2d(8, 8, 3, stride=2, padding=1)

    def forward(self, x):
        return self.head(self.block(self.down(x)))


CASES = [
    (TFStem, (1, 3, 224, 224), [(1, 1), (7, 9), (31, 32), (33, 65), (101, 100)]),
    (DilatedResNetDDownsample, (1, 4, 28, 28), [(3, 3), (17, 12), (29, 30)]),
    (SqueezeExcite, (1, 8, 56, 56), [(1, 1), (7, 9), (33, 64)]),
    (FeaturePyramid, (1, 3, 224, 224), [(5, 7), (33, 65), (100, 99)]),
    (MaskedEncoder, (1, 3, 224, 224), [(4, 4), (33, 65), (100, 99)]),
    (RotaryPrefixTokens, (1, 3, 224, 224), [(14, 28), (33, 65), (100, 99)]),
    (RegisterTokens, (1, 3, 224, 224), [(14, 28), (33, 65), (100, 99)]),
    (InterleavedHalves, (1, 3, 64, 64), [(8, 9), (33, 65)]),
    (PadToMultiple, (1, 3, 224, 224), [(1, 2), (5, 7), (33, 65), (101, 98)]),
    (WindowAttention, (1, 3, 224, 224), [(4, 8), (60, 33), (101, 98)]),
    (SinePositions, (1, 3, 224, 224), [(4, 8), (60, 33), (101, 98)]),
    (PooledNormHead, (1, 3, 224, 224), [(1, 1), (60, 33)]),
    (RoundingStage, (1, 3, 224, 224), [(3, 5), (30, 33), (101, 98)]),
]


@pytest.mark.parametrize("cls,example,others", CASES, ids=[c[0].__name__ for c in CASES])
def test_zoo_pattern_has_symbolic_sizes_that_match_pytorch(cls, example, others, run_every_op):
    torch.manual_seed(0)
    model = cls().eval()
    with engine.analysing(model) as meta:
        analysis = analyse(meta, [example], run_every_op)
    result = analysis.sizes
    assert result.error is None and not result.mismatches and not result.transfer_errors
    assert not result.unknown_ops, [n.format_node() for n in result.unknown_ops]
    assert all(d is not None for d in analysis.output.dims)
    symbols = list(result.symbols)
    for spatial in others:
        predicted = tuple(sizes.evaluate_int(d, dict(zip(symbols, spatial))) for d in analysis.output.dims[2:])
        with torch.no_grad():
            real = tuple(model(torch.zeros((*example[:2], *spatial))).shape[2:])
        assert predicted == real, (spatial, analysis.output.dims)


@pytest.mark.parametrize("cls,example,others", CASES, ids=[c[0].__name__ for c in CASES])
def test_zoo_pattern_has_no_finding_at_any_size(cls, example, others, run_every_op):
    for spatial in [example[2:], *others]:
        findings = engine.check_model(
            cls(), [(*example[:2], *spatial)], options=engine.Options(run_every_op=run_every_op)
        )
        assert findings == [], (spatial, [f.message for f in findings])


@pytest.mark.parametrize("cls,example,others", CASES, ids=[c[0].__name__ for c in CASES])
def test_zoo_pattern_domain_and_statement_agree_with_pytorch_size_by_size(cls, example, others, run_every_op):
    """The input domain of each pattern, and the words it is stated in, against the real
    model at every square size from 1 to 64 and the non-square pairs (as the fixtures)."""
    domain = convlint.domain(cls, example, run_every_op=run_every_op)  # inexact: right where it refuses
    torch.manual_seed(0)
    wrong = domain_disagreements(domain, cls().eval())
    assert not wrong, f"`{domain}` disagrees with PyTorch at {wrong[:8]} ({len(wrong)} in all)"


def test_run_time_same_padding_is_measured_not_taken_from_the_padding_attribute(run_every_op):
    """padding=0 on the layer, yet the output is ceil(n / s): the layer is a leaf (its
    forward cannot be traced), so its size map is found by running it at one full period
    of sizes, and the shapes report shows the padding it really has."""
    with engine.analysing(TFStem()) as meta:
        analysis = analyse(meta, [(1, 3, 64, 64)], run_every_op, by_execution=False)
    assert set(analysis.trace.leaves) == {"stem", "pool", "dw", "even", "down"}
    geometry = {
        n.target: analysis.sizes.geometries.get(n)
        for n in analysis.sizes.graph_module.graph.nodes
        if n.op == "call_module"
    }
    assert all(g is not None and g.dynamic_same and g.padding_literal == "dynamic same" for g in geometry.values())
    assert str(analysis.output.dims[2]) == "ceiling(H/8)"


def test_a_conv_subclass_whose_own_forward_changes_sizes_otherwise_stays_unknown(run_every_op):
    """Neither the layer's formula nor "same" fits: unknown from there on, never a guess
    (and no internal-consistency error)."""

    class CropToEven(nn.Conv2d):
        def forward(self, x):
            if x.shape[-1] % 2:
                x = x[..., :-1]
            return super().forward(x)

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = CropToEven(2, 2, 3, padding=1)

        def forward(self, x):
            return self.conv(x)

    with engine.analysing(Model()) as meta:
        analysis = analyse(meta, [(1, 2, 21, 21)], run_every_op, by_execution=False)
    assert list(analysis.trace.leaves) == ["conv"]
    assert not analysis.sizes.mismatches
    assert analysis.output.dims[2:] == (None, None)


def resize_to(x, size):
    """A helper with control flow on the input's size (timm's CrossViT scales its input
    to the size each branch was trained at, in a function like this)."""
    if x.shape[-2] != size[0] or x.shape[-1] != size[1]:
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    return x


def normalise(x):
    if x.shape[-1] > 1:  # control flow, but the size stays
        x = x - x.mean((2, 3), keepdim=True)
    return x


scale_input = resize_to  # called through another name, as an import would bind it


class TwoScales(nn.Module):
    def __init__(self):
        super().__init__()
        self.small = nn.Conv2d(3, 4, 8, stride=8)
        self.large = nn.Conv2d(3, 4, 3, stride=2, padding=1)

    def forward(self, x):
        a = self.small(scale_input(x, (96, 96)))
        b = self.large(normalise(x))
        return a.mean((2, 3)) + b.mean((2, 3)), b


def test_a_helper_function_that_stops_the_top_level_trace_becomes_a_leaf_node(run_every_op):
    with engine.analysing(TwoScales()) as meta:
        analysis = analyse(meta, [(1, 3, 240, 200)], run_every_op, by_execution=False)
    assert set(analysis.trace.leaves) == {f"{__name__}.resize_to()", f"{__name__}.normalise()"}
    assert "control flow" in analysis.trace.leaves[f"{__name__}.resize_to()"]
    assert scale_input is resize_to and globals()["resize_to"].__code__ is resize_to.__code__  # names restored
    nodes = {
        n.target: analysis.sizes.shadows[n] for n in analysis.sizes.graph_module.graph.nodes if n.op == "call_module"
    }
    assert nodes["small"].dims[2:] == (12, 12)  # a fixed size after the resize, at every input size
    (h, w) = analysis.sizes.symbols
    assert nodes["large"].dims[2].free_symbols == {h}  # normalise keeps its input's size
    b = nodes["large"]
    for spatial in [(31, 47), (96, 96), (100, 7)]:
        with torch.no_grad():
            real = TwoScales()(torch.zeros(1, 3, *spatial))[1].shape[2:]
        assert tuple(sizes.evaluate_int(d, dict(zip((h, w), spatial))) for d in b.dims[2:]) == tuple(real)


class CachedBiasAttention(nn.Module):
    """Channels-last (B, H, W, C) attention that caches a bias per size (TinyViT): a leaf
    (control flow on the size), probed on a copy along the axes that carry H and W."""

    def __init__(self, channels=8):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(channels))
        self.cache = {}

    def forward(self, x):
        key = tuple(x.shape[1:3])
        if key not in self.cache:  # computed from a parameter: not a plain tensor under autograd
            self.cache[key] = self.scale * 2
        return x * self.cache[key]


class RoutedConv(nn.Module):
    """A conv-like module that is not an nn.Conv2d (timm's CondConv2d): it mixes expert
    kernels with per-sample routing weights, a second tensor argument, and pads to "same"
    at run time."""

    def __init__(self, channels=8, experts=4, stride=2):
        super().__init__()
        self.kernel_size, self.stride, self.padding, self.dilation = (3, 3), (stride, stride), (0, 0), (1, 1)
        self.weight = nn.Parameter(torch.randn(experts, channels * channels * 9))
        self.channels = channels

    def forward(self, x, routing):
        kernel = (routing @ self.weight).view(self.channels, self.channels, 3, 3)
        return F.conv2d(tf_same_pad(x, self.kernel_size, self.stride, self.dilation), kernel, None, self.stride)


class ChannelsLastAndRouted(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.attention = CachedBiasAttention()
        self.route = nn.Linear(8, 4)
        self.routed = RoutedConv()

    def forward(self, x):
        x = self.stem(x)
        x = self.attention(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        routing = self.route(x.mean((2, 3))).sigmoid()
        return self.routed(x, routing)


def test_leaves_that_cache_tensors_are_channels_last_or_take_routing_weights_keep_symbolic_sizes(run_every_op):
    model = ChannelsLastAndRouted().eval()
    with engine.analysing(model) as meta:
        analysis = analyse(meta, [(1, 3, 64, 64)], run_every_op, by_execution=False)
    assert set(analysis.trace.leaves) == {"attention", "routed"}
    result = analysis.sizes
    assert not result.mismatches and not result.unknown_ops
    (h, w) = result.symbols
    for spatial in [(9, 9), (31, 64), (100, 7)]:
        with torch.no_grad():
            real = tuple(model(torch.zeros(1, 3, *spatial)).shape[2:])
        assert tuple(sizes.evaluate_int(d, {h: spatial[0], w: spatial[1]}) for d in analysis.output.dims[2:]) == real


def test_padding_given_as_a_list_is_a_padding_like_any_other(run_every_op):
    """PyTorch accepts padding=[1, 1] (MViTv2's shortcut pooling); it gave CVL902."""

    class ListPadding(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=[1, 1])
            self.pool = nn.AvgPool2d(3, stride=2, padding=[1, 1])

        def forward(self, x):
            return self.pool(self.conv(x))

    assert convlint.check(ListPadding, (1, 3, 33, 31), run_every_op=run_every_op) == []
    out = convlint.shapes(ListPadding, (1, 3, 33, 31), run_every_op=run_every_op)["layers"][-1]
    assert out["size"][2:] == ["floor((H - 1)/2) + 1", "floor((W - 1)/2) + 1"]
    assert out["shape"][2:] == list(ListPadding()(torch.zeros(1, 3, 33, 31)).shape[2:])
