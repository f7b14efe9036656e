"""Evaluate a candidate program on a suite of proxy tasks: the search's fitness function.

    from search.evaluate import TaskSpec, evaluate, default_tasks
    result = evaluate(program, default_tasks(), deadline_s=5.0)
    result.fitness, result.test_fitness, result.error

For each ``TaskSpec`` the task (``search.tasks``) is trained from the same initialisations and
in the same data order with the candidate and, once per process, with the baseline program
(``BASELINE``, the paper's AdamW warm start). ``seeds`` and ``test_seeds`` are trained together
in one batch (``layers.py``): the ``seeds`` models are scored on the validation split (that is
``fitness``, used for selection), the ``test_seeds`` models on the test split (``test_fitness``,
never used for selection: held-out data AND held-out initialisations/data orders, so
overfitting the proxy shows as a gap between the two). Scores are normalized per task against
the baseline (``fitness.py``): ``log(B / L) / log(L0 / B)`` averaged over tasks, where ``L``, ``B``
and ``L0`` are the candidate's, the baseline's and the untrained models' mean losses, so
``fitness > 0`` means better than AdamW, 0 as good, -1 no better than not training.

The learning rate the program receives follows ``training.schedule`` (linear warmup, cosine
to 0) scaled to the task's peak, and ``step`` counts 1, 2, ... The peak is where the baseline
does best: from 1, doubled or halved while the baseline's validation loss improves
(``tune_lr_peak``). So 0 means as good as AdamW with a tuned learning rate, and a candidate
cannot win by merely taking larger steps than an under-tuned baseline (at the AdamW
program's own lr, 3x larger steps alone score +0.12 on the default suite).

A bad candidate never raises: exceptions, nan/inf losses, divergence and running past
``deadline_s`` score ``WORST`` with the reason in ``error``.
A bad task list (an unknown task name) does raise: that is a configuration error.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass
from typing import Sequence

from symbolic_opt.ir import Program

from . import tasks as task_registry
from .fitness import WORST, combine, headroom, task_score
from .training import Optimizer, ProgramStep, RunResult, initial_metrics, train

BASELINE = "adamw_paper"
"""The library program every score is normalized against (``programs/adamw_paper.py``)."""

DEFAULT_SUITE = ("digits_mlp", "char_lm", "quadratic", "teacher_student")
"""The tasks of ``default_tasks``. ``digits_vit`` is left out: a transformer step on images
costs as much as the rest of the suite together; use it in a larger suite or the funnel."""


@dataclass(frozen=True)
class TaskSpec:
    """One task of a suite: which task, at which scale, on which seeds. Picklable.

    ``scale``: 1 is the proxy; 10 and 100 the funnel's larger versions (each task's docstring
    says what grows). ``seeds``: the initialisation and data-order seeds whose validation losses
    are averaged into ``fitness``. ``test_seeds``: held-out seeds, scored on the test split.
    """

    name: str
    scale: float = 1.0
    seeds: tuple[int, ...] = (0, 1, 2)
    test_seeds: tuple[int, ...] = (1000, 1001, 1002)

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", float(self.scale))
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
        object.__setattr__(self, "test_seeds", tuple(int(s) for s in self.test_seeds))
        if not self.scale > 0:
            raise ValueError(f"scale must be positive, got {self.scale}")
        if not self.seeds or not self.test_seeds:
            raise ValueError("a task needs at least one seed and one test seed")
        if set(self.seeds) & set(self.test_seeds) or len(set(self.seeds + self.test_seeds)) < len(self.seeds + self.test_seeds):
            raise ValueError(f"seeds {self.seeds} and test_seeds {self.test_seeds} must be distinct")

    @property
    def key(self) -> str:
        """The task's name in ``Evaluation.per_task``: ``digits_mlp``, or ``digits_mlp@10`` at scale 10."""
        return self.name if self.scale == 1 else f"{self.name}@{self.scale:g}"


