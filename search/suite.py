"""What a fitness is measured on: tasks, each at a scale and on validation and held-out seeds.

    from search.suite import TaskSpec, default_tasks, suite
    default_tasks()          # the default proxy suite at scale 1, seeds 0-2, test seeds 1000-1002
    suite(10, seeds=5)       # the same tasks 10x larger on 5 + 5 seeds (the funnel's first stage)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

DEFAULT_SUITE = ("quadratic", "teacher_student", "digits_mlp", "char_lm")
"""The tasks of ``default_tasks``, cheapest first (an evaluation stopped at a hurdle has paid
for the cheap ones only). ``digits_vit`` is left out: a transformer step on images costs as
much as the rest of the suite together; use it in a larger suite or the funnel."""

TEST_SEED_BASE = 1000
"""Held-out seeds are numbered from here, so they never collide with validation seeds."""


@dataclass(frozen=True)
class TaskSpec:
    """One task of a suite: which task, at which scale, on which seeds. Picklable.

    ``name``: a proxy problem (``search.tasks.names()``), a torch.nn task (``search.nn``) or a
    user's ``package.module:attribute``. ``scale``: 1 is the proxy; 10 and 100 the funnel's
    larger versions (each task's docstring says what grows). ``seeds``: the initialisation and
    data-order seeds whose validation losses decide (fitness, tuning). ``test_seeds``: held-out
    seeds, scored on the test split at the settings validation chose.
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

    def to_dict(self) -> dict:
        return {"name": self.name, "scale": self.scale, "seeds": list(self.seeds), "test_seeds": list(self.test_seeds)}


def seed_sets(n: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``n`` validation seeds ``0 .. n-1`` and ``n`` held-out ones from ``TEST_SEED_BASE``."""
    return tuple(range(n)), tuple(range(TEST_SEED_BASE, TEST_SEED_BASE + n))


def default_tasks() -> tuple[TaskSpec, ...]:
    """The default proxy suite (``DEFAULT_SUITE`` at scale 1, seeds 0-2, test seeds 1000-1002)."""
    return tuple(TaskSpec(name) for name in DEFAULT_SUITE)


def suite(scale: float = 1.0, names: Sequence[str] = DEFAULT_SUITE, seeds: int = 3) -> tuple[TaskSpec, ...]:
    """``names`` at ``scale`` on ``seeds`` validation and as many held-out seeds."""
    valid, held = seed_sets(seeds)
    return tuple(TaskSpec(name, scale, valid, held) for name in names)


def parse_task(task: str) -> tuple[str, float]:
    """``char_lm@10`` -> ``("char_lm", 10.0)``; ``ValueError`` for a bad or non-positive scale."""
    name, _, scale = task.partition("@")
    try:
        value = float(scale) if scale else 1.0
    except ValueError:
        raise ValueError(f"task {task!r}: the scale after '@' must be a number") from None
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"task {task!r}: the scale must be a positive finite number")
    return name, value
