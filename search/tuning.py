"""The tuning protocol: train a grid of settings on validation seeds, choose the one with the
lowest mean validation loss, then read the test loss of held-out seeds at that choice.

    sweep = validate("digits_mlp", 1.0, optimizer, settings, seeds=(0, 1, 2))
    best = sweep.best                        # index into settings (None: every setting failed)
    held = held_out("digits_mlp", 1.0, optimizer, sweep.settings[best], test_seeds=(1000, 1001, 1002))

Everything that says how good an optimizer is goes through here: a search candidate at its
grid of learning-rate multipliers (``evaluate.py``), the AdamW baseline over its lr, beta1 and
weight-decay grid (``calibration.py``), and ``symopt bench`` (``compare.py``). A setting's rows
are its seeds; every setting of a sweep trains in one batch where the task allows
(``trainer.py``). The test split decides nothing: it is read only at the setting validation
chose, on seeds that validation never saw.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from .pruning import Groups
from .rows import Row, RowsResult
from .trainer import train_rows


@dataclass(frozen=True)
class Setting:
    """One point of a grid: the schedule's peak and hyperparameter values."""

    lr_peak: float
    hyper: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        hyper = self.hyper.items() if isinstance(self.hyper, Mapping) else self.hyper
        object.__setattr__(self, "lr_peak", float(self.lr_peak))
        object.__setattr__(self, "hyper", tuple(sorted((str(k), float(v)) for k, v in hyper)))

    def row(self, seed: int) -> Row:
        return Row(seed, self.lr_peak, self.hyper)

    @property
    def hyperparams(self) -> dict[str, float]:
        return dict(self.hyper)

    def describe(self) -> str:
        """``lr 0.004, beta1 0.8, wd 0.1``."""
        return ", ".join([f"lr {self.lr_peak:.4g}"] + [f"{k} {v:g}" for k, v in self.hyper])


@dataclass(frozen=True)
class Sweep:
    """The validation half of the protocol: every setting's per-seed validation losses."""

    settings: tuple[Setting, ...]
    seeds: tuple[int, ...]
    losses: tuple[tuple[float, ...], ...]
    """Per setting, per seed: the final validation loss (nan where that row failed)."""
    errors: tuple[str | None, ...]
    """Per setting: why it failed (its first failed row's reason), or None."""
    metrics: tuple[Mapping[str, tuple[float, ...]], ...] = field(default=(), repr=False)
    """Per setting: every validation metric per seed (``loss``, ``accuracy``, ...)."""
    curves: tuple[tuple[float, ...] | None, ...] = field(default=(), repr=False)
    """Per setting: the mean training loss over its seeds at every step (when recorded)."""
    cpu_seconds: float = 0.0
    steps: int = 0
    error: str | None = None
    """Why the whole sweep failed (the run's own error: a deadline, a program that does not run)."""
    tests: tuple["HeldOut", ...] = field(default=(), repr=False)
    """Per setting, its held-out seeds on the test split, when they trained in the same batch."""

    def held_out(self, i: int) -> "HeldOut | None":
        """Setting ``i``'s held-out result, if its test seeds trained with the sweep."""
        return self.tests[i] if self.tests else None

    def mean(self, i: int) -> float:
        """Setting ``i``'s mean validation loss; inf if any of its seeds failed."""
        return math.inf if self.errors[i] is not None else math.fsum(self.losses[i]) / len(self.losses[i])

    def std(self, i: int) -> float:
        return statistics.stdev(self.losses[i]) if self.errors[i] is None and len(self.losses[i]) > 1 else 0.0

    @property
    def best(self) -> int | None:
        """The setting with the lowest mean validation loss (the first of equals); None if all failed."""
        means = [self.mean(i) for i in range(len(self.settings))]
        finite = [i for i, m in enumerate(means) if math.isfinite(m)]
        return min(finite, key=lambda i: means[i]) if finite else None

    def on_edge(self) -> bool:
        """Whether the chosen learning rate is the smallest or largest of the grid's: the best
        may lie outside it."""
        best = self.best
        if best is None:
            return False
        lrs = sorted({s.lr_peak for s in self.settings})
        return len(lrs) > 1 and self.settings[best].lr_peak in (lrs[0], lrs[-1])

    def failure(self) -> str:
        """Why no setting finished: the failure of the setting nearest the grid's middle."""
        if self.error:
            return self.error
        middle = len(self.settings) // 2
        order = sorted(range(len(self.settings)), key=lambda i: abs(i - middle))
        return next((self.errors[i] for i in order if self.errors[i]), "no setting finished")


