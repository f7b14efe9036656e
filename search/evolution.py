"""Regularized evolution (Real et al. 2019; paper-notes section 3), without the evaluation.

A population of P members, oldest first. To make a child: sample T members at random,
the fittest is the parent; the child (once its fitness is known) joins at the young end
and the oldest member leaves, whatever its fitness. Ageing out, not culling the worst,
is what keeps a lucky noisy score from ruling the population forever.

``Plateau`` says when the best fitness of the current population has stopped improving,
which is when a search restarts (from the best program so far, or from the initial one).
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass
from typing import Iterable, Iterator

from symbolic_opt.analysis import analyze
from symbolic_opt.ir import Program
from symbolic_opt.printer import print_program


@dataclass(frozen=True)
class Candidate:
    """A child on its way to the population: the program and where it came from."""

    program: Program
    hash: str
    fingerprint: str | None
    parent_hash: str | None
    mutation: str
    epoch: int

    @property
    def text(self) -> str:
        return print_program(self.program)

    @property
    def length(self) -> int:
        """Live statements: the program's size once its redundant statements are dropped."""
        return sum(analyze(self.program).live)


@dataclass(frozen=True)
class Member:
    """A program in the population, with its proxy fitness (higher is better)."""

    program: Program
    hash: str
    fitness: float


class Population:
    """The population: a bounded queue, oldest first."""

    def __init__(self, size: int, tournament: int, members: Iterable[Member] = ()):
        if not 1 <= tournament <= size:
            raise ValueError(f"need 1 <= tournament <= population, got T={tournament}, P={size}")
        self.size = size
        self.tournament = tournament
        self._members: deque[Member] = deque(members, maxlen=size)

    def add(self, member: Member) -> None:
        """``member`` joins; past P members, the oldest leaves."""
        self._members.append(member)

    def select(self, rng: random.Random) -> Member:
        """The fittest of T members sampled without replacement (ties: the first sampled)."""
        if not self._members:
            raise IndexError("the population is empty")
        k = min(self.tournament, len(self._members))
        sample = rng.sample(range(len(self._members)), k)
        return max((self._members[i] for i in sample), key=lambda m: m.fitness)

    @property
    def best(self) -> Member:
        return max(self._members, key=lambda m: m.fitness)

    def __len__(self) -> int:
        return len(self._members)

    def __iter__(self) -> Iterator[Member]:
        return iter(self._members)


@dataclass
class Plateau:
    """Counts evaluations since the population's best last improved.

    ``patience`` 0 never plateaus."""

    patience: int
    best: float = float("-inf")
    since: int = 0

    def update(self, fitness: float) -> bool:
        """Record one evaluated fitness; whether the search has now plateaued."""
        if fitness > self.best:
            self.best, self.since = fitness, 0
        else:
            self.since += 1
        return self.patience > 0 and self.since >= self.patience

    def reset(self, best: float) -> None:
        self.best, self.since = best, 0
