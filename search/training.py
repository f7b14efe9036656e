"""Train a proxy problem's rows with an optimizer program: the inner loop of every evaluation.

    rows = [Row(seed, lr_peak=4.0 * m) for m in (0.25, 1, 4) for seed in (0, 1, 2)]
    result = train(problem, rows, ProgramStep.of(program), deadline=time.process_time() + 2)
    result.losses("valid"), result.errors

Each row (``rows.py``) is one model of the task, trained from its seed's initialisation in
its seed's data order with the schedule's learning rate (``schedule``: linear warmup, cosine
decay to 0) scaled to the row's ``lr_peak``; the rows of a run live in one ``[R, N]``
buffer. Each step: the loss and gradient of every row's model at once
(``Problem.loss_and_grad``), then the optimizer on the flat buffers. A row fails, alone, at
the first sign of trouble: a nan or inf loss, a loss above ``DIVERGED`` times its first
value, an exception from its own step (where rows step one at a time; in a batched step an
exception fails every row). The run fails as a whole when the deadline passes.

How a program is applied to the ``[R, N]`` buffer (``ProgramStep.mode``): an elementwise
program takes the whole buffer in one call (``batched``), compiled for the ``tensor``
backend so that ``lr`` (and any hyperparameter that differs between rows) is an ``[R, 1]``
tensor: a learning-rate grid trains in the same batch as the seeds. A group reduction
(``global_norm``, ``dot``, ``cosine_sim``, ``clip_by_global_norm``) must reduce over ONE
model's parameters, so such programs are called once per row on that row (``per_row``, on
host scalars); per-tensor reductions (``tensor_norm``...) also get the row split into one
tensor per parameter (``per_tensor``). Elementwise programs give the same numbers in every
mode, up to the rounding of their scalars (float32 tensors in ``batched``, float64 on the
host otherwise).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import math
import time
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import torch

from symbolic_opt import compile_program
from symbolic_opt.compiler import CompiledProgram
from symbolic_opt.ir import Program
from symbolic_opt.kinds import Kind
from symbolic_opt.ops import OPS, Rule

from .flat import Layout
from .pruning import Groups
from .rows import Row, RowsResult
from .tasks.base import SPLITS, Problem

DIVERGED = 10.0
"""A run has diverged once a seed's training loss exceeds this many times its first loss."""

WARMUP = 0.1
"""Fraction of the steps spent warming the learning rate up linearly."""

def schedule(steps: int, warmup: float = WARMUP) -> tuple[float, ...]:
    """The ``lr`` input for steps ``1 .. steps`` at peak 1: ``t / W`` for ``t <= W = ceil(warmup * steps)``,
    then ``(1 + cos(pi * (t - W) / (steps - W))) / 2``: peak 1 at ``t = W``, 0 at the last step."""
    w = max(1, math.ceil(warmup * steps))
    tail = max(1, steps - w)
    return tuple(t / w if t <= w else 0.5 * (1 + math.cos(math.pi * (t - w) / tail)) for t in range(1, steps + 1))


class Stepper:
    """One optimizer step for every row of a run, on buffers bound beforehand (``Optimizer.bind``).

    ``stepper(scale, t)`` steps each row at its ``lr_peak * scale`` (``t`` = 1, 2, ...).
    Where rows are stepped one at a time, a row whose own step raises is recorded in
    ``failed`` (row -> reason) and stepped no more; ``retire(i)`` stops stepping a row the
    loop has given up on (it diverged)."""

    def __init__(self) -> None:
        self.failed: dict[int, str] = {}

    def __call__(self, scale: float, t: int) -> None:  # pragma: no cover
        raise NotImplementedError

    def retire(self, row: int) -> None:
        """No more steps for ``row`` (a no-op where rows are stepped together)."""

    def compact(self, keep: list[int], flat: torch.Tensor, grad: torch.Tensor, layout: Layout) -> bool:
        """Go on with only the buffer rows at positions ``keep``, now the rows of ``flat`` and
        ``grad`` (failed rows leave the batch, so they cost nothing more). False where the
        optimizer cannot: the failed rows then stay in the batch, computing what nobody reads."""
        return False


class Optimizer:
    """Something that can step a flat buffer: ``bind`` it to ``(params, grad)`` for one run."""

    def bind(self, flat: torch.Tensor, grad: torch.Tensor, layout: Layout, rows: Sequence[Row]) -> Stepper:  # pragma: no cover
        raise NotImplementedError


