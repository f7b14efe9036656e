"""No program is trained twice: a behavioural fingerprint and the cache it keys.

The dataflow hash (``analyze(p).hash``) sees through names, dead code and statement order,
but not through algebra: ``x * 2`` and ``x + x``, ``sqrt(square(m))`` and ``abs(m)`` hash
apart. The fingerprint catches those: it runs the compiled program for a few steps on fixed
random inputs (weights, gradients spanning several orders of magnitude, a changing ``lr``),
and hashes the weights it produces, rounded to 7 significant digits. Two programs with one
fingerprint update the weights alike, so one evaluation serves both.

The state starts at zero, as in training, and the steps make it nonzero for every program
that feeds it. Starting from random state instead would tell apart programs that training
cannot: one that reads a state variable nobody writes (``update = g * lr + sqrt(v)`` with
``v`` left alone, or written as ``v = sign(v)``) trains exactly like one that does not read
it, since that state is zero forever. In a two-minute search from AdamW, the eight fittest
programs were plain ``g * lr`` in such disguises, each evaluated separately.

A program whose trajectory holds nan or inf gets no fingerprint (``None``): nan everywhere
says little about how it behaves on real gradients, so only its hash is cached.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import torch

from symbolic_opt.compiler import compile_program
from symbolic_opt.ir import Program

SHAPES = ((4, 3), (5,))
"""Two parameter tensors, so that group reductions differ from per-tensor ones."""
LRS = (1.0, 0.7, 0.3, 0.9, 0.5, 0.1, 0.8, 0.2)


def fingerprint(program: Program, steps: int = 5) -> str | None:
    """16 hex digits naming what ``program`` does to the weights; ``None`` if it is not finite
    (or fails to run). Deterministic: same program, same fingerprint, in any process."""
    if steps <= 0:
        return None
    gen = torch.Generator().manual_seed(1234)
    try:
        compiled = compile_program(program, "eager")
        params = [torch.randn(s, generator=gen, dtype=torch.float64) for s in SHAPES]
        states = compiled.init_state(params)
        trajectory = []
        with torch.no_grad():
            for step in range(steps):
                grads = [_gradient(s, gen) for s in SHAPES]
                scalars = {"lr": LRS[step % len(LRS)]}
                if "step" in compiled.scalars:
                    scalars["step"] = step + 1
                compiled(params, grads, states, **scalars)
                trajectory.append(torch.cat([p.reshape(-1) for p in params]).numpy().copy())
    except Exception:  # noqa: BLE001 - a program that cannot run has no behaviour to compare
        return None
    values = np.concatenate(trajectory)
    if not np.all(np.isfinite(values)):
        return None
    text = ",".join(f"{v + 0.0:.7g}" for v in values)  # + 0.0: -0.0 and 0.0 print alike
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def _gradient(shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    """Normal noise times magnitudes from 1e-4 to 10, so thresholds (clip, max) show."""
    magnitude = 10.0 ** (torch.rand(shape, generator=gen, dtype=torch.float64) * 5 - 4)
    return torch.randn(shape, generator=gen, dtype=torch.float64) * magnitude


@dataclass(frozen=True)
class Hit:
    """A cache hit: the child is not evaluated. ``fitness`` is ``None`` while the program it
    matched is still being evaluated (``pending`` is that program's hash)."""

    via: str  # "hash" | "fingerprint"
    fitness: float | None
    pending: str | None = None


@dataclass
class Cache:
    """Proxy fitness by dataflow hash and by fingerprint, including programs in flight,
    with hit counts. ``lookup`` is asked once per child; a hit means no evaluation."""

    by_hash: dict[str, float] = field(default_factory=dict)
    by_fingerprint: dict[str, float] = field(default_factory=dict)
    pending_hashes: set[str] = field(default_factory=set)
    pending_fingerprints: dict[str, str] = field(default_factory=dict)
    hash_hits: int = 0
    fingerprint_hits: int = 0
    lookups: int = 0

    def lookup(self, program_hash: str, program_fingerprint: str | None) -> Hit | None:
        self.lookups += 1
        hit = self._find(program_hash, program_fingerprint)
        if hit is not None:
            if hit.via == "hash":
                self.hash_hits += 1
            else:
                self.fingerprint_hits += 1
        return hit

    def _find(self, program_hash: str, program_fingerprint: str | None) -> Hit | None:
        if program_hash in self.by_hash:
            return Hit("hash", self.by_hash[program_hash])
        if program_hash in self.pending_hashes:
            return Hit("hash", None, program_hash)
        if program_fingerprint is None:
            return None
        if program_fingerprint in self.by_fingerprint:
            fitness = self.by_fingerprint[program_fingerprint]
            self.by_hash[program_hash] = fitness
            return Hit("fingerprint", fitness)
        if program_fingerprint in self.pending_fingerprints:
            return Hit("fingerprint", None, self.pending_fingerprints[program_fingerprint])
        return None

    def reserve(self, program_hash: str, program_fingerprint: str | None) -> None:
        """The program is being evaluated: children like it wait for its fitness."""
        self.pending_hashes.add(program_hash)
        if program_fingerprint is not None:
            self.pending_fingerprints.setdefault(program_fingerprint, program_hash)

    def add(self, program_hash: str, program_fingerprint: str | None, fitness: float) -> None:
        self.pending_hashes.discard(program_hash)
        self.by_hash[program_hash] = fitness
        if program_fingerprint is not None:
            if self.pending_fingerprints.get(program_fingerprint) == program_hash:
                del self.pending_fingerprints[program_fingerprint]
            self.by_fingerprint.setdefault(program_fingerprint, fitness)

    @property
    def hits(self) -> int:
        return self.hash_hits + self.fingerprint_hits

    @property
    def hit_rate(self) -> float:
        return self.hits / self.lookups if self.lookups else 0.0
