"""No program is trained twice: a behavioural fingerprint and the cache it keys.

The dataflow hash (``analyze(p).hash``) sees through names, dead code and statement order,
but not through algebra: ``x * 2`` and ``x + x``, ``sqrt(square(m))`` and ``abs(m)`` hash
apart. The fingerprint catches those: it runs the compiled program on fixed random inputs
and hashes the updates it makes. Two programs with one fingerprint update the weights
alike, so one evaluation serves both. Merging two programs that train differently is the
error to avoid (one is scored with the other's fitness); splitting two that train alike only
costs an evaluation. So the probes reach every regime the tasks reach:

**The trajectory.** ``steps`` steps from zero state, as training starts, on weights
``N(0, 1)``, gradients ``N(0, 1)`` times magnitudes from 1e-6 to 10 (so thresholds such as
``clip``, ``max`` and an epsilon show) and ``lr`` in (0, 1]. The state starts at zero because
starting from random state would tell apart programs that training cannot: one that reads a
state variable nobody writes (``update = g * lr + sqrt(v)`` with ``v`` left alone, or written
as ``v = sign(v)``) trains exactly like one that does not read it, since that state is zero
forever. In a two-minute search from AdamW, the eight fittest programs were plain ``g * lr``
in such disguises, each evaluated separately.

**The probes.** The trajectory alone is blind to what only happens later or larger: it stops
at step ``steps`` (5), with ``lr <= 1`` and state of the gradients' size, while the tasks run ``step`` up
to a few thousand and hand programs ``lr`` from exactly 0 (the schedule's last step) and
~1e-9 (warmup, the cosine's tail, a small peak times a small multiplier) up to a few hundred
(peak 64 times multiplier 4). Adam times ``exp(-max(step - 50, 0))``, or ``lr = min(lr, 1)``,
had the plain program's trajectory. So from the trajectory's final weights and its state
times a scale, two steps are taken (the second shows state that the first step wrote but did
not use) at every combination (``PROBES``) of step counter (``PROBE_STEPS``, 1 to 10^4),
learning rate (``PROBE_LRS``: 0, 1e-6 standing for the tiny ones, 1e-3, 1, 64, 1024) and
state scale (``STATE_SCALES``, 1e-4 to 1e4): a threshold anywhere in between, alone or
together with one in another input, falls between two probes. Scaling keeps a state that is
zero at zero, so a state nobody writes stays unseen, and keeps signs, so ``sqrt(v)`` of a
``v >= 0`` stays what it was. An update that is nan or inf here is hashed as such (a program
that breaks only at lr 1024 is still a program, and not the plain one). The probes are the
rows of one tensor, stepped in one call per step, for a program without a live reduction;
one with a reduction (which must not reach across rows) steps them a row at a time.

**What is hashed.** The update ``u = w_before - w_after`` (the weights themselves would hide a
small update: at lr 1e-6 the warm start moves ``w`` by 1e-9, below 7 digits of ``w``), each
rounded to 24 significant bits (~7 digits), but to no finer a quantum than ``2^-36 |w|``:
float64 rounding of ``w - u`` leaves noise of ``2^-52 |w|`` in ``u``, which must not split
equivalent programs, while the tasks train in float32, where one step cannot move ``w`` by
less than ``2^-24 |w|`` (4096 times that quantum). Updates ``-0.0`` and ``0.0`` hash alike,
as do all nans.

A program that fails to run, or whose trajectory holds nan or inf, gets no fingerprint
(``None``): nan everywhere says little about how it behaves on real gradients, so only its
hash is cached.

``behaviour.py`` asks the related question the funnel needs: whether two programs do the same
up to their learning rate.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from symbolic_opt.compiler import CompiledProgram, compile_program
from symbolic_opt.ir import Program
from symbolic_opt.kinds import Kind
from symbolic_opt.ops import OPS, Rule


SHAPES = ((4, 3), (5,))
"""Two parameter tensors, so that group reductions differ from per-tensor ones."""
SIZE = sum(math.prod(s) for s in SHAPES)
LRS = (1.0, 0.7, 0.3, 0.9, 0.5, 0.1, 0.8, 0.2)
"""The trajectory's learning rates."""
PROBE_STEPS = (1, 10, 100, 1000, 10000)
PROBE_LRS = (0.0, 1e-6, 1e-3, 1.0, 64.0, 1024.0)
STATE_SCALES = (1e-4, 1.0, 1e4)
PROBES = tuple(itertools.product(PROBE_STEPS, PROBE_LRS, STATE_SCALES))
"""``(step, lr, scale)``: two steps from the trajectory's weights and its state times ``scale``,
at step counters ``step`` and ``step + 1`` and learning rate ``lr``."""
BITS, FLOOR_BITS = 24, 36
"""Updates are hashed to ``BITS`` significant bits, no finer than ``2^-FLOOR_BITS |w|``."""
State = list[list[torch.Tensor]]
"""A program's state: for each carried state variable, its buffer for each parameter tensor."""


