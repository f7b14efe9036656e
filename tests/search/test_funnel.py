"""Funnel selection: the best programs distinct in behaviour are re-evaluated at 10x on 5 seeds,
pass only when they beat the tuned baseline by more than the noise (one-sided Welch t-test,
test split not worse), only those go on to 100x, and a resumed run re-runs no stage."""

from __future__ import annotations

import pytest

from search.config import FunnelConfig
from search.funnel import verdict
from search.run import run
from search.store import Outcome, RunStore


def outcome(fakes, fitness: float, noise: float, n: int = 5, test: float | None = None) -> Outcome:
    losses = fakes.seed_losses(fitness, "abc", range(n), noise)
    record = {"valid": fitness, "test": fitness if test is None else test, **losses}
    return Outcome(fitness, fitness if test is None else test, {"task": record}, 1.0, None)


def test_a_difference_smaller_than_the_spread_does_not_pass(fakes):
    judged = verdict(outcome(fakes, 0.01, noise=0.05), alpha=0.05)
    assert not judged["passed"] and judged["why"].startswith("not significant") and judged["p"] > 0.05
    assert judged["n"] == 5 and judged["valid_std"] > 0.01 and "Welch" in judged["test"]


def test_a_difference_larger_than_the_spread_passes(fakes):
    judged = verdict(outcome(fakes, 0.2, noise=0.02), alpha=0.05)
    assert judged["passed"] and judged["p"] < 1e-3
    assert judged["valid_mean"] == pytest.approx(0.2, abs=0.05) and judged["baseline_valid_mean"] == pytest.approx(0, abs=0.05)


def test_a_win_on_validation_that_loses_on_test_does_not_pass(fakes):
    judged = verdict(outcome(fakes, 0.2, noise=0.02, test=-0.01), alpha=0.05)
    assert not judged["passed"] and "worse than the baseline on the test split" in judged["why"]


def test_a_failed_candidate_does_not_pass():
    judged = verdict(Outcome(-1000.0, -1000.0, {}, 0.0, "nan loss"), alpha=0.05)
    assert not judged["passed"] and "failed: nan loss" in judged["why"]


def test_the_funnel_promotes_only_significant_winners_and_a_resume_reruns_nothing(tmp_path, fakes, local_ray):
    log = tmp_path / "evaluated"
    # deterministic: the funnel's three distinct candidates have fake fitnesses 2.73, 2.618 and
    # 2.204; less 2.6, one wins by far more than the noise, one by less, one loses
    tasks = [fakes.Task(log=str(log), noise=0.05, offset=2.6)]
    funnel = FunnelConfig(enabled=True, top_k=3, scales=(10.0, 100.0), seeds=5)
    config = fakes.config(tmp_path / "run", max_evals=40, funnel=funnel, deterministic=True)
    run(config, evaluate=fakes.evaluate, tasks=tasks)
    with RunStore(tmp_path / "run") as store:
        rows = store.funnel()
        ranked = store.best(100)
    stage = {scale: [r for r in rows if r.scale == scale] for scale in (10.0, 100.0)}
    assert len(stage[10.0]) == 3 and all(r.role == "candidate" for r in rows)
    assert {r.hash for r in stage[10.0]} <= {r.hash for r in ranked[:20]}
    for r in stage[10.0] + stage[100.0]:
        assert r.per_task["fake"]["scale"] == r.scale  # evaluated on the scaled tasks
        assert len(r.per_task["fake"]["valid_losses"]) == 5  # on the funnel's seeds
        assert r.verdict["passed"] == r.beat_baseline and "p" in r.verdict
        assert r.beat_baseline == (r.verdict["p"] < 0.05 and r.test_fitness >= 0)
    winners = {r.hash for r in stage[10.0] if r.beat_baseline}
    assert 0 < len(winners) < 3, [r.verdict for r in stage[10.0]]  # the test told some apart
    assert {r.hash for r in stage[100.0]} == winners

    evaluated = log.read_text().splitlines()
    assert len(evaluated) == 40 + len(stage[10.0]) + len(stage[100.0])
    run(resume=tmp_path / "run", evaluate=fakes.evaluate, tasks=tasks)
    assert log.read_text().splitlines() == evaluated  # no search evaluation and no funnel stage ran again
