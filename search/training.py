"""Train a proxy problem with an optimizer program: the inner loop of every evaluation.

    result = train(problem, seeds, ProgramStep.of(program), deadline=time.perf_counter() + 2)

Each step: the learning rate from ``schedule`` (linear warmup to ``lr_peak``, cosine decay to
0: the paper's warm-start program scales itself with ``lr = lr * 0.001``; the evaluator picks
each task's peak, see ``evaluate.py``), the loss and gradient of
all seeds' models at once (``Problem.loss_and_grad``), then the optimizer on the flat
buffers. A run stops at the first sign of failure: a nan or inf loss, a loss above
``DIVERGED`` times its first value, an exception from the optimizer, or the deadline.

How a program is applied to the ``[S, N]`` buffer (``ProgramStep.mode``): elementwise
programs take the whole buffer in one call (``batched``). A group reduction (``global_norm``,
``dot``, ``cosine_sim``, ``clip_by_global_norm``) must reduce over ONE model's parameters, so
such programs are called once per seed on that seed's row (``per_seed``); per-tensor
reductions (``tensor_norm``...) also get the row split into one tensor per parameter
(``per_tensor``). Elementwise ops give the same numbers in every mode.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from symbolic_opt import compile_program
from symbolic_opt.compiler import CompiledProgram
from symbolic_opt.ir import Program
from symbolic_opt.ops import OPS, Rule

from .flat import Layout
from .tasks.base import Problem

DIVERGED = 10.0
"""A run has diverged once a seed's training loss exceeds this many times its first loss."""

WARMUP = 0.1
"""Fraction of the steps spent warming the learning rate up linearly."""

StepFn = Callable[[float, int], None]
"""``step_fn(lr, t)``: one optimizer step (``t`` = 1, 2, ...) on buffers bound beforehand."""


def schedule(steps: int, warmup: float = WARMUP) -> tuple[float, ...]:
    """The ``lr`` input for steps ``1 .. steps``: ``t / W`` for ``t <= W = ceil(warmup * steps)``,
    then ``(1 + cos(pi * (t - W) / (steps - W))) / 2``: peak 1 at ``t = W``, 0 at the last step."""
    w = max(1, math.ceil(warmup * steps))
    tail = max(1, steps - w)
    return tuple(t / w if t <= w else 0.5 * (1 + math.cos(math.pi * (t - w) / tail)) for t in range(1, steps + 1))


class Optimizer:
    """Something that can step a flat buffer: ``bind`` it to ``(params, grad)`` for one run."""

    def bind(self, flat: torch.Tensor, grad: torch.Tensor, layout: Layout) -> StepFn:  # pragma: no cover
        raise NotImplementedError


@dataclass(frozen=True)
class ProgramStep(Optimizer):
    """A program compiled with the ``eager`` backend, applied per ``mode`` (module docstring)."""

    compiled: CompiledProgram
    mode: str

    @classmethod
    def of(cls, program: Program) -> "ProgramStep":
        """Compile ``program`` (raises ``ProgramError`` if it does not check) and pick its mode."""
        compiled = compile_program(program, "eager")
        return cls(compiled, step_mode(compiled))

    def bind(self, flat: torch.Tensor, grad: torch.Tensor, layout: Layout) -> StepFn:
        if self.mode == "batched":
            groups = [([flat.view(-1)], [grad.view(-1)])]
        elif self.mode == "per_seed":
            groups = [([flat[s]], [grad[s]]) for s in range(flat.shape[0])]
        else:
            groups = [(layout.split(flat[s]), layout.split(grad[s])) for s in range(flat.shape[0])]
        calls = [(ps, gs, *self.compiled.init_state(ps)) for ps, gs in groups]
        fn = self.compiled.fn  # the generated function itself: no argument checking per step
        scalars = {**self.compiled.program.defaults}
        scalars = {k: scalars.get(k) for k in self.compiled.scalars}
        uses_step = "step" in scalars

        def step(lr: float, t: int) -> None:
            scalars["lr"] = lr
            if uses_step:
                scalars["step"] = t
            for args in calls:
                fn(*args, **scalars)

        return step