def fingerprint(program: Program, steps: int = 5) -> str | None:
    """16 hex digits naming what ``program`` does to the weights; ``None`` if its trajectory
    is not finite or it fails to run, and for ``steps <= 0`` (no fingerprint wanted).
    Deterministic: same program, same fingerprint, in any process (module docstring)."""
    if steps <= 0:
        return None
    try:
        # An elementwise program runs on the ``tensor`` backend (the probes' rows in one call);
        # one with a live reduction on ``eager``, a row at a time.
        compiled = compile_program(program, "tensor")
        batched = not _reduces(compiled)
        if not batched:
            compiled = compile_program(program, "eager")
        with torch.no_grad(), np.errstate(all="ignore"):  # host scalars may be nan at lr 0 or 1024
            trajectory, w, states = _trajectory(compiled, steps, tensors=batched)
            if not np.all(np.isfinite(trajectory)):
                return None
            rows = _rows(compiled, states) if batched else None
            if rows is not None:
                probes = _batched_probes(compiled, w, rows)
            else:
                probes = _row_probes(compile_program(program, "eager"), w, states)
    except Exception:  # noqa: BLE001 - a program that cannot run has no behaviour to compare
        return None
    digest = hashlib.blake2b(digest_size=8)
    digest.update(trajectory.astype("<f8").tobytes())
    digest.update(probes.astype("<f8").tobytes())
    return digest.hexdigest()


@functools.lru_cache(maxsize=8)
def _trajectory_inputs(steps: int) -> tuple[torch.Tensor, list[list[torch.Tensor]]]:
    """The trajectory's initial weights ``[SIZE]`` and each step's gradients (``SHAPES``),
    drawn once per process from a fixed seed."""
    gen = torch.Generator().manual_seed(1234)
    w = torch.randn(SIZE, generator=gen, dtype=torch.float64)
    return w, [split_row(g) for g in _gradient((steps, SIZE), gen)]


@functools.lru_cache(maxsize=1)
def _probe_inputs() -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """The probes' gradients ``[2, len(PROBES), SIZE]`` (each row's two steps) and the
    ``PROBES`` as ``[len(PROBES), 1]`` columns ``step, lr, scale``."""
    grads = _gradient((2, len(PROBES), SIZE), torch.Generator().manual_seed(4321))
    columns = tuple(torch.tensor(c, dtype=torch.float64).view(-1, 1) for c in zip(*PROBES))
    return grads, columns


