"""The input domain in words: the one renderer of every statement about which sizes run.

``state(domain, select)`` states where a model runs (``select``: only some conditions, the
merges one finding groups): per dim where the truth is per dim ("H, W >= 17 and multiples
of 8", "H % 32 in {0, 17..31}", "H in 223..224"), jointly where it is joint ("H = W = 256",
"H % 2 = W % 2"), and as the condition itself where it fits no such form
("8*floor(H/4)*floor(W/4) = 2048"). Every part of a ``Statement`` carries the predicate
its words mean (``Statement.__contains__``), so a test can hold the words, not only the
conditions, against PyTorch. The smallest failing size and the first above the example
are worked out from the same conditions.

Per-dim sets repeat with a period (sizes are quasi-affine in the input): a window of twice
the example plus two periods is evaluated and the pattern extended; a joint part is
recognised on a grid around the lower bound and the example.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from convlint import pretty
from convlint.affine import comparable
from convlint.dims import free
from convlint.samesize import period_of, periodic, smallest_defined

# A Domain and its Conditions (convlint.input_domain, which states itself with this module).
Domain = Condition = Any

MAX_PERIOD = 1024  # past this, the pattern of a dim is not worked out
UNBOUNDED = 1 << 20  # "no H up to 1048576"
HANDFUL = 5  # never more runs of numbers than this in one set


# ---------------------------------------------------------------- one dim


@dataclass(frozen=True)
class AxisSet:
    """The sizes of one input dim at which the model runs (given the others): every
    n >= ``start`` whose ``n % period`` is in ``residues``, and the sizes in ``also``
    below it. ``lowest`` is where every layer's limit holds (None: nowhere up to 2**20);
    ``joint`` says that a condition ties this dim to another."""

    symbol: Any
    lowest: Optional[int]
    start: int = 1
    period: int = 1
    residues: frozenset = frozenset({0})
    also: tuple = ()
    joint: bool = False
    causes: tuple = ()  # what restricts it beyond the layers' limits: `fc` (Linear), a merge
    # a set with no period (a fold of L tokens to a side of int(sqrt(L))): ``also`` lists it
    # below ``start``, and the conditions themselves decide from there on
    beyond: Optional[Callable[[int], bool]] = field(default=None, compare=False)

    def __contains__(self, n: int) -> bool:
        if self.lowest is None or n < self.lowest:
            return False
        if self.beyond is not None and n >= self.start:
            return self.beyond(n)
        return n in self.also or (n >= self.start and n % self.period in self.residues)

    @property
    def every_size_above(self) -> bool:
        """Every size from ``lowest`` on: a lower bound says it all."""
        return (
            self.lowest is not None
            and self.beyond is None
            and self.start == self.lowest
            and len(self.residues) == self.period
        )

    def key(self) -> tuple:
        # sets with no period are stated per dim: alike below ``start`` says nothing past it
        return (self.lowest, self.start, self.period, self.residues, self.also, id(self) if self.beyond else None)

    def phrase(self, names: list, bound: bool = True) -> str:
        """``H, W >= 17 and multiples of 8``; ``H % 32 in {0, 17..31}``; ``H in 223..224``;
        without ``bound``, only what it needs beyond the layers' lower bound ("" if nothing).
        ``names`` joined by " = " state one size shared by those dims (``H = W = 256``)."""
        shared = len(names) > 1 and names[0] is None
        names = [str(n) for n in (names[1:] if shared else names)]
        said = " = ".join(names) if shared else ", ".join(names)
        plural = len(names) > 1 and not shared
        if self.lowest is None:
            return f"no {said} up to {UNBOUNDED}"
        if self.beyond is not None:
            return (
                f"{said} in {_ranges(list(self.also), more=True)} (no period)"
                if self.also
                else f"no {said} up to {self.start - 1}"
            )
        if not self.residues:
            return _finite(said, self.also)
        threshold = self.start if bound or self.start > self.lowest else 1
        if self.also and all(
            n in self.also for n in range(self.lowest, self.start) if n % self.period in self.residues
        ):
            threshold = self.lowest if bound else 1  # "H in 16..31 or multiples of 16": the sizes below say it
        implied = next(n for n in range(1, self.period + 1) if n % self.period in self.residues)
        parts = [f"{said} >= {threshold}"] if threshold > implied else []
        if len(self.residues) < self.period:
            if self.residues == frozenset({0}):
                multiple = f"{'multiples' if plural else 'a multiple'} of {self.period}"
                parts.append(multiple if parts else f"{said}{', ' if shared else ' '}{multiple}")
            else:
                moduli = ", ".join(f"{n} % {self.period}" for n in names)
                parts.append(f"{moduli} in {_ranges(sorted(self.residues))}")
        if not parts:
            return said if shared else f"any {said}" if bound else ""
        text = " and ".join(parts)
        if self.also:
            text = f"{_finite(said, self.also)} or {text if text.startswith(names[0]) else f'{said} {text}'}"
        return text


def _ranges(values: list, more: bool = False) -> str:
    """``{0, 17..31}``: runs of consecutive numbers as ranges; past a handful, the count and
    the span (the set itself is in JSON's conditions). ``more``: the set goes on past
    ``values``; the first handful of runs and ``...``."""
    runs: list = []
    for v in values:
        if runs and v == runs[-1][1] + 1:
            runs[-1][1] = v
        else:
            runs.append([v, v])
    if len(runs) > HANDFUL and not more:
        return f"{len(values)} values from {values[0]} to {values[-1]}"
    shown = [str(a) if a == b else f"{a}, {b}" if b == a + 1 else f"{a}..{b}" for a, b in runs[:HANDFUL]]
    return "{" + ", ".join(shown + ["..."] * more) + "}"


def _finite(names: str, sizes: tuple) -> str:
    if not sizes:
        return f"no {names}"
    if len(sizes) == 1:
        return f"{names} = {sizes[0]}"
    if list(sizes) == list(range(sizes[0], sizes[-1] + 1)):
        return f"{names} in {sizes[0]}..{sizes[-1]}"
    return f"{names} in {_ranges(list(sizes))}"


def _pattern(passes: Callable[[int], bool], lowest: int, period: int, around: int) -> tuple:
    """(start, period, residues, also) of a 1-D set from ``lowest`` on: it repeats with
    ``period`` (the given one or a divisor) from ``start``; ``around`` is the example's size
    (the window reaches twice it)."""
    end = lowest + max(2 * around, 64) + 2 * period
    table = {n: passes(n) for n in range(lowest, end + period)}
    start = end
    while start > lowest and table[start - 1] == table[start - 1 + period]:
        start -= 1  # the pattern repeats from here on
    residues = frozenset(n % period for n in range(start, start + period) if table[n])
    # The repeating pattern may hold further down: start where it first holds for good.
    while start > lowest and table[start - 1] == ((start - 1) % period in residues):
        start -= 1
    period, residues = _shortest(period, residues)
    return start, period, residues, tuple(n for n in range(lowest, start) if table[n])


def _shortest(period: int, residues: frozenset) -> tuple:
    """The shortest period the residues repeat with: the expressions' period is a multiple
    of the set's (a Max of two sizes that each repeat every 32 is read as 512)."""
    for q in range(1, period):
        if period % q == 0 and all((r in residues) == (r % q in residues) for r in range(period)):
            return q, frozenset(r for r in residues if r < q)
    return period, residues


def _period(conditions, base: dict, symbols) -> Optional[int]:
    """A period of the conditions in ``symbols`` (the others as in ``base``); None when
    they have none (``periodic``)."""
    period = 1
    for c in conditions:
        for e in c.expressions:
            fixed = e.xreplace({s: v for s, v in base.items() if s not in symbols}) if hasattr(e, "xreplace") else e
            if not periodic(fixed):
                return None
            period = min(math.lcm(period, period_of(fixed)), MAX_PERIOD)
    return period


def _set(symbol, lowest: int, passes: Callable[[int], bool], period: Optional[int], around: int) -> AxisSet:
    """The sizes from ``lowest`` on that pass: a periodic pattern, or, with no period, the
    ones in a window and the test itself past it."""
    if period is None:
        end = lowest + max(2 * around, 64)
        return AxisSet(
            symbol, lowest, end, 1, frozenset(), tuple(n for n in range(lowest, end) if passes(n)), beyond=passes
        )
    start, period, residues, also = _pattern(passes, lowest, period, around)
    return AxisSet(symbol, lowest, start, period, residues, also)


# ---------------------------------------------------------------- parts of a statement


@dataclass(frozen=True)
class Part:
    """One clause of a statement: its words, and the sizes they mean."""

    symbols: tuple
    text: str
    needs: str  # the words without the layers' lower bound ("" when it adds nothing)
    test: Callable[[dict], bool] = field(compare=False)
    axis: Optional[AxisSet] = None  # a per-dim part: dims stated alike are stated once
    # the sizes n at which n x n runs: all of a part "H = W ...", a subset of an equation's
    square: Optional[AxisSet] = field(default=None, compare=False)


def _axis_part(symbols: tuple, axis: AxisSet) -> Part:
    names = list(symbols)
    return Part(
        symbols,
        axis.phrase(names),
        axis.phrase(names, bound=False),
        lambda env: all(env[s] in axis for s in symbols),
        axis,
    )


def _diagonal_part(symbols: tuple, axis: AxisSet) -> Part:
    names = [None, *symbols]

    def test(env: dict) -> bool:
        return len({env[s] for s in symbols}) == 1 and env[symbols[0]] in axis

    needs = axis.phrase(names, bound=False) or " = ".join(map(str, symbols))
    return Part(symbols, axis.phrase(names), needs, test, square=axis)


def _congruence_part(symbols: tuple, period: int) -> Part:
    text = " = ".join(f"{s} % {period}" for s in symbols)
    return Part(symbols, text, text, lambda env: len({env[s] % period for s in symbols}) == 1)


def _ordered_part(a, b) -> Part:
    text = f"{a} >= {b}"
    return Part((a, b), text, text, lambda env: env[a] >= env[b])


def _equation(c: Condition, lowest: dict) -> str:
    if c.kind in ("merge", "fixed") and len(c.expressions) == 2:
        a, b = sorted(pretty.show(e) for e in c.expressions) if c.kind == "merge" else map(pretty.show, c.expressions)
        ones = c.broadcasts and any(_can_be_one(e, lowest) for e in c.expressions)
        return f"{a} = {b}" + (" (or one of them 1)" if ones else "")
    if c.kind == "view":
        return " and ".join(f"{pretty.show(e)} whole" for e in c.expressions)
    if c.kind == "limit" and len(c.expressions) == 2:
        return f"{pretty.show(c.expressions[0])} >= {pretty.show(c.expressions[1])}"
    return " and ".join(pretty.show(e) for e in c.expressions) or c.where


def _can_be_one(expression, lowest: dict) -> bool:
    """Is a merge operand's size 1 at some input from the layers' lower bounds up (a size
    that broadcasts)? A constant other than 1 never is; sizes grow with the input, so an
    expression is tried at the sizes nearest the bounds."""
    from convlint.sizes import evaluate_int

    names = sorted(free(expression), key=str)
    if not names:
        return evaluate_int(expression, {}) == 1
    ranges = [range(lowest.get(s) or 1, (lowest.get(s) or 1) + 16) for s in names]
    points = itertools.product(*ranges) if len(names) <= 2 else (tuple([n] * len(names)) for n in ranges[0])
    return any(evaluate_int(expression, dict(zip(names, point))) == 1 for point in points)


LONGEST_EQUATION = 100  # past this, an equation is named, not written (JSON has it)


def _equation_part(symbols: tuple, conditions: list, lowest: dict) -> Part:
    text = " and ".join(dict.fromkeys(_equation(c, lowest) for c in conditions))
    if len(text) > LONGEST_EQUATION:  # a window partition's token count: nobody reads 600 characters
        names = ", ".join(map(str, symbols))
        text = f"{names} as {pretty.names(list(dict.fromkeys(c.where for c in conditions)))} allow{'s' * (len(conditions) == 1)}"

    def test(env: dict) -> bool:
        return all(env[s] >= (lowest[s] or UNBOUNDED + 1) for s in symbols) and not any(
            c.refuses(env) for c in conditions
        )

    return Part(symbols, text, text, test)


# ---------------------------------------------------------------- the statement


@dataclass(frozen=True)
class Statement:
    """Where a model runs, in words whose every part is a predicate (see the module's doc)."""

    symbols: tuple
    lowest: dict  # symbol -> smallest size every layer's limit holds at (None: not up to 2**20)
    parts: tuple[Part, ...]
    first: Optional[dict]  # the smallest input (lower bound apart) the stated conditions refuse
    above: Optional[dict]  # the first such input above the example
    causes: tuple[str, ...]  # what refused it: `fc` (Linear), `torch.cat(...)` in `up`
    trivial: bool  # every size above a bound per dim: the bound says it all

    def __contains__(self, env: dict) -> bool:
        return all(part.test(env) for part in self.parts)

    def __str__(self) -> str:
        return "; ".join(p.text for p in self.parts)

    @property
    def bounds(self) -> str:
        """``H, W >= 5`` (the layers' limits alone); "" where every size from 1 runs them."""
        return self._bounds(every=False)

    @property
    def lower(self) -> str:
        """The layers' lower bound of every dim: ``H >= 1, W >= 2``."""
        return self._bounds(every=True)

    def _bounds(self, every: bool) -> str:
        groups: dict = {}
        for s in self.symbols:
            groups.setdefault(self.lowest[s], []).append(str(s))
        said = [
            f"{', '.join(names)} >= {n}" if n is not None else f"no {', '.join(names)} up to {UNBOUNDED}"
            for n, names in groups.items()
            if every or n != 1
        ]
        return ", ".join(said)

    @property
    def summary(self) -> str:
        """With what imposes it: ``H, W multiples of 16: `torch.cat(...)` in `up```; the
        lower bound alone where that is all (``H >= 1, W >= 2``). The words every report uses."""
        if self.trivial:
            return self.lower
        causes = list(self.causes)
        more = f" and {len(causes) - 2} more" if len(causes) > 2 else ""
        return f"{self}: {', '.join(causes[:2])}{more}" if causes else str(self)

    @property
    def needs(self) -> str:
        """What the conditions need beyond the layers' lower bound: ``H, W multiples of 8``."""
        return "; ".join(p.needs for p in self.parts if p.needs)


def state(domain: Domain, select: Optional[Callable[[Condition], bool]] = None) -> Statement:
    """The sizes at which ``domain``'s model runs, as far as the conditions ``select`` keeps
    (all but the layers' limits when None; the limits always give the lower bound)."""
    symbols, example = tuple(domain.symbols), dict(domain.example)
    inputs = set(symbols)
    single: dict = {s: [] for s in symbols}
    chosen: list[Condition] = []
    for c in domain.conditions:
        mine = c.symbols & inputs
        if c.kind == "limit" and len(mine) == 1:
            single[next(iter(mine))].append(c)
        elif mine and c.kind != "guard" and (c.kind == "limit" or select is None or select(c)):
            chosen.append(c)
    # A block used many times repeats its conditions: each is evaluated once, for all who impose it.
    alike: dict = {}
    for c in chosen:
        alike.setdefault((c.kind, _test_key(c.test), _expressions_key(c), c.broadcasts, c.branches), []).append(c)
    chosen = [same[0] for same in alike.values()]
    imposed = {id(same[0]): [c.where for c in same] for same in alike.values()}
    for s in symbols:  # each distinct limit once (a block used many times repeats them)
        single[s] = list({(_test_key(c.test), _expressions_key(c)): c for c in single[s]}.values())
    lowest = {
        s: smallest_defined(lambda n, s=s: all(c.holds({**example, s: n}) is not False for c in single[s]), UNBOUNDED)
        for s in symbols
    }
    refused: dict = {}  # condition -> refused somewhere in a window: it is a cause

    def fails(env: dict, among: list) -> bool:
        bad = [c for c in among if c.refuses(env)]
        for c in bad:
            refused.update(dict.fromkeys(imposed.get(id(c), [c.where])))
        return bool(bad)

    parts: list[Part] = []
    for group in _components(symbols, chosen):
        conditions = [c for c in chosen if c.symbols & set(group)]
        if len(group) == 1 or any(lowest[s] is None for s in group):
            for s in group:
                parts.append(_axis_part((s,), _axis(s, lowest[s], conditions, example, fails)))
        else:
            parts += _joint(group, conditions, lowest, example, fails)
    parts = _grouped(parts)
    trivial = all(p.axis is not None and p.axis.every_size_above for p in parts)
    # every size above the bound runs: nothing to find, and a scan of all of them is the
    # slowest part of a large model's statement
    first, above = (
        (None, None)
        if trivial
        else _first_failures(symbols, chosen, lowest, example, _earlier(domain, chosen) if select else ())
    )
    return Statement(symbols, lowest, tuple(parts), first, above, tuple(refused), trivial)


def _expressions_key(c: Condition) -> tuple:
    """The sizes a condition compares, keyed alike whichever core carries them."""
    return _comparable(c.expressions)


def _comparable(value: Any) -> Any:
    """A size, or a tuple of them at any depth, keyed by value: one block's sizes may be Qs
    and another's the sympy expressions of the same values (after a Max or a product)."""
    return tuple(map(_comparable, value)) if isinstance(value, tuple) else comparable(value)


def _test_key(test: Callable) -> Any:
    """What a condition's test is: its code and the values it closes over (two reshapes
    with the same new sizes from different old ones are different tests)."""
    try:
        cells = _comparable(tuple(cell.cell_contents for cell in test.__closure__ or ()))
        hash(cells)
    except (TypeError, ValueError):  # an unhashable or empty cell: the test is its own
        return id(test)
    return (test.__code__, cells)


def _earlier(domain: Domain, chosen: list) -> list:
    """The conditions of ops that run before every chosen one: where one of them fails,
    PyTorch raises there, before the chosen ops are reached."""
    origins = [c.origin for c in chosen if c.kind != "limit" and c.origin is not None]
    if not origins:
        return []
    order = {n: i for i, n in enumerate(origins[0].graph.nodes)}
    start = min(order.get(n, 0) for n in origins)
    return [
        c
        for c in domain.conditions
        if c.kind != "guard" and c not in chosen and c.origin is not None and order.get(c.origin, start) < start
    ]


def _components(symbols: tuple, conditions: list) -> list[tuple]:
    """The input's dims, grouped where a condition ties them (H and W of a flatten)."""
    owner = {s: i for i, s in enumerate(symbols)}

    def root(s):
        while owner[s] != owner[symbols[owner[s]]]:
            owner[s] = owner[symbols[owner[s]]]
        return symbols[owner[s]]

    for c in conditions:
        tied = [s for s in symbols if s in c.symbols]
        for s in tied[1:]:
            owner[root(s)] = owner[root(tied[0])]
    groups: dict = {}
    for s in symbols:
        groups.setdefault(root(s), []).append(s)
    return [tuple(g) for g in groups.values()]


def _axis(symbol, lowest: Optional[int], conditions: list, base: dict, fails, around: Optional[int] = None) -> AxisSet:
    """The sizes of one dim that run, the others as in ``base``; the window of sizes
    evaluated reaches twice ``around`` (the example's size: base's own may be far below
    it, and the sizes that run near the example would be left out)."""
    if lowest is None:
        return AxisSet(symbol, None)
    if not conditions:
        return AxisSet(symbol, lowest, lowest)
    period = _period(conditions, base, {symbol})
    around = max(around or 0, base.get(symbol, 16))
    return _set(symbol, lowest, lambda n: not fails({**base, symbol: n}, conditions), period, around)


def _joint(group: tuple, conditions: list, lowest: dict, example: dict, fails) -> list[Part]:
    """Dims a condition ties: per dim if the set is a product after all, ``H = W ...`` if
    only equal sizes run, ``H >= W`` or ``H % p = W % p`` if that is all it asks, else the
    conditions themselves (always true). A form is taken only if it agrees on a grid near
    the lower bound and the example and at random sizes up to four times the example."""
    window = {s: _window(lowest[s], example.get(s, 16), 12 if len(group) == 2 else 4) for s in group}
    grid = list(itertools.product(*(window[s] for s in group)))
    rng = random.Random(0)
    reach = {s: 4 * example.get(s, 16) + 64 for s in group}
    grid += [tuple(rng.randint(lowest[s], reach[s]) for s in group) for _ in range(400)]

    def runs(point: tuple) -> bool:
        return not fails({**example, **dict(zip(group, point))}, conditions)

    passing = {point for point in grid if runs(point)}
    if not passing:
        return [_equation_part(group, conditions, lowest)]
    ties = [c for c in conditions if any(len(free(e) & set(group)) > 1 for e in c.expressions)]
    # Conditions that tie the dims yet refuse no point of the grid (token counts that a
    # resampled position table always matches) leave the dims separate.
    separate = not any(fails({**example, **dict(zip(group, point))}, ties) for point in grid) if ties else True
    projections = [{p[i] for p in passing} for i in range(len(group))]
    if separate and all(all(p[i] in projections[i] for i in range(len(group))) == (p in passing) for p in grid):
        base = {**example, **dict(zip(group, min(passing)))}
        return [_axis_part((s,), _axis(s, lowest[s], conditions, base, fails, example.get(s))) for s in group]
    if all(len(set(p)) == 1 for p in passing):
        return [_diagonal_part(group, _squares(group, conditions, lowest, example, runs))]
    bounds = [_axis_part((s,), AxisSet(s, lowest[s], lowest[s])) for s in group if lowest[s] > 1]
    if len(group) == 2:
        for a, b in ((0, 1), (1, 0)):
            if all((p[a] >= p[b]) == (p in passing) for p in grid):
                return [_ordered_part(group[a], group[b]), *bounds]
    for period in range(2, 17):
        if all((len({v % period for v in p}) == 1) == (p in passing) for p in grid):
            return [_congruence_part(group, period), *bounds]
    part = _equation_part(group, conditions, lowest)
    if len({example.get(s) for s in group}) == 1:  # what it means for square inputs, as the example is
        squares = _squares(group, conditions, lowest, example, runs)
        said = f" (squares: {squares.phrase([None, *group])})" if not squares.every_size_above else ""
        part = dataclasses.replace(part, text=part.text + said, square=squares)
    return [part]


def _squares(group: tuple, conditions: list, lowest: dict, example: dict, runs) -> AxisSet:
    """The sizes n at which the input n x n (x n) runs: one size shared by the group's dims."""
    m = max(lowest[s] for s in group)
    period = _period(conditions, example, set(group))
    return _set(group[0], m, lambda n: runs((n,) * len(group)), period, example.get(group[0], 16))


def _window(lowest: Optional[int], around: int, half: int) -> list[int]:
    """Sizes near the lower bound and near the example."""
    low = lowest or 1
    return sorted({*range(low, low + 2 * half), *range(max(low, around - half), around + half + 1)})


def _grouped(parts: list[Part]) -> list[Part]:
    """Dims stated alike are stated once: ``H, W >= 17 and multiples of 8``."""
    out: list = []
    alike: dict = {}
    for part in parts:
        if part.axis is None:
            out.append(part)
        elif part.axis.key() in alike:
            out[alike[part.axis.key()]].append(part)
        else:
            alike[part.axis.key()] = len(out)
            out.append([part])
    return [p if isinstance(p, Part) else _axis_part(tuple(s for q in p for s in q.symbols), p[0].axis) for p in out]


def _first_failures(symbols: tuple, chosen: list, lowest: dict, example: dict, earlier=()) -> tuple:
    """The smallest input at or above the layers' bound that the conditions refuse (a
    square where the example is one), and the first above the example; where ``earlier``
    conditions are given, only sizes that pass them all (where PyTorch reaches the
    chosen ops and raises there)."""
    if not chosen or any(lowest[s] is None for s in symbols):
        return None, None

    def refused(env: dict) -> bool:
        return any(c.refuses(env) for c in chosen) and not any(c.refuses(env) for c in earlier)

    period = _period(chosen, example, set(symbols)) or 16  # no period: the window alone
    reach = max(example.values(), default=16) * 2 + 4 * period + 64
    square = len(set(example[s] for s in symbols)) == 1
    found = []
    for start in ({s: lowest[s] for s in symbols}, {s: example[s] + 1 for s in symbols}):
        hit = None
        if square:
            m = max(start.values())
            hit = next(
                (
                    {s: n for s in symbols}
                    for n in range(m, m + reach)
                    if refused({**example, **{s: n for s in symbols}})
                ),
                None,
            )
        if hit is None:
            along = [
                next(({**example, s: n} for n in range(start[s], start[s] + reach) if refused({**example, s: n})), None)
                for s in symbols
            ]
            along = [a for a in along if a is not None]
            hit = min(along, key=lambda env: sum(env[s] for s in symbols)) if along else None
        found.append({s: hit[s] for s in symbols} if hit is not None else None)
    return found[0], found[1]


def axis_set(domain: Domain, symbol) -> AxisSet:
    """The sizes of input dim ``symbol`` at which the model runs, the other dims at their
    example sizes (as ``Domain.contains`` decides them)."""
    example = domain.example
    mine = [c for c in domain.conditions if symbol in c.symbols]
    limits = [c for c in mine if c.kind == "limit" and len(c.symbols & set(domain.symbols)) == 1]
    lowest = smallest_defined(lambda n: all(c.holds({**example, symbol: n}) is not False for c in limits), UNBOUNDED)
    joint = any(len(c.symbols & set(domain.symbols)) > 1 for c in mine)
    elsewhere = tuple(dict.fromkeys(c.where for c in domain.conditions if c not in mine and c.holds(example) is False))
    if lowest is not None and elsewhere:  # the other dims at the example already fail: no size runs
        return AxisSet(symbol, lowest, lowest, 1, frozenset(), (), joint, elsewhere)
    others = list({(c.kind, c.expressions): c for c in mine if c not in limits}.values())
    causes: dict = {}

    def fails(env: dict, among: list) -> bool:
        bad = [c.where for c in among if c.holds(env) is False]
        causes.update(dict.fromkeys(bad))
        return bool(bad)

    found = _axis(symbol, lowest, others, example, fails)
    return dataclasses.replace(found, joint=joint, causes=tuple(causes))


def statement(domain: Domain) -> Optional[str]:
    """The domain in words when it is more than a lower bound per dim (``H = W = 256``,
    ``H, W >= 17 and multiples of 8``); None when every size above a bound runs."""
    said = domain.stated
    return None if said.trivial else said.summary
