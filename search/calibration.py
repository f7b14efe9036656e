"""Calibrating a task for the fitness: where candidates' learning rates sit, and what they must beat.

    cal = calibrate(TaskSpec("digits_mlp"))
    cal.center                 # the schedule peak at which the warm start does best
    cal.settings()             # a candidate's grid: center x MULTIPLIERS
    cal.baseline.setting       # tuned AdamW: lr, beta1, wd
    cal.baseline.valid_loss    # B in fitness.task_score; cal.initial["valid"] is L0

Done once per task of a run, by the driver (on Ray workers), stored in the run store and
shipped to the workers with each suite: no worker recomputes it. For each task:

* **center**: the schedule peak at which the warm start (the paper's AdamW program, which
  scales itself with ``lr = lr * 0.001``) reaches the lowest mean validation loss, among
  ``2**k`` for ``k = -6 .. 6`` (one batch). Candidates train at ``center * m`` for every
  ``m`` in ``MULTIPLIERS`` and are judged at their best ``m``.
* **baseline**: AdamW exactly as ``torch.optim.AdamW`` computes it (``programs/adamw.py``,
  bias correction), tuned as a careful user would: its own learning rate, swept over
  ``BaselineGrid.lrs`` at beta1 0.9 and no weight decay, then every ``beta1 x wd`` pair of
  the grid at the best lr and its neighbours a factor 2 away. The setting with the lowest
  mean validation loss is the baseline; its held-out seeds are scored on the test split.
  Fitness 0 means as good as this.
* **initial**: the untrained models' mean loss per split (``L0``: what learning nothing scores).

A baseline that fails everywhere or learns nothing is a broken task, not a bad candidate:
``BaselineError`` names the task.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from symbolic_opt.loading import resolve_program

from . import trainer
from .fitness import headroom
from .progress import Phase
from .stats import mean as _mean
from .suite import TaskSpec
from .tuning import HeldOut, Setting, Sweep, held_out, validate

WARM_START = "adamw_paper"
"""The program whose best learning rate centres every candidate's grid (paper-notes section 2)."""

BASELINE = "adamw"
"""The program every score is normalized against, tuned (``programs/adamw.py``)."""

MULTIPLIERS = (1 / 16, 1 / 4, 1.0, 4.0, 16.0)
"""A candidate's learning-rate grid, relative to the task's ``center``: 256x from end to end,
neighbours 4x apart (a factor-2 change of a program's lr constant is evolution's to make), and
1 among them, so the warm start is judged at its own best. Wide both ways: the paper's
discovered program (``lr * 0.0002``, a sign update) does best 4x above the warm start's peak
on three of the four proxy tasks and 4x below it on the fourth, so a grid 64x wide cut it off."""

EXTEND = 3
"""How many times the baseline's lr sweep is extended (3 more lrs each) while its best lies at an end."""

CENTER_PEAKS = tuple(2.0**k for k in range(-6, 7))
"""Where the warm start's best peak is looked for (one batch of 13 settings)."""


@dataclass(frozen=True)
class BaselineGrid:
    """How the baseline is tuned (module docstring). Part of a run's fitness definition."""

    program: str = BASELINE
    lrs: tuple[float, ...] = tuple(1e-3 * 2.0**k for k in range(-6, 7))
    """The first sweep: its learning rate alone, 1.6e-5 .. 0.064 in factors of 2."""
    beta1: tuple[float, ...] = (0.3, 0.6, 0.8, 0.9, 0.95)
    wd: tuple[float, ...] = (0.0, 0.1, 1.0)
    around: tuple[float, ...] = (0.5, 1.0, 2.0)
    """The second sweep's learning rates, as factors of the first sweep's best."""
    first: tuple[tuple[str, float], ...] = (("beta1", 0.9), ("wd", 0.0))
    """The hyperparameters of the first sweep."""

    def to_dict(self) -> dict:
        return {"program": self.program, "lrs": list(self.lrs), "beta1": list(self.beta1), "wd": list(self.wd),
                "around": list(self.around), "first": [list(p) for p in self.first]}


class BaselineError(RuntimeError):
    """The baseline fails or learns nothing on a task: the task is broken, not a candidate."""


@dataclass(frozen=True)
class Baseline:
    """The tuned baseline on one task: its chosen setting, and its losses there per seed."""

    program: str
    setting: Setting
    valid_losses: tuple[float, ...]
    test_losses: tuple[float, ...]
    valid_metrics: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    test_metrics: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    tried: int = 0
    """How many settings were tried."""
    on_edge: bool = False
    """Whether the chosen lr is at the end of the lr sweep (the best may lie beyond it)."""

    @property
    def valid_loss(self) -> float:
        return _mean(self.valid_losses)

    @property
    def test_loss(self) -> float:
        return _mean(self.test_losses)


