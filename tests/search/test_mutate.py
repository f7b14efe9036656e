"""Mutation validity: every child analyzes, differs from its parent by hash, stays in the
grammar (parse(print(child)) == child), and only uses the configured function set."""

from __future__ import annotations

import random

import programs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from search.config import MutationConfig
from search.mutate import Mutator, fresh_name
from symbolic_opt import Const, analyze, parse, print_program
from symbolic_opt.ir import READ_ONLY_INPUTS

STARTS = ("adamw_paper", "lion", "adamw", "discovered")


def lineage(start: str, seed: int, generations: int, mutator: Mutator) -> list:
    """Children of children: later programs are far from the library's."""
    rng = random.Random(seed)
    program = programs.load(start)
    out = []
    for _ in range(generations):
        child = mutator.child(program, rng)
        assert child is not None
        out.append((program, child))
        program = child.program
    return out


@settings(max_examples=60, deadline=None)
@given(start=st.sampled_from(STARTS), seed=st.integers(0, 2**32 - 1))
def test_every_child_is_valid_new_and_round_trips(start, seed):
    mutator = Mutator()
    for parent, child in lineage(start, seed, 15, mutator):
        analysis = analyze(child.program)  # raises if invalid
        assert analysis.hash == child.hash != analyze(parent).hash
        assert parse(print_program(child.program)) == child.program
        hyper = {h for h, _ in child.program.hyperparams}
        for stmt in child.program.body:
            assert stmt.target not in READ_ONLY_INPUTS and stmt.target not in hyper
            assert stmt.target.isidentifier()
            assert all(a.value == a.value for a in stmt.args if isinstance(a, Const))  # finite, not nan
        assert child.program.returns == parent.returns
        assert child.program.params == parent.params
        assert 1 <= child.attempts <= mutator.config.max_attempts


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_inserted_ops_come_from_the_function_set(seed):
    ops = ("sign", "mul", "interp")
    mutator = Mutator(MutationConfig(insert=1, delete=0, modify=0, ops=ops))
    base = {s.op for s in programs.load("adamw_paper").body}
    for _, child in lineage("adamw_paper", seed, 10, mutator):
        assert {s.op for s in child.program.body} <= base | set(ops)


def test_weights_choose_the_mutation():
    rng = random.Random(0)
    parent = programs.load("adamw_paper")
    for kind, weights in (("insert", (1, 0, 0)), ("delete", (0, 1, 0)), ("modify", (0, 0, 1))):
        mutator = Mutator(MutationConfig(*weights))
        for _ in range(20):
            child, description = mutator.mutate(parent, rng)
            assert description.startswith(kind)
            assert len(child.body) - len(parent.body) == {"insert": 1, "delete": -1, "modify": 0}[kind]


def test_constants_mutate_by_a_normal_draw_or_a_power_of_two():
    mutator = Mutator(MutationConfig(const_prob=0.0))
    rng = random.Random(1)
    scaled = replaced = 0
    for _ in range(400):
        value = mutator._mutated_constant(0.001, rng).value
        if 0.001 / 64 < abs(value) < 0.001 * 64 and value > 0:
            scaled += 1
        else:
            replaced += 1
    assert scaled > 120 and replaced > 120  # about half each


def test_valid_child_rate_after_retries_is_near_one():
    mutator = Mutator()
    rng = random.Random(3)
    program = programs.load("adamw_paper")
    made = 0
    for _ in range(300):
        child = mutator.child(program, rng)
        if child is not None:
            made += 1
            if rng.random() < 0.5:
                program = child.program
    assert made / 300 >= 0.99


def test_fresh_names_do_not_clash():
    program = parse("def train(w, g, m, lr):\n    t1 = g * 2\n    t2 = t1 + m\n    return t2, m\n")
    assert fresh_name(program) == "t3"


def test_unknown_op_in_the_function_set_is_an_error():
    with pytest.raises(ValueError, match="unknown op"):
        Mutator(MutationConfig(ops=("sign", "frobnicate")))