@dataclass(frozen=True)
class ProgramStep(Optimizer):
    """A program applied to the ``[R, N]`` buffer per ``mode`` (module docstring): ``batched``
    compiles it for the ``tensor`` backend (every scalar a tensor, ``lr`` one per row),
    ``per_row`` and ``per_tensor`` for ``eager`` (host scalars, one call per row)."""

    compiled: CompiledProgram
    mode: str

    @classmethod
    def of(cls, program: Program) -> "ProgramStep":
        """Compile ``program`` (raises ``ProgramError`` if it does not check) and pick its mode."""
        eager = compile_program(program, "eager")
        mode = step_mode(eager)
        return cls(compile_program(program, "tensor") if mode == "batched" else eager, mode)

    def bind(self, flat: torch.Tensor, grad: torch.Tensor, layout: Layout, rows: Sequence[Row]) -> Stepper:
        hyper = _row_hyperparams(self.compiled, rows)
        if self.mode == "batched":
            return _BatchedStep(self.compiled, flat, grad, rows, hyper)
        split = (lambda row: [row]) if self.mode == "per_row" else layout.split
        return _PerRowStep(self.compiled, flat, grad, split, rows, hyper)


def step_mode(compiled: CompiledProgram) -> str:
    """``batched``, ``per_row`` or ``per_tensor``: what the program's live reductions and state need.

    A batched call treats the ``[R, N]`` buffer as one tensor with ``[R, 1]`` scalars, which is
    exact for elementwise ops only, and only where every carried state is a tensor (a scalar
    state would be one number for all rows)."""
    a = compiled.analysis
    live_ops = [OPS[s.op] for s, alive in zip(a.program.body, a.live) if alive]
    if any(op.rule is Rule.TENSOR_REDUCE for op in live_ops):
        return "per_tensor"
    if any(op.needs_group for op in live_ops) or any(a.state_kinds[s] is not Kind.TENSOR for s in a.carried):
        return "per_row"
    return "batched"


def _row_hyperparams(compiled: CompiledProgram, rows: Sequence[Row]) -> list[dict[str, float]]:
    """Each row's hyperparameters: the program's defaults, overridden by the row's own."""
    defaults = {k: v for k, v in compiled.program.defaults.items() if k in compiled.scalars}
    out = []
    for row in rows:
        unknown = sorted(set(row.hyperparams) - set(defaults))
        if unknown:
            raise ValueError(f"{', '.join(unknown)}: not a hyperparameter of {compiled.program.name} "
                             f"(it has {', '.join(defaults) or 'none'})")
        out.append({**defaults, **row.hyperparams})
    return out


class _BatchedStep(Stepper):
    """One call of the ``tensor``-backend step on the whole ``[R, N]`` buffer: ``lr`` is an
    ``[R, 1]`` tensor (each row's peak times the schedule), a hyperparameter that differs
    between rows another, the rest 0-d tensors."""

    def __init__(self, compiled: CompiledProgram, flat, grad, rows, hyper: list[dict[str, float]]):
        super().__init__()
        self.fn = compiled.fn  # the generated function itself: no argument checking per step
        self.args = ([flat], [grad], *compiled.init_state([flat]))
        self.peaks = torch.tensor([[row.lr_peak] for row in rows], dtype=flat.dtype)
        self.scalars: dict[str, torch.Tensor] = {"lr": torch.empty_like(self.peaks)}
        for name in hyper[0] if hyper else ():
            values = [h[name] for h in hyper]
            same = all(v == values[0] for v in values)
            self.scalars[name] = torch.tensor(values[0] if same else values, dtype=flat.dtype)
            if not same:
                self.scalars[name] = self.scalars[name].view(-1, 1)
        if "step" in compiled.scalars:
            self.scalars["step"] = torch.zeros((), dtype=flat.dtype)

    def __call__(self, scale: float, t: int) -> None:
        torch.mul(self.peaks, scale, out=self.scalars["lr"])
        if "step" in self.scalars:
            self.scalars["step"].fill_(t)
        self.fn(*self.args, **self.scalars)

    def compact(self, keep: list[int], flat: torch.Tensor, grad: torch.Tensor, layout: Layout) -> bool:
        self.args = ([flat], [grad], *[[state[0][keep]] for state in self.args[2:]])
        self.peaks = self.peaks[keep]
        for name, value in self.scalars.items():
            if value.dim() == 2:  # one per row
                self.scalars[name] = value[keep]
        return True