@dataclass(frozen=True)
class Calibration:
    """One task of a fitness suite, ready to score candidates (module docstring). Picklable,
    and a JSON round trip (``to_dict`` / ``from_dict``) for the run store."""

    spec: TaskSpec
    center: float
    multipliers: tuple[float, ...]
    baseline: Baseline
    initial: Mapping[str, float]
    """The untrained models' mean loss per split (``valid`` over ``spec.seeds``, ``test`` over ``spec.test_seeds``)."""
    cpu_seconds: float = 0.0

    @property
    def key(self) -> str:
        return self.spec.key

    def settings(self) -> tuple[Setting, ...]:
        """A candidate's grid on this task: ``center * m`` for each multiplier."""
        return tuple(Setting(self.center * m) for m in self.multipliers)

    def to_dict(self) -> dict:
        b = self.baseline
        return {
            "task": self.spec.to_dict(), "center": self.center, "multipliers": list(self.multipliers),
            "initial": dict(self.initial), "cpu_seconds": self.cpu_seconds,
            "baseline": {"program": b.program, "lr_peak": b.setting.lr_peak, "hyper": dict(b.setting.hyper),
                         "valid_losses": list(b.valid_losses), "test_losses": list(b.test_losses),
                         "valid_metrics": {k: list(v) for k, v in b.valid_metrics.items()},
                         "test_metrics": {k: list(v) for k, v in b.test_metrics.items()},
                         "tried": b.tried, "on_edge": b.on_edge},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Calibration":
        t, b = data["task"], data["baseline"]
        spec = TaskSpec(t["name"], t["scale"], tuple(t["seeds"]), tuple(t["test_seeds"]))
        baseline = Baseline(b["program"], Setting(b["lr_peak"], b["hyper"]), tuple(b["valid_losses"]),
                            tuple(b["test_losses"]), {k: tuple(v) for k, v in b["valid_metrics"].items()},
                            {k: tuple(v) for k, v in b["test_metrics"].items()}, b["tried"], b["on_edge"])
        return cls(spec, data["center"], tuple(data["multipliers"]), baseline, dict(data["initial"]),
                   data.get("cpu_seconds", 0.0))


def calibrate(
    spec: TaskSpec,
    *,
    warm_start: str = WARM_START,
    multipliers: tuple[float, ...] = MULTIPLIERS,
    grid: BaselineGrid = BaselineGrid(),
) -> Calibration:
    """Calibrate ``spec`` (module docstring). Raises ``BaselineError`` if the baseline fails
    everywhere or learns nothing, ``RuntimeError`` if the warm start fails at every peak."""
    import time

    cpu = time.process_time()
    name, scale = spec.name, spec.scale
    warm = validate(name, scale, trainer.optimizer_for(name, resolve_program(warm_start)),
                    [Setting(p) for p in CENTER_PEAKS], spec.seeds)
    if warm.best is None:
        raise RuntimeError(f"the warm start {warm_start} fails on {spec.key} at every peak: {warm.failure()}")
    center = warm.settings[warm.best].lr_peak
    baseline = tune_baseline(spec, grid)
    untrained = trainer.untrained(name, scale, spec.seeds + spec.test_seeds)
    n = len(spec.seeds)
    initial = {"valid": _mean(untrained["valid"]["loss"][:n]), "test": _mean(untrained["test"]["loss"][n:])}
    for split, l0 in initial.items():
        b = baseline.valid_loss if split == "valid" else baseline.test_loss
        if not (math.isfinite(l0) and math.isfinite(b) and b > 0 and headroom(l0, b) > 0):
            raise BaselineError(f"the baseline {grid.program} does not learn {spec.key}: {split} loss {b:.4g} "
                                f"after training, {l0:.4g} untrained")
    return Calibration(spec, center, tuple(multipliers), baseline, initial, time.process_time() - cpu)


def tune_baseline(spec: TaskSpec, grid: BaselineGrid = BaselineGrid()) -> Baseline:
    """The baseline program tuned on ``spec``'s validation seeds, scored on its held-out seeds."""
    name, scale = spec.name, spec.scale
    optimizer = trainer.optimizer_for(name, resolve_program(grid.program))
    lrs = list(grid.lrs)
    first = validate(name, scale, optimizer, [Setting(lr, grid.first) for lr in lrs], spec.seeds)
    for _ in range(EXTEND):  # the best at an end of the sweep: the sweep goes on past it
        if first.best is None or not first.on_edge():
            break
        best = first.settings[first.best].lr_peak
        ratio = lrs[1] / lrs[0]
        lrs = sorted(lrs + [best * ratio**k if best == max(lrs) else best / ratio**k for k in range(1, 4)])
        first = validate(name, scale, optimizer, [Setting(lr, grid.first) for lr in lrs], spec.seeds)
    if first.best is None:
        raise BaselineError(f"the baseline {grid.program} fails on {spec.key} at every learning rate: {first.failure()}")
    lr = first.settings[first.best].lr_peak
    pairs = [(("beta1", b1), ("wd", wd)) for b1 in grid.beta1 for wd in grid.wd]
    sweeps: list[Sweep] = [first]
    if pairs:
        sweeps.append(validate(name, scale, optimizer, [Setting(lr * f, pair) for f in grid.around for pair in pairs],
                               spec.seeds))
    for sweep in sweeps:
        if sweep.error is not None:  # the run itself broke (not a setting): the task, not the baseline, is at fault
            raise BaselineError(f"tuning the baseline {grid.program} on {spec.key} broke: {sweep.error}")
    best_sweep, best = min(((s, s.best) for s in sweeps if s.best is not None), key=lambda sb: sb[0].mean(sb[1]))
    setting = best_sweep.settings[best]
    test: HeldOut = held_out(name, scale, optimizer, setting, spec.test_seeds)
    if test.error is not None:
        raise BaselineError(f"the baseline {grid.program} fails on {spec.key}'s held-out seeds at {setting.describe()}: "
                            f"{test.error}")
    return Baseline(grid.program, setting, best_sweep.losses[best], test.losses,
                    {k: v for k, v in best_sweep.metrics[best].items()}, dict(test.metrics),
                    tried=sum(len(s.settings) for s in sweeps), on_edge=first.on_edge())


@functools.lru_cache(maxsize=256)
def calibration(spec: TaskSpec) -> Calibration:
    """``calibrate(spec)`` with the defaults, once per process: for an ``evaluate`` outside a
    search run (tests, benchmarks, a notebook). A run calibrates once and ships the result."""
    return calibrate(spec)


class CalibrationError(RuntimeError):
    """A suite could not be calibrated (the baseline fails on a task, a worker was lost twice)."""


def calibrate_suite(store, pool, tasks, key: str, console, *, multipliers=MULTIPLIERS, warm_start: str = WARM_START,
                    grid: BaselineGrid = BaselineGrid(), live: bool = True) -> tuple:
    """The calibrated suite a run ships to its workers: read from ``store`` under ``key``, or
    computed on ``pool``'s workers (one task each, in parallel) and stored there. Tasks that are
    not ``TaskSpec``s (a test's fakes) go as they are. Raises ``CalibrationError`` naming the
    task when the baseline cannot learn it, so the run stops before any candidate is scored."""
    if not all(isinstance(t, TaskSpec) for t in tasks):
        return tuple(tasks)
    stored = store.fitness_record(key)
    if stored is not None:
        return tuple(Calibration.from_dict(d) for d in stored)
    from .runner import CallError

    console.print(f"calibrating {len(tasks)} task(s): the warm start's best learning rate, and {grid.program} tuned "
                  f"on lr, beta1 and weight decay ({', '.join(t.key for t in tasks)})...", highlight=False)
    try:
        with Phase(console, "calibrating" + (f" at scale {key.partition('@')[2]}" if "@" in key else ""), len(tasks),
                   live=live) as phase:
            calibrations = pool.map(functools.partial(calibrate, multipliers=tuple(multipliers), warm_start=warm_start,
                                                      grid=grid), list(tasks), progress=phase)
    except CallError as exc:
        raise CalibrationError(f"cannot calibrate the suite, so nothing can be scored on it: {exc}") from None
    store.set_fitness_record(key, [c.to_dict() for c in calibrations])
    for c in calibrations:
        b = c.baseline
        edge = "  (best lr at the end of its sweep)" if b.on_edge else ""
        console.print(f"  {c.key}: warm start's best peak {c.center:g}; baseline {b.program} at {b.setting.describe()}: "
                      f"valid loss {b.valid_loss:.4g}, test {b.test_loss:.4g} (untrained {c.initial['valid']:.4g}); "
                      f"{c.cpu_seconds:.1f} CPU s{edge}", highlight=False)
    return tuple(calibrations)
