"""Fitness: a candidate's losses, normalized against tuned AdamW's, as one number.

For each task ``t`` (a task at one scale, on one split), let ``L`` be the candidate's final loss
averaged over the seeds (at its best learning-rate multiplier, ``evaluate.py``), ``B`` the same
for the baseline (torch's AdamW tuned on lr, beta1 and weight decay, ``calibration.py``)
trained from the same initialisations in the same data order, and ``L0`` the loss of those
untrained initialisations. The task's score is

    score_t = log(B / L) / log(L0 / B)          (clipped to [-CLIP, CLIP])

the candidate's gain in log-loss over AdamW, in units of AdamW's own gain over no training.
So 0 is "as good as AdamW", -1 "learned nothing", > 0 "better"; 0.1 means the candidate went
10% further (in log-loss) than AdamW did. Dividing by AdamW's headroom ``log(L0 / B)`` puts
tasks on one scale: a language model's loss moves little in log terms (4.9 -> 2.9 nats) while
a regression's moves a lot, and plain log-ratios would let the regressions decide. The
fitness is the mean of the tasks' scores: ``fitness > 0`` means the candidate beats AdamW on
the suite. Any failure (an exception, a nan or inf loss, divergence, running past the
deadline) scores ``WORST``: finite (SQLite, JSON and sorting stay simple) and below every
score a finished evaluation can get (``-CLIP``).
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping

WORST = -1000.0
"""The fitness of a failed evaluation: below any finished one (those are >= -CLIP)."""

CLIP = 100.0
"""Bound on a task's score, so a loss of (almost) 0 or a huge loss stays finite."""


def headroom(initial: float, baseline: float) -> float:
    """``log(L0 / B)``: how far the baseline got from the untrained loss (must be > 0)."""
    if not (initial > 0 and baseline > 0 and math.isfinite(initial) and math.isfinite(baseline)):
        raise ValueError(f"losses must be positive and finite, got initial={initial}, baseline={baseline}")
    return math.log(initial) - math.log(baseline)


def task_score(loss: float, baseline: float, initial: float) -> float:
    """``log(B / L) / log(L0 / B)`` clipped to ``[-CLIP, CLIP]`` (module docstring); mean losses."""
    room = headroom(initial, baseline)
    if not room > 0:
        raise ValueError(f"the baseline did not learn (initial loss {initial:.4g}, baseline {baseline:.4g})")
    if not math.isfinite(loss):
        raise ValueError(f"loss must be finite, got {loss}")
    if loss <= 0:
        return CLIP
    return min(CLIP, max(-CLIP, (math.log(baseline) - math.log(loss)) / room))


def combine(scores: Iterable[float]) -> float:
    """The fitness of a suite: the mean of its tasks' scores."""
    scores = list(scores)
    return sum(scores) / len(scores) if scores else WORST


def format_score(value: float | None) -> str:
    """A fitness as people read it: 4 decimals, or ``-`` where there is none yet (None or nan)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.4f}"


def seed_scores(per_task: Mapping[str, Mapping], split: str = "valid", *, baseline: bool = False) -> list[float]:
    """The suite's score seed by seed: for the ``i``-th seed, the mean over tasks of
    ``task_score`` of that seed's loss (the candidate's, or with ``baseline=True`` the tuned
    baseline's own) against the baseline's mean loss. What a significance test compares:
    the spread over seeds is the noise a difference must stand out of."""
    prefix = "baseline_" if baseline else ""
    columns = []
    for record in per_task.values():
        losses = record.get(f"{prefix}{split}_losses")
        if not losses:
            raise ValueError(f"no per-seed {prefix}{split} losses in a task's record")
        base, initial = record[f"baseline_{split}_loss"], record[f"initial_{split}_loss"]
        columns.append([task_score(x, base, initial) if math.isfinite(x) else -CLIP for x in losses])
    if len({len(c) for c in columns}) != 1:
        raise ValueError("tasks have different numbers of seeds")
    return [sum(values) / len(values) for values in zip(*columns)]


def multiplier_text(m: float) -> str:
    """``x4``, ``x1/16``."""
    return f"x{m:g}" if m >= 1 else f"x1/{1 / m:g}"


def multipliers(per_task: Mapping[str, Mapping]) -> str:
    """Where a program's learning rate landed on each task: ``char_lm x1, quadratic x1/4!``
    (the chosen multiplier of the warm start's best peak; ``!``: at an end of the grid)."""
    parts = []
    for key, record in per_task.items():
        m = record.get("multiplier") if isinstance(record, Mapping) else None
        if m is not None:
            parts.append(f"{key} {multiplier_text(m)}{'!' if record.get('on_edge') else ''}")
    return ", ".join(parts)
