"""Means and spreads over seeds: one definition for every table, verdict and report.

``mean`` is ``math.fsum(xs) / n`` (``nan`` for no values); ``std`` is the sample standard
deviation ``sqrt(sum((x - mean)^2) / (n - 1))`` (``statistics.stdev``), 0 for fewer than two
values, so one seed's spread reads as none rather than failing.
"""

from __future__ import annotations

import math
import statistics
from typing import Sequence


def mean(xs: Sequence[float]) -> float:
    return math.fsum(xs) / len(xs) if len(xs) else math.nan


def std(xs: Sequence[float]) -> float:
    return statistics.stdev(xs) if len(xs) > 1 else 0.0
