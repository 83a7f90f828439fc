"""The domain's one renderer (``convlint.domain_statement``) on conditions written by
hand: each form it states (per dim, ``H = W``, ``H >= W``, ``H % p = W % p``, the
condition itself) is exactly the set of sizes the conditions allow, checked size by size."""

import itertools

import sympy

from convlint import domain_statement
from convlint.input_domain import Condition, Domain
from convlint.sizes.symbolic import evaluate_int

H, W = sympy.symbols("H W", integer=True, positive=True)


def _merge(a, b) -> Condition:
    return Condition(
        "merge", lambda env: evaluate_int(a, env) == evaluate_int(b, env), f"{a} vs {b}", expressions=(a, b)
    )


def _limit(e, minimum: int) -> Condition:
    return Condition(
        "limit", lambda env: evaluate_int(e, env) >= minimum, "a layer", expressions=(e, sympy.Integer(minimum))
    )


def _domain(*conditions: Condition, example=(64, 64)) -> Domain:
    return Domain((H, W), dict(zip((H, W), example)), ((1, 3, *example),), conditions, True)


def _agrees(domain: Domain, upto: int = 140) -> None:
    said = domain_statement.state(domain)
    for h, w in itertools.product(range(1, upto), repeat=2):
        assert ({H: h, W: w} in said) == domain.contains((1, 3, h, w)), (str(said), h, w)


def test_a_condition_on_each_dim_is_stated_per_dim_with_the_bound():
    domain = _domain(
        _merge(2 * sympy.floor(H / 2), H), _merge(2 * sympy.floor(W / 2), W), _limit(H - 4, 1), _limit(W - 4, 1)
    )
    said = domain_statement.state(domain)
    assert str(said) == "H, W >= 5 and multiples of 2"
    assert (said.bounds, said.needs, said.first) == ("H, W >= 5", "H, W multiples of 2", {H: 5, W: 5})
    _agrees(domain)


def test_three_halvings_together_need_multiples_of_eight_not_of_two():
    halves = [sympy.floor(H / 2**k) for k in range(4)]
    domain = _domain(*[_merge(2 * halves[k + 1], halves[k]) for k in range(3)])
    said = domain_statement.state(domain)
    assert said.needs == "H a multiple of 8" and said.first == {H: 1, W: 1}
    _agrees(domain)


def test_equal_sizes_are_stated_as_one_size_shared():
    domain = _domain(_merge(H, W))
    assert str(domain_statement.state(domain)) == "H = W"
    _agrees(domain)


def test_a_shared_parity_is_stated_as_a_congruence():
    domain = _domain(_merge(H - 2 * sympy.floor(H / 2), W - 2 * sympy.floor(W / 2)))
    assert str(domain_statement.state(domain)) == "H % 2 = W % 2"
    _agrees(domain)


def test_a_kernel_read_from_the_other_axis_is_an_order():
    domain = _domain(_limit(sympy.floor((H - W) / W) + 1, 1))
    assert str(domain_statement.state(domain)) == "H >= W"
    _agrees(domain)


def test_a_product_of_sizes_is_stated_as_the_condition_itself():
    features = 8 * sympy.floor(H / 4) * sympy.floor(W / 4)
    fixed = Condition(
        "fixed", lambda env: evaluate_int(features, env) == 2048, "fc", expressions=(features, sympy.Integer(2048))
    )
    domain = _domain(fixed)
    said = domain_statement.state(domain)
    assert str(said) == "8*floor(H/4)*floor(W/4) = 2048 (squares: H = W in 64..67)"
    _agrees(domain, upto=300)


def test_residues_are_a_handful_of_ranges_at_most():
    scattered = sympy.Mod(H * 7, 64)  # runs where 7H % 64 < 20: residues all over the period
    small = Condition("assert", lambda env: evaluate_int(scattered, env) < 20, "assert", expressions=(scattered,))
    said = domain_statement.state(_domain(small))
    assert len(str(said)) < 80 and str(said).count(",") <= domain_statement.HANDFUL, str(said)
    _agrees(_domain(small), upto=80)


def test_a_period_longer_than_the_set_is_stated_by_the_sets_own():
    """The expressions' period is a multiple of the set's: sizes that repeat every 2 inside
    a floor by 16 are stated as ``multiples of 2``, not as 8 residues of 16."""
    even = _merge(2 * sympy.floor(H / 2), H)
    domain = _domain(Condition("merge", even.test, even.where, expressions=(*even.expressions, sympy.floor(H / 16))))
    said = domain_statement.state(domain)
    assert said.needs == "H a multiple of 2"
    _agrees(domain, upto=70)


def test_one_condition_carried_by_either_core_is_keyed_as_one():
    """A block used twice imposes one condition twice; one copy's sizes may be Qs and the
    other's the sympy expressions of the same values (the halo nets of timm): stated once."""
    from convlint.affine import Q

    h = Q.symbol("H")
    as_q, as_sympy = (h + 15).floor_div(16), sympy.floor((H - 1) / 16) + 1  # one value, two forms
    assert all(as_q.value({"H": n}) == as_sympy.subs(H, n) for n in range(1, 40))
    one, other = _merge(as_q, 2 * h), _merge(as_sympy, 2 * H)
    assert domain_statement._test_key(one.test) == domain_statement._test_key(other.test)
    assert domain_statement._expressions_key(one) == domain_statement._expressions_key(other)
    assert domain_statement._expressions_key(_merge(as_q + 1, 2 * h)) != domain_statement._expressions_key(one)
