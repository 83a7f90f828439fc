"""Sizes of the common form without sympy.

A ``Q`` is an integer quasi-affine expression: a constant plus integer multiples of atoms,
an atom an input symbol (by name) or ``floor(Q / d)`` for an integer d >= 2. Every size a
convolution, pooling, padding or resampling by an integer factor gives is one
(``floor((n + 2p - d(k-1) - 1) / s) + 1``); ``x % m`` is ``x - m * floor(x / m)`` and
``ceil(x / m)`` is ``-floor(-x / m)``. The form is canonical (terms sorted, each floor's
argument reduced), so ``==`` and ``hash`` are structural and cheap, and evaluation at
integer sizes needs no sympy.

The input's sizes are carried as Q (``sizes.symbolic.input_dim``; ``CONVLINT_SYMBOLIC_CORE=sympy``
carries sympy expressions instead). What Q does not compute itself is computed by sympy on
its sympy form, which replays the formula calls that made it, so every message reads as on
the sympy path (tests/test_affine.py compares both paths on every fixture: every finding
word for word, every domain, every size); sympy is imported only then (a product of sizes,
a Max, a message that prints a size).
"""

from __future__ import annotations

import functools
import itertools
import operator
from fractions import Fraction
from math import gcd, lcm
from typing import Optional, Union


class Floor:
    """``floor(arg / den)``, ``arg`` reduced (see ``floor_div``): its terms' coefficients
    and constant in 0..den-1, their gcd with ``den`` 1."""

    __slots__ = ("arg", "den", "_hash")

    def __init__(self, arg: "Q", den: int) -> None:
        self.arg, self.den = arg, den
        self._hash = hash(("floor", arg, den))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Floor) and self.den == other.den and self.arg == other.arg

    def __hash__(self) -> int:
        return self._hash

    def key(self) -> tuple:
        return (1, self.den, self.arg.key())

    def value(self, env: dict) -> int:
        return self.arg.value(env) // self.den

    def __repr__(self) -> str:
        return f"floor(({self.arg})/{self.den})"


Atom = Union[str, Floor]


def _key(atom: Atom) -> tuple:
    return (0, atom) if isinstance(atom, str) else atom.key()


def _sympy_symbol(name: str):
    """An input size's symbol as sympy holds it (see ``_size_symbol``)."""
    return _size_symbol()(name, integer=True, positive=True)


def _symbol_hash(name: str) -> int:
    return hash((0, ((name, 1),)))  # Q.symbol(name)'s hash: Q(0, ((name, 1),))


@functools.cache
def _size_symbol() -> type:
    """sympy's Symbol, hashing as the Q of the same name does (and equal to it: sympy
    compares a Q through its sympy form): a symbol read off a sympy expression (``free``)
    and the Q an env or the domain keys on are one key. Named Symbol, so that sympy orders
    and prints it as its own."""
    import sympy

    class Symbol(sympy.Symbol):
        __slots__ = ()

        def __hash__(self) -> int:
            return _symbol_hash(self.name)

    return Symbol


def canonical(symbol):
    """A symbol read off a sympy expression as convlint keys on it: an input size's symbol
    of the affine core (``_size_symbol``) is its Q; any other is itself."""
    if _size_symbol.cache_info().currsize and isinstance(symbol, _size_symbol()):
        return Q.symbol(symbol.name)
    return symbol