class _PerRowStep(Stepper):
    """One call of the ``eager`` step per row, on host scalars. ``split`` cuts a row of the
    buffer into the tensors the program sees (the row itself, or one tensor per parameter)."""

    def __init__(self, compiled: CompiledProgram, flat, grad, split, rows, hyper: list[dict[str, float]]):
        super().__init__()
        self.fn, self.split = compiled.fn, split
        self.uses_step = "step" in compiled.scalars
        self.order = list(range(len(rows)))  # the original row of each buffer row
        self.states = {i: compiled.init_state(split(flat[i])) for i in self.order}
        self.scalars = {i: (h, row.lr_peak) for i, (h, row) in enumerate(zip(hyper, rows))}
        self._bind(flat, grad)

    def _bind(self, flat: torch.Tensor, grad: torch.Tensor) -> None:
        self.calls = {i: ((self.split(flat[pos]), self.split(grad[pos]), *self.states[i]), *self.scalars[i])
                      for pos, i in enumerate(self.order) if i in self.scalars}

    def __call__(self, scale: float, t: int) -> None:
        for i, (args, scalars, peak) in list(self.calls.items()):
            scalars["lr"] = peak * scale
            if self.uses_step:
                scalars["step"] = t
            try:
                self.fn(*args, **scalars)
            except Exception as e:  # noqa: BLE001 - a candidate's runtime error fails its row, not the run
                self.failed[i] = f"{type(e).__name__}: {e}"
                self.retire(i)

    def retire(self, row: int) -> None:
        self.calls.pop(row, None)
        self.scalars.pop(row, None)

    def compact(self, keep: list[int], flat: torch.Tensor, grad: torch.Tensor, layout: Layout) -> bool:
        self.order = [self.order[pos] for pos in keep]
        self._bind(flat, grad)
        return True


@dataclass(frozen=True)
class Plan:
    """Everything fixed about a run before the optimizer is known: per row, the initial
    parameters and the data order, and the learning-rate schedule at peak 1."""

    problem: Problem
    seeds: tuple[int, ...]
    init: torch.Tensor = field(repr=False)
    batches: torch.Tensor = field(repr=False)
    lrs: tuple[float, ...] = field(repr=False)


@functools.lru_cache(maxsize=64)
def plan(problem: Problem, seeds: tuple[int, ...]) -> Plan:
    """The run plan of ``problem`` for ``seeds`` (one per row; a seed may repeat, as it does in
    a learning-rate grid), made once per process. Each distinct seed is drawn once."""
    distinct = tuple(dict.fromkeys(seeds))
    index = torch.tensor([distinct.index(s) for s in seeds])
    init, batches = problem.init(distinct), problem.batches(distinct)
    if len(distinct) != len(seeds):
        init, batches = init[index], batches[:, index].contiguous()
    return Plan(problem, seeds, init, batches, schedule(problem.steps))


class Failure(Exception):
    """A run that stopped early for every row; the message says why and where."""


def train(
    problem: Problem,
    rows: Sequence[Row | int],
    optimizer: Optimizer,
    *,
    splits: Mapping[str, Sequence[int]] | None = None,
    deadline: float | None = None,
    record_curves: bool = False,
    groups: Groups | None = None,
) -> RowsResult:
    """Train ``problem``'s models, one per row (all at once), with ``optimizer``.

    ``rows``: ``Row``s, or plain seeds (a row at peak 1 with the program's defaults).
    ``splits`` maps a split to the rows to score on it (default: every row on every split);
    other rows get nan there. ``deadline`` is a ``time.process_time()`` value: the CPU time
    this process may reach, which a busy machine does not make run out sooner.
    ``record_curves`` keeps every step's training loss per row. ``groups``: which setting of a
    sweep each row belongs to, so a setting with a failed seed stops all its rows
    (``pruning.py``). Runs under ``cpu_settings``. Never raises for a failing optimizer: the
    ``RowsResult`` says which rows failed and why.
    """
    rows = tuple(r if isinstance(r, Row) else Row(r) for r in rows)
    if splits is None:
        splits = {split: range(len(rows)) for split in SPLITS}
    with cpu_settings():
        return _train(problem, rows, optimizer, splits, deadline, record_curves, groups)


_SETTINGS_DEPTH = [0]


