"""Proxy tasks: runs are deterministic, seeds are independent of what they are batched with,
splits differ, and scale grows the task. (Their hand-written gradients against autograd, along
a training trajectory at every scale: ``test_layers.py``.)"""

from __future__ import annotations

import math

import pytest
import torch

import programs
from search import tasks
from search.flat import Layout, Param
from search.training import HandWrittenAdamW, ProgramStep, plan, schedule, train

ALL = ["char_lm", "digits_mlp", "digits_vit", "quadratic", "teacher_student"]


def test_registry():
    assert tasks.names() == ALL
    with pytest.raises(KeyError, match="digits_mlp"):
        tasks.get("digits")
    assert tasks.build("quadratic") is tasks.build("quadratic", 1.0)


def test_runs_are_deterministic():
    problem = tasks.build("teacher_student")
    opt = ProgramStep.of(programs.load("adamw_paper"))
    a = train(problem, (0, 1), opt, splits={"valid": [0, 1], "test": [0, 1]})
    b = train(problem, (0, 1), opt, splits={"valid": [0, 1], "test": [0, 1]})
    assert a.error is None and a.metrics == b.metrics
    assert a.metrics["valid"]["loss"][0] != a.metrics["valid"]["loss"][1]  # seeds differ


def test_a_seed_does_not_depend_on_its_batch():
    problem = tasks.build("digits_mlp")
    alone, batched = plan(problem, (7,)), plan(problem, (3, 7))
    assert torch.equal(alone.init[0], batched.init[1])
    assert torch.equal(alone.batches[:, 0], batched.batches[:, 1])
    opt = ProgramStep.of(programs.load("adamw_paper"))
    one = train(problem, (7,), opt).metrics["valid"]["loss"][0]
    two = train(problem, (3, 7), opt).metrics["valid"]["loss"][1]
    assert math.isclose(one, two, rel_tol=1e-5)


@pytest.mark.parametrize("name", ALL)
def test_validation_and_test_splits_differ(name):
    problem = tasks.build(name)
    views = problem.layout.views(plan(problem, (0,)).init)
    valid, test = problem.metrics(views, "valid")["loss"], problem.metrics(views, "test")["loss"]
    assert torch.isfinite(valid).all() and valid.item() != test.item()


def test_digits_splits_are_disjoint():
    from search.tasks import digits

    rows = {k: {tuple(r.tolist()) for r in x} for k, (x, _) in digits.splits().items()}
    assert sum(map(len, rows.values())) > 1700
    assert not (rows["train"] & rows["valid"]) and not (rows["valid"] & rows["test"])


@pytest.mark.parametrize("name", ALL)
def test_scale_grows_the_task(name):
    small, big = tasks.get(name)(1.0), tasks.get(name)(10.0)
    assert big.layout.size > 3 * small.layout.size
    assert big.steps > 2 * small.steps


def test_schedule_warms_up_to_one_and_decays_to_zero():
    lrs = schedule(100)
    assert len(lrs) == 100 and 0 < lrs[0] < 0.2
    assert max(lrs) == 1.0 and lrs[-1] == pytest.approx(0.0, abs=1e-12)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))


def test_layout_views_and_pack_round_trip():
    layout = Layout((Param("a", (2, 3), 1.0), Param("b", (4,))))
    flat = layout.init([0, 1])
    assert flat.shape == (2, 10) and torch.equal(flat[:, 6:], torch.zeros(2, 4))
    views = layout.views(flat)
    views["b"].add_(1.0)  # views write through to the buffer
    assert torch.equal(flat[:, 6:], torch.ones(2, 4))
    out = torch.empty_like(flat)
    layout.pack([views["a"], views["b"]], out=out)
    assert torch.equal(out, flat)


def test_hand_written_adamw_matches_the_compiled_program_exactly():
    problem = tasks.build("quadratic")
    compiled = train(problem, (0, 1), ProgramStep.of(programs.load("adamw_paper")))
    hand = train(problem, (0, 1), HandWrittenAdamW())
    assert compiled.metrics == hand.metrics
