"""Evaluate a candidate program on a suite of tasks: the search's fitness function.

    from search.evaluate import evaluate, default_tasks
    result = evaluate(program, default_tasks(), deadline_s=5.0)
    result.fitness, result.test_fitness, result.error, result.per_task["char_lm"]["multiplier"]

Each task comes calibrated (``calibration.py``: computed once per run by the driver, or once
per process when ``evaluate`` is handed plain ``TaskSpec``s): the schedule peak ``center`` at
which the warm start does best, and AdamW tuned on its lr, beta1 and weight decay. On each
task the candidate is **judged at its best learning rate**: it trains at ``center * m`` for
every multiplier ``m`` of the grid, on the validation seeds, all in one batch
(``tuning.validate``); the multiplier with the lowest mean validation loss is chosen, and the
task's score is ``fitness.task_score`` of that loss against the baseline's (0: as good as
tuned AdamW, > 0 better, -1 no better than not training). The fitness is the mean over tasks.
Only then, at each task's chosen multiplier, the held-out seeds train and are scored on the
test split (``test_fitness``): held-out data and held-out initialisations, never used to
choose anything, so overfitting the proxy shows as a gap between the two.

A program whose lr constant is changed by a grid step (``lr * 0.001`` -> ``lr * 0.004``)
trains exactly as before at the neighbouring multiplier, so it scores exactly the same:
the grid takes the step size off the fitness, and structure is what is left to judge.

**Hurdle** (``hurdle=``, the search's default ``HURDLE``): tasks run in suite order, cheapest
first; once the mean score of the tasks done so far is below the hurdle, the evaluation stops
there. Its fitness is that mean (below the hurdle, so below anything a tournament would
pick), ``stopped`` says so, and no test score is measured. A fitness stays a function of the
program alone, so the cache may serve it.

A bad candidate never raises: an exception, nan/inf losses or divergence at every multiplier
of a task, and running past ``deadline_s`` CPU seconds score ``WORST`` with the reason in
``error``. A bad task list (an unknown task name) does raise: that is a configuration error.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Sequence

from symbolic_opt.ir import Program

from . import trainer
from .calibration import BASELINE, MULTIPLIERS, Calibration, calibration
from .fitness import WORST, combine, task_score
from .stats import mean as _mean
from .suite import DEFAULT_SUITE, TaskSpec, default_tasks, suite
from .training import Optimizer
from .tuning import Sweep, held_out, validate

HURDLE = -0.5
"""The search's hurdle: an evaluation whose running mean score falls below this stops (half
of tuned AdamW's gain given up: nothing a tournament would pick as a parent)."""


@dataclass(frozen=True)
class Evaluation:
    """The result of ``evaluate``. ``fitness`` and ``test_fitness`` are ``WORST`` on any failure."""

    fitness: float
    """Selection score (higher is better): mean over tasks of the validation score at the best multiplier."""
    test_fitness: float
    """The same on the test split with the held-out seeds; never used for selection (nan if not measured)."""
    per_task: dict
    """``TaskSpec.key`` -> scores, the chosen multiplier, the tuning curve, losses per seed, the baseline's."""
    seconds: float
    """Wall time of the candidate's evaluation (calibration excluded)."""
    error: str | None = None
    """Why it failed, e.g. ``"nan loss, seed 1 (step 37 of digits_mlp) at every lr multiplier"``."""
    cpu_seconds: float = 0.0
    """CPU time of this process during the evaluation: what ``deadline_s`` limits."""
    stopped: str | None = None
    """Why the evaluation stopped before the last task (a hurdle), or None."""

    @property
    def ok(self) -> bool:
        return self.error is None


def evaluate(
    program: Program,
    tasks: Sequence[Calibration | TaskSpec],
    *,
    deadline_s: float | None = None,
    hurdle: float | None = None,
) -> Evaluation:
    """Score ``program`` on ``tasks`` (module docstring).

    ``tasks``: calibrated tasks (what a search ships), or ``TaskSpec``s, calibrated here once
    per process. ``deadline_s``: CPU seconds the candidate may take, compiling included
    (calibration is not counted). Never raises for a bad candidate; raises ``KeyError`` for
    an unknown task and ``calibration.BaselineError`` for a task the baseline cannot learn.
    """
    return evaluate_optimizer(program, tasks, deadline_s=deadline_s, hurdle=hurdle)


