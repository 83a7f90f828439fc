"""The input contract: what the caller of a deployed model needs from its input domain.

- ``nearest``: the sizes nearest a given input at which the model runs, below and above;
- ``pad_amounts`` and ``fit``: the ``F.pad`` amounts that take an input to the nearest
  size above, and the crop that takes an output back ("pad, run, crop" done once);
- ``guard``: a forward pre-hook that refuses an input the model cannot run, at the input,
  naming the rule it breaks and the nearest sizes that run, instead of a size error deep
  inside the network.

Every answer is the domain's (``input_domain.Domain``): the sizes tried are those its
statement allows per dim, and each is accepted only where ``Domain.contains`` says the
model runs.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

from convlint.common import shapes_text, spatial_axes, with_spatial_sizes
from convlint.domain_statement import UNBOUNDED, AxisSet

if TYPE_CHECKING:
    from convlint.input_domain import Domain

# How many sizes per dim, and how many combinations of them, ``nearest`` tries before it
# says there is none: enough for a period of 64 on every dim of a joint domain.
PER_DIM = 128
TRIES = 20000


class InputSizeError(ValueError):
    """An input the model cannot run, refused by ``guard`` before the model sees it."""


class ExportRefused(RuntimeError):
    """torch.export refused a spec by the domain (``DynamicShapes.export``)."""


@dataclass(frozen=True)
class Nearest:
    """The spatial sizes nearest an input's at which the model runs: every dim at most
    (``below``) or at least (``above``) the input's; None where there is none (or none
    within PER_DIM allowed sizes of each dim)."""

    below: Optional[tuple]
    above: Optional[tuple]


def sizes_of(domain: Domain, shape: Sequence[int]) -> tuple:
    """The spatial sizes of ``shape`` (the first input's), in the domain's symbol order;
    a shape of another rank is read at the same axes counted from the end (an unbatched
    input)."""
    offsets = _offsets(domain)
    if offsets and len(shape) < -min(offsets):
        raise ValueError(
            f"shape {tuple(shape)} has no spatial dims where the example {tuple(domain.input_shapes[0])} has them"
        )
    return tuple(int(shape[o]) for o in offsets)


def _offsets(domain: Domain) -> list[int]:
    """The spatial axes of the first input, counted from the end."""
    example = domain.input_shapes[0]
    return [axis - len(example) for axis in spatial_axes(example)]


def _shape(domain: Domain, sizes: Sequence[int]) -> tuple:
    """The example input with these spatial sizes."""
    return tuple(with_spatial_sizes(domain.input_shapes[0], sizes))


def runs(domain: Domain, sizes: Sequence[int]) -> bool:
    """Does the model run at these spatial sizes (the other dims as at the example)?"""
    return domain.contains(_shape(domain, sizes))


def nearest(domain: Domain, shape: Sequence[int]) -> Nearest:
    """The sizes nearest ``shape``'s at which the model runs, below and above (fewest
    sizes added or taken away in all; every dim moves the same way)."""
    sizes = sizes_of(domain, shape)
    return Nearest(_search(domain, sizes, -1), _search(domain, sizes, +1))


def _allowed(domain: Domain) -> dict:
    """symbol -> a test of one dim's size, from the statement's parts about that dim alone."""
    tests: dict = {}
    for part in domain.stated.parts:
        if part.axis is not None:
            for symbol in part.symbols:
                tests[symbol] = part.axis.__contains__
    return tests


def _steps(test: Optional[Callable[[int], bool]], start: int, direction: int) -> list[int]:
    """Up to PER_DIM sizes from ``start`` on (``direction`` +1 up, -1 down) that pass ``test``."""
    found, n = [], start
    while len(found) < PER_DIM and 1 <= n <= UNBOUNDED:
        if test is None or test(n):
            found.append(n)
        n += direction
        if abs(n - start) > PER_DIM * 64:  # a dim whose sizes are that sparse: no nearer one
            break
    return found


def _search(domain: Domain, sizes: tuple, direction: int) -> Optional[tuple]:
    """Best first over the combinations of each dim's allowed sizes, by total distance."""
    allowed = _allowed(domain)
    steps = [_steps(allowed.get(s), n, direction) for s, n in zip(domain.symbols, sizes)]
    if any(not s for s in steps):
        return None
    start = (0,) * len(steps)
    heap = [(0, start)]
    seen = {start}
    for _ in range(TRIES):
        if not heap:
            return None
        _, index = heapq.heappop(heap)
        candidate = tuple(s[i] for s, i in zip(steps, index))
        if runs(domain, candidate):
            return candidate
        for axis in range(len(index)):
            if index[axis] + 1 < len(steps[axis]):
                nxt = index[:axis] + (index[axis] + 1,) + index[axis + 1 :]
                if nxt not in seen:
                    seen.add(nxt)
                    distance = sum(abs(s[i] - n) for s, i, n in zip(steps, nxt, sizes))
                    heapq.heappush(heap, (distance, nxt))
    return None


