"""The sympy view: the update and next state as expressions, checked against the compiled
code's numbers, and LaTeX."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import programs
from strategies import programs as random_programs
from symbolic_opt.equivalence import StepInput, run
from symbolic_opt.ir import Const
from symbolic_opt.ops import DIV_GUARD, DIV_GUARD_SYMBOL
from symbolic_opt.symbolic import symbol, symbolic

w, g, lr, m, v, step = (symbol(n) for n in ("w", "g", "lr", "m", "v", "step"))
beta1, beta2, wd = (symbol(n) for n in ("beta1", "beta2", "wd"))


def test_lion_is_the_papers_formula():
    form = symbolic(programs.load("lion"))
    assert sp.simplify(form.update - lr * (sp.sign(beta1 * m + (1 - beta1) * g) + w * wd)) == 0
    assert set(form.state) == {"m"}
    assert sp.expand(form.state["m"] - (beta2 * m + (1 - beta2) * g)) == 0


def test_discovered_has_one_real_state_whose_recurrence_coefficient_is_the_product():
    form = symbolic(programs.load("discovered"), exact=True)
    assert list(form.state) == ["v"]  # m is written before it is read
    nxt = sp.expand(form.state["v"])
    on_v = nxt.coeff(v)
    assert on_v == sp.Rational(1.109) * sp.Rational(0.899)
    g2 = (nxt - on_v * v) / (1 - on_v)  # the rest is (1 - c) * arcsin(clip(g, lr)): it sums to one
    assert sp.simplify(g2 - sp.asin(sp.Max(-sp.Abs(lr), sp.Min(g, sp.Abs(lr))))) == 0


def test_guard_and_hyperparameter_values():
    p = programs.load("adamw_paper")
    assert DIV_GUARD_SYMBOL in symbolic(p).update.free_symbols
    assert DIV_GUARD_SYMBOL not in symbolic(p, guard=False).update.free_symbols
    lion = programs.load("lion")
    at_defaults = symbolic(lion, hyperparams="values")
    assert not {beta1, beta2, wd} & at_defaults.update.free_symbols
    assert sp.expand(at_defaults.state["m"] - (sp.Float(0.99) * m + (1 - sp.Float(0.99)) * g)) == 0


def test_constants_exact_or_float():
    p = programs.load("adamw_paper")
    assert sp.Rational(0.999) in symbolic(p, exact=True).state["v"].atoms(sp.Rational)
    assert all(isinstance(a, (sp.Float, sp.Integer)) for a in symbolic(p).state["v"].atoms(sp.Number))


def test_latex_and_text():
    form = symbolic(programs.load("lion"))
    tex = form.latex()
    assert tex.startswith("\\begin{aligned}") and tex.endswith("\\end{aligned}")
    assert "\\operatorname{sign}" in tex and "m' &=" in tex and "\\beta_{1}" in tex
    assert form.text().splitlines()[0].startswith("update = ")


# --- the expressions compute what the compiled code computes -------------------------------
def _lambdified(form, names):
    outputs = [form.update, *form.state.values()]
    outputs = [o.subs(DIV_GUARD_SYMBOL, DIV_GUARD) for o in outputs]
    return sp.lambdify([symbol(n) for n in names], outputs, modules=["numpy"])


def _check(program, seed: int):
    form = symbolic(program, hyperparams="values")
    state = list(form.state)
    names = ["w", "g", "lr", "step", *state]
    fn = _lambdified(form, names)
    gen = torch.Generator().manual_seed(seed)
    x = StepInput((torch.randn(5, generator=gen, dtype=torch.float64),), (torch.randn(5, generator=gen, dtype=torch.float64),), 0.7, 3)
    first = StepInput(x.w, (torch.randn(5, generator=gen, dtype=torch.float64),), 0.4, 2)
    trace = run(program, [StepInput(first.w, first.g, first.lr, 1), StepInput(x.w, x.g, x.lr, 3)])
    incoming = [trace.before[1][s][0].numpy() for s in state]
    with np.errstate(all="ignore"):
        got = fn(x.w[0].numpy(), x.g[0].numpy(), x.lr, 3.0, *incoming)
    expected = [trace.updates[1][0].numpy()] + [trace.after[1][s][0].numpy() for s in state]
    for a, b in zip(got, expected):
        a = np.broadcast_to(np.asarray(a, dtype=np.float64), b.shape)
        finite = np.isfinite(b)  # real algebra says m / m = 1; IEEE says 0 / 0 = nan
        assert np.allclose(a[finite], b[finite], rtol=1e-6, atol=1e-9), (a, b)


@pytest.mark.parametrize("name", ["lion", "adamw", "adamw_paper", "discovered", "signum", "rmsprop_centered"])
def test_library_forms_match_the_compiled_numbers(name):
    _check(programs.load(name), seed=0)


ELEMENTWISE = ("add", "sub", "mul", "div", "interp", "sign", "abs", "sqrt", "square", "negative", "max", "min",
               "tanh", "clip", "sin", "exact_div", "addcmul")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_programs(ops=ELEMENTWISE, max_statements=6,
                       constant_values=st.sampled_from((0.5, 2.0, -1.0, 0.9, 3.0)).map(Const),
                       hyper_values=st.sampled_from((0.9, 0.5))), st.integers(0, 3))
def test_random_elementwise_programs_match_the_compiled_numbers(p, seed):
    assume(not any(e.has(sp.zoo, sp.nan) for e in symbolic(p).outputs().values()))  # 0.5 / (0.5 - 0.5)
    _check(p, seed)


def test_float_constants_keep_their_value():
    assert math.isclose(float(symbolic(programs.load("discovered")).state["v"].coeff(v)), 1.109 * 0.899)
