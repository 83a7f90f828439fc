"""What a run is asked to do: passed explicitly from the CLI, the configuration or the API
down to the stage that needs it, never read from the environment."""

from __future__ import annotations

from dataclasses import dataclass


class Shape(tuple):
    """An example input's shape, and its dtype when it is not float32 (class labels,
    timesteps, token ids: ``1:int64``)."""

    dtype: str = "float32"

    def __new__(cls, sizes, dtype: str = "float32") -> "Shape":
        shape = super().__new__(cls, tuple(sizes))
        shape.dtype = dtype
        return shape

    def empty(self):
        """A meta tensor of this shape and dtype."""
        import torch

        return torch.empty(tuple(self), device="meta", dtype=getattr(torch, self.dtype))


def meta_input(shape):
    """A meta tensor for an example input (a ``Shape``, or a plain tuple: float32)."""
    return shape.empty() if isinstance(shape, Shape) else Shape(shape).empty()


@dataclass(frozen=True)
class Options:
    input_shapes: tuple = ()  # one shape per forward input; () to infer
    same: tuple = ()  # globs over qualified module names that keep their size
    select: tuple = ()
    ignore: tuple = ()
    exclude: tuple = ()
    # Run every op on meta tensors, also those whose output the transfer functions
    # predict (activations, norms, merges, cat, adaptive pooling, interpolation): slower,
    # and the self-check then covers those ops too.
    run_every_op: bool = False