def pad_amounts(domain: Domain, shape: Sequence[int]) -> Optional[tuple]:
    """The ``F.pad`` amounts (last dim first, as ``F.pad`` reads them) that take an input of
    ``shape`` to the nearest size above at which the model runs, all added at the end of
    each dim (right, bottom); None where no size above runs."""
    above = nearest(domain, shape).above
    return None if above is None else _amounts(sizes_of(domain, shape), above)


def _amounts(sizes: Sequence[int], padded: Sequence[int]) -> tuple:
    """``F.pad``'s amounts from ``sizes`` to ``padded``, all at the end, last dim first."""
    amounts: list = []
    for n, m in reversed(list(zip(sizes, padded))):
        amounts += [0, m - n]
    return tuple(amounts)


@dataclass(frozen=True)
class Fitted:
    """An input padded to a size the model runs at, and how to crop an output back."""

    input: Any  # the padded tensor
    sizes: tuple  # the input's own spatial sizes
    padded: tuple  # the spatial sizes it was padded to

    def crop(self, output: Any) -> Any:
        """``output`` cut back to the input's own sizes, scaled as the model scales them
        (an output at twice the input's size is cut to twice its sizes), at the same axes
        counted from the end."""
        index = [slice(None)] * output.dim()
        axes = range(output.dim() - len(self.sizes), output.dim())
        for axis, n, m in zip(axes, self.sizes, self.padded):
            keep = round(n * output.shape[axis] / m)
            index[axis] = slice(0, keep)
        return output[tuple(index)]


def fit(x: Any, domain: Domain, mode: str = "constant", value: float = 0.0) -> Fitted:
    """``x`` padded at the end of each spatial dim to the nearest size above at which the
    model runs (``Fitted.input``), and ``Fitted.crop`` to cut the model's output back::

        fitted = convlint.fit(image, domain)
        mask = fitted.crop(model(fitted.input))
    """
    import torch.nn.functional as F

    sizes, padded = sizes_of(domain, tuple(x.shape)), nearest(domain, tuple(x.shape)).above
    if padded is None:
        raise InputSizeError(f"no size at or above {shapes_text([sizes])} runs the model")
    amounts = _amounts(sizes, padded)
    if not any(amounts):
        return Fitted(x, sizes, padded)
    kwargs = {"value": value} if mode == "constant" else {}
    return Fitted(F.pad(x, amounts, mode=mode, **kwargs), sizes, padded)


def refusal(domain: Domain, shape: Sequence[int], name: str) -> Optional[str]:
    """Why the model ``name`` refuses an input of ``shape``, or None where it may run:
    the rule of its domain the sizes break, where the model would fail, and the nearest
    sizes that run."""
    sizes = sizes_of(domain, shape)
    env = domain.env(_shape(domain, sizes))
    failing = [c for c in domain.conditions if c.refuses(env)]
    if not failing:
        return None
    rules = [p.text for p in domain.stated.parts if not p.test(env)]
    near = nearest(domain, shape)
    offers = [
        f"{shapes_text([s])} {word}" for s, word in ((near.below, "below"), (near.above, "above")) if s is not None
    ]
    at = ", ".join(f"{s} = {n}" for s, n in zip(domain.symbols, sizes))
    return (
        f"{name} cannot run at {at}: it needs {'; '.join(rules) or str(domain)}"
        f" (else it fails at {failing[0].where}"
        + (f", line {failing[0].site.line}" if failing[0].site is not None else "")
        + ")"
        + (f"; nearest sizes that run: {', '.join(offers)} (convlint.fit pads to the one above)" if offers else "")
    )


