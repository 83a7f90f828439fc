"""Models the benchmark measures, built with no arguments (so `convlint check` takes them too)."""

import importlib.util
import os

import torch
import torch.nn as nn
import torch.nn.functional as F


class Bottleneck(nn.Module):
    def __init__(self, cin: int, mid: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        cout = mid * 4
        self.conv1 = nn.Conv2d(cin, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride, padding=dilation, dilation=dilation, bias=False)  # convlint: same
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        identity = x if self.down is None else self.down(x)
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        return F.relu(self.bn3(self.conv3(y)) + identity)


class DilatedResNetASPP(nn.Module):
    """ResNet-50 at output stride 8 (stages 3 and 4 dilated), an ASPP head, logits upsampled
    to the input size: about 60 convolutions."""

    def __init__(self, classes: int = 21):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1)
        )
        blocks, cin = [], 64
        for mid, count, stride, dilation in [(64, 3, 1, 1), (128, 4, 2, 1), (256, 6, 1, 2), (512, 3, 1, 4)]:
            for i in range(count):
                blocks.append(Bottleneck(cin, mid, stride if i == 0 else 1, dilation))
                cin = mid * 4
        self.body = nn.Sequential(*blocks)
        self.aspp = nn.ModuleList(
            [nn.Conv2d(2048, 256, 1)] + [nn.Conv2d(2048, 256, 3, padding=d, dilation=d) for d in (12, 24, 36)]
        )
        self.image_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(2048, 256, 1))
        self.project = nn.Conv2d(5 * 256, 256, 1)
        self.classifier = nn.Conv2d(256, classes, 1)

    def forward(self, x):
        size = x.shape[-2:]
        f = self.body(self.stem(x))
        pooled = F.interpolate(self.image_pool(f), size=f.shape[-2:], mode="bilinear", align_corners=False)
        y = self.project(torch.cat([branch(f) for branch in self.aspp] + [pooled], dim=1))
        return F.interpolate(self.classifier(F.relu(y)), size=size, mode="bilinear", align_corners=False)


class ResNet50OS8(DilatedResNetASPP):
    """The same network without its head: PyTorch's own symbolic propagation cannot take
    the head (F.interpolate to a computed size), so the comparison runs on this."""

    def forward(self, x):
        return self.body(self.stem(x))


class UNet(nn.Module):
    def __init__(self, channels: int = 32, levels: int = 4):
        super().__init__()

        def double(cin, cout):
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(), nn.Conv2d(cout, cout, 3, padding=1), nn.ReLU()
            )

        widths = [channels * 2**i for i in range(levels + 1)]
        self.inc = double(3, widths[0])
        self.down = nn.ModuleList([double(widths[i], widths[i + 1]) for i in range(levels)])
        self.up = nn.ModuleList(
            [nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in reversed(range(levels))]
        )
        self.dec = nn.ModuleList([double(2 * widths[i], widths[i]) for i in reversed(range(levels))])
        self.out = nn.Conv2d(widths[0], 2, 1)

    def forward(self, x):
        skips, x = [], self.inc(x)
        for down in self.down:
            skips.append(x)
            x = down(F.max_pool2d(x, 2))
        for up, dec in zip(self.up, self.dec):
            skip = skips.pop()
            x = up(x)
            dy, dx = skip.size(2) - x.size(2), skip.size(3) - x.size(3)
            x = F.pad(x, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
            x = dec(torch.cat([skip, x], dim=1))
        return self.out(x)


class Chomp(nn.Module):
    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def forward(self, x):
        return x[:, :, : -self.size]


class TCN(nn.Module):
    """A temporal convolutional network: causal dilated 1-d convolutions, residual adds."""

    def __init__(self, channels: int = 64, levels: int = 10):
        super().__init__()
        self.inp = nn.Conv1d(1, channels, 1)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv1d(channels, channels, 3, padding=2 * 2**i, dilation=2**i), Chomp(2 * 2**i), nn.ReLU())
            for i in range(levels)
        )

    def forward(self, x):
        x = self.inp(x)
        for block in self.blocks:
            x = block(x) + x
        return x


class PlainStack(nn.Module):
    def __init__(self, depth: int = 100, channels: int = 16):
        super().__init__()
        self.stem = nn.Conv2d(3, channels, 3, padding=1)
        self.layers = nn.Sequential(*[nn.Conv2d(channels, channels, 3, padding=1) for _ in range(depth)])

    def forward(self, x):
        return self.layers(self.stem(x))


