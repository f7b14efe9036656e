"""Funnel selection against meta-overfitting (paper-notes section 3), with a test of significance.

At the end of a search, the ``top_k`` programs by proxy fitness that are distinct in
behaviour (``behaviour.same_behaviour``: the same updates up to a learning-rate factor
count once; five copies of one program with a negligible extra term are one candidate) are
re-evaluated on the same tasks made ``scales[0]`` times larger (10x), on ``seeds`` validation
seeds and as many held-out ones, each task calibrated afresh at that scale (the baseline
AdamW re-tuned there, every candidate again judged at its best lr multiplier). A program
**passes** a stage only if it beats the tuned baseline by more than the noise: a one-sided
Welch t-test of its per-seed validation scores against the baseline's own (``alpha``,
default p < 0.05), and its mean held-out test score is not below the baseline's (>= 0).
Those that pass go on to ``scales[1]`` (100x), and so on. Every result, with its verdict
(means, spreads, t, p, the test used), is a row of the store's ``funnel`` table; a stage
already in the store is not run again, so a resumed run finishes an interrupted funnel.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Callable, Mapping, Sequence

from rich.console import Console

from .calibration import calibrate_suite
from .config import SearchConfig
from .fitness import seed_scores
from .progress import Phase, duration
from .stats import mean as _mean, std as _std
from .store import EvaluationRecord, Outcome, RunStore
from .suite import TaskSpec, seed_sets

TEST_NAME = "one-sided Welch t-test over seeds (validation), and mean test score >= the baseline's"


def run_funnel(store: RunStore, pool, config: SearchConfig, tasks: Sequence, console: Console,
               evaluate: Callable[..., Any] | None = None) -> list[EvaluationRecord]:
    """Run the funnel on ``pool`` (a started ``RayPool``); the survivors of the last stage run.
    ``evaluate``: the evaluation without the search's hurdle (default: the pool's own).

    Each stage calibrates its scale once (the baseline tuned on the workers, shared by all
    candidates), prints its expected cost, evaluates its candidates on every worker at once
    with a progress line, and records its plan (``funnel@SCALE``) so that ``symopt report``
    shows what is pending. ``config.funnel.minutes`` bounds the funnel: at the deadline what
    is in flight is abandoned and the funnel says how to finish it (``symopt funnel RUN``)."""
    funnel = config.funnel
    deadline = None if funnel.minutes is None else time.monotonic() + 60 * funnel.minutes
    survivors = distinct(store.best(20 * funnel.top_k + 1), funnel.top_k)
    evaluate_ref = pool.put(evaluate) if evaluate is not None else None
    results: list[EvaluationRecord] = []
    for scale in funnel.scales:
        if not survivors:
            break
        if deadline is not None and time.monotonic() >= deadline:  # not even the calibration of this scale
            store.set_fitness_record(f"funnel@{scale:g}", {"programs": [r.hash for r in survivors], "estimate_s": None})
            _stopped(store, survivors, scale, funnel.minutes, console)
            return results
        suite = calibrate_suite(store, pool, scaled(tasks, scale, funnel.seeds), f"calibration@{scale:g}", console,
                                multipliers=config.lr_grid, warm_start=config.warm_start, live=config.live)
        todo = [r for r in survivors if store.funnel_result(r.hash, scale) is None]  # a stage in the store is not rerun
        estimate = stage_estimate(store, todo, scale, pool.workers)
        store.set_fitness_record(f"funnel@{scale:g}", {"programs": [r.hash for r in survivors], "estimate_s": estimate})
        console.print(f"funnel at scale {scale:g}: {len(survivors)} program(s) on {funnel.seeds} + {funnel.seeds} seeds "
                      f"against the tuned baseline, {len(todo)} to evaluate on {pool.workers} worker(s)"
                      + ("" if estimate is None or not todo else f", estimated {duration(estimate)}")
                      + ("" if deadline is None else f" (funnel budget: {duration(max(0.0, deadline - time.monotonic()))} left)"),
                      highlight=False)
        timeout = funnel.timeout_s or config.eval_timeout_s * scale * funnel.seeds / 3
        if not _run_stage(store, pool, todo, scale, suite, timeout, evaluate_ref, console, config, deadline, estimate):
            _stopped(store, survivors, scale, funnel.minutes, console)
            return results
        entered = {r.hash for r in survivors}
        results = [r for r in store.funnel()
                   if r.scale == scale and r.role == "candidate" and r.beat_baseline and r.hash in entered]
        survivors = results
    return results


def _run_stage(store: RunStore, pool, todo: Sequence[EvaluationRecord], scale: float, suite: tuple, timeout: float,
               evaluate_ref, console: Console, config: SearchConfig, deadline: float | None,
               estimate_s: float | None) -> bool:
    """Evaluate ``todo`` at ``scale`` on every worker, storing each verdict as it comes;
    False if the deadline stopped it (what was in flight is abandoned, and stays pending)."""
    suite_ref = pool.put(suite)
    texts = {r.hash: r.text for r in todo}
    for record in todo:
        pool.submit(record.hash, record.program, tasks=suite_ref, timeout_s=timeout, evaluate=evaluate_ref)
    with Phase(console, f"funnel at scale {scale:g}", len(todo), live=config.live, estimate_s=estimate_s) as phase:
        while pool.in_flight:
            if deadline is not None and time.monotonic() >= deadline:
                pool.abandon()
                return False
            for done in pool.results(timeout=0.5):
                if done.outcome.infrastructure:  # no verdict: a resume evaluates it again
                    phase.done(f"{done.key[:12]} lost by the infrastructure ({done.outcome.error}); "
                               "symopt funnel evaluates it again")
                    continue
                judged = verdict(done.outcome, config.funnel.alpha)
                store.add_funnel(done.key, texts[done.key], "candidate", scale, done.outcome, judged["passed"], judged)
                phase.done(f"{done.key[:12]}: {'passed' if judged['passed'] else 'did not pass'} ({judged['why']})")
            phase.tick()
    return True


def stage_estimate(store: RunStore, todo: Sequence[EvaluationRecord], scale: float, workers: int) -> float | None:
    """Expected wall seconds of a stage: each program's proxy evaluation time, times how much
    dearer the baseline's tuning was at ``scale`` than on the proxy (measured: the stored
    calibrations' CPU seconds), shared among ``workers``; None without those timings."""
    proxy, scaled_up = store.fitness_record("calibration"), store.fitness_record(f"calibration@{scale:g}")
    seconds = [r.seconds for r in todo if r.seconds]
    if not proxy or not scaled_up or len(seconds) < len(todo):
        return None
    proxy_cpu = sum(c.get("cpu_seconds", 0.0) for c in proxy)
    if proxy_cpu <= 0:
        return None
    ratio = sum(c.get("cpu_seconds", 0.0) for c in scaled_up) / proxy_cpu
    costs = [s * ratio for s in seconds]
    return max(sum(costs) / max(1, workers), max(costs, default=0.0))