@dataclass(frozen=True)
class HeldOut:
    """The test half of the protocol: one setting's held-out seeds on the test split."""

    setting: Setting
    seeds: tuple[int, ...]
    losses: tuple[float, ...]
    metrics: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    error: str | None = None
    curve: tuple[float, ...] | None = field(default=None, repr=False)
    """The mean over the seeds of the training loss at every step (when recorded)."""
    cpu_seconds: float = 0.0
    curves: tuple[tuple[float, ...], ...] | None = field(default=None, repr=False)
    """Per seed, the training loss at every step (when recorded)."""

    @property
    def mean(self) -> float:
        return math.inf if self.error is not None else math.fsum(self.losses) / len(self.losses)


def validate(
    task: str,
    scale: float,
    optimizer: Any,
    settings: Sequence[Setting],
    seeds: Sequence[int],
    *,
    test_seeds: Sequence[int] = (),
    deadline: float | None = None,
    record_curves: bool = False,
) -> Sweep:
    """Train every setting on every seed (one batch) and score each on the validation split.

    ``test_seeds``: held-out seeds to train in the same batch at every setting, scored on the
    test split, for ``Sweep.held_out`` to read at the chosen setting afterwards. A row trains
    the same whatever it is batched with, so this gives exactly what ``held_out`` would, and
    on a small task (where a step costs the same for 10 rows as for 30) it saves a second run.
    A setting with a failed seed stops (it cannot be chosen: ``pruning.py``). ``optimizer`` comes from ``trainer.optimizer_for``; ``deadline``
    is a ``process_time()`` value."""
    settings, seeds, test_seeds = tuple(settings), tuple(int(s) for s in seeds), tuple(int(s) for s in test_seeds)
    rows = [s.row(seed) for s in settings for seed in seeds + test_seeds]
    width = len(seeds) + len(test_seeds)
    groups = [range(i * width, i * width + len(seeds)) for i in range(len(settings))]
    test_groups = [range(i * width + len(seeds), (i + 1) * width) for i in range(len(settings))]
    membership = Groups(tuple(i for i in range(len(settings)) for _ in range(width)),
                        tuple(j < len(seeds) for _ in settings for j in range(width)))
    result = train_rows(task, scale, optimizer, rows, deadline=deadline, record_curves=record_curves, groups=membership,
                        splits={"valid": [j for g in groups for j in g], "test": [j for g in test_groups for j in g]})
    metrics = result.metrics.get("valid", {"loss": (math.nan,) * len(rows)})
    tests = result.metrics.get("test", {"loss": (math.nan,) * len(rows)})
    held = tuple(
        HeldOut(setting, test_seeds, tuple(tests["loss"][j] for j in g), {k: tuple(v[j] for j in g) for k, v in tests.items()},
                _first_error(result, g), _mean_curve(result, g))
        for setting, g in zip(settings, test_groups)
    ) if test_seeds else ()
    return Sweep(
        settings=settings,
        seeds=seeds,
        losses=tuple(tuple(metrics["loss"][j] for j in g) for g in groups),
        errors=tuple(_first_error(result, g) for g in groups),
        metrics=tuple({k: tuple(v[j] for j in g) for k, v in metrics.items()} for g in groups),
        curves=tuple(_mean_curve(result, g) for g in groups),
        cpu_seconds=result.cpu_seconds,
        steps=result.steps,
        error=result.error,
        tests=held,
    )


def held_out(
    task: str,
    scale: float,
    optimizer: Any,
    setting: Setting,
    seeds: Sequence[int],
    *,
    deadline: float | None = None,
    record_curves: bool = False,
) -> HeldOut:
    """Train ``setting`` on the held-out ``seeds`` and score it on the test split."""
    seeds = tuple(int(s) for s in seeds)
    rows = [setting.row(seed) for seed in seeds]
    result = train_rows(task, scale, optimizer, rows, splits={"test": range(len(rows))}, deadline=deadline,
                        record_curves=record_curves)
    metrics = result.metrics.get("test", {"loss": (math.nan,) * len(rows)})
    error = _first_error(result, range(len(rows)))
    return HeldOut(setting, seeds, tuple(metrics["loss"]), dict(metrics), error,
                   _mean_curve(result, range(len(rows))), result.cpu_seconds,
                   None if result.curves is None else tuple(result.curves))


def _first_error(result: RowsResult, rows: Sequence[int]) -> str | None:
    return result.error or next((result.errors[j] for j in rows if result.errors[j]), None)


def _mean_curve(result: RowsResult, rows: Sequence[int]) -> tuple[float, ...] | None:
    if result.curves is None:
        return None
    columns = [result.curves[j] for j in rows]
    return tuple(math.fsum(step) / len(step) for step in zip(*columns))