def step_mode(compiled: CompiledProgram) -> str:
    """``batched``, ``per_seed`` or ``per_tensor``: what the program's live reductions need."""
    a = compiled.analysis
    live_ops = [OPS[s.op] for s, alive in zip(a.program.body, a.live) if alive]
    if any(op.rule is Rule.TENSOR_REDUCE for op in live_ops):
        return "per_tensor"
    if any(op.needs_group for op in live_ops):
        return "per_seed"
    return "batched"


@dataclass(frozen=True)
class Plan:
    """Everything fixed about a run before the optimizer is known: per seed, the initial
    parameters, the data order and the learning-rate schedule."""

    problem: Problem
    seeds: tuple[int, ...]
    init: torch.Tensor = field(repr=False)
    batches: torch.Tensor = field(repr=False)
    lrs: tuple[float, ...] = field(repr=False)


@functools.lru_cache(maxsize=64)
def plan(problem: Problem, seeds: tuple[int, ...]) -> Plan:
    """The run plan of ``problem`` for ``seeds``, made once per process (schedule peak 1)."""
    return Plan(problem, seeds, problem.init(seeds), problem.batches(seeds), schedule(problem.steps))


@dataclass(frozen=True)
class RunResult:
    """What one training run gives: final metrics per split per seed, or why it failed."""

    metrics: dict[str, dict[str, list[float]]]
    """``{split: {metric: [one value per seed]}}`` for the requested splits."""
    steps: int
    """Steps completed."""
    seconds: float
    """Wall time of the run."""
    error: str | None = None
    cpu_seconds: float = 0.0
    """CPU time of this process during the run."""


class Failure(Exception):
    """A run that stopped early; the message says why and where."""


def train(
    problem: Problem,
    seeds: Sequence[int],
    optimizer: Optimizer,
    *,
    splits: dict[str, Sequence[int]] | None = None,
    deadline: float | None = None,
    lr_peak: float = 1.0,
) -> RunResult:
    """Train ``problem``'s models for ``seeds`` (all at once) with ``optimizer``.

    ``splits`` maps a split name to the positions in ``seeds`` to score on it (default: every
    seed on ``valid``). ``deadline`` is a ``time.perf_counter()`` value. ``lr_peak`` scales the
    ``lr`` schedule the optimizer is handed. Runs under ``cpu_settings``. Never raises for a
    failing optimizer: the ``RunResult`` carries the error instead.
    """
    with cpu_settings():
        return _train(problem, tuple(seeds), optimizer, splits or {"valid": range(len(seeds))}, deadline, lr_peak)


@contextlib.contextmanager
def cpu_settings(threads: int = 1):
    """One torch thread (Ray runs one evaluation per core) and subnormal floats flushed to
    zero: second moments of tiny gradients are subnormal, and arithmetic on them is ~100x
    slower, which would make an evaluation's time depend on its numbers. Both restored
    afterwards. Also ``keep_heap`` (once per process)."""
    keep_heap()
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)
        torch.set_num_threads(before)


