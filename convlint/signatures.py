"""PyTorch's argument positions, in one table: the layers' constructors and the
functionals, read by the sizes stage (a functional's arguments), the fixer (which
argument of a constructor call to rewrite) and the source rules (a call's padding)."""

from __future__ import annotations

from typing import Optional

# nn.Conv*d(...), nn.ConvTranspose*d(...), nn.MaxPool*d(...), nn.AvgPool*d(...)
MODULES: dict[str, tuple[str, ...]] = {
    "conv": (
        "in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups", "bias",
        "padding_mode",
    ),
    "transposed": (
        "in_channels", "out_channels", "kernel_size", "stride", "padding", "output_padding", "groups", "bias",
        "dilation", "padding_mode",
    ),
    "maxpool": ("kernel_size", "stride", "padding", "dilation", "return_indices", "ceil_mode"),
    "avgpool": ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"),
}  # fmt: skip

# F.conv*d(...), F.conv_transpose*d(...), F.max_pool*d(...), F.avg_pool*d(...)
FUNCTIONS: dict[str, tuple[str, ...]] = {
    "conv": ("input", "weight", "bias", "stride", "padding", "dilation", "groups"),
    "transposed": ("input", "weight", "bias", "stride", "padding", "output_padding", "groups", "dilation"),
    "maxpool": ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices"),
    "avgpool": ("input", "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"),
}


def position(table: dict[str, tuple[str, ...]], kind: str, name: str) -> Optional[int]:
    """The position of parameter ``name`` of a ``kind`` call in ``table``; None when it
    has no such parameter."""
    params = table.get(kind, ())
    return params.index(name) if name in params else None