def _stopped(store: RunStore, survivors, scale: float, minutes: float, console: Console) -> None:
    pending = [r.hash[:12] for r in survivors if store.funnel_result(r.hash, scale) is None]
    console.print(f"[yellow]funnel stopped by its budget[/yellow] ({minutes:g} min): {len(pending)} program(s) pending "
                  f"at scale {scale:g} ({', '.join(pending)});\nfinish it with: symopt funnel {store.run_dir} "
                  "(no budget unless you give it --minutes)", highlight=False)


def pending(store: RunStore) -> list[tuple[float, str]]:
    """``(scale, hash)`` of every program a funnel stage took in and has no result for yet: a
    funnel still running, or one stopped by its budget or a kill (``symopt funnel`` finishes it)."""
    out = []
    for key in store.fitness_keys():
        if key.startswith("funnel@"):
            scale = float(key.split("@", 1)[1])
            out += [(scale, h) for h in store.fitness_record(key)["programs"] if store.funnel_result(h, scale) is None]
    return sorted(out)


def scaled(tasks: Sequence, scale: float, seeds: int) -> tuple:
    """The suite ``scale`` times larger, on ``seeds`` validation and held-out seeds each."""
    valid, held = seed_sets(seeds)
    out = []
    for t in tasks:
        if isinstance(t, TaskSpec):
            out.append(TaskSpec(t.name, t.scale * scale, valid, held))
        else:  # a test's fake task: its scale and seeds change
            out.append(dataclasses.replace(t, scale=t.scale * scale, seeds=valid))
    return tuple(out)


