"""Rows: what one batched training run trains, and what it gives back.

A **row** is one model trained once: from the initialisation and data order of ``seed``,
with the learning-rate schedule scaled to ``lr_peak`` and the program's hyperparameters set
to ``hyper`` (the rest keep their defaults). A tuning sweep, a search's learning-rate grid
and the seeds of each are all just rows, so they train together in one batch wherever the
task allows it (``training.train`` on a flat buffer: one row of the ``[R, N]`` buffer each;
``search.nn`` runs a ``torch.nn`` task's rows one after another)::

    rows = [Row(seed, lr_peak=peak * m) for m in (1/16, 1/4, 1, 4) for seed in (0, 1, 2)]
    result = train(problem, rows, optimizer)
    result.losses["valid"][i]      # row i's final validation loss (nan where row i failed)
    result.errors[i]               # why row i failed, or None

Every row is scored on every split the task has (``valid``, ``test``): which rows count
for which split is the caller's choice (selection reads validation only; a held-out test
score reads the test split of held-out seeds). A row that diverges fails alone; the run
goes on for the others (and stops early once no row is left). It fails as a whole
(``error``) only for something that concerns every row: the optimizer does not compile or
raises in a batched step, the deadline passed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence


@dataclass(frozen=True)
class Row:
    """One model of a batched run (module docstring). Hashable and picklable."""

    seed: int
    lr_peak: float = 1.0
    """The peak of the learning-rate schedule (``training.schedule`` times this)."""
    hyper: tuple[tuple[str, float], ...] = ()
    """Hyperparameter values for this row, as sorted ``(name, value)`` pairs."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "seed", int(self.seed))
        object.__setattr__(self, "lr_peak", float(self.lr_peak))
        hyper = self.hyper.items() if isinstance(self.hyper, Mapping) else self.hyper
        object.__setattr__(self, "hyper", tuple(sorted((str(k), float(v)) for k, v in hyper)))
        if not (math.isfinite(self.lr_peak) and self.lr_peak >= 0):
            raise ValueError(f"a row's lr_peak must be finite and >= 0, got {self.lr_peak}")

    @property
    def hyperparams(self) -> dict[str, float]:
        return dict(self.hyper)


@dataclass(frozen=True)
class RowsResult:
    """What a batched run gives: per row, its final metrics on each split or why it failed."""

    rows: tuple[Row, ...]
    metrics: Mapping[str, Mapping[str, tuple[float, ...]]]
    """``{split: {metric: (one value per row)}}``; ``loss`` is always there; nan for failed rows."""
    errors: tuple[str | None, ...]
    """Per row: why it failed (``"diverged, seed 3: loss ... at step 17"``), or None."""
    steps: int
    """Steps the run took (its rows that finished took all of them)."""
    seconds: float
    cpu_seconds: float = 0.0
    error: str | None = None
    """Why the run as a whole failed (then every row has failed, for this reason), or None."""
    curves: tuple[tuple[float, ...], ...] | None = field(default=None, repr=False)
    """Per row, the training loss at every step (nan after a row failed); only when asked for."""

    def losses(self, split: str) -> tuple[float, ...]:
        """The final loss of every row on ``split`` (nan where the row failed)."""
        return self.metrics[split]["loss"]

    def ok(self, i: int) -> bool:
        return self.errors[i] is None

    @classmethod
    def failed(cls, rows: Sequence[Row], error: str, splits: Sequence[str], *, steps: int = 0,
               seconds: float = 0.0, cpu_seconds: float = 0.0) -> "RowsResult":
        """Every row failed for one reason (``error``)."""
        nan = (math.nan,) * len(rows)
        return cls(tuple(rows), {s: {"loss": nan} for s in splits}, (error,) * len(rows), steps, seconds,
                   cpu_seconds, error)


def mean(values: Sequence[float]) -> float:
    """The mean of ``values``; nan if any is nan (a failed row spoils its group)."""
    return math.fsum(values) / len(values) if values else math.nan