class Billion(nn.Module):
    """Eight 4096-channel 3x3 convolutions: 1.2 billion parameters."""

    def __init__(self, width: int = 4096, depth: int = 8):
        super().__init__()
        self.stem = nn.Conv2d(3, width, 3, padding=1)
        self.layers = nn.Sequential(*[nn.Conv2d(width, width, 3, padding=1) for _ in range(depth)])

    def forward(self, x):
        return self.layers(self.stem(x))


class WindowBlock(nn.Module):
    """Attention within windows of a padded token map (SAM's image encoder): the padding
    and the crop are branches on sizes, a relative-position bias of a fixed size."""

    def __init__(self, dim: int, window: int, heads: int = 4):
        super().__init__()
        self.window, self.heads = window, heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.bias = nn.Parameter(torch.zeros(heads, window * window, window * window))
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x):
        b, h, w, c = x.shape
        ws = self.window
        y = self.norm1(x)
        pad_h, pad_w = (ws - h % ws) % ws, (ws - w % ws) % ws
        if pad_h > 0 or pad_w > 0:
            y = F.pad(y, (0, 0, 0, pad_w, 0, pad_h))
        hp, wp = h + pad_h, w + pad_w
        y = y.view(b, hp // ws, ws, wp // ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, ws * ws, c)
        q, k, v = self.qkv(y).reshape(y.shape[0], ws * ws, 3, self.heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        attn = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5 + self.bias
        y = (attn.softmax(-1) @ v).transpose(1, 2).reshape(-1, ws * ws, c)
        y = self.proj(y).view(b, hp // ws, wp // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, c)
        if pad_h > 0 or pad_w > 0:
            y = y[:, :h, :w, :].contiguous()
        x = x + y
        return x + self.mlp(self.norm2(x))


class WindowViT(nn.Module):
    """The slowest family of the zoos to analyse: many window-attention blocks with
    padding guards at a large input (SAM's ViT at 1024), a patch embedding that checks
    its input and a convolutional neck."""

    def __init__(self, depth: int = 24, dim: int = 64, patch: int = 16, window: int = 14):
        super().__init__()
        self.patch = patch
        self.embed = nn.Conv2d(3, dim, patch, stride=patch)
        self.blocks = nn.Sequential(*[WindowBlock(dim, window) for _ in range(depth)])
        self.neck = nn.Sequential(nn.Conv2d(dim, 32, 1), nn.Conv2d(32, 32, 3, padding=1))

    def forward(self, x):
        torch._assert(x.shape[2] % self.patch == 0 and x.shape[3] % self.patch == 0, "patch size")
        y = self.blocks(self.embed(x).permute(0, 2, 3, 1))
        return self.neck(y.permute(0, 3, 1, 2))


def plain(depth: int):
    return lambda: PlainStack(depth)


class TinyUNet(nn.Module):
    """README's "Deploying a model" example: one skip joined by cat after a pool and an
    upsample (H, W multiples of 4), the smallest model the guard is measured against."""

    def __init__(self):
        super().__init__()
        self.enc = nn.Conv2d(3, 8, 3, padding=1)
        self.mid = nn.Sequential(nn.MaxPool2d(4), nn.Conv2d(8, 8, 3, padding=1), nn.Upsample(scale_factor=4))
        self.head = nn.Conv2d(16, 2, 1)

    def forward(self, x):
        skip = self.enc(x)
        return self.head(torch.cat([skip, self.mid(skip)], dim=1))


def _fixture(path: str, name: str):
    """A class from a test fixture, loaded by path (fixtures/ is no package)."""
    spec = importlib.util.spec_from_file_location(
        f"fixture_{name}", os.path.join(os.path.dirname(__file__), "..", path)
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


class DeepUNet1000(_fixture("fixtures/graph/deep_unet.py", "DeepUNet")):
    """The pictures' U-Net at 1,004 convolutions (about 4,000 ops), its three skip
    concatenations broken for sizes that are not multiples of 8 (CVL302)."""

    def __init__(self):
        super().__init__(blocks=125)


MODELS = {
    "resnet50-aspp-os8": (DilatedResNetASPP, (1, 3)),
    "resnet50-os8": (ResNet50OS8, (1, 3)),
    "unet": (UNet, (1, 3)),
    "tcn": (TCN, (1, 1)),
    "plain-100": (plain(100), (1, 3)),
    "plain-300": (plain(300), (1, 3)),
    "plain-1000": (plain(1000), (1, 3)),
    "billion": (Billion, (1, 3)),
    "window-vit": (WindowViT, (1, 3)),
    "tiny-unet": (TinyUNet, (1, 3)),
    "deep-unet-1000": (DeepUNet1000, (1, 3)),
}
