"""What a run is asked to do: passed explicitly from the CLI, the configuration or the API
down to the stage that needs it, never read from the environment."""

from __future__ import annotations

from dataclasses import dataclass

from convlint.common import Shape

__all__ = ["Options", "Shape"]


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