@functools.lru_cache(maxsize=None)
def keep_heap() -> bool:
    """Ask glibc to serve allocations up to 64 MiB from the heap and never trim it.

    By default a freed block over 128 KiB goes back to the OS, so every step's temporaries
    (a candidate's intermediate tensors, activations) page-fault fresh memory: 400 faults and
    5x the time for one AdamW step on 90,000 floats. Process-wide and harmless (the process
    keeps the memory it already used); a no-op where there is no glibc.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(libc.mallopt(m_mmap_threshold, 64 << 20)) and bool(libc.mallopt(m_trim_threshold, 1 << 30))
    except (OSError, AttributeError):
        return False


def _train(problem, seeds, optimizer, splits, deadline, lr_peak) -> RunResult:
    start, cpu = time.perf_counter(), time.process_time()
    run = plan(problem, seeds)
    flat = run.init.clone()
    grad = torch.zeros_like(flat)
    views = problem.layout.views(flat)
    t = 0
    try:
        step_fn = optimizer.bind(flat, grad, problem.layout)
        limit = None
        for t, lr in enumerate(run.lrs, start=1):
            lr = lr_peak * lr
            loss = problem.loss_and_grad(views, run.batches[t - 1], grad)
            if limit is None:
                limit = loss.abs() * DIVERGED
            if not bool((loss <= limit).all()):
                raise Failure(_bad_loss(loss, limit, seeds))
            step_fn(lr, t)
            if deadline is not None and time.perf_counter() > deadline:
                raise Failure(f"past the deadline after {time.perf_counter() - start:.3f} s")
        with torch.no_grad():
            metrics = {}
            for split, rows in splits.items():
                rows = list(rows)
                sub = {k: v[rows] for k, v in views.items()}
                values = {k: v.tolist() for k, v in problem.metrics(sub, split).items()}
                bad = [seeds[rows[i]] for i, x in enumerate(values["loss"]) if not math.isfinite(x)]
                if bad:
                    raise Failure(f"non-finite {split} loss for seed {bad[0]}")
                metrics[split] = values
    except Failure as e:
        error = f"{e} (step {t} of {_where(problem)})"
    except Exception as e:  # a candidate's runtime error is its score, never a crash
        error = f"{type(e).__name__}: {e} (step {t} of {_where(problem)})"
    else:
        return RunResult(metrics, t, time.perf_counter() - start, None, time.process_time() - cpu)
    return RunResult({}, t, time.perf_counter() - start, error, time.process_time() - cpu)


def initial_metrics(problem: Problem, seeds: Sequence[int], splits: dict[str, Sequence[int]]) -> dict[str, dict[str, list[float]]]:
    """The untrained models' metrics (``RunResult.metrics`` form): what "no training" scores."""
    views = problem.layout.views(plan(problem, tuple(seeds)).init)
    with torch.no_grad(), cpu_settings():
        return {
            split: {k: v.tolist() for k, v in problem.metrics({n: t[list(rows)] for n, t in views.items()}, split).items()}
            for split, rows in splits.items()
        }


def _where(problem: Problem) -> str:
    return problem.name if problem.scale == 1 else f"{problem.name}@{problem.scale:g}"


def _bad_loss(loss: torch.Tensor, limit: torch.Tensor, seeds: tuple[int, ...]) -> str:
    for i, (x, lim) in enumerate(zip(loss.tolist(), limit.tolist())):
        if math.isnan(x):
            return f"nan loss, seed {seeds[i]}"
        if math.isinf(x):
            return f"inf loss, seed {seeds[i]}"
        if not x <= lim:
            return f"diverged, seed {seeds[i]}: loss {x:.4g} > {DIVERGED:g}x its first value"
    return "bad loss"


class HandWrittenAdamW(Optimizer):
    """The paper's warm-start program (``programs/adamw_paper.py``) written by hand in torch on
    the flat buffer, with the same numerics: the limit a compiled candidate is measured against.

    ``m <- interp(g, m, 0.9)``, ``v <- interp(g^2, v, 0.999)``,
    ``w <- w (1 - 1e-5 lr) - 1e-3 lr * m / (sqrt(v) + 1e-8)``.
    """

    def bind(self, flat: torch.Tensor, grad: torch.Tensor, layout: Layout) -> StepFn:
        w, g = flat.view(-1), grad.view(-1)
        m, v = torch.zeros_like(w), torch.zeros_like(w)
        u = torch.empty_like(w)

        def step(lr: float, t: int) -> None:
            lr = lr * 0.001
            m.lerp_(g, 1 - 0.9)
            v.lerp_(torch.square(g, out=u), 1 - 0.999)
            torch.sqrt(v, out=u).add_(1e-08)
            torch.div(m, u, out=u)
            w.mul_(1 - lr * 0.01)
            w.add_(u, alpha=-lr)

        return step
