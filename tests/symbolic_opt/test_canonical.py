"""Canonical form and hash: the same for rewritings that keep the dataflow, different when
the numbers change (property tests over random programs), stable and idempotent."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace

import pytest
import torch
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

import programs
from strategies import programs as random_programs
from symbolic_opt import analyze, parse
from symbolic_opt.analysis import live_variables
from symbolic_opt.canonical import canonical, canonical_hash
from symbolic_opt.equivalence import close, random_inputs, run
from symbolic_opt.ir import Const, Program, Statement, Var
from symbolic_opt.ops import OPS, Rule

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MODERATE = st.sampled_from((0.0, 1.0, -1.0, 0.5, 2.0, 0.9, 0.999, 3.0, 0.1, -0.25)).map(Const)
PROGRAMS = random_programs(max_statements=7, constant_values=MODERATE, hyper_values=st.sampled_from((0.9, 0.5, 2.0)))

LION = programs.load("lion")


def _behaviour(p: Program, seeds=(0, 1), steps: int = 3):
    """The updates of ``p`` on fixed random inputs (the optimizer as the training loop sees it)."""
    return [run(p, random_inputs(seed, steps)).updates for seed in seeds]


def _same_behaviour(p: Program, q: Program) -> bool:
    for xs, ys in zip(_behaviour(p), _behaviour(q)):
        for x_step, y_step in zip(xs, ys):
            if not all(bool(close(x, y, 1e-9, 1e-12).all()) for x, y in zip(x_step, y_step)):
                return False
    return True


# --- rewritings that keep the dataflow ------------------------------------------------------
def _rename(p: Program) -> Program:
    fixed = {"w", "g", "lr", "step"}
    mapping = {n: f"r_{n}" for n in {*p.params, *p.defaults, *(s.target for s in p.body)} - fixed}

    def name(n: str) -> str:
        return mapping.get(n, n)

    body = tuple(
        Statement(name(s.target), s.op, tuple(Var(name(a.name)) if isinstance(a, Var) else a for a in s.args))
        for s in p.body
    )
    return replace(p, params=tuple(map(name, p.params)), body=body, returns=tuple(map(name, p.returns)),
                   hyperparams=tuple((name(h), v) for h, v in p.hyperparams))


def _with_dead_code(p: Program, at: int, op: str) -> Program:
    """A statement nobody reads at position ``at``, and a state variable written before it is read."""
    readable = [n for n in live_variables(p, at) if n not in p.defaults]
    args = tuple(Var("g") if i == 0 else Var(readable[i % len(readable)]) for i in range(OPS[op].arity))
    body = list(p.body)
    body.insert(at, Statement("r_dead", op, args))
    body.insert(0, Statement("r_state", "mul", (Var("g"), Const(2.0))))
    return replace(p, params=p.params + ("r_state",), body=tuple(body), returns=p.returns + ("r_state",))


def _independent(a: Statement, b: Statement) -> bool:
    return a.target != b.target and a.target not in set(b.reads()) and b.target not in set(a.reads())


def _swap_commutative(p: Program) -> Program:
    return p.with_body(
        s.with_args((s.args[1], s.args[0], *s.args[2:])) if OPS[s.op].commutative else s for s in p.body
    )


@SETTINGS
@given(PROGRAMS)
def test_renaming_keeps_the_canonical_form(p):
    assert canonical(_rename(p)) == canonical(p)


@SETTINGS
@given(PROGRAMS, st.data())
def test_dead_code_and_dead_state_keep_the_hash(p, data):
    at = data.draw(st.integers(0, len(p.body)))
    op = data.draw(st.sampled_from(["add", "sign", "interp", "exp", "mul"]))
    q = _with_dead_code(p, at, op)
    analyze(q)
    assert canonical_hash(q) == canonical_hash(p)


@SETTINGS
@given(PROGRAMS, st.data())
def test_reordering_independent_statements_keeps_the_hash(p, data):
    pairs = [i for i in range(len(p.body) - 1) if _independent(p.body[i], p.body[i + 1])]
    assume(pairs)
    i = data.draw(st.sampled_from(pairs))
    body = list(p.body)
    body[i], body[i + 1] = body[i + 1], body[i]
    assert canonical_hash(p.with_body(body)) == canonical_hash(p)


@SETTINGS
@given(PROGRAMS)
def test_swapping_commutative_arguments_keeps_the_hash(p):
    assert canonical_hash(_swap_commutative(p)) == canonical_hash(p)


@SETTINGS
@given(PROGRAMS)
def test_canonical_form_is_a_valid_equal_program_and_a_fixed_point(p):
    c = canonical(p)
    analyze(c)
    assert canonical(c) == c
    assert canonical_hash(c) == canonical_hash(p)
    assert parse(str(c)) == c
    assert _same_behaviour(p, c)


# --- changes that change the numbers change the hash ----------------------------------------
def _change_constant(p: Program, data) -> Program:
    spots = [(i, j) for i, s in enumerate(p.body) for j, a in enumerate(s.args) if isinstance(a, Const)]
    assume(spots)
    i, j = data.draw(st.sampled_from(spots))
    old = p.body[i].args[j].value
    new = data.draw(st.sampled_from([old + 1.0, -old - 0.5, old * 3.0 + 0.25]))
    args = list(p.body[i].args)
    args[j] = Const(new)
    return p.with_body(p.body[:i] + (p.body[i].with_args(tuple(args)),) + p.body[i + 1:])


def _change_op(p: Program, data) -> Program:
    spots = [i for i, s in enumerate(p.body) if OPS[s.op].rule is Rule.MAP]
    assume(spots)
    i = data.draw(st.sampled_from(spots))
    stmt = p.body[i]
    others = [o.name for o in OPS.values() if o.arity == OPS[stmt.op].arity and o.rule is Rule.MAP and o.name != stmt.op]
    return p.with_body(p.body[:i] + (replace(stmt, op=data.draw(st.sampled_from(others))),) + p.body[i + 1:])


def _change_argument(p: Program, data) -> Program:
    spots = [(i, j) for i, s in enumerate(p.body) for j, a in enumerate(s.args) if isinstance(a, Var)]
    assume(spots)
    i, j = data.draw(st.sampled_from(spots))
    choices = [n for n in live_variables(p, i) if n != p.body[i].args[j].name]
    assume(choices)
    args = list(p.body[i].args)
    args[j] = Var(data.draw(st.sampled_from(choices)))
    return p.with_body(p.body[:i] + (p.body[i].with_args(tuple(args)),) + p.body[i + 1:])


@settings(SETTINGS, max_examples=150)
@given(PROGRAMS, st.data(), st.sampled_from([_change_constant, _change_op, _change_argument]))
def test_a_change_that_changes_the_numbers_changes_the_hash(p, data, change):
    q = change(p, data)
    try:
        analyze(q)
    except ValueError:
        assume(False)
    differs = not _same_behaviour(p, q)
    event(f"numbers {'differ' if differs else 'agree'}")
    if differs:
        assert canonical_hash(q) != canonical_hash(p)


def test_equal_hash_means_equal_numbers_on_random_pairs():
    """The converse direction on unrelated programs: hash collisions would show here."""
    seen: dict[str, Program] = {}
    for p in (programs.load(n) for n in programs.names()):
        h = canonical_hash(p)
        if h in seen:
            assert _same_behaviour(seen[h], p)
        seen[h] = p
    assert len(seen) == len(programs.names())


# --- fixed examples -------------------------------------------------------------------------
def test_lion_written_differently_has_lions_hash():
    other = parse("""
