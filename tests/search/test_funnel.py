"""Funnel selection: the best programs distinct in behaviour are re-evaluated at 10x on 5 seeds,
pass only when they beat the tuned baseline by more than the noise (one-sided Welch t-test,
test split not worse), only those go on to 100x, and a resumed run re-runs no stage.

The verdict is checked against Welch's test computed here from its textbook formulas (scipy
only for the t distribution's tail), and on real evaluations of the quadratic proxy task."""

from __future__ import annotations

import math
import statistics

import pytest
from scipy import stats

import programs
from search.calibration import BaselineGrid, calibrate
from search.config import FunnelConfig
from search.evaluate import evaluate
from search.funnel import scaled, verdict
from search.run import run
from search.store import Outcome, RunStore
from search.suite import TaskSpec
from symbolic_opt import parse


def welch(a: list[float], b: list[float]) -> tuple[float, float]:
    """Welch's t of ``mean(a) > mean(b)`` and its one-sided p:
    t = (mean_a - mean_b) / sqrt(s_a^2/n_a + s_b^2/n_b), with Welch-Satterthwaite's degrees
    of freedom df = (s_a^2/n_a + s_b^2/n_b)^2 / ((s_a^2/n_a)^2/(n_a-1) + (s_b^2/n_b)^2/(n_b-1))."""
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    t = (statistics.fmean(a) - statistics.fmean(b)) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return t, float(stats.t.sf(t, df))


def score(loss: float, baseline: float, initial: float) -> float:
    """fitness.py's task score, written out: log(B / L) / log(L0 / B)."""
    return math.log(baseline / loss) / math.log(initial / baseline)


# two tasks, 5 seeds: the candidate a little better than the baseline on both, and less spread
# (Welch's p 0.021 here; Student's pooled-variance test would say 0.016)
TASKS = {
    "a": {"initial": 10.0, "baseline": [1.00, 1.10, 0.90, 1.05, 0.95], "ours": [0.90, 0.93, 0.88, 0.94, 0.89]},
    "b": {"initial": 4.0, "baseline": [0.50, 0.52, 0.47, 0.55, 0.49], "ours": [0.46, 0.48, 0.45, 0.49, 0.46]},
}


def hand_outcome(test_fitness: float = 0.01, **changes) -> Outcome:
    """An outcome holding ``TASKS``'s losses (the same on both splits), as ``evaluate`` records them."""
    per_task = {}
    for name, t in TASKS.items():
        record = {"initial_valid_loss": t["initial"], "initial_test_loss": t["initial"]}
        for split in ("valid", "test"):
            record[f"baseline_{split}_losses"] = t["baseline"]
            record[f"baseline_{split}_loss"] = statistics.fmean(t["baseline"])
            record[f"{split}_losses"] = t["ours"]
        per_task[name] = {**record, **changes.get(name, {})}
    return Outcome(0.05, test_fitness, per_task, 1.0, None)


def hand_scores(key: str) -> list[float]:
    """Per seed, the mean over tasks of ``score`` against the baseline's mean loss."""
    columns = [[score(x, statistics.fmean(t["baseline"]), t["initial"]) for x in t[key]] for t in TASKS.values()]
    return [statistics.fmean(seed) for seed in zip(*columns)]


def test_the_verdict_is_welchs_one_sided_test_on_the_seed_scores():
    ours, theirs = hand_scores("ours"), hand_scores("baseline")
    t, p = welch(ours, theirs)
    assert 0.001 < p < 0.05  # the data were chosen to be a win, but not by far
    judged = verdict(hand_outcome(), alpha=0.05)
    assert judged["t"] == pytest.approx(t, rel=1e-9) and judged["p"] == pytest.approx(p, rel=1e-9)
    assert judged["n"] == 5 and "Welch" in judged["test"]
    assert judged["valid_mean"] == pytest.approx(statistics.fmean(ours), rel=1e-12)
    assert judged["baseline_valid_std"] == pytest.approx(statistics.stdev(theirs), rel=1e-12)
    assert judged["passed"] and judged["why"].startswith("beats the baseline")


def test_the_verdict_turns_at_alpha_and_at_a_test_score_of_zero():
    p = verdict(hand_outcome(), alpha=0.05)["p"]
    assert verdict(hand_outcome(), alpha=math.nextafter(p, 1.0))["passed"]
    at_p = verdict(hand_outcome(), alpha=p)
    assert not at_p["passed"] and at_p["why"].startswith("not significant")  # p < alpha, strictly
    assert verdict(hand_outcome(test_fitness=0.0), alpha=0.05)["passed"]  # as good on test is enough
    worse = verdict(hand_outcome(test_fitness=-1e-9), alpha=0.05)
    assert not worse["passed"] and "worse than the baseline on the test split" in worse["why"]


