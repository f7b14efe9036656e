"""diff's engine: equal by canonical form, by sympy (exactly, up to rounding, up to the
division guard) or by numbers; where two programs differ, a counterexample."""

from __future__ import annotations

import math

import pytest
import sympy as sp
import torch

import programs
from symbolic_opt import Program, parse
from symbolic_opt.equivalence import (StepInput, close, compare, random_inputs, run, training_inputs,
                                      without_guard)
from symbolic_opt.proof import boundary_points, guarded_denominators, prove_equal
from symbolic_opt.simplify import simplify
from symbolic_opt.symbolic import symbol

from example_programs import LION_GUARDED as LION_GUARDED_TEXT

LION = programs.load("lion")
LION_INTERP = parse("""
def train(w, g, m, lr, beta1=0.9, beta2=0.99, wd=0.0):
    u = interp(g, m, beta1)
    u = sign(u)
    m = interp(g, m, beta2)
    u = u + w * wd
    u = u * lr
    return u, m
""")


def test_same_dataflow_is_equal_by_canonical_form():
    renamed = parse(str(LION).replace("update", "step_dir"))
    verdict = compare(LION, renamed)
    assert verdict.equivalent and verdict.how == "canonical" and verdict.exact
    assert verdict.state_pairs == {"m": "m"}


def test_lions_two_spellings_are_equal_for_every_hyperparameter():
    verdict = compare(LION, LION_INTERP)
    assert verdict.equivalent and verdict.how == "sympy"
    assert verdict.proof.grade == "exact" and "for all hyperparameter values" in verdict.detail


def test_discovered_and_its_simplification_are_equal_up_to_guard_and_rounding():
    verdict = compare(programs.load("discovered"), simplify(programs.load("discovered")).program)
    assert verdict.equivalent and verdict.how == "sympy" and verdict.proof.grade == "guard"
    assert "division guard" in verdict.detail and "rounding" in verdict.detail
    assert verdict.state_pairs == {"v": "v"}


def test_state_pairing_finds_swapped_names():
    a = parse("def train(w, g, m, v, lr):\n    m = interp(g, m, 0.9)\n    v = interp(g, v, 0.5)\n    u = m + v\n    return u, m, v\n")
    b = parse("def train(w, g, v, m, lr):\n    v = interp(g, v, 0.9)\n    m = interp(g, m, 0.5)\n    u = v + m\n    return u, v, m\n")
    verdict = compare(a, b)
    assert verdict.equivalent and verdict.state_pairs == {"m": "v", "v": "m"}


def test_different_programs_give_a_counterexample():
    verdict = compare(LION, programs.load("signum"))
    assert not verdict.equivalent and verdict.how == "numeric"
    first = verdict.differences[0]
    assert first.output == "update" and first.step >= 1
    assert {"w", "g", "lr", "step", "A gives", "B gives"} <= set(first.counterexample)
    assert first.counterexample["A gives"] != first.counterexample["B gives"]
    assert "differs at step" in str(first)


def test_only_a_state_differs_internally():
    """B keeps 2m instead of m; sign does not see the factor: the same optimizer, unpaired state."""
    a = parse("def train(w, g, m, lr):\n    m = interp(g, m, 0.9)\n    u = sign(m)\n    u = u * lr\n    return u, m\n")
    b = parse("def train(w, g, m, lr):\n    h = g * 2.0\n    m = interp(h, m, 0.9)\n    u = sign(m)\n    u = u * lr\n    return u, m\n")
    verdict = compare(a, b)
    assert verdict.equivalent and verdict.how == "numeric" and not verdict.exact
    assert verdict.unpaired == (("m",), ("m",))


def test_a_difference_in_a_constant_is_found():
    a = parse("def train(w, g, m, lr):\n    m = interp(g, m, 0.9)\n    u = m * lr\n    return u, m\n")
    b = parse("def train(w, g, m, lr):\n    m = interp(g, m, 0.91)\n    u = m * lr\n    return u, m\n")
    verdict = compare(a, b)
    assert not verdict.equivalent
    assert {d.output for d in verdict.differences} == {"update", "state m / m"}


def test_run_gives_updates_and_state():
    trace = run(LION, random_inputs(0, 3), beta1=0.9)
    assert len(trace.updates) == 3 and set(trace.after[0]) == {"m"}
    assert all(float(x.abs().max()) == 0.0 for x in trace.before[0]["m"])


