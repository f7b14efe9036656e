"""diff's engine: equal by canonical form, by sympy (exactly, up to rounding, up to the
division guard) or by numbers; where two programs differ, a counterexample."""

from __future__ import annotations

import sympy as sp

import programs
from symbolic_opt import parse
from symbolic_opt.equivalence import compare, random_inputs, run
from symbolic_opt.proof import prove_equal
from symbolic_opt.simplify import simplify
from symbolic_opt.symbolic import symbol

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