def train(w, g, mom, lr, wd=0.0, b2=0.99, b1=0.9):
    dead = exp(g)
    m2 = mom * b2
    c = 1 - b1
    u = b1 * mom
    u = addcmul(u, g, c)
    d = 1 - b2
    m2 = addcmul(m2, g, d)
    u = sign(u)
    decay = wd * w
    u = decay + u
    u = lr * u
    return u, m2
""")
    assert canonical_hash(other) == canonical_hash(LION)
    assert canonical(other) == canonical(LION)


def test_state_order_and_duplicated_statements_do_not_matter():
    a = parse("""
def train(w, g, m, v, lr):
    m = interp(g, m, 0.9)
    g2 = g * g
    v = interp(g2, v, 0.99)
    u = m / sqrt(v)
    return u, m, v
""")
    b = parse("""
def train(w, g, v, m, lr):
    a = g * g
    b = g * g
    v = interp(a, v, 0.99)
    s = sqrt(v)
    m = interp(g, m, 0.9)
    u = m / s
    return u, v, m
""")
    assert canonical(a) == canonical(b)


def test_hyperparameters_are_knobs_not_numbers():
    plain = parse("def train(w, g, lr):\n    u = g * 0.5\n    return u\n")
    knob = parse("def train(w, g, lr, k=0.5):\n    u = g * k\n    return u\n")
    other = parse("def train(w, g, lr, k=0.25):\n    u = g * k\n    return u\n")
    renamed = parse("def train(w, g, lr, scale=0.5):\n    u = k_ * g\n    return u\n".replace("k_", "scale"))
    assert canonical_hash(plain) != canonical_hash(knob) != canonical_hash(other)
    assert canonical_hash(renamed) == canonical_hash(knob)


def test_discovered_canonical_form_has_one_state_and_no_dead_code():
    c = canonical(programs.load("discovered"))
    assert c.state == ("s1",)
    assert "cosh" not in str(c)
    assert [s.target for s in c.body] == [f"t{i}" for i in range(1, len(c.body) + 1)]


def test_hash_is_stable_across_processes():
    code = "import programs; from symbolic_opt.canonical import canonical_hash; print(canonical_hash(programs.load('adamw')))"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == canonical_hash(programs.load("adamw"))


@pytest.mark.parametrize("name", ["lion", "adamw", "discovered", "adan", "lamb"])
def test_library_programs_canonical_forms_compute_the_same(name):
    p = programs.load(name)
    torch.manual_seed(0)
    assert _same_behaviour(p, canonical(p))