def _as_int(value):
    """An int, or sympy's Integer read as one (a shadow's fixed dims are sympy Integers);
    None for anything else."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if not isinstance(value, Q) and getattr(value, "is_Integer", False):
        return int(value)
    return None


def _sympy_of(value):
    return value._sympy_() if isinstance(value, Q) else value


_COMPILE_AFTER = 16  # evaluations before a size is compiled (compiling costs about 30 of them)


def _compiled(q: "Q"):
    """``q.value`` as one Python function of (env, Q.symbol): each input size read once,
    by name or by its Q, then one integer expression (``H + 2*((H + 1)//4)``)."""
    names = sorted(q.symbols())
    local = {name: f"v{i}" for i, name in enumerate(names)}

    def code(e: "Q") -> str:
        parts = [str(e.const)]
        for atom, c in e.terms:
            inner = local[atom] if isinstance(atom, str) else f"(({code(atom.arg)})//{atom.den})"
            parts.append(f"{c}*{inner}")
        return " + ".join(parts)

    reads = "".join(
        f"    {v} = env.get({name!r})\n    if {v} is None:\n        {v} = env[symbol({name!r})]\n"
        for name, v in local.items()
    )
    namespace: dict = {}
    exec(f"def value(env, symbol):\n{reads}    return {code(q)}\n", namespace)
    return namespace["value"]


class Q:
    """``const + sum(coeff * atom)``, terms sorted by atom, no zero coefficient.

    ``origin`` is the call that made it (``(formulas.fdiv, (a, 2))``, ``(operator.add, (a,
    1))``): its sympy form (``_sympy_``) is that call replayed on sympy, so what is printed
    is what the sympy path prints (Q's canonical ``floor((H + 1)/2)`` is sympy's
    ``floor((H - 1)/2) + 1``). An attribute Q does not have is its sympy form's: every
    consumer of sympy sizes keeps working while the hot ones move to Q's own methods."""

    __slots__ = ("const", "terms", "_hash", "origin", "_sym", "_evaluated", "_fn")

    def __init__(self, const: int = 0, terms: tuple = (), origin: Optional[tuple] = None) -> None:
        self.const, self.terms = const, terms
        # a constant hashes as its int (and sympy's Integer), so either finds it in a dict
        self._hash = hash(const) if not terms else hash((const, terms))
        self.origin, self._sym = origin, None
        self._evaluated, self._fn = 0, None

    def made_by(self, fn, *args) -> "Q":
        """This value, recorded as ``fn(*args)`` (a copy where it is one of the args: an
        operand keeps its own origin)."""
        return Q(self.const, self.terms, (fn, args))

    def _sympy_(self):
        if self._sym is None:
            if self.origin is None:
                self._sym = self.to_sympy({a: _sympy_symbol(a) for a in self.symbols()})
            else:
                fn, args = self.origin
                self._sym = fn(*map(_sympy_of, args))
        return self._sym

    def __getattr__(self, name: str):
        if name.startswith("__") or name == "name":  # dunders (copy, pickle): not sympy's; a
            raise AttributeError(name)  # sum or a floor has no name (the property raised): no import
        return getattr(self._sympy_(), name)

    # ------------------------------------------------------------ construction

    @staticmethod
    @functools.cache
    def symbol(name: str) -> "Q":
        """The input size ``name``: one object per name (code compares symbols by identity)."""
        return Q(0, ((name, 1),), (_sympy_symbol, (name,)))

    @staticmethod
    def _build(const: int, coeffs: dict) -> "Q":
        terms = tuple(sorted(((a, c) for a, c in coeffs.items() if c), key=lambda t: _key(t[0])))
        return Q(const, terms)

    def _plus(self, other: "Q") -> "Q":
        coeffs = dict(self.terms)
        for atom, c in other.terms:
            coeffs[atom] = coeffs.get(atom, 0) + c
        return Q._build(self.const + other.const, coeffs)

    def __add__(self, other):
        if isinstance(other, Q):
            return self._plus(other).made_by(operator.add, self, other)
        if _as_int(other) is not None:
            return self._plus(Q(_as_int(other))).made_by(operator.add, self, other)
        return self._sympy_() + other  # a fraction, a sympy expression: sympy's

    def __radd__(self, other):
        if _as_int(other) is not None:
            return self._plus(Q(_as_int(other))).made_by(operator.add, other, self)
        return other + self._sympy_()

    def _negated(self) -> "Q":
        return Q(-self.const, tuple((a, -c) for a, c in self.terms))

    def __neg__(self) -> "Q":
        return self._negated().made_by(operator.neg, self)

    def __sub__(self, other):
        if isinstance(other, Q):
            return self._plus(other._negated()).made_by(operator.sub, self, other)
        if _as_int(other) is not None:
            return self._plus(Q(-_as_int(other))).made_by(operator.sub, self, other)
        return self._sympy_() - other

    def __rsub__(self, other):
        if _as_int(other) is not None:
            return Q(_as_int(other))._plus(self._negated()).made_by(operator.sub, other, self)
        return other - self._sympy_()

    def _times(self, k: int) -> "Q":
        return Q(0) if k == 0 else Q(self.const * k, tuple((a, c * k) for a, c in self.terms))

    def __mul__(self, other):
        if _as_int(other) is not None:
            return self._times(_as_int(other)).made_by(operator.mul, self, other)
        if isinstance(other, Q) and not other.terms:
            return self._times(other.const).made_by(operator.mul, self, other)
        if isinstance(other, Q) and not self.terms:
            return other._times(self.const).made_by(operator.mul, self, other)
        return self._sympy_() * other  # a product of sizes, a fraction: sympy's

    def __rmul__(self, other):
        if _as_int(other) is not None:
            return self._times(_as_int(other)).made_by(operator.mul, other, self)
        return other * self._sympy_()

    def __bool__(self) -> bool:
        return bool(self.const) if not self.terms else True  # as sympy's Integer(0) is falsy

    # What Q does not compute itself, sympy does on its sympy form (a power, a comparison:
    # a guard), as it did before Q.
    def __pow__(self, other):
        return self._sympy_() ** _sympy_of(other)

    def __rpow__(self, other):
        return other ** self._sympy_()

    def __lt__(self, other):
        return self._sympy_() < _sympy_of(other)

    def __le__(self, other):
        return self._sympy_() <= _sympy_of(other)

    def __gt__(self, other):
        return self._sympy_() > _sympy_of(other)

    def __ge__(self, other):
        return self._sympy_() >= _sympy_of(other)

    def __abs__(self):
        return abs(self._sympy_())

    def __rfloordiv__(self, other):
        return other // self._sympy_()

    def __rmod__(self, other):
        return other % self._sympy_()

    def __round__(self, ndigits=None):
        return round(self._sympy_(), ndigits) if ndigits is not None else round(self._sympy_())

    def __floor__(self):
        import math

        return math.floor(self._sympy_())

    def __ceil__(self):
        import math

        return math.ceil(self._sympy_())

    def __truediv__(self, other):
        return self._sympy_() / _sympy_of(other)

    def __rtruediv__(self, other):
        return other / self._sympy_()

    def floor_div(self, den: int) -> "Q":
        """``floor(self / den)``, den a positive integer: the parts of the argument that
        ``den`` divides come out of the floor (``floor((4H + 6) / 4) = H + 1 + floor(2/4)``);
        what stays is divided by its gcd with ``den``."""
        if den <= 0:
            raise ValueError("floor division by a positive integer only")
        if den == 1:
            return self
        outside = {a: c // den for a, c in self.terms}
        inside = {a: c % den for a, c in self.terms if c % den}
        const_out, const_in = divmod(self.const, den)
        result = Q._build(const_out, outside)
        if not inside:
            return result  # const_in < den: floor(const_in / den) = 0
        g = den
        for c in inside.values():
            g = gcd(g, c)
        if g > 1:  # floor((g*x + r) / (g*d)) = floor((x + floor(r / g)) / d)
            inside = {a: c // g for a, c in inside.items()}
            const_in //= g
            den //= g
        if den == 1:
            return result + Q._build(const_in, inside)
        if len(inside) == 1:
            ((atom, c),) = inside.items()
            if c == 1 and isinstance(atom, Floor):
                # floor((floor(A/a) + r)/d) = floor((A + r*a)/(a*d)): A takes integer values
                return result + (atom.arg + const_in * atom.den).floor_div(atom.den * den)
        return result + Q(0, ((Floor(Q._build(const_in, inside), den), 1),))

    def __floordiv__(self, den):
        if isinstance(den, int) and den > 0:
            return self.floor_div(den).made_by(operator.floordiv, self, den)
        return self._sympy_() // _sympy_of(den)

    def ceil_div(self, den: int) -> "Q":
        return (-((-self).floor_div(den))).made_by(_ceil_div, self, den)

    def __mod__(self, m):
        if isinstance(m, int) and m > 0:
            return (self - m * self.floor_div(m)).made_by(operator.mod, self, m)
        return self._sympy_() % _sympy_of(m)

    # ------------------------------------------------------------ reading

    def __eq__(self, other: object) -> bool:
        if isinstance(other, int):
            return not self.terms and self.const == other
        if isinstance(other, Q):
            return self.const == other.const and self.terms == other.terms
        if hasattr(other, "free_symbols"):  # a sympy expression: compared as sympy compares
            return self._sympy_() == other
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    def __str__(self) -> str:
        if not self.terms:
            return str(self.const)
        return self.name if self.is_Symbol else str(self._sympy_())

    def __int__(self) -> int:
        if self.terms:
            raise TypeError(f"{self!r} depends on the input's sizes")
        return self.const

    __index__ = __int__

    def __hash__(self) -> int:
        return self._hash

    def key(self) -> tuple:
        return (self.const, tuple((_key(a), c) for a, c in self.terms))

    @property
    def is_constant(self) -> bool:
        return not self.terms

    # What the consumers of sizes read of sympy's numbers and symbols, answered without it.
    @property
    def is_Integer(self) -> bool:
        return not self.terms

    is_Rational = is_number = is_Integer
    is_integer = True

    @property
    def is_Symbol(self) -> bool:
        return not self.const and len(self.terms) == 1 and self.terms[0][1] == 1 and isinstance(self.terms[0][0], str)

    @property
    def is_Atom(self) -> bool:
        return not self.terms or self.is_Symbol

    @property
    def name(self) -> str:
        if not self.is_Symbol:  # as sympy's sums, products, numbers and floors: no name (nor sympy import)
            raise AttributeError("name")
        return self.terms[0][0]

    def symbols(self) -> frozenset:
        """The input symbols it depends on (inside floors too)."""
        found: set = set()
        for atom, _ in self.terms:
            found |= {atom} if isinstance(atom, str) else atom.arg.symbols()
        return frozenset(found)

    def slope(self) -> dict:
        """Its growth per unit of each symbol, as a Fraction: ``floor((H - 1)/32) + 1``
        grows by 1/32 per unit of H, on average over a period."""
        found: dict = {}
        for atom, c in self.terms:
            inner = (
                {atom: Fraction(1)} if isinstance(atom, str) else {s: v / atom.den for s, v in atom.arg.slope().items()}
            )
            for s, v in inner.items():
                found[s] = found.get(s, 0) + c * v
        return {s: v for s, v in found.items() if v}

    def period(self) -> int:
        """A period of what it adds to its slope: ``self(x + T) - self(x)`` is the slope
        times T for every integer x and every multiple T of it, in each symbol."""
        period = 1
        for atom, _ in self.terms:
            if isinstance(atom, Floor):
                inner = atom.arg.period()
                for v in atom.arg.slope().values():
                    inner = lcm(inner, v.denominator)
                period = lcm(period, inner * atom.den)
        return period

    def same_as(self, other: "Q", limit: int = 1 << 16) -> Optional[bool]:
        """Are they equal at every integer size? Decided exactly: equal slopes, and equal
        values over one whole period of both (each is its slope plus a periodic part);
        None where that period, over every symbol, is more than ``limit`` points."""
        if self == other:
            return True
        if self.slope() != other.slope():
            return False
        names = sorted(self.symbols() | other.symbols())
        period = lcm(self.period(), other.period())
        if period ** len(names) > limit:
            return None
        for point in itertools.product(range(period), repeat=len(names)):
            env = dict(zip(names, point))
            if self.value(env) != other.value(env):
                return False
        return True

    def partly(self, env: dict) -> "Q":
        """With the symbols ``env`` names set (``{name: n}``), the others kept."""
        total = Q(self.const)
        for atom, c in self.terms:
            if isinstance(atom, str):
                part = Q(env[atom]) if atom in env else Q(0, ((atom, 1),))
            else:
                part = atom.arg.partly(env).floor_div(atom.den)
            total = total._plus(part._times(c))
        return total

    def value(self, env: dict) -> int:
        """At integer sizes ``{name: n}`` or ``{Q.symbol(name): n}`` (an analysis's symbols:
        read as they are, not copied into a dict of names for each of the many evaluations).
        A size evaluated again and again (the domain's scans: tens of thousands of points)
        is compiled to one Python function after a few evaluations."""
        if self._fn is not None:
            return self._fn(env, Q.symbol)
        self._evaluated += 1
        if self._evaluated >= _COMPILE_AFTER and self.terms:
            self._fn = _compiled(self)
            return self._fn(env, Q.symbol)
        total = self.const
        for atom, c in self.terms:
            if isinstance(atom, str):
                size = env.get(atom)
                total += c * (env[Q.symbol(atom)] if size is None else size)
            else:
                total += c * atom.value(env)
        return total

    def __repr__(self) -> str:
        parts = [f"{c}*{a}" if c != 1 else str(a) for a, c in self.terms]
        if self.const or not parts:
            parts.append(str(self.const))
        return " + ".join(parts)

    # ------------------------------------------------------------ sympy, where it is still needed

    def to_sympy(self, symbols: dict):
        """The same expression in sympy, ``symbols`` mapping names to sympy Symbols."""
        import sympy

        total = sympy.Integer(self.const)
        for atom, c in self.terms:
            if isinstance(atom, str):
                total += c * symbols[atom]
            else:
                total += c * sympy.floor(atom.arg.to_sympy(symbols) / atom.den)
        return total


def _ceil_div(a, den: int):
    import sympy

    return sympy.ceiling(a / den)


def comparable(size):
    """One key for one value on either core: a size of Q's form as its ``Q`` (a Q and the
    sympy expression of the same value are equal but hash apart), anything else as is."""
    if isinstance(size, (Q, int)) or not hasattr(size, "free_symbols"):
        return size
    q = from_sympy(size)
    return size if q is None else q


def from_sympy(expr) -> Optional[Q]:
    """The ``Q`` of a sympy expression of that form, or None (a Max, a product of sizes)."""
    if isinstance(expr, int):
        return Q(expr)
    if expr.is_Integer:
        return Q(int(expr))
    if expr.is_Symbol:
        return Q.symbol(expr.name)
    if expr.is_Add:
        parts = [from_sympy(arg) for arg in expr.args]
        return None if any(p is None for p in parts) else sum(parts, Q(0))
    if expr.is_Mul:
        number, rest = expr.as_coeff_Mul()
        inner = None if not number.is_Integer or rest.is_Mul else from_sympy(rest)
        return None if inner is None else inner * int(number)
    return _rounding_from_sympy(expr)


def _rounding_from_sympy(expr) -> Optional[Q]:
    """floor, ceiling and Mod by a positive integer, as a ``Q``; else None."""
    import sympy

    if isinstance(expr, (sympy.floor, sympy.ceiling)):
        numer, den = _over_integer(expr.args[0])
        if numer is None:
            return None
        return numer.floor_div(den) if isinstance(expr, sympy.floor) else numer.ceil_div(den)
    if isinstance(expr, sympy.Mod):
        inner, m = from_sympy(expr.args[0]), expr.args[1]
        if inner is None or not m.is_Integer or int(m) <= 0:
            return None
        return inner % int(m)
    return None


def _over_integer(expr) -> tuple:
    """(numerator as a Q, positive integer denominator) of ``expr`` = numerator / den."""
    import sympy

    numer, den = sympy.fraction(sympy.together(expr))
    if not den.is_Integer or int(den) == 0:
        return None, 1
    q = from_sympy(sympy.expand(numer))
    if q is None:
        return None, 1
    den = int(den)
    return (q, den) if den > 0 else (-q, -den)