def test_prove_equal_grades():
    x, y, a = symbol("x"), symbol("y"), symbol("a")
    eps = sp.Symbol("epsilon_div", positive=True)
    assert prove_equal((1 - a) * x + a * y, x + a * (y - x)).grade == "exact"
    assert prove_equal(x / (sp.sqrt(sp.Abs(x * x)) + eps), sp.sign(x)).grade == "guard"
    assert prove_equal(x / (sp.sqrt(sp.Abs(x * x)) + eps), sp.sign(x), guard=False) is None
    assert prove_equal(sp.Rational(0.899) * sp.Rational(1.109) * x, sp.Rational(0.899 * 1.109) * x).grade == "rounding"
    assert prove_equal(x, y) is None
    assert prove_equal(sp.asin(x) ** 2, sp.Abs(sp.asin(x)) ** 2).grade == "exact"  # asin(x) taken as a real value


def test_a_guard_proof_names_its_denominators():
    x, eps = symbol("x"), sp.Symbol("epsilon_div", positive=True)
    assert set(guarded_denominators(x / (sp.Abs(x) + eps) + 1 / (x**2 + eps))) == {sp.Abs(x), x**2}
    assert guarded_denominators(x / (sp.Abs(x) + 1)) == []
    assert prove_equal(x / (sp.Abs(x) + eps), sp.sign(x)).guarded == ("Abs(x)",)
    assert prove_equal(x, x).guarded == ()


def test_boundary_points_solve_each_kink_for_each_unknown():
    m, g = symbol("m"), symbol("g")
    found = boundary_points([sp.sign(m + g / 100), sp.Max(m, 2 * g) * g], [m])
    assert [(x, root) for x, root, _ in found] == [(m, -g / 100), (m, 2 * g)]
    both = boundary_points([sp.sign(m + g / 100)], [m, g])
    assert [(x, root) for x, root, _ in both] == [(m, -g / 100), (g, -100 * m)]
    band = boundary_points([sp.sign(sp.Abs(m) - g)], [m])  # |m| = g: two roots (and |m| = 0: m = 0)
    assert {root for _, root, _ in band} == {-g, g, 0}
    norm = sp.Function("global_norm")
    assert boundary_points([sp.sign(norm(m) - 1)], [m]) == []  # a reduction is not solved for


# --- the division guard: a verdict of its own ---------------------------------------------------
LION_GUARDED = parse(LION_GUARDED_TEXT)


def _one_step(program, m: float, g: float) -> float:
    """The update of one step from state m, at gradient g, w = 0 and lr = 1."""
    x = StepInput((torch.zeros(1, dtype=torch.float64),), (torch.tensor([g], dtype=torch.float64),), 1.0, 1)
    return float(run(program, [x], {"m": [torch.tensor([m], dtype=torch.float64)]}).updates[0][0])


def test_sign_written_as_a_guarded_quotient_is_lion_up_to_the_guard():
    verdict = compare(LION, LION_GUARDED)
    assert verdict.equivalent and verdict.up_to_guard and verdict.how == "sympy"
    assert verdict.proof.grade == "guard" and verdict.proof.guarded == ("Abs(beta1*m - g*(beta1 - 1))",)
    assert "they differ only where Abs(beta1*m - g*(beta1 - 1)) is small" in verdict.guard
    assert "below ~1e-4" in verdict.guard and "below ~1e-8" in verdict.guard
    # what the note says, in numbers: c = 0.9 m + 0.1 g, and the gap is relative 1e-8 / (|c| + 1e-8)
    for c, gap in ((1.0, 1e-8), (1e-4, 1e-4), (1e-6, 1e-2), (1e-8, 0.5)):
        a, b = _one_step(LION, 0.0, 10 * c), _one_step(LION_GUARDED, 0.0, 10 * c)
        assert a == 1.0 and math.isclose((a - b) / a, gap, rel_tol=0.011)
    assert _one_step(LION, 0.0, 0.0) == _one_step(LION_GUARDED, 0.0, 0.0) == 0.0  # 0 / (0 + 1e-8) = sign(0)


def test_an_exact_equality_is_not_called_up_to_the_guard():
    assert not compare(LION, LION_INTERP).up_to_guard
    assert not compare(LION, LION_INTERP).guard


SIGNUM_2M_GUARDED = parse("""
def train(w, g, m, lr):
    h = g * 2.0
    m = interp(h, m, 0.9)
    u = m / sqrt(m * m)
    u = u * lr
    return u, m
""")
SIGNUM_PLAIN = parse("def train(w, g, m, lr):\n    m = interp(g, m, 0.9)\n    u = sign(m)\n    u = u * lr\n    return u, m\n")


