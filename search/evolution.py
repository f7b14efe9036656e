"""Regularized evolution (Real et al. 2019; paper-notes section 3), without the evaluation.

A population of P members, oldest first. To make a child: sample T members at random,
the fittest is the parent; the child (once its fitness is known) joins at the young end
and the oldest member leaves, whatever its fitness. Ageing out, not culling the worst,
is what keeps a lucky noisy score from ruling the population forever. What does not join
(``SearchConfig.cull``) is a child that failed or fell below the hurdle: those are half of
all children, and a population of them breeds from the mediocre.

``Plateau`` says when the best fitness of the current population has stopped improving,
which is when a search restarts (from the best program so far, or from the initial one).
"""

from __future__ import annotations

import dataclasses
import random
from collections import deque
from dataclasses import dataclass
from typing import Iterable, Iterator

from symbolic_opt.analysis import analyze
from symbolic_opt.ir import Program
from symbolic_opt.printer import print_program

from .fitness import WORST
from .strategy import Proposal, Strategy


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


class Evolution(Strategy):
    """Regularized evolution (module docstring): a tournament picks the parent, one mutation
    per child, every child that did not fail joins the current epoch's population; when the population's best
    has not improved for ``restart_plateau`` evaluations, a new epoch starts from the best
    program so far or from the initial one (``restart_from``). The population of a resumed run
    is the last P members of its epoch in the store."""

    name = "evolution"

    def __init__(self, config, store, initial, counters, make_candidate):
        super().__init__(config, store, initial, counters, make_candidate)
        self.pop = Population(config.population, config.tournament, store.population(self.epoch, config.population))
        self.plateau = Plateau(config.restart_plateau, counters.get("plateau_best", float("-inf")),
                               int(counters.get("plateau_since", 0)))
        self.restarts = int(counters.get("restarts", 0))

    def started(self) -> bool:
        return len(self.pop) > 0

    def start(self, initial_fitness: float) -> None:
        self._seed(self.initial, initial_fitness)

    def propose(self, rng: random.Random) -> Proposal | None:
        if not len(self.pop):
            return None  # the warm start is still being evaluated
        parent = self.pop.select(rng)
        return Proposal(parent.program, parent.hash, 1, self.epoch)

    def seed_copies(self, candidate: Candidate) -> int:
        return self.config.population - 1 if candidate.epoch == self.epoch and not len(self.pop) else 0

    def admits(self, candidate: Candidate, fitness: float) -> bool:
        """A child joins unless it failed or fell below the hurdle (with ``config.cull``): half
        of all children fail, and in a population of them a tournament breeds from the
        mediocre (measured: the median fell from -0.11 to -0.95 within one epoch). The warm
        start (the first member) always joins."""
        if not self.config.cull or not len(self.pop):
            return True
        hurdle = self.config.hurdle if self.config.hurdle is not None else -1.0
        return fitness > WORST and fitness >= hurdle

    def tell(self, candidate: Candidate, fitness: float, via: str) -> None:
        if candidate.epoch != self.epoch:
            return  # a child of an earlier epoch's population
        if via == "evaluated" and self.plateau.update(fitness):
            self._restart()
            return
        if not self.admits(candidate, fitness):
            return
        copies = 1 + (self.config.population - 1 if via == "evaluated" and not len(self.pop) else 0)
        for _ in range(copies):
            self.pop.add(Member(candidate.program, candidate.hash, fitness))

    def counters(self) -> dict[str, float]:
        return {"epoch": self.epoch, "restarts": self.restarts, "plateau_best": self.plateau.best,
                "plateau_since": self.plateau.since}

    def population(self) -> tuple[Member, ...]:
        return tuple(self.pop)

    def _restart(self) -> None:
        """The population's best stopped improving: a new population from the best program
        so far or from the initial one (``restart_from``)."""
        self.epoch += 1
        self.restarts += 1
        source = self.config.restart_from
        if source == "alternate":
            source = "best" if self.epoch % 2 else "initial"
        best = self.store.best(1)
        if source == "best" and best:
            seed = self.make_candidate(best[0].program, best[0].hash, f"restart {self.epoch} from the best", self.epoch,
                                       best[0].hash)
            fitness = best[0].fitness
        else:
            seed = dataclasses.replace(self.initial, mutation=f"restart {self.epoch} from the initial program",
                                       epoch=self.epoch)
            record = self.store.record(self.initial.hash)
            fitness = record.fitness
        self._seed(seed, fitness)

    def _seed(self, seed: Candidate, fitness: float) -> None:
        copies = self.config.population
        self.pop = Population(self.config.population, self.config.tournament, [Member(seed.program, seed.hash, fitness)] * copies)
        self.plateau.reset(fitness)
        self.store.add_seeds(seed, fitness, copies, {**self.counters()})
