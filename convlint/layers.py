"""A layer's geometry: the attributes that decide its output size.

``Geometry`` is what the size transfer functions and the same-intent rules read,
so a ``Conv2d`` module and an ``F.conv2d`` call with the same numbers behave alike.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from fractions import Fraction
from typing import Optional, Sequence

from convlint import formulas
from convlint.formulas import Size


class Kind:
    """What a ``Geometry`` describes (its ``kind``)."""

    CONV = "conv"
    TRANSPOSED = "transposed"
    MAXPOOL = "maxpool"
    AVGPOOL = "avgpool"


CONV, TRANSPOSED, MAXPOOL, AVGPOOL = Kind.CONV, Kind.TRANSPOSED, Kind.MAXPOOL, Kind.AVGPOOL


def ntuple(value, n: int) -> tuple:
    if isinstance(value, (tuple, list)):
        if len(value) == 1:
            return tuple(value) * n
        return tuple(value)
    return (value,) * n


@dataclass(frozen=True)
class Geometry:
    """Kernel, stride, padding and dilation of one conv-like layer, per spatial dim.

    ``padding`` holds (left, right) per dim: PyTorch's ``padding="same"`` pads
    asymmetrically when d*(k-1) is odd. ``padding_literal`` keeps what the user wrote
    (an int, a tuple, "same" or "valid") for messages.
    """

    kind: str
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]
    dilation: tuple[int, ...]
    ceil_mode: bool = False
    output_padding: tuple[int, ...] = ()
    padding_literal: object = 0
    padding_mode: str = "zeros"
    # TensorFlow's "SAME", padded at run time for each input size (timm's Conv2dSame):
    # the output is ceil(n / s) for every n, whatever ``padding`` says.
    dynamic_same: bool = False

    @property
    def ndim(self) -> int:
        return len(self.kernel)

    def out(self, sizes: Sequence[Size]) -> tuple[Size, ...]:
        """Output spatial sizes for the given input spatial sizes."""
        return tuple(self.out_dim(i, n) for i, n in enumerate(sizes))

    def out_dim(self, i: int, n: Size) -> Size:
        if isinstance(n, int):
            return self._out_dim(i, n)
        return _symbolic_out_dim(self, i, n)  # a ResNet repeats the same few: build each once

    def _out_dim(self, i: int, n: Size) -> Size:
        k, s, d = self.kernel[i], self.stride[i], self.dilation[i]
        left, right = self.padding[i]
        if self.dynamic_same:
            return formulas.same_target(n, s)
        if self.kind == CONV:
            return formulas.conv_out(n, k, s, left, right, d)
        if self.kind == TRANSPOSED:
            return formulas.conv_transpose_out(n, k, s, left, d, self.output_padding[i])
        return formulas.pool_out(n, k, s, left, d, self.ceil_mode)

    def effective_kernel(self, i: int) -> int:
        """The span of the dilated kernel along dim ``i``: d*(k-1) + 1."""
        return formulas.effective_kernel(self.kernel[i], self.dilation[i])

    def keeping_total(self, i: int) -> int:
        """The total padding (left + right) along dim ``i`` that keeps "same" at stride 1
        for every size: d*(k-1); split evenly when it is even."""
        return formulas.same_total_padding(self.kernel[i], self.dilation[i])

    def symmetric_keeping_padding(self) -> tuple[int, ...]:
        """d*(k-1)//2 per dim: the symmetric padding that keeps the size where d*(k-1) is
        even (``samesize.keeping_padding`` checks that it does)."""
        return tuple(self.keeping_total(i) // 2 for i in range(self.ndim))

    def scale_stride(self, i: int) -> Fraction:
        """Stride as "same" reads it: s for a downsampling layer, 1/s for a transposed one."""
        return Fraction(1, self.stride[i]) if self.kind == TRANSPOSED else Fraction(self.stride[i])

    def with_padding(self, padding: Sequence[int], output_padding: Optional[Sequence[int]] = None) -> "Geometry":
        """The same layer with symmetric integer padding ``padding`` per dim."""
        pairs = tuple((p, p) for p in padding)
        literal = padding[0] if len(set(padding)) == 1 else tuple(padding)
        extra = {"output_padding": tuple(output_padding)} if output_padding is not None else {}
        return dataclasses.replace(self, padding=pairs, padding_literal=literal, dynamic_same=False, **extra)

    def as_dynamic_same(self) -> "Geometry":
        """This layer padded at run time to TensorFlow's "SAME" (no static padding)."""
        return dataclasses.replace(
            self, padding=((0, 0),) * self.ndim, padding_literal="dynamic same", dynamic_same=True
        )

    def min_input(self, i: int) -> int:
        """Smallest input size for which the layer has an output: at least 1 (a ceil_mode
        window may hang over the input's end; a transposed convolution's padding may crop
        all it makes)."""
        if self.dynamic_same:
            return 1
        lowest = 1
        while int(self._out_dim(i, lowest)) < 1:  # the output grows with n: a short walk
            lowest += 1
        if self.kind == AVGPOOL and self.ndim == 3:
            lowest = max(lowest, self.kernel[i])  # avg_pool3d refuses an input smaller than its kernel
        return lowest