def evaluate_optimizer(
    optimizer: Program | Optimizer,
    tasks: Sequence[Calibration | TaskSpec],
    *,
    deadline_s: float | None = None,
    hurdle: float | None = None,
) -> Evaluation:
    """``evaluate`` for a program or anything that can step a flat buffer (``training.Optimizer``),
    e.g. the hand-written ``training.HandWrittenAdamW`` the benchmark compares compiled programs with."""
    calibrations = [t if isinstance(t, Calibration) else calibration(t) for t in tasks]
    wall, cpu = time.perf_counter(), time.process_time()
    deadline = None if deadline_s is None else cpu + deadline_s
    per_task: dict[str, dict] = {}
    prepared: dict[bool, Any] = {}
    chosen: list[tuple[Calibration, Any, float]] = []

    def finish(fitness: float, test: float, error: str | None = None, stopped: str | None = None) -> Evaluation:
        return Evaluation(fitness, test, per_task, time.perf_counter() - wall, error, time.process_time() - cpu, stopped)

    for i, cal in enumerate(calibrations):
        spec = cal.spec
        try:
            flat = trainer.is_flat(spec.name)
            if flat not in prepared:
                prepared[flat] = trainer.optimizer_for(spec.name, optimizer)
        except Exception as e:  # a program that does not check or compile
            return finish(WORST, WORST, f"{type(e).__name__}: {e}")
        sweep = validate(spec.name, spec.scale, prepared[flat], cal.settings(), spec.seeds, deadline=deadline,
                         test_seeds=spec.test_seeds if trainer.small(spec.name, spec.scale) else ())
        if sweep.best is None:
            error = sweep.failure() + ("" if sweep.error else " at every lr multiplier")
            per_task[spec.key] = {"error": error, "steps": sweep.steps, "cpu_seconds": sweep.cpu_seconds}
            return finish(WORST, WORST, error)
        per_task[spec.key] = _valid_record(cal, sweep)
        chosen.append((cal, prepared[flat], sweep))
        running = combine(r["valid"] for r in per_task.values())
        if hurdle is not None and i < len(calibrations) - 1 and running < hurdle:
            done = ", ".join(per_task)
            return finish(running, math.nan, stopped=f"below the hurdle {hurdle:g} after {done} (mean {running:.4f})")
    for cal, prepared_optimizer, sweep in chosen:
        record = per_task[cal.key]
        test = sweep.held_out(sweep.best) or held_out(cal.spec.name, cal.spec.scale, prepared_optimizer,
                                                      sweep.settings[sweep.best], cal.spec.test_seeds, deadline=deadline)
        if test.error is not None and "deadline" in test.error:
            return finish(WORST, WORST, test.error)
        record.update(_test_record(cal, test))
    fitness = combine(r["valid"] for r in per_task.values())
    failed_test = any("test_error" in r for r in per_task.values())
    return finish(fitness, WORST if failed_test else combine(r["test"] for r in per_task.values()))


def _valid_record(cal: Calibration, sweep: Sweep) -> dict:
    """A task's entry in ``Evaluation.per_task`` after validation (JSON-friendly)."""
    best = sweep.best
    loss, b = sweep.mean(best), cal.baseline
    record = {
        "valid": task_score(loss, b.valid_loss, cal.initial["valid"]),
        "multiplier": cal.multipliers[best],
        "lr_peak": sweep.settings[best].lr_peak,
        "center": cal.center,
        "on_edge": best in (0, len(cal.multipliers) - 1),
        "tuning": [[m, sweep.mean(i) if math.isfinite(sweep.mean(i)) else None] for i, m in enumerate(cal.multipliers)],
        "valid_loss": loss,
        "valid_losses": list(sweep.losses[best]),
        "baseline_valid_loss": b.valid_loss,
        "baseline_valid_losses": list(b.valid_losses),
        "initial_valid_loss": cal.initial["valid"],
        "steps": sweep.steps,
        "cpu_seconds": sweep.cpu_seconds,
    }
    for name, values in sweep.metrics[best].items():
        if name != "loss":
            record[f"valid_{name}"] = _mean(values)
            record[f"baseline_valid_{name}"] = _mean(b.valid_metrics.get(name, (math.nan,)))
    return record


def _test_record(cal: Calibration, test) -> dict:
    b = cal.baseline
    record = {
        "baseline_test_loss": b.test_loss,
        "baseline_test_losses": list(b.test_losses),
        "initial_test_loss": cal.initial["test"],
    }
    if test.error is not None:
        # at the multiplier validation chose, a held-out seed failed: as bad as a test score gets
        return {**record, "test": WORST, "test_error": test.error, "test_loss": None, "test_losses": None}
    record.update(test=task_score(test.mean, b.test_loss, cal.initial["test"]), test_loss=test.mean,
                  test_losses=list(test.losses))
    for name, values in test.metrics.items():
        if name != "loss":
            record[f"test_{name}"] = _mean(values)
            record[f"baseline_test_{name}"] = _mean(b.test_metrics.get(name, (math.nan,)))
    return record


__all__ = [
    "BASELINE", "DEFAULT_SUITE", "Evaluation", "HURDLE", "MULTIPLIERS", "TaskSpec", "WORST", "default_tasks",
    "evaluate", "evaluate_optimizer", "suite",
]