def _gradient(shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    """Normal noise times magnitudes from 1e-6 to 10, so thresholds (clip, max, eps) show."""
    magnitude = 10.0 ** (torch.rand(shape, generator=gen, dtype=torch.float64) * 7 - 6)
    return torch.randn(shape, generator=gen, dtype=torch.float64) * magnitude


def split_row(row: torch.Tensor, shapes: tuple[tuple[int, ...], ...] = SHAPES) -> list[torch.Tensor]:
    """A flat row as tensors of ``shapes`` (views: an in-place step writes into the row)."""
    out, at = [], 0
    for shape in shapes:
        n = math.prod(shape)
        out.append(row[at:at + n].view(shape))
        at += n
    return out


def step_inputs(compiled: CompiledProgram, lr, step, tensors: bool = False) -> dict:
    """The step's keyword inputs: ``lr``, ``step`` and the hyperparameters at their defaults,
    for the ``tensor`` backend all as tensors (as training hands them)."""
    scalars = {"lr": lr, "step": step, **compiled.program.defaults}
    scalars = {name: scalars[name] for name in compiled.scalars}
    if tensors:
        scalars = {name: torch.as_tensor(v, dtype=torch.float64) for name, v in scalars.items()}
    return scalars


def _trajectory(compiled: CompiledProgram, steps: int, tensors: bool) -> tuple[np.ndarray, torch.Tensor, State]:
    """The rounded updates of ``steps`` steps from zero state; the final weights and state."""
    w0, grads = _trajectory_inputs(steps)
    ws = torch.empty(steps + 1, SIZE, dtype=torch.float64)  # ws[t]: the weights after t steps
    ws[0] = w0
    states = compiled.init_state(split_row(ws[0]))
    for t in range(steps):
        ws[t + 1] = ws[t]
        compiled.fn(split_row(ws[t + 1]), grads[t], *states, **step_inputs(compiled, LRS[t % len(LRS)], t + 1, tensors))
    return _rounded(ws[:-1] - ws[1:], ws[:-1]), ws[-1], states


def _reduces(compiled: CompiledProgram, per_tensor_only: bool = False) -> bool:
    """Whether a live statement reduces (over the group or over each tensor; or, with
    ``per_tensor_only``, over each tensor): then rows of one tensor would not be independent."""
    a = compiled.analysis
    return any(OPS[s.op].rule is Rule.TENSOR_REDUCE or (OPS[s.op].needs_group and not per_tensor_only)
               for s, alive in zip(a.program.body, a.live) if alive)


def _rows(compiled: CompiledProgram, states: State) -> list[torch.Tensor] | None:
    """Each carried state as one row per probe: its trajectory value times the probe's scale,
    ``[len(PROBES), SIZE]`` for a tensor, ``[len(PROBES), 1]`` for a number per tensor, which
    is the same number for every tensor unless something reduces per tensor (``None`` then)."""
    scale = _probe_inputs()[1][2]
    rows = []
    for name, state in zip(compiled.state, states):
        if compiled.analysis.state_kinds[name] is Kind.TENSOR:
            rows.append(torch.cat([x.reshape(-1) for x in state]) * scale)
        elif all(torch.equal(x, state[0]) for x in state):
            rows.append(state[0].reshape(1, 1) * scale)
        else:
            return None
    return rows


def _batched_probes(tensor: CompiledProgram, w: torch.Tensor, rows: list[torch.Tensor]) -> np.ndarray:
    """The ``PROBES`` as the rows of one ``[len(PROBES), SIZE]`` tensor, stepped by the
    ``tensor`` backend with ``step`` and ``lr`` one per row (as training steps its rows),
    from the states ``_rows`` made."""
    grads, (step, lr, _) = _probe_inputs()
    lists = [[r] for r in rows]
    ws = torch.empty(3, len(PROBES), SIZE, dtype=torch.float64)  # before, after one step, after two
    ws[0] = w
    for k in (0, 1):
        ws[k + 1] = ws[k]
        tensor.fn([ws[k + 1]], [grads[k]], *lists, **step_inputs(tensor, lr, step + k, tensors=True))
    return _rounded(ws[:2] - ws[1:], ws[:2])


def _row_probes(eager: CompiledProgram, w: torch.Tensor, states: State) -> np.ndarray:
    """The ``PROBES`` one row at a time on host scalars, for a program with a live reduction
    (the slow path): each row one tensor, or its ``SHAPES`` tensors where something reduces
    per tensor (one tensor would halve the work, but ``tensor_norm`` would become ``global_norm``)."""
    grads, _ = _probe_inputs()
    rows = None if _reduces(eager, per_tensor_only=True) else _rows(eager, states)
    split = split_row if rows is None else (lambda x: [x])
    ws = torch.empty(3, len(PROBES), SIZE, dtype=torch.float64)
    ws[0] = w
    for r, (step, lr, scale) in enumerate(PROBES):
        if rows is None:
            lists = [[x * scale for x in state] for state in states]
        else:  # a number per tensor is a 0-d buffer, as init_state makes it
            lists = [[s[r].clone() if s.shape[1] == SIZE else s[r, 0].clone()] for s in rows]
        for k in (0, 1):
            ws[k + 1, r] = ws[k, r]
            eager.fn(split(ws[k + 1, r]), split(grads[k, r]), *lists, **step_inputs(eager, lr, step + k))
    return _rounded(ws[:2] - ws[1:], ws[:2])


def _rounded(u: torch.Tensor, w: torch.Tensor) -> np.ndarray:
    """``u`` rounded to ``BITS`` significant bits, to a quantum no finer than ``2^-FLOOR_BITS |w|``
    (module docstring). Quanta are powers of two, so the rounding itself is exact."""
    u, w = u.numpy().reshape(-1), w.numpy().reshape(-1)
    with np.errstate(all="ignore"):
        exponent = np.maximum(np.frexp(u)[1] - BITS, np.frexp(w)[1] - FLOOR_BITS)
        r = np.ldexp(np.rint(np.ldexp(u, -exponent)), exponent)
    return np.where(np.isnan(r), np.nan, r) + 0.0  # one nan; -0.0 is 0.0


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

    def release(self, program_hash: str, program_fingerprint: str | None) -> None:
        """The program's evaluation was lost (the infrastructure's failure): it is no longer
        pending, and nothing is known about it, so a child like it is evaluated afresh."""
        self.pending_hashes.discard(program_hash)
        if program_fingerprint is not None and self.pending_fingerprints.get(program_fingerprint) == program_hash:
            del self.pending_fingerprints[program_fingerprint]

    def add(self, program_hash: str, program_fingerprint: str | None, fitness: float, failed: bool = False) -> None:
        """A finished evaluation. A failure is known by hash only: whether a program runs past
        its deadline depends on how it is computed (a per-row reduction is slower), not only
        on the updates the fingerprint sees."""
        self.pending_hashes.discard(program_hash)
        self.by_hash[program_hash] = fitness
        if program_fingerprint is not None:
            if self.pending_fingerprints.get(program_fingerprint) == program_hash:
                del self.pending_fingerprints[program_fingerprint]
            if not failed:
                self.by_fingerprint.setdefault(program_fingerprint, fitness)

    @property
    def hits(self) -> int:
        return self.hash_hits + self.fingerprint_hits

    @property
    def hit_rate(self) -> float:
        return self.hits / self.lookups if self.lookups else 0.0
