"""A search strategy: what proposes the next child, and what it learns from each result.

    strategy = make_strategy(config, store, initial)
    proposal = strategy.propose(rng)            # a parent and how many mutations, or None (not yet)
    strategy.tell(candidate, fitness, via)      # a child's fitness: evaluated, or from the cache

The driver (``run.py``) does everything else the same way for every strategy: making the
child (``Mutator``, retried until it is valid), the cache, Ray, the store, the budget. So
strategies compare at equal budgets in the same store format (NOSBench's ask/tell), and a
third one is one new module with a ``Strategy`` subclass, named in ``STRATEGIES``:

* ``evolution`` (``evolution.py``): regularized evolution, the paper's search;
* ``random`` (``random_search.py``): the control, a few random mutations of the warm start
  and no selection at all.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, ClassVar, Mapping

from symbolic_opt.ir import Program

if TYPE_CHECKING:
    from .config import SearchConfig
    from .evolution import Candidate, Member
    from .store import RunStore


@dataclass(frozen=True)
class Proposal:
    """A child to make: mutate ``program`` ``mutations`` times; the child belongs to ``epoch``."""

    program: Program
    hash: str
    mutations: int = 1
    epoch: int = 0


class Strategy(ABC):
    """See the module docstring. ``make_candidate(program, parent_hash, mutation, epoch,
    program_hash)`` builds a ``Candidate`` the way the driver does (hash and fingerprint)."""

    name: ClassVar[str]

    def __init__(self, config: "SearchConfig", store: "RunStore", initial: "Candidate",
                 counters: Mapping[str, float], make_candidate: Callable[..., "Candidate"]):
        self.config, self.store, self.initial, self.make_candidate = config, store, initial, make_candidate
        self.epoch = int(counters.get("epoch", 0))

    @abstractmethod
    def started(self) -> bool:
        """Whether it can propose (it may first need the warm start's fitness: ``start``)."""

    @abstractmethod
    def start(self, initial_fitness: float) -> None:
        """The warm start's fitness is known (from the cache or its evaluation); begin."""

    @abstractmethod
    def propose(self, rng: random.Random) -> Proposal | None:
        """The next child's parent and how many mutations it gets; None to wait."""

    @abstractmethod
    def tell(self, candidate: "Candidate", fitness: float, via: str) -> None:
        """A proposed child's fitness: ``via`` is ``evaluated``, or the cache's ``hash`` or
        ``fingerprint``. The store has it already."""

    def admits(self, candidate: "Candidate", fitness: float) -> bool:
        """Whether the child joins the programs it draws from (the store records either way)."""
        return True

    def seed_copies(self, candidate: "Candidate") -> int:
        """How many extra copies of this evaluated child the store records as members, in the
        evaluation's own transaction (evolution: the warm start fills the first population)."""
        return 0

    def counters(self) -> dict[str, float]:
        """Its state, saved with the run's counters (and read back from them on a resume)."""
        return {"epoch": self.epoch}

    def population(self) -> tuple["Member", ...]:
        """The programs it currently draws from (for the summary)."""
        return ()


def make_strategy(config: "SearchConfig", store: "RunStore", initial: "Candidate", counters: Mapping[str, float],
                  make_candidate: Callable[..., "Candidate"]) -> Strategy:
    """The strategy ``config.strategy`` names."""
    if config.strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {config.strategy!r}; the strategies are {', '.join(STRATEGIES)}")
    module, cls = STRATEGIES[config.strategy]
    import importlib

    return getattr(importlib.import_module(f"{__package__}.{module}"), cls)(config, store, initial, counters, make_candidate)


STRATEGIES: dict[str, tuple[str, str]] = {"evolution": ("evolution", "Evolution"), "random": ("random_search", "RandomSearch")}
"""name -> (module, class): one entry per strategy."""
