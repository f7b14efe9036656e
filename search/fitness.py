"""Fitness: a candidate's losses, normalized against the AdamW warm start's, as one number.

For each task ``t`` (a task at one scale), ``L_t`` is the candidate's loss on the split, averaged
over the seeds, and ``B_t`` the same for the baseline program (the paper's AdamW,
``programs/adamw_paper.py``) on the same task, scale, seeds and data order. The task's score
is the log-ratio

    score_t = log(B_t / L_t)          (clipped to [-CLIP, CLIP])

so 0 means "as good as AdamW", > 0 "better" (0.1 ~ 10% lower loss), and tasks whose losses
live on different scales (nats per character, squared error) count alike. The fitness is the
mean over tasks: ``fitness > 0`` means the candidate beats AdamW on the suite on average.
Any failure (an exception, a nan or inf loss, divergence, running past the deadline) scores
``WORST``, which is finite (SQLite, JSON and sorting stay simple) and below every score a
finished evaluation can get (``-CLIP``).
"""

from __future__ import annotations

import math
from typing import Iterable

WORST = -1000.0
"""The fitness of a failed evaluation: below any finished one (those are >= -CLIP)."""

CLIP = 100.0
"""Bound on a task's score, so a loss of (almost) 0 or a huge loss stays finite."""


def task_score(loss: float, baseline: float) -> float:
    """``log(baseline / loss)`` clipped to ``[-CLIP, CLIP]``; ``loss`` and ``baseline`` are mean losses."""
    if not (math.isfinite(loss) and math.isfinite(baseline)):
        raise ValueError(f"losses must be finite, got loss={loss}, baseline={baseline}")
    if loss <= 0 or baseline <= 0:
        return CLIP if loss < baseline else (-CLIP if loss > baseline else 0.0)
    return min(CLIP, max(-CLIP, math.log(baseline) - math.log(loss)))  # no under/overflow of the ratio


def combine(scores: Iterable[float]) -> float:
    """The fitness of a suite: the mean of its tasks' scores."""
    scores = list(scores)
    return sum(scores) / len(scores) if scores else WORST