def test_a_difference_only_the_guard_makes_is_found_by_numbers_too():
    """B keeps 2 m (so no pairing for sympy) and divides by it: where the runs' gradients are
    small the quotient is not +-1, and without the guard the two agree."""
    verdict = compare(SIGNUM_PLAIN, SIGNUM_2M_GUARDED)
    assert verdict.equivalent and verdict.up_to_guard and verdict.how == "numeric" and not verdict.exact
    assert "once the division guard is taken to 1e-300" in verdict.detail
    parted = int(verdict.detail.split("they part at ")[1].split(" of ")[0])
    assert parted > 0 and "not a proof" in verdict.detail
    assert "they differ only where Abs(" in verdict.guard and "for example, update differs" in verdict.guard
    assert verdict.unpaired == (("m",), ("m",))
    # the guard-free variant gives sign(m) to rounding along the same runs; the guarded one does not
    free = without_guard(SIGNUM_2M_GUARDED)
    assert [s.op for s in free.body].count("exact_div") == 1
    inputs = training_inputs(1, 300)

    def worst(b):
        return max(float(((u - v) / u).abs().max()) for x, y in zip(run(SIGNUM_PLAIN, inputs).updates,
                                                                      run(b, inputs).updates) for u, v in zip(x, y))

    assert worst(free) < 1e-12 and worst(SIGNUM_2M_GUARDED) > 1e-2


def test_a_real_difference_next_to_a_guard_is_still_a_difference():
    """The guarded Lion with beta1 = 0.8: it parts from Lion for real, not only where |c| is tiny."""
    other = parse(str(LION_GUARDED).replace("beta1=0.9", "beta1=0.8"))
    verdict = compare(LION, other)
    assert not verdict.equivalent and not verdict.up_to_guard and verdict.how == "numeric"
    first = verdict.differences[0]
    assert first.output == "update" and first.counterexample["A gives"] * first.counterexample["B gives"] < 0


# --- near misses: programs that part only in a narrow band ---------------------------------------
def _signum(beta: float, c: float = 0.0) -> Program:
    """sign(m + c * g) with m = interp(g, m, beta)."""
    return parse(f"def train(w, g, m, lr):\n    m = interp(g, m, {beta})\n    c = g * {c}\n    c = m + c\n"
                 "    u = sign(c)\n    u = u * lr\n    return u, m\n")


def _band(beta: float, lo: float = 0.5, hi: float = 0.6) -> Program:
    """sign(m), doubled where lo |g| < |m| < hi |g|."""
    return parse(f"""
def train(w, g, m, lr):
    m = interp(g, m, {beta})
    a = abs(m)
    b = abs(g)
    lo = b * {lo}
    hi = b * {hi}
    s1 = a - lo
    s1 = sign(s1)
    s2 = hi - a
    s2 = sign(s2)
    k = s1 + s2
    k = k * 0.5
    k = k + 1.0
    u = sign(m)
    u = u * k
    u = u * lr
    return u, m
""")


def _old_check_agrees(a: Program, b: Program) -> bool:
    """What diff ran before: 4 trials of 6 steps of standard-normal inputs from zero state."""
    return all(bool(close(u, v, 1e-4, 1e-9).all()) for seed in range(4)
               for x, y in zip(run(a, random_inputs(seed, 6)).updates, run(b, random_inputs(seed, 6)).updates)
               for u, v in zip(x, y))


def _next_m(d, beta: float) -> float:
    return beta * d.counterexample["A: m in"] + (1 - beta) * d.counterexample["g"]


def test_a_band_of_momentum_to_gradient_ratios_is_found():
    """|m| between 0.5 |g| and 0.6 |g|, m a slow average (beta 0.999): from zero state that
    takes many steps of a consistent gradient. The old 24 steps never got there."""
    a, b = _signum(0.999), _band(0.999)
    assert _old_check_agrees(a, b)
    verdict = compare(a, b)
    assert not verdict.equivalent and verdict.how == "numeric"
    d = verdict.differences[0]
    assert d.output == "update" and math.isclose(d.counterexample["B gives"], 2 * d.counterexample["A gives"])
    assert 0.5 < abs(_next_m(d, 0.999)) / abs(d.counterexample["g"]) < 0.6
    assert "update differs at step" in str(d) and "A gives" in str(d)


@pytest.mark.parametrize("c", [-0.001, 0.01])
def test_a_shifted_sign_is_found(c):
    """sign(m + c g) against sign(m): they part only where m lies between 0 and -c g."""
    verdict = compare(_signum(0.9), _signum(0.9, c))
    assert not verdict.equivalent
    d = verdict.differences[0]
    m, g = _next_m(d, 0.9), d.counterexample["g"]
    assert min(0.0, -c * g) < m < max(0.0, -c * g)
    assert d.counterexample["A gives"] == -d.counterexample["B gives"] != 0  # +-lr


def test_sign_of_m_minus_a_thousandth_of_g_passed_the_old_check():
    assert _old_check_agrees(_signum(0.9), _signum(0.9, -0.001))