def verdict(outcome: Outcome, alpha: float) -> dict:
    """Whether ``outcome`` beats the tuned baseline by more than the noise (module docstring),
    with the numbers that say so."""
    from scipy import stats

    base = {"test": TEST_NAME, "alpha": alpha, "passed": False}
    if outcome.error is not None or outcome.infrastructure:
        return {**base, "why": f"failed: {outcome.error}"}
    held_out = [r["test_error"] for r in outcome.per_task.values() if isinstance(r, Mapping) and r.get("test_error")]
    if held_out:
        return {**base, "why": f"a held-out seed failed at the multiplier validation chose: {held_out[0]}"}
    try:
        ours, theirs = seed_scores(outcome.per_task, "valid"), seed_scores(outcome.per_task, "valid", baseline=True)
        ours_test = seed_scores(outcome.per_task, "test")
    except (KeyError, ValueError) as exc:
        return {**base, "why": f"no per-seed scores to test ({exc})"}
    t, p = stats.ttest_ind(ours, theirs, equal_var=False, alternative="greater")
    p = 1.0 if math.isnan(p) else float(p)  # equal constant samples: no evidence of a difference
    numbers = {
        "n": len(ours), "valid_mean": _mean(ours), "valid_std": _std(ours),
        "baseline_valid_mean": _mean(theirs), "baseline_valid_std": _std(theirs),
        "t": None if math.isnan(t) else float(t), "p": p,
        "test_mean": outcome.test_fitness, "test_std": _std(ours_test),
    }
    if not p < alpha:
        why = f"not significant: p = {p:.3g} >= {alpha:g}"
    elif not outcome.test_fitness >= 0:
        why = f"worse than the baseline on the test split ({outcome.test_fitness:+.4f})"
    else:
        why = f"beats the baseline: p = {p:.3g} < {alpha:g}, test {outcome.test_fitness:+.4f}"
    return {**base, **numbers, "passed": why.startswith("beats"), "why": why}


def distinct(records: Sequence[EvaluationRecord], k: int) -> list[EvaluationRecord]:
    """The first ``k`` records no two of which behave the same (``behaviour.same_behaviour``)."""
    from .behaviour import behaviour, same_behaviour

    kept: list[tuple[EvaluationRecord, Any]] = []
    for r in records:
        if len(kept) == k:
            break
        b = behaviour(r.program)
        if b is None or not any(other is not None and same_behaviour(b, other) for _, other in kept):
            kept.append((r, b))
    return [r for r, _ in kept]


def summary(verdict_: Mapping[str, Any]) -> str:
    """One line: ``+0.031 +- 0.012 vs +0.002 +- 0.010, p = 0.004``."""
    if "valid_mean" not in verdict_:
        return verdict_.get("why", "")
    return (f"{verdict_['valid_mean']:+.4f} ± {verdict_['valid_std']:.4f} vs baseline "
            f"{verdict_['baseline_valid_mean']:+.4f} ± {verdict_['baseline_valid_std']:.4f} (n={verdict_['n']}), "
            f"p = {verdict_['p']:.3g}; test {verdict_['test_mean']:+.4f} ± {verdict_['test_std']:.4f}")
