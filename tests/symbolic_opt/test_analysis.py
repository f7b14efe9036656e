"""Abstract execution: kinds, checks, liveness and the dataflow hash.

The hash names what a program computes: the same under renaming, dead code and the order of
independent statements (properties over random programs), different when the dataflow is.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from strategies import broken_programs, programs

import programs as library
from symbolic_opt import Kind, ProgramError, analyze, compile_program, parse
from symbolic_opt.analysis import live_variables
from symbolic_opt.ir import Const, Program, Statement, Var

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- liveness ----------------------------------------------------------------------------------


def test_the_discovered_program_carries_only_v_and_has_one_dead_statement():
    """paper-notes section 2: m is written before it is read, and m = cosh(update) is dead."""
    program = library.load("discovered")
    a = analyze(program)
    assert a.carried == ("v",)
    assert a.dead_state == ("m",)
    assert [str(program.body[i].target) + " = " + program.body[i].op for i in a.dead_statements] == ["m = cosh"]
    assert sum(a.live) == len(program.body) - 1
    assert compile_program(program, "eager").state == ("v",)  # one buffer per parameter


def test_lion_carries_m_and_has_no_dead_code():
    a = analyze(library.load("lion"))
    assert a.carried == ("m",) and a.dead_statements == () and a.dead_state == ()


def test_state_read_only_after_it_is_overwritten_is_not_carried():
    a = analyze(parse("def train(w, g, m, v, lr):\n    m = g * 2\n    u = m + v\n    v = u * 1\n    return u, m, v\n"))
    assert a.carried == ("v",)
    assert a.state_out["m"].source == "stmt"


def test_state_that_never_reaches_the_update_is_not_carried():
    """s accumulates but nothing reads it into the update: no buffer."""
    a = analyze(parse("def train(w, g, s, lr):\n    s = s + g\n    u = g * lr\n    return u, s\n"))
    assert a.carried == () and a.dead_statements == (0,)


def test_a_carried_state_keeps_the_statements_that_feed_it_alive():
    a = analyze(parse("def train(w, g, m, v, lr):\n    v = interp(g, v, 0.9)\n    m = v * 2\n    u = m * lr\n    return u, m, v\n"))
    assert a.carried == ("v",) and all(a.live)


def test_swapped_state_is_carried_through_the_swap():
    a = analyze(parse("def train(w, g, m, v, lr):\n    u = m * lr\n    return u, v, m\n"))
    assert a.carried == ("m", "v")


def test_live_program_drops_dead_statements_and_keeps_the_hash():
    program = library.load("discovered")
    a = analyze(program)
    live = a.live_program()
    assert len(live) == len(program) - 1 and live.state == program.state
    assert analyze(live).hash == a.hash and all(analyze(live).live)


def test_live_variables_are_what_an_inserted_statement_may_read():
    program = parse("def train(w, g, m, lr, b=0.5):\n    t = g * b\n    u = t + m\n    return u, m\n")
    assert live_variables(program, 0) == ["w", "g", "m", "lr", "b"]
    assert live_variables(program, 2) == ["w", "g", "m", "lr", "b", "t", "u"]


# --- kinds -------------------------------------------------------------------------------------


def test_kinds_follow_the_op_table_rules():
    program = parse(
        "def train(w, g, s, lr):\n"
        "    a = lr * 0.1\n"            # scalar
        "    n = global_norm(g)\n"      # one number for the group
        "    t = tensor_norm(g)\n"      # one number per tensor
        "    x = g * a\n"               # tensor
        "    y = n + a\n"               # group
        "    z = t + n\n"               # per tensor
        "    c = clip_by_global_norm(g, a)\n"
        "    s = tensor_mean(x)\n"
        "    u = x + z\n"
        "    u = u + y\n"
        "    u = u + c\n"
        "    u = u * s\n"
        "    return u, s\n"
    )
    a = analyze(program)
    assert [k.name for k in a.kinds] == [
        "SCALAR", "GROUP", "TSCALAR", "TENSOR", "GROUP", "TSCALAR", "TENSOR", "TSCALAR", "TENSOR", "TENSOR", "TENSOR", "TENSOR",
    ]
    assert a.state_kinds == {"s": Kind.TSCALAR}


@pytest.mark.parametrize(
    ("returned", "kind"), [("g", Kind.TENSOR), ("n", Kind.TSCALAR), ("lr", Kind.TSCALAR), ("t", Kind.TSCALAR), ("s", Kind.TSCALAR)]
)
def test_a_state_takes_the_kind_of_what_it_is_given_back(returned, kind):
    """A fixed point: the kind of the value returned for it, at least one number per tensor."""
    text = f"def train(w, g, s, lr):\n    n = global_norm(g)\n    t = tensor_norm(g)\n    u = s * lr\n    return u, {returned}\n"
    assert analyze(parse(text)).state_kinds["s"] is kind


def test_state_kinds_grow_through_a_cycle_of_states():
    """m is given v, v is given g: both are tensors, found by iterating to a fixed point."""
    a = analyze(parse("def train(w, g, m, v, lr):\n    u = m * lr\n    return u, v, g\n"))
    assert a.state_kinds == {"m": Kind.TENSOR, "v": Kind.TENSOR}


@pytest.mark.parametrize(
    ("statement", "reason"),
    [
        ("u = global_norm(lr)", "global_norm() reduces the whole parameter group to one scalar, so argument 1 must hold a value per parameter (a tensor), not a scalar"),
        ("u = tensor_norm(n)", "argument 1 must hold a value per parameter (a tensor), not a scalar of the whole group"),
        ("u = dot(g, 0.5)", "argument 2 must hold a value per parameter"),
        ("u = clip_by_global_norm(lr, g)", "argument 1 must hold a value per parameter"),
    ],
)
def test_a_reduction_of_a_scalar_is_a_program_error_naming_the_line(statement, reason):
    text = f"def train(w, g, lr):\n    n = global_norm(g)\n    {statement}\n    return u\n"
    with pytest.raises(ProgramError) as info:
        analyze(parse(text))
    assert info.value.line == 3 and reason in info.value.reason


# --- checks of programs built without the parser ---------------------------------------------------


def _program(*body: Statement, params=("w", "g", "m", "lr"), returns=("u", "m"), hyper=()) -> Program:
    return Program(params=params, body=tuple(body), returns=returns, hyperparams=hyper)


U = Statement("u", "sign", (Var("g"),))


@pytest.mark.parametrize(
    ("program", "reason"),
    [
        (_program(Statement("u", "sgn", (Var("g"),))), "statement 1 (u = sgn(g)): unknown function 'sgn'; did you mean sign"),
        (_program(Statement("u", "add", (Var("g"),))), "statement 1 (u = add(g)): add() takes 2 argument(s), got 1"),
        (_program(U, Statement("x", "sign", (Var("q"),))), "statement 2 (x = sign(q)): variable 'q' is used before it is assigned"),
        (_program(Statement("w", "sign", (Var("g"),)), U), "statement 1 (w = sign(g)): cannot assign to read-only 'w'"),
        (_program(U, Statement("b", "sign", (Var("g"),)), hyper=(("b", 0.5),)), "cannot assign to read-only 'b'"),
        (_program(Statement("lambda", "sign", (Var("g"),)), U), "'lambda' is not a valid variable name"),
        (_program(Statement("1x", "sign", (Var("g"),)), U), "'1x' is not a valid variable name"),
        (_program(Statement("u", "mul", (Var("g"), Const(float("nan"))))), "constant nan is not a finite number"),
        (_program(U, returns=("u",)), "return gives 1 value(s); expected the update and one per state variable (m)"),
        (_program(U, returns=("u", "q")), "return names 'q', which is never assigned"),
        (_program(U, params=("w", "g", "m")), "missing input 'lr'"),
        (_program(U, params=("w", "g", "m", "lr", "m")), "duplicate argument names"),
        (_program(U, params=("w", "g", "m", "lr", "None"), returns=("u", "m", "m")), "argument 'None' is not a valid variable name"),
        (_program(U, hyper=(("m", 0.5),)), "a hyperparameter has the name of another argument"),
        (_program(U, hyper=(("step", 0.5),)), "input 'step' cannot be a hyperparameter"),
        (_program(U, hyper=(("b", float("inf")),)), "hyperparameter 'b' has default inf"),
    ],
)
def test_malformed_programs_are_program_errors_naming_the_statement(program, reason):
    with pytest.raises(ProgramError) as info:
        analyze(program)
    assert reason in str(info.value)


@PROPERTY
@given(broken_programs())
def test_analyze_raises_only_program_errors_and_what_it_accepts_compiles(program):
    """Random IR edits (deleted or swapped statements, unknown names and ops, wrong arities,
    read-only targets, bad returns, non-finite numbers...): a ProgramError or a program that
    compiles for every backend."""
    try:
        analysis = analyze(program)
    except ProgramError as exc:
        assert exc.reason
        return
    assert len(analysis.kinds) == len(program.body)
    for backend in ("eager", "foreach", "fused"):
        compile_program(program, backend)  # generates, loads (fused: compiles lazily, on the first call)


@PROPERTY
@given(programs())
def test_generated_programs_analyze(program):
    a = analyze(program)
    assert set(a.carried) <= set(program.state) and len(a.live) == len(program.body)
    assert all(k.per_parameter for k in a.state_kinds.values())


# --- the dataflow hash --------------------------------------------------------------------------


def _rename(program: Program, prefix: str = "r") -> Program:
    """Every name but the fixed inputs renamed (state order kept)."""
    names = {p for p in program.params if p not in ("w", "g", "lr", "step")}
    names |= {h for h, _ in program.hyperparams} | {s.target for s in program.body if s.target not in ("g", "lr")}
    mapping = {n: f"{prefix}_{i}" for i, n in enumerate(sorted(names))}
    new = lambda n: mapping.get(n, n)  # noqa: E731
    body = tuple(
        replace(s, target=new(s.target), args=tuple(Var(new(a.name)) if isinstance(a, Var) else a for a in s.args))
        for s in program.body
    )
    return Program(
        params=tuple(new(p) for p in program.params),
        body=body,
        returns=tuple(new(r) for r in program.returns),
        hyperparams=tuple((new(h), v) for h, v in program.hyperparams),
    )


@PROPERTY
@given(programs())
def test_hash_ignores_names(program):
    assert analyze(_rename(program)).hash == analyze(program).hash


@PROPERTY
@given(programs(), st.data())
def test_hash_ignores_dead_statements(program, data):
    index = data.draw(st.integers(0, len(program.body)))
    bound = live_variables(program, index)
    dead = Statement("never_read", data.draw(st.sampled_from(["sign", "exp", "add"])), ())
    dead = replace(dead, args=tuple(Var(data.draw(st.sampled_from(bound))) for _ in range(1 if dead.op != "add" else 2)))
    body = program.body[:index] + (dead,) + program.body[index:]
    with_dead = program.with_body(body)
    a = analyze(with_dead)
    assert a.hash == analyze(program).hash
    assert not a.live[index]


@PROPERTY
@given(programs(min_statements=2), st.data())
def test_hash_ignores_the_order_of_independent_statements(program, data):
    body = list(program.body)
    pairs = [
        i for i in range(len(body) - 1)
        if body[i].target != body[i + 1].target
        and body[i].target not in body[i + 1].reads()
        and body[i + 1].target not in body[i].reads()
    ]
    assume(pairs)
    i = data.draw(st.sampled_from(pairs))
    body[i], body[i + 1] = body[i + 1], body[i]
    assert analyze(program.with_body(body)).hash == analyze(program).hash


@PROPERTY
@given(programs(min_statements=1), st.data())
def test_hash_changes_with_a_live_constant(program, data):
    a = analyze(program)
    spots = [(i, k) for i, s in enumerate(program.body) if a.live[i] for k, arg in enumerate(s.args) if isinstance(arg, Const)]
    assume(spots)
    i, k = data.draw(st.sampled_from(spots))
    stmt = program.body[i]
    changed = Const(0.5 if stmt.args[k].value != 0.5 else 0.25)
    body = list(program.body)
    body[i] = stmt.with_args(stmt.args[:k] + (changed,) + stmt.args[k + 1:])
    assert analyze(program.with_body(body)).hash != a.hash


def test_hash_examples():
    def h(text: str) -> str:
        return analyze(parse("def train(w, g, m, lr, b=0.9):\n" + text)).hash

    base = h("    u = interp(g, m, b)\n    u = u - w\n    return u, m\n")
    assert h("    x = interp(g, m, 0.9)\n    x = x - w\n    return x, m\n") == base  # a hyperparameter counts by value
    assert h("    u = interp(g, m, b)\n    u = w - u\n    return u, m\n") != base  # sub is not commutative
    assert h("    u = interp(m, g, b)\n    u = u - w\n    return u, m\n") != base
    assert h("    u = interp(g, m, 0.8)\n    u = u - w\n    return u, m\n") != base
    assert h("    u = g + w\n    return u, m\n") == h("    u = w + g\n    return u, m\n")  # add is
    # the state's next value is part of what a program computes
    assert h("    u = m * lr\n    m = interp(g, m, b)\n    return u, m\n") != h("    u = m * lr\n    m = interp(g, m, 0.5)\n    return u, m\n")
    # but not for state that is never read
    assert h("    u = g * lr\n    m = interp(g, m, b)\n    return u, m\n") == h("    u = g * lr\n    m = interp(g, m, 0.5)\n    return u, m\n")


def test_library_programs_have_distinct_hashes():
    hashes = {name: analyze(library.load(name)).hash for name in library.names()}
    assert len(set(hashes.values())) == len(hashes)