@pytest.mark.parametrize("how, options, source", [
    ("training-like runs", dict(draws=0, use_sympy=False), "trajectory"),
    ("drawn states", dict(trials=1, steps=1, use_sympy=False), "drawn"),
    ("sympy's points", dict(trials=1, steps=1, draws=0), "sympy"),
])
def test_each_search_finds_the_band_alone(how, options, source):
    verdict = compare(_signum(0.999), _band(0.999), **options)
    assert not verdict.equivalent, how
    d = verdict.differences[0]
    assert d.source == source
    beta = 0.999
    assert 0.5 < abs(_next_m(d, beta)) / abs(d.counterexample["g"]) < 0.6


def test_a_band_too_narrow_to_sample_is_found_by_sympy():
    """sign(m' - 0.3) against sign(m' - 0.3000001): the runs and draws never land in a band
    that narrow; sympy solves both kinks for m and looks just beside them."""
    a = parse("def train(w, g, m, lr):\n    m = interp(g, m, 0.9)\n    c = m - 0.3\n    u = sign(c)\n    u = u * lr\n    return u, m\n")
    b = parse(str(a).replace("0.3", "0.3000001"))
    assert compare(a, b, use_sympy=False).equivalent  # numbers alone miss it
    verdict = compare(a, b)
    assert not verdict.equivalent
    d = verdict.differences[0]
    assert d.source == "sympy" and "m = 0.3333 - 0.1111*g" in d.counterexample["aimed at"]
    assert 0.3 < _next_m(d, 0.9) < 0.3000001
    assert "from a point sympy chose" in str(d)


# --- true equivalents still agree ----------------------------------------------------------------
MAX_AS_ABS = parse("""
def train(w, g, v, lr):
    v = interp(g, v, 0.9)
    d = v - g
    d = abs(d)
    s = v + g
    s = s + d
    s = sign(s)
    u = lr * s
    return u, v
""")
MAX_PLAIN = parse("def train(w, g, m, lr):\n    m = interp(g, m, 0.9)\n    u = max(m, g)\n    u = sign(u)\n"
                  "    u = u * lr\n    return u, m\n")


def test_an_identity_sympy_cannot_prove_survives_the_search():
    """max(x, y) = (x + y + |x - y|) / 2: no proof, and no counterexample at sympy's kinks either."""
    verdict = compare(MAX_PLAIN, MAX_AS_ABS)
    assert verdict.equivalent and verdict.how == "numeric" and not verdict.up_to_guard
    assert "points sympy chose at kinks" in verdict.detail and "drawn states" in verdict.detail
    assert verdict.state_pairs == {"m": "v"} and not verdict.differences


@pytest.mark.parametrize("b", [
    # reordered and renamed
    "def train(w, g, mom, lr):\n    mom = interp(g, mom, 0.9)\n    u = sign(mom)\n    u = lr * u\n    return u, mom\n",
    # algebraically equal: interp written out, and sign(2 m) for sign(m)
    "def train(w, g, m, lr):\n    a = m * 0.9\n    b = g * 0.1\n    m = a + b\n    u = m * 2.0\n    u = sign(u)\n"
    "    u = u * lr\n    return u, m\n",
])
def test_true_equivalents_agree_by_numbers_alone(b):
    verdict = compare(SIGNUM_PLAIN, parse(b), use_sympy=False)
    assert verdict.equivalent and not verdict.up_to_guard and not verdict.differences


def test_kinks_a_rounding_apart_are_not_a_band():
    """interp(g, m, 0.9) weighs g by 1 - 0.9 = 0.09999999999999998, 0.9 m + 0.1 g by 0.1: inside
    a sign, sympy proves nothing, and the two kinks lie a rounding apart. Not a counterexample."""
    b = parse("def train(w, g, m, lr):\n    a = m * 0.9\n    b = g * 0.1\n    m = a + b\n    u = sign(m)\n"
              "    u = u * lr\n    return u, m\n")
    verdict = compare(SIGNUM_PLAIN, b)
    assert verdict.equivalent and verdict.how == "numeric" and "points sympy chose" in verdict.detail


def test_training_inputs_reach_momentum_comparable_to_the_gradient():
    """What the runs are for: |m| / |g| spreads over decades, 0.5 to 0.6 included, at every beta."""
    for beta in (0.9, 0.999):
        program = _signum(beta)
        ratios = []
        for seed in range(4):
            inputs = training_inputs(seed, 300)
            trace = run(program, inputs)
            ratios += [float(r) for x, after in zip(inputs, trace.after)
                       for r in (after["m"][0] / x.g[0]).abs().flatten()]
        ratios = torch.tensor(ratios)
        assert float(((ratios > 0.5) & (ratios < 0.6)).float().mean()) > 0.01
        assert float(ratios.min()) < 1e-3 and float(ratios.max()) > 10