@dataclass(frozen=True)
class Evaluation:
    """The result of ``evaluate``. ``fitness`` and ``test_fitness`` are ``WORST`` on any failure."""

    fitness: float
    """Selection score (higher is better): mean over tasks of log(baseline valid loss / valid loss)."""
    test_fitness: float
    """The same on the test split with the held-out seeds; never used for selection."""
    per_task: dict
    """``TaskSpec.key`` -> scores, raw losses (mean and per seed), accuracies, the baseline's losses."""
    seconds: float
    """Wall time of the candidate's evaluation (the baselines, computed once per process, excluded)."""
    error: str | None = None
    """Why it failed, e.g. ``"nan loss, seed 1 (step 37 of digits_mlp)"``; ``None`` if it did not."""
    cpu_seconds: float = 0.0
    """CPU time of this process during the candidate's evaluation."""

    @property
    def ok(self) -> bool:
        return self.error is None


def default_tasks() -> tuple[TaskSpec, ...]:
    """The default proxy suite (``DEFAULT_SUITE`` at scale 1, seeds 0-2, test seeds 1000-1002)."""
    return tuple(TaskSpec(name) for name in DEFAULT_SUITE)


def suite(scale: float = 1.0, names: Sequence[str] = DEFAULT_SUITE) -> tuple[TaskSpec, ...]:
    """``names`` at ``scale``: e.g. ``suite(10)`` is the funnel's first stage."""
    return tuple(TaskSpec(name, scale) for name in names)


def evaluate(program: Program, tasks: Sequence[TaskSpec], *, deadline_s: float | None = None) -> Evaluation:
    """Train every task of ``tasks`` with ``program``; score it against ``BASELINE``.

    ``deadline_s``: wall seconds the candidate may take, compiling included (the baselines,
    computed once per process, are not counted). Never raises for a bad candidate (module
    docstring); raises ``KeyError`` for an unknown task name.
    """
    tasks = tuple(tasks)
    baselines = [baseline(spec) for spec in tasks]
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        optimizer = ProgramStep.of(program)
    except Exception as e:  # a program that does not check or compile
        return Evaluation(WORST, WORST, {}, time.perf_counter() - wall, f"{type(e).__name__}: {e}", time.process_time() - cpu)
    return _evaluate(optimizer, tasks, baselines, wall, cpu, deadline_s)


def evaluate_optimizer(optimizer: Optimizer, tasks: Sequence[TaskSpec], *, deadline_s: float | None = None) -> Evaluation:
    """``evaluate`` for anything that can step a flat buffer (``training.Optimizer``), e.g. the
    hand-written ``training.HandWrittenAdamW`` the benchmark compares compiled programs with."""
    tasks = tuple(tasks)
    baselines = [baseline(spec) for spec in tasks]
    return _evaluate(optimizer, tasks, baselines, time.perf_counter(), time.process_time(), deadline_s)


def _evaluate(optimizer, tasks, baselines, wall: float, cpu: float, deadline_s: float | None) -> Evaluation:
    deadline = None if deadline_s is None else wall + deadline_s
    per_task: dict = {}
    error = None
    for spec, base in zip(tasks, baselines):
        result = run(spec, optimizer, lr_peak=base.lr_peak, deadline=deadline)
        if result.error is not None:
            error = result.error
            per_task[spec.key] = {"error": error, "steps": result.steps, "seconds": result.seconds,
                                  "cpu_seconds": result.cpu_seconds}
            break
        per_task[spec.key] = record(result, base, spec)
    seconds, cpu_seconds = time.perf_counter() - wall, time.process_time() - cpu
    if error is not None:
        return Evaluation(WORST, WORST, per_task, seconds, error, cpu_seconds)
    fit = combine(r["valid"] for r in per_task.values())
    test = combine(r["test"] for r in per_task.values())
    return Evaluation(fit, test, per_task, seconds, None, cpu_seconds)


def run(spec: TaskSpec, optimizer: Optimizer, *, lr_peak: float, deadline: float | None = None) -> RunResult:
    """Train ``spec``'s task with ``optimizer`` on its seeds and test seeds in one batch."""
    problem = task_registry.build(spec.name, spec.scale)
    seeds = spec.seeds + spec.test_seeds
    n = len(spec.seeds)
    return train(problem, seeds, optimizer, splits={"valid": range(n), "test": range(n, len(seeds))},
                 deadline=deadline, lr_peak=lr_peak)


