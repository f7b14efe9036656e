"""Fitness: a candidate's losses, normalized against the AdamW warm start's, as one number.

For each task ``t`` (a task at one scale, on one split), let ``L`` be the candidate's final loss
averaged over the seeds, ``B`` the same for the baseline program (the paper's AdamW,
``programs/adamw_paper.py``) trained from the same initialisations in the same data order, and
``L0`` the loss of those untrained initialisations. The task's score is

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
from typing import Iterable

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
