"""Leaf utilities that every stage may use: the version, how an exception reads in a
message, paths as findings show them, an example input as a meta tensor.

It imports nothing of convlint (the architecture contract in ``pyproject.toml`` keeps it
so), and torch only inside the function that needs it.
"""

from __future__ import annotations

import os
from typing import Optional, Sequence

VERSION = "0.1.0"


def describe(exc: BaseException, limit: int = 0) -> str:
    """``TypeError: first line of the message``: an exception as one line of a finding,
    cut to ``limit`` characters when one is given (PyTorch's messages can be long)."""
    text = str(exc).strip().splitlines()
    line = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
    return line if not limit or len(line) <= limit else line[: limit - 3].rstrip() + "..."


def shapes_text(shapes, sep: str = ", ") -> str:
    """``1x3x64x64, 1x16``: input shapes as messages write them."""
    return sep.join("x".join(map(str, s)) for s in shapes)


def relpath(path: str) -> str:
    """A path relative to the working directory when it is below it, else as given."""
    try:
        rel = os.path.relpath(path)
    except ValueError:  # another drive (Windows): the path as given is the answer
        return path
    return path if rel.startswith("..") else rel


class Shape(tuple):
    """An example input's shape, its dtype when it is not float32 (class labels,
    timesteps, token ids: ``1:int64``), and its spatial axes when they are not its last
    ones (a channels-last input: ``(1, 2)`` of N, H, W, C, read from the convolutions)."""

    dtype: str = "float32"
    spatial: Optional[tuple] = None

    def __new__(cls, sizes, dtype: str = "float32", spatial: Optional[Sequence[int]] = None) -> "Shape":
        shape = super().__new__(cls, tuple(sizes))
        shape.dtype = dtype
        shape.spatial = tuple(spatial) if spatial is not None else None
        return shape

    def empty(self):
        """A meta tensor of this shape and dtype."""
        import torch

        return torch.empty(tuple(self), device="meta", dtype=getattr(torch, self.dtype))

    def with_sizes(self, sizes: Sequence[int]) -> "Shape":
        """Another shape of the same dtype and layout."""
        return Shape(sizes, self.dtype, self.spatial)


def spatial_axes(shape: Sequence[int]) -> tuple[int, ...]:
    """The axes of an input that hold its spatial sizes: those a ``Shape`` names, else its
    last ones after batch and channels (at most three)."""
    spatial = getattr(shape, "spatial", None)
    if spatial is not None:
        return spatial
    return tuple(range(2, len(shape)))[-3:] if len(shape) > 2 else ()


def with_spatial_sizes(shape: Sequence[int], sizes: Sequence[int]) -> "Shape":
    """``shape`` with its spatial sizes (in order) replaced by ``sizes``."""
    out = list(shape)
    for axis, n in zip(spatial_axes(shape), sizes):
        out[axis] = int(n)
    return shape.with_sizes(out) if isinstance(shape, Shape) else Shape(out)


def meta_input(shape):
    """A meta tensor for an example input (a ``Shape``, or a plain tuple: float32)."""
    return shape.empty() if isinstance(shape, Shape) else Shape(shape).empty()


_FROZEN: list = []


def freeze_once() -> None:
    """Before a process's first build: what is alive (torch, the rules, the user's modules)
    is frozen, so that the garbage collector's full collections while models are built and
    analysed walk what they allocate, not every object the imports made (one full
    collection over torch's objects is 0.07 s, more than building a ResNet-50 on meta).
    Once: a long-lived process (pytest --convlint) would otherwise keep each model's garbage."""
    if not _FROZEN:
        import gc

        gc.freeze()
        _FROZEN.append(True)