def guard(model: Any, domain: Domain, name: Optional[str] = None) -> Any:
    """``model`` with a forward pre-hook that raises ``InputSizeError`` for a first input
    the domain refuses, and passes every other input untouched. Each size is decided once
    (a dict lookup after that). Returns the model; ``model.convlint_guard.remove()`` takes
    the hook off."""
    name = name or f"`{type(model).__name__}`"
    decided: dict = {}
    example = domain.input_shapes[0]
    offsets = _offsets(domain)

    def check(_module: Any, args: tuple, kwargs: Optional[dict] = None) -> None:
        x = args[0] if args else next(iter((kwargs or {}).values()), None)
        shape = getattr(x, "shape", None)
        if shape is None or (offsets and len(shape) < -min(offsets)):
            return
        key = tuple(shape[o] for o in offsets)
        if key not in decided:
            decided[key] = refusal(domain, with_spatial_sizes(example, key), name)
        if decided[key] is not None:
            raise InputSizeError(decided[key])

    guardable(model)
    handle = model.register_forward_pre_hook(check, with_kwargs=True)

    def refuse_script() -> None:  # torch.jit.script asks a module this before compiling it
        raise TypeError(
            "torch.jit.script cannot compile convlint.guard's check (Python): take it off first with "
            "model.convlint_guard.remove(), script, and check inputs with domain.refuses(x.shape)"
        )

    model.convlint_guard = _Handle(handle, model)
    model.__dict__["__prepare_scriptable__"] = refuse_script
    return model


def guardable(model: Any) -> None:
    """Raise TypeError for a model no forward hook can be put on (a ScriptModule)."""
    import torch

    if isinstance(model, torch.jit.ScriptModule):
        raise TypeError(
            "a ScriptModule takes no forward hooks: guard the eager model, or check each input before "
            "the call with domain.refuses(x.shape) (convlint.contract.refusal gives the message)"
        )


class _Handle:
    """``model.convlint_guard``: ``remove()`` takes the check off (and lets torch.jit.script in)."""

    def __init__(self, handle: Any, model: Any) -> None:
        self._handle, self._model = handle, model

    def remove(self) -> None:
        self._handle.remove()
        self._model.__dict__.pop("__prepare_scriptable__", None)


# ---------------------------------------------------------------- torch.export


@dataclass(frozen=True)
class Family:
    """Sizes ``period * k + residue`` for ``k`` in ``low..high``: one torch.export dim."""

    name: str
    period: int
    residue: int
    low: int
    high: int

    def size(self, k: int) -> int:
        return self.period * k + self.residue

    def expression(self) -> str:
        root = self.name
        if self.period != 1:
            root = f"{self.period} * {root}"
        return f"{root} + {self.residue}" if self.residue else root


@dataclass(frozen=True)
class DynamicShapes:
    """The ``dynamic_shapes`` of ``torch.export.export`` for a model's inputs, by its domain:
    a ``Dim`` per free spatial dim (one shared by dims that must be equal), derived dims for
    periods (``8 * h``), and the TensorRT-style minimum / optimum / maximum shapes."""

    families: tuple  # per spatial dim of the first input: (axis, Family or None: static)
    inputs: int  # how many inputs forward takes (the others are static)
    minimum: tuple
    optimum: tuple
    maximum: tuple
    narrowed: tuple  # what the domain allows that the dims leave out, and why
    exact: bool = True  # the domain's: every size of the spec runs the model

    @property
    def spec(self) -> tuple:
        """The ``dynamic_shapes`` argument: ``torch.export.export(model, args, dynamic_shapes=spec)``."""
        from torch.export import Dim

        dims: dict = {}
        first = {}
        for axis, family in self.families:
            if family is None:
                continue
            if family.name not in dims:
                dims[family.name] = Dim(family.name, min=family.low, max=family.high)
            dim = dims[family.name]
            dim = dim * family.period if family.period != 1 else dim
            first[axis] = dim + family.residue if family.residue else dim
        return (first, *([None] * (self.inputs - 1)))

    def export(self, model: Any) -> Any:
        """``torch.export.export(model, (zeros(optimum),), dynamic_shapes=spec)``. Where
        torch.export refuses the spec, raise ``ExportRefused`` saying whose constraint it
        is: with an exact domain the model runs at every size of the spec, so a constraint
        export adds is torch.export's own (its reasoning about computed sizes), not the
        model's; its message follows."""
        import torch

        try:
            return torch.export.export(model, (torch.zeros(self.optimum),), dynamic_shapes=self.spec)
        except Exception as exc:
            if "Constraints violated" not in str(exc) and "inconsistent" not in str(exc):
                raise
            whose = (
                "the model runs at every size of this spec (convlint's domain is exact), so the constraint is "
                "torch.export's own: its reasoning about sizes the model computes"
                if self.exact
                else "convlint's domain is not exact here, so the constraint may be the model's"
            )
            first = next((line for line in str(exc).splitlines() if line.strip()), "")
            raise ExportRefused(f"torch.export refused the spec: {whose}; torch.export said: {first}") from exc

    def source(self) -> str:
        """The spec as Python to paste beside the export call."""
        lines, made = ["from torch.export import Dim", ""], set()
        for _, family in self.families:
            if family is not None and family.name not in made:
                made.add(family.name)
                lines.append(f'{family.name} = Dim("{family.name}", min={family.low}, max={family.high})')
        entries = ", ".join(f"{axis}: {f.expression()}" for axis, f in self.families if f is not None)
        rest = ", None" * (self.inputs - 1)
        lines.append(
            f"dynamic_shapes = ({{{entries}}}{rest},)"
            if self.inputs == 1
            else f"dynamic_shapes = ({{{entries}}}{rest})"
        )
        return "\n".join(lines) + "\n"


