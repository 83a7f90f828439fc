"""Models the benchmark measures, built with no arguments (so `convlint check` takes them too)."""

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


def plain(depth: int):
    return lambda: PlainStack(depth)


MODELS = {
    "resnet50-aspp-os8": (DilatedResNetASPP, (1, 3)),
    "resnet50-os8": (ResNet50OS8, (1, 3)),
    "unet": (UNet, (1, 3)),
    "tcn": (TCN, (1, 1)),
    "plain-100": (plain(100), (1, 3)),
    "plain-300": (plain(300), (1, 3)),
    "plain-1000": (plain(1000), (1, 3)),
    "billion": (Billion, (1, 3)),
}