@functools.lru_cache(maxsize=4096)
def _symbolic_out_dim(geometry: Geometry, i: int, n) -> Size:
    return geometry._out_dim(i, n)


def _conv_padding(padding, kernel, dilation, n) -> tuple[tuple[int, int], ...]:
    if padding == "valid":
        return ((0, 0),) * n
    if padding == "same":
        return tuple(formulas.split_padding(formulas.same_total_padding(k, d)) for k, d in zip(kernel, dilation))
    return tuple((p, p) for p in ntuple(padding, n))


def _literal(padding):
    """A padding as written, hashable: PyTorch accepts a list (``padding=[1, 1]``)."""
    return tuple(padding) if isinstance(padding, list) else padding


def conv_geometry(
    ndim: int,
    kernel,
    stride=1,
    padding=0,
    dilation=1,
    *,
    transposed: bool = False,
    output_padding=0,
    padding_mode: str = "zeros",
) -> Geometry:
    kernel = ntuple(kernel, ndim)
    dilation = ntuple(dilation, ndim)
    return Geometry(
        kind=TRANSPOSED if transposed else CONV,
        kernel=kernel,
        stride=ntuple(stride, ndim),
        padding=_conv_padding(padding, kernel, dilation, ndim),
        dilation=dilation,
        output_padding=ntuple(output_padding, ndim),
        padding_literal=_literal(padding),
        padding_mode=padding_mode,
    )


def pool_geometry(ndim: int, kind: str, kernel, stride=None, padding=0, dilation=1, ceil_mode=False) -> Geometry:
    kernel = ntuple(kernel, ndim)
    # PyTorch: stride None (or an empty list) means stride = kernel_size.
    stride = kernel if stride is None or stride == [] or stride == () else ntuple(stride, ndim)
    return Geometry(
        kind=kind,
        kernel=kernel,
        stride=stride,
        padding=tuple((p, p) for p in ntuple(padding, ndim)),
        dilation=ntuple(dilation, ndim),
        ceil_mode=bool(ceil_mode),
        padding_literal=_literal(padding),
    )


def torch_family(module) -> Optional[str]:
    """ "conv", "pooling" or "padding": the torch.nn family a layer's class (or one of its
    bases, for a subclass) belongs to; None for anything else."""
    for cls in type(module).__mro__:
        family = cls.__module__.rpartition(".")[2] if cls.__module__.startswith("torch.nn.modules.") else None
        if family in ("conv", "pooling", "padding"):
            return family
    return None


def is_convolution(module) -> bool:
    """A torch.nn convolution, transposed or not, in 1 to 3 dimensions (or a subclass):
    the layers "every convolution checked" counts."""
    import torch.nn as nn

    return isinstance(module, nn.modules.conv._ConvNd)


def geometry_of(module) -> Optional[Geometry]:
    """Geometry of a conv, transposed conv or pooling module; None for anything else."""
    if is_convolution(module):
        ndim = len(module.kernel_size)
        return conv_geometry(
            ndim,
            module.kernel_size,
            module.stride,
            module.padding,
            module.dilation,
            transposed=module.transposed,
            output_padding=module.output_padding,
            padding_mode=module.padding_mode,
        )
    for cls, kind, ndim in _POOLS():
        if isinstance(module, cls):
            return pool_geometry(
                ndim,
                kind,
                module.kernel_size,
                module.stride,
                module.padding,
                getattr(module, "dilation", 1),
                module.ceil_mode,
            )
    return None


def _POOLS():
    import torch.nn as nn

    return (
        (nn.MaxPool1d, MAXPOOL, 1),
        (nn.MaxPool2d, MAXPOOL, 2),
        (nn.MaxPool3d, MAXPOOL, 3),
        (nn.AvgPool1d, AVGPOOL, 1),
        (nn.AvgPool2d, AVGPOOL, 2),
        (nn.AvgPool3d, AVGPOOL, 3),
    )