def dynamic_shapes(domain: "Domain", max_size: Optional[int] = None) -> DynamicShapes:
    """The ``torch.export`` dims of the first input's spatial sizes, each size at most
    ``max_size`` (default: four times the largest example size). torch.export takes one
    residue per dim and no size below 2 (it specializes 0 and 1): what the domain allows
    beyond that is said in ``narrowed``, never silently dropped."""
    stated = domain.stated
    example = domain.input_shapes[0]
    top = max_size or 4 * max(domain.example[s] for s in domain.symbols)
    per_symbol: dict = {}
    narrowed: list = []
    for part in stated.parts:
        if part.axis is not None:
            for s in part.symbols:
                per_symbol[s] = (part.axis, (s,))
        elif part.square is not None:
            for s in part.symbols:
                per_symbol[s] = (part.square, part.symbols)
            if part.text != part.square.phrase([None, *part.symbols]):  # not "H = W ...": an equation's squares
                narrowed.append(f"{part.text}: square inputs only (torch.export's dims cannot state the rest)")
        else:
            for s in part.symbols:
                per_symbol[s] = (None, (s,))
            narrowed.append(f"{part.text}: held at the example (torch.export's dims cannot state it)")
    families, made = [], {}
    for s, axis in zip(domain.symbols, spatial_axes(example)):
        sizes, group = per_symbol.get(s, (None, (s,)))
        if sizes is None and s not in per_symbol:  # no condition: every size from the layers' bound
            sizes = AxisSet(s, stated.lowest[s], stated.lowest[s])
        key = tuple(map(str, group))
        if key not in made:
            made[key] = _family("_".join(n.lower() for n in key), sizes, top, narrowed, " = ".join(key))
        families.append((axis, made[key]))
    shapes = []
    for pick in (lambda f, n: f.size(f.low), lambda f, n: _nearest_in(f, n), lambda f, n: f.size(f.high)):
        sizes = [n if f is None else pick(f, n) for (_, f), n in zip(families, map(domain.example.get, domain.symbols))]
        shapes.append(tuple(with_spatial_sizes(example, sizes)))
    return DynamicShapes(tuple(families), len(domain.input_shapes), *shapes, tuple(narrowed), domain.exact)


def _nearest_in(family: Family, n: int) -> int:
    """The size of ``family`` nearest ``n`` from above (its largest where none is)."""
    k = max(family.low, -(-(n - family.residue) // family.period))
    return family.size(min(k, family.high))


def _family(name: str, sizes, top: int, narrowed: list, said: str) -> Optional[Family]:
    """The one-residue family of ``sizes`` (an AxisSet) that torch.export can state."""
    if sizes is not None and sizes.lowest is not None and not sizes.residues and sizes.also:
        low, high = min(sizes.also), max(sizes.also)
        if low == high:  # one size: static is the whole truth (export makes no Dim of a single value)
            return None
        if list(sizes.also) == list(range(low, high + 1)) and low >= 2:  # a range of sizes: a bounded dim
            return Family(name, 1, 0, low, high)
    if sizes is None or sizes.lowest is None or sizes.beyond is not None or not sizes.residues:
        narrowed.append(f"{said}: held at the example (no period torch.export's dims can state)")
        return None
    period = sizes.period
    residue = 0 if 0 in sizes.residues else min(sizes.residues)
    first = max(sizes.start, sizes.lowest)
    low = max(-(-(first - residue) // period), 2 if period == 1 or residue == 0 else 1)
    family = Family(name, period, residue, low, max((top - residue) // period, low))
    others = sorted(sizes.residues - {residue})
    if others:
        narrowed.append(
            f"{said} % {period} in {{{residue}}} only (the model also runs at {', '.join(map(str, others))}): one residue per dim"
        )
    smallest = next((n for n in range(sizes.lowest, family.size(low)) if n in sizes), None)
    if smallest is not None:
        narrowed.append(
            f"{said} from {family.size(low)} (the model also runs at {smallest}): torch.export specializes sizes 0 and 1"
        )
    return family