@pytest.mark.filterwarnings("ignore:Precision loss occurred:RuntimeWarning")  # scipy, on the constant samples
def test_a_loss_equal_to_the_baseline_on_every_seed_is_no_evidence():
    same = {name: {"valid_losses": t["baseline"]} for name, t in TASKS.items()}
    judged = verdict(hand_outcome(**same), alpha=0.05)
    assert judged["t"] == pytest.approx(0.0, abs=1e-12) and judged["p"] == pytest.approx(0.5)
    assert not judged["passed"]
    constant = {name: {"valid_losses": [1.0] * 5, "baseline_valid_losses": [1.0] * 5} for name in TASKS}
    flat = verdict(hand_outcome(**constant), alpha=0.05)
    assert flat["p"] == 1.0 and flat["t"] is None and not flat["passed"]  # 0/0: no difference shown


def test_a_failed_candidate_or_held_out_seed_does_not_pass():
    judged = verdict(Outcome(-1000.0, -1000.0, {}, 0.0, "nan loss"), alpha=0.05)
    assert not judged["passed"] and "failed: nan loss" in judged["why"]
    held = verdict(hand_outcome(b={"test_error": "diverged, seed 1003"}), alpha=0.05)
    assert not held["passed"] and "a held-out seed failed" in held["why"] and "seed 1003" in held["why"]


# --- real evaluations ----------------------------------------------------------------------------
(QUADRATIC,) = scaled([TaskSpec("quadratic")], 1.0, 5)
"""The quadratic proxy on the funnel's 5 + 5 seeds."""


def judge(program, cal) -> dict:
    ev = evaluate(program, [cal])
    return verdict(Outcome(ev.fitness, ev.test_fitness, ev.per_task, ev.seconds, ev.error), alpha=0.05)


def test_on_real_evaluations_a_program_passes_only_against_a_baseline_it_beats():
    """The paper's AdamW program beats signSGD tuned on the quadratic (measured: p 7e-4), is
    as good as AdamW tuned (p 0.5), and a program that barely moves beats neither (p 1)."""
    warm = programs.load("adamw_paper")
    still = parse("def train(w, g, lr):\n    update = g * 0.0001\n    update = update * lr\n    return update\n")
    weak = calibrate(QUADRATIC, grid=BaselineGrid(program="signsgd", beta1=(), wd=(), first=()))
    tuned = calibrate(QUADRATIC)
    assert tuned.baseline.valid_loss < weak.baseline.valid_loss

    beats = judge(warm, weak)
    assert beats["passed"] and beats["p"] < 0.01 and beats["valid_mean"] > beats["baseline_valid_mean"]
    assert beats["test_mean"] > 0
    ties = judge(warm, tuned)
    assert not ties["passed"] and ties["p"] > 0.2 and abs(ties["valid_mean"]) < 0.01
    for cal in (weak, tuned):
        loses = judge(still, cal)
        assert not loses["passed"] and loses["p"] > 0.99 and loses["valid_mean"] < -0.1


# --- the funnel in a search --------------------------------------------------------------------
def test_the_funnel_promotes_only_significant_winners_and_a_resume_reruns_nothing(tmp_path, fakes, local_ray):
    log = tmp_path / "evaluated"
    # deterministic: the funnel's three distinct candidates have fake fitnesses 2.730, 2.618 and
    # 2.615; less 2.6: +0.13 (far more than the noise 0.05 over 5 seeds), +0.018 and +0.015 (less)
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
        fake = r.per_task["fake"]
        assert fake["scale"] == r.scale and len(fake["valid_losses"]) == 5  # the scaled tasks, the funnel's seeds
        ours = [score(x, fake["baseline_valid_loss"], fake["initial_valid_loss"]) for x in fake["valid_losses"]]
        theirs = [score(x, fake["baseline_valid_loss"], fake["initial_valid_loss"]) for x in fake["baseline_valid_losses"]]
        assert r.verdict["p"] == pytest.approx(welch(ours, theirs)[1], rel=1e-9)
        assert r.verdict["passed"] == r.beat_baseline
    fitness = sorted(r.fitness for r in stage[10.0])
    assert 0 < fitness[0] < fitness[1] < 0.05 and fitness[2] > 0.1
    winners = {r.hash for r in stage[10.0] if r.beat_baseline}
    assert winners == {r.hash for r in stage[10.0] if r.fitness > 0.1}  # +0.015 and +0.018 are within the noise
    assert {r.hash for r in stage[100.0]} == winners

    evaluated = log.read_text().splitlines()
    assert len(evaluated) == 40 + len(stage[10.0]) + len(stage[100.0])
    run(resume=tmp_path / "run", evaluate=fakes.evaluate, tasks=tasks)
    assert log.read_text().splitlines() == evaluated  # no search evaluation and no funnel stage ran again
