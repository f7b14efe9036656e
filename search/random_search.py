"""The control: random search, the same budget with no selection at all (paper-notes section 3:
2M random programs, all worse than AdamW).

Every child is the warm start after a few random mutations (1 to ``MAX_MUTATIONS``, uniformly,
each one valid, the same mutations evolution makes), so the control explores the warm start's
neighbourhood as far as evolution's first few generations, and never builds on what it found.
Same store format as evolution: a run of each, at the same number of evaluations, is the
comparison ``symopt report RUN --control CONTROL_RUN`` plots.
"""

from __future__ import annotations

import random

from .evolution import Candidate, Member
from .strategy import Proposal, Strategy

MAX_MUTATIONS = 3


class RandomSearch(Strategy):
    """See the module docstring."""

    name = "random"

    def __init__(self, config, store, initial, counters, make_candidate):
        super().__init__(config, store, initial, counters, make_candidate)
        self.initial_fitness = None
        record = store.record(initial.hash)
        if record is not None:
            self.initial_fitness = record.fitness

    def started(self) -> bool:
        return self.initial_fitness is not None

    def start(self, initial_fitness: float) -> None:
        self.initial_fitness = initial_fitness

    def propose(self, rng: random.Random) -> Proposal | None:
        return Proposal(self.initial.program, self.initial.hash, rng.randint(1, MAX_MUTATIONS), 0)

    def tell(self, candidate: Candidate, fitness: float, via: str) -> None:
        if candidate.hash == self.initial.hash:
            self.initial_fitness = fitness

    def population(self) -> tuple[Member, ...]:
        return (Member(self.initial.program, self.initial.hash, self.initial_fitness),) if self.started() else ()