@contextlib.contextmanager
def cpu_settings(threads: int = 1):
    """One torch thread (Ray runs one evaluation per core) and subnormal floats flushed to
    zero: second moments of tiny gradients are subnormal, and arithmetic on them is ~100x
    slower, which would make an evaluation's time depend on its numbers. Both restored
    afterwards (by the outermost of nested uses: torch cannot say whether flushing was on).
    Also ``keep_heap`` (once per process)."""
    keep_heap()
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    _SETTINGS_DEPTH[0] += 1
    try:
        yield
    finally:
        _SETTINGS_DEPTH[0] -= 1
        if not _SETTINGS_DEPTH[0]:
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


@dataclass
class _Batch:
    """The rows still training: their buffers, data order and divergence limits, in buffer
    order, and which of the run's rows each one is (``rows``)."""

    rows: list[int]
    flat: torch.Tensor
    grad: torch.Tensor
    batches: torch.Tensor
    layout: Layout
    limit: torch.Tensor | None = None

    def __post_init__(self) -> None:
        self.views = self.layout.views(self.flat)

    def drop_failed(self, alive: torch.Tensor, stepper: Stepper) -> None:
        """Failed rows leave the batch, where the optimizer can follow (``Stepper.compact``)."""
        keep = [pos for pos, i in enumerate(self.rows) if alive[i]]
        if not keep or len(keep) == len(self.rows):
            return
        flat, grad = self.flat[keep], self.grad[keep]
        if stepper.compact(keep, flat, grad, self.layout):
            self.rows = [self.rows[pos] for pos in keep]
            self.flat, self.grad, self.batches = flat, grad, self.batches[:, keep]
            self.limit = None if self.limit is None else self.limit[keep]
            self.views = self.layout.views(flat)


def _train(problem: Problem, rows: tuple[Row, ...], optimizer: Optimizer, splits, deadline, record_curves,
           groups: Groups | None) -> RowsResult:
    start, cpu = time.perf_counter(), time.process_time()
    run = plan(problem, tuple(row.seed for row in rows))
    batch = _Batch(list(range(len(rows))), run.init.clone(), torch.zeros_like(run.init), run.batches, problem.layout)
    errors: list[str | None] = [None] * len(rows)
    alive = torch.ones(len(rows), dtype=torch.bool)
    curves = torch.full((problem.steps, len(rows)), math.nan) if record_curves else None
    t = 0

    def fail(i: int, why: str) -> None:
        errors[i] = f"{why} (step {t} of {_where(problem)})"
        alive[i] = False
        stepper.retire(i)
        for j in groups.fellow_rows(i) if groups is not None else ():
            if errors[j] is None:  # its setting can no longer be chosen: its other seeds stop too
                errors[j] = f"out with its setting: {errors[i]}"
                alive[j] = False
                stepper.retire(j)

    # a row's unknown hyperparameter is the caller's error: raised
    stepper = optimizer.bind(batch.flat, batch.grad, problem.layout, rows)
    try:
        for t, scale in enumerate(run.lrs, start=1):
            batch.drop_failed(alive, stepper)
            loss = problem.loss_and_grad(batch.views, batch.batches[t - 1], batch.grad)
            if curves is not None:
                curves[t - 1, batch.rows] = loss
            if batch.limit is None:
                batch.limit = loss.abs() * DIVERGED
            fine = loss <= batch.limit  # False for nan
            if not bool(fine.all()):
                for pos in (~fine).nonzero().flatten().tolist():
                    i = batch.rows[pos]
                    if errors[i] is None:
                        fail(i, _bad_loss(loss[pos].item(), batch.limit[pos].item(), rows[i].seed))
                if not bool(alive.any()):
                    break
            stepper(scale, t)
            for i in [i for i in stepper.failed if errors[i] is None]:
                fail(i, stepper.failed[i])
            if deadline is not None and time.process_time() > deadline:
                raise Failure(f"past its deadline after {time.process_time() - cpu:.3f} CPU s")
        with torch.no_grad():
            position = {i: pos for pos, i in enumerate(batch.rows)}
            metrics = {split: _scores(problem, batch.views, split, [(i, position[i]) for i in picked if errors[i] is None],
                                      len(rows))
                       for split, picked in splits.items()}
        for split, values in metrics.items():
            for i in splits[split]:
                if errors[i] is None and not math.isfinite(values["loss"][i]):
                    errors[i] = f"non-finite {split} loss for seed {rows[i].seed}"
    except Failure as e:
        error = f"{e} (step {t} of {_where(problem)})"
    except Exception as e:  # a candidate's runtime error is its score, never a crash
        error = f"{type(e).__name__}: {e} (step {t} of {_where(problem)})"
    else:
        nan = math.nan
        metrics = {split: {k: tuple(v[i] if errors[i] is None else nan for i in range(len(rows))) for k, v in m.items()}
                   for split, m in metrics.items()}
        return RowsResult(rows, metrics, tuple(errors), t, time.perf_counter() - start, time.process_time() - cpu,
                          None, None if curves is None else tuple(map(tuple, curves.T.tolist())))
    return RowsResult.failed(rows, error, list(splits), steps=t, seconds=time.perf_counter() - start,
                             cpu_seconds=time.process_time() - cpu)