@dataclass(frozen=True)
class Baseline:
    """``BASELINE``'s run on a task at the task's tuned ``lr_peak``, and the untrained models'
    mean loss per split (``L0``)."""

    result: RunResult
    initial: dict[str, float]
    lr_peak: float


LR_PEAK_RANGE = (1 / 64, 64.0)
"""The learning-rate peaks ``tune_lr_peak`` may reach (powers of 2)."""


def tune_lr_peak(spec: TaskSpec, optimizer: Optimizer) -> tuple[float, RunResult]:
    """The schedule's peak at which ``optimizer`` reaches the lowest mean validation loss on
    ``spec`` (powers of 2 within ``LR_PEAK_RANGE``, walking from 1 while it improves), and
    its run there. Only the validation split decides; the test split stays held out."""
    runs: dict[float, RunResult] = {}

    def loss(peak: float) -> float:
        if peak not in runs:
            runs[peak] = run(spec, optimizer, lr_peak=peak)
        result = runs[peak]
        return math.inf if result.error is not None else _mean(result.metrics["valid"]["loss"])

    best = 1.0
    for factor in (2.0, 0.5):
        while LR_PEAK_RANGE[0] <= best * factor <= LR_PEAK_RANGE[1] and loss(best * factor) < loss(best):
            best *= factor
        if best != 1.0:
            break
    return best, runs[best]


@functools.lru_cache(maxsize=256)
def baseline(spec: TaskSpec) -> Baseline:
    """``BASELINE``'s run on ``spec`` at its tuned learning-rate peak, once per process. Raises
    if the baseline itself fails or learns nothing (the task, not a candidate, is broken then)."""
    import programs

    lr_peak, result = tune_lr_peak(spec, ProgramStep.of(programs.load(BASELINE)))
    if result.error is not None:
        raise RuntimeError(f"the baseline program {BASELINE} fails on {spec.key}: {result.error}")
    problem = task_registry.build(spec.name, spec.scale)
    seeds = spec.seeds + spec.test_seeds
    n = len(spec.seeds)
    untrained = initial_metrics(problem, seeds, {"valid": range(n), "test": range(n, len(seeds))})
    initial = {split: _mean(m["loss"]) for split, m in untrained.items()}
    for split, l0 in initial.items():
        if not headroom(l0, _mean(result.metrics[split]["loss"])) > 0:
            raise RuntimeError(f"the baseline program {BASELINE} does not learn {spec.key} ({split} loss {l0:.4g} untrained)")
    return Baseline(result, initial, lr_peak)


def record(result: RunResult, base: Baseline, spec: TaskSpec) -> dict:
    """One task's entry in ``Evaluation.per_task`` (JSON-friendly)."""
    out: dict = {}
    for split in ("valid", "test"):
        ours, theirs = result.metrics[split], base.result.metrics[split]
        loss, base_loss = _mean(ours["loss"]), _mean(theirs["loss"])
        out[split] = task_score(loss, base_loss, base.initial[split])
        out[f"{split}_loss"] = loss
        out[f"baseline_{split}_loss"] = base_loss
        out[f"initial_{split}_loss"] = base.initial[split]
        out[f"{split}_losses"] = ours["loss"]
        if "accuracy" in ours:
            out[f"{split}_accuracy"] = _mean(ours["accuracy"])
            out[f"baseline_{split}_accuracy"] = _mean(theirs["accuracy"])
    out["lr_peak"] = base.lr_peak
    out["steps"] = result.steps
    out["seconds"] = result.seconds
    out["cpu_seconds"] = result.cpu_seconds
    return out


def _mean(xs: Sequence[float]) -> float:
    return math.fsum(xs) / len(xs)


__all__ = [
    "BASELINE", "Baseline", "Evaluation", "TaskSpec", "WORST", "baseline", "default_tasks", "evaluate", "evaluate_optimizer", "suite",
]