def _scores(problem: Problem, views: dict[str, torch.Tensor], split: str, picked: list[tuple[int, int]],
            n: int) -> dict[str, list[float]]:
    """``problem.metrics`` on ``split`` for the ``picked`` (row, buffer position) pairs, spread
    over all ``n`` rows of the run (nan elsewhere)."""
    out: dict[str, list[float]] = {"loss": [math.nan] * n}
    if picked:
        values = problem.metrics({k: v[[pos for _, pos in picked]] for k, v in views.items()}, split)
        for name, tensor in values.items():
            column = out.setdefault(name, [math.nan] * n)
            for (i, _), x in zip(picked, tensor.tolist()):
                column[i] = x
    return out


def initial_metrics(problem: Problem, seeds: Sequence[int]) -> dict[str, dict[str, tuple[float, ...]]]:
    """The untrained models' metrics (``RowsResult.metrics`` form, one value per seed, every
    split): what "no training" scores."""
    views = problem.layout.views(plan(problem, tuple(seeds)).init)
    with torch.no_grad(), cpu_settings():
        return {split: {k: tuple(v.tolist()) for k, v in problem.metrics(views, split).items()} for split in SPLITS}


def _where(problem: Problem) -> str:
    return problem.name if problem.scale == 1 else f"{problem.name}@{problem.scale:g}"


def _bad_loss(loss: float, limit: float, seed: int) -> str:
    if math.isnan(loss):
        return f"nan loss, seed {seed}"
    if math.isinf(loss):
        return f"inf loss, seed {seed}"
    return f"diverged, seed {seed}: loss {loss:.4g} > {DIVERGED:g}x its first value"


class HandWrittenAdamW(Optimizer):
    """The paper's warm-start program (``programs/adamw_paper.py``) written by hand in torch on
    the ``[R, N]`` buffer, one learning rate per row: the limit a compiled candidate is measured
    against.

    ``m <- interp(g, m, 0.9)``, ``v <- interp(g^2, v, 0.999)``,
    ``w <- w (1 - 1e-5 lr) - 1e-3 lr * m / (sqrt(v) + 1e-8)`` with ``lr`` the row's.
    """

    def bind(self, flat: torch.Tensor, grad: torch.Tensor, layout: Layout, rows: Sequence[Row]) -> Stepper:
        return _HandWrittenAdamWStep(flat, grad, rows)


class _HandWrittenAdamWStep(Stepper):
    """The step, in the same operations and roundings as the generated ``tensor``-backend code."""

    def __init__(self, flat: torch.Tensor, grad: torch.Tensor, rows: Sequence[Row]):
        super().__init__()
        self.w, self.g = flat, grad
        self.m, self.v, self.u = torch.zeros_like(flat), torch.zeros_like(flat), torch.empty_like(flat)
        self.peaks = torch.tensor([[row.lr_peak] for row in rows], dtype=flat.dtype)
        self.lr = torch.empty_like(self.peaks)

    def compact(self, keep: list[int], flat: torch.Tensor, grad: torch.Tensor, layout: Layout) -> bool:
        self.w, self.g, self.m, self.v, self.u = flat, grad, self.m[keep], self.v[keep], self.u[keep]
        self.peaks = self.peaks[keep]
        self.lr = torch.empty_like(self.peaks)
        return True

    def __call__(self, scale: float, t: int) -> None:
        w, g, m, v, u, lr = self.w, self.g, self.m, self.v, self.u, self.lr
        torch.mul(self.peaks, scale, out=lr).mul_(0.001)
        m.lerp_(g, 1 - 0.9)
        v.lerp_(torch.square(g, out=u), 1 - 0.999)
        torch.sqrt(v, out=u).add_(1e-08)
        torch.div(m, u, out=u)
        w.mul_(1 - lr * 0.01)
        w.sub_(u.mul_(lr))
