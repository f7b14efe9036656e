"""Train a ``torch.nn`` task's rows with an optimizer program, the way users train.

    result = train_rows(load_task("tiny_gpt"), "lion", [Row(seed, lr_peak=3e-4) for seed in range(3)])
    result.losses("valid")          # one final validation loss per row (nan where it failed)

Each row (``search.rows.Row``) trains a fresh ``task.model(row.seed)`` for ``task.steps``
steps on ``task.batch(row.seed, step)`` with
``SymbolicOptimizer(params, program, lr=row.lr_peak, **row.hyperparams)`` and a standard torch
scheduler, ``LambdaLR`` with ``search.training.schedule``'s factors: at step ``t`` (1-based)
the program's ``lr`` is exactly ``lr_peak * schedule(steps)[t - 1]``, a linear warmup over
the first 10% of the steps to ``lr_peak``, then cosine decay to 0 at the last step.

A row stops at the first nan or inf training loss, or a loss above ``DIVERGED`` (10) times its
first one, or an exception from the optimizer; ``errors[i]`` says which, with the seed and
the step, and the other rows go on. Past ``deadline`` (a ``time.process_time()`` value) the
run fails as a whole. A bad program is never an exception here (it is every row's error); a
broken task is (``TaskError``): its own code raising before the optimizer's first step, or
``model(seed)`` not being a module.

**Vectorized, where it pays.** With ``vectorize``, a task's rows train together: the rows'
models are stacked (``torch.func.stack_module_state``) and the loss and gradient of all of
them come from one ``vmap(grad_and_value(loss))`` over ``functional_call``. The optimizer
side does not change: each row keeps its own ``SymbolicOptimizer`` and ``LambdaLR``, on that
row's slices of the stacked parameters (so a group reduction sees one model, and each row
its own lr); a row that fails leaves the stack. ``benchmarks/nn_vectorize.py`` timed both
on this machine (2 slow cores, one torch thread, ``adamw``, 60 steps; sequential CPU time
over vectorized, above 1: vmap wins)::

    task        R=3   R=6   R=12
    tiny_gpt   0.87  0.92  0.99    CPU flash attention has no vmap rule (a loop inside)
    digits_cnn 1.12  1.44  1.41    (1.61 at R=12 in another run) per-module Python overhead
                                   is most of a small conv net's step

So it is the task's choice, ``task.vectorize``: ``digits_cnn`` sets it, ``tiny_gpt`` does
not, and a user's task trains sequentially unless it sets it (sequential is exactly the
user's own loop; vmap also needs a vmap-safe loss: no ``.item()``, no random ops, no model
method but ``forward``). A task whose vmapped step raises trains sequentially, from the start.
Batched kernels round differently, so a vectorized row's final loss depends on the rows it
trains with, by about 1e-7 (the benchmark's "agree"); the same rows give the same numbers.
"""

from __future__ import annotations

import copy
import math
import time
from typing import Any, Sequence

import torch
from torch.func import functional_call, grad_and_value, stack_module_state, vmap
from torch.optim.lr_scheduler import LambdaLR
from torch.utils._pytree import tree_map

from symbolic_opt import SymbolicOptimizer
from symbolic_opt.ir import Program
from symbolic_opt.loading import resolve_program

from .. import training
from ..rows import Row, RowsResult
from .task import SPLITS, TaskError, build_model, check_members, label


class _PastDeadline(Exception):
    """The whole run stops."""


def train_rows(task: Any, program: Program | str, rows: Sequence[Row], *, deadline: float | None = None,
               record_curves: bool = False, vectorize: bool | None = None) -> RowsResult:
    """Train every row of ``rows`` on ``task`` with ``program`` (module docstring).

    ``program``: a ``Program``, program text, a program file or a library name. ``deadline``:
    a ``time.process_time()`` value. ``record_curves``: keep each row's training loss at
    every step (``RowsResult.curves``). ``vectorize``: train the rows together with vmap
    (default: ``task.vectorize``, else False). Runs under ``training.cpu_settings()``.
    """
    rows = tuple(rows)
    check_members(task)  # a broken task raises; nothing below does for a bad candidate
    start, cpu = time.perf_counter(), time.process_time()

    def failed(error: str) -> RowsResult:
        return RowsResult.failed(rows, error, SPLITS, seconds=time.perf_counter() - start,
                                 cpu_seconds=time.process_time() - cpu)

    try:
        program = resolve_program(program)
        SymbolicOptimizer([torch.zeros(1, requires_grad=True)], program)  # compiles it, once, here
    except Exception as e:  # a candidate that does not compile fails every row, never the caller
        return failed(f"{type(e).__name__}: {e}")
    factors = training.schedule(task.steps)
    with training.cpu_settings():
        try:
            runs = None
            if vectorize is None:
                vectorize = bool(getattr(task, "vectorize", False))
            if vectorize and len(rows) > 1:
                runs = _vectorized(task, program, rows, factors, deadline)
            if runs is None:
                runs = _sequential(task, program, rows, factors, deadline)
        except _PastDeadline as e:
            return failed(str(e))
    return _result(runs, task.steps, record_curves, time.perf_counter() - start, time.process_time() - cpu)


class _Run:
    """One row in training: its optimizer and schedule, its loss curve, and why it stopped."""

    def __init__(self, task, program: Program, row: Row, params: list[torch.Tensor], factors: tuple[float, ...]):
        self.task, self.row = task, row
        self.where = f"seed {row.seed}, lr {row.lr_peak:.3g}"
        self.curve: list[float] = []
        self.metrics: dict[str, dict[str, float]] | None = None
        self.error: str | None = None
        self.limit = math.inf
        try:
            self.optimizer = SymbolicOptimizer(params, program, lr=row.lr_peak, **row.hyperparams)
        except Exception as e:  # a hyperparameter the program does not have, say
            self.error = f"{type(e).__name__}: {e} ({self.where})"
            return
        # LambdaLR sets lr = initial lr * factor, exactly: the program sees lr_peak * factors[t - 1] at step t
        self.scheduler = LambdaLR(self.optimizer, lambda i: factors[min(i, len(factors) - 1)])

    @property
    def params(self) -> list[torch.Tensor]:
        return self.optimizer.param_groups[0]["params"]

    def record(self, loss: float, step: int) -> bool:
        """Note this step's training loss; False (and ``error`` set) if the row has diverged."""
        self.curve.append(loss)
        if step == 0:
            self.limit = abs(loss) * training.DIVERGED
        if loss <= self.limit:
            return True
        why = f"{loss} loss" if not math.isfinite(loss) else \
            f"loss {loss:.4g} > {training.DIVERGED:g}x its first value {self.curve[0]:.4g}"
        self.error = f"diverged, {self.where}: {why} at step {step + 1} of {label(self.task)}"
        return False

    def step(self, step: int) -> None:
        """The optimizer's step and the scheduler's; an exception is this row's error."""
        try:
            self.optimizer.step()
        except Exception as e:  # the candidate's runtime error is this row's result
            self.error = f"{type(e).__name__}: {e} ({self.where}, step {step + 1} of {label(self.task)})"
            return
        self.scheduler.step()

    def evaluate(self, model: torch.nn.Module) -> None:
        """Final metrics on every split into ``metrics``, or the reason there are none into ``error``."""
        model.eval()
        metrics = {}
        with torch.no_grad():
            for split in SPLITS:
                values = _task_code(self, "evaluate", self.task.steps, lambda: self.task.evaluate(model, split))
                if values is None:
                    return
                values = {k: float(v) for k, v in values.items()}
                if not math.isfinite(values["loss"]):
                    self.error = f"non-finite {split} loss {values['loss']} after training, {self.where} " \
                                 f"({label(self.task)})"
                    return
                metrics[split] = values
        self.metrics = metrics


def _task_code(run: _Run, what: str, step: int, fn):
    """The task's own code: an exception before the optimizer's first step is the task's
    (``TaskError``); after it, the parameters the candidate made may be what broke it (the
    row's error, and None)."""
    try:
        return fn()
    except Exception as e:
        message = f"{what} raised {type(e).__name__}: {e} ({run.where}, step {step + 1} of {label(run.task)})"
        if step == 0:
            raise TaskError(f"task {label(run.task)!r}: {message}") from e
        run.error = message
        return None


def _check_deadline(deadline: float | None, step: int, task, where: str) -> None:
    if deadline is not None and time.process_time() > deadline:
        raise _PastDeadline(f"past the deadline at step {step + 1} of {label(task)} ({where})")


def _trainable(model: torch.nn.Module) -> list[str]:
    return [name for name, p in model.named_parameters() if p.requires_grad]


def _sequential(task, program: Program, rows: tuple[Row, ...], factors, deadline) -> list[_Run]:
    """Each row in turn, exactly a user's training loop."""
    runs = []
    for row in rows:
        model = build_model(task, row.seed)
        run = _Run(task, program, row, [p for p in model.parameters() if p.requires_grad], factors)
        runs.append(run)
        for step in range(task.steps):
            if run.error:
                break
            loss = _task_code(run, "loss", step, lambda: task.loss(model, task.batch(row.seed, step)))
            if loss is None or not run.record(loss.item(), step):
                break
            run.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            run.step(step)
            _check_deadline(deadline, step, task, run.where)
        if run.error is None:
            run.evaluate(model)
    return runs


class _Bound:
    """What ``task.loss`` calls as the model inside ``vmap``: the module on one row's tensors."""

    def __init__(self, skeleton: torch.nn.Module, tensors: dict[str, torch.Tensor]):
        self.skeleton, self.tensors = skeleton, tensors

    def __call__(self, *args, **kwargs):
        return functional_call(self.skeleton, self.tensors, args, kwargs)


def _vectorized(task, program: Program, rows: tuple[Row, ...], factors, deadline) -> list[_Run] | None:
    """All rows at once (module docstring); None if the task cannot be vmapped."""
    models = [build_model(task, row.seed) for row in rows]
    try:
        params, buffers = stack_module_state(models)  # [R, ...] copies, in named_parameters order
    except Exception:  # models of different shapes or kinds: not stackable
        return None
    stack = ({k: v.detach() for k, v in params.items()}, buffers)
    names = _trainable(models[0])
    skeleton = copy.deepcopy(models[0]).to("meta")

    def loss(params, buffers, batch):
        return task.loss(_Bound(skeleton, {**params, **buffers}), batch)

    grads_and_losses = vmap(grad_and_value(loss))  # gradients for the parameters, not the buffers
    runs = [_Run(task, program, row, [stack[0][k][i] for k in names], factors) for i, row in enumerate(rows)]
    live = list(range(len(rows)))  # which row each position of the stack holds
    stack, live = _drop_failed(stack, live, runs, names)
    for step in range(task.steps):
        if not live:
            break
        try:
            batch = tree_map(lambda *xs: torch.stack(xs), *[task.batch(rows[i].seed, step) for i in live])
            grads, losses = grads_and_losses(*stack, batch)
        except Exception:  # not vmap-safe (or the task is broken: the sequential run will say so)
            return None
        for position, (i, value) in enumerate(zip(live, losses.tolist())):
            if runs[i].record(value, step):
                for name, p in zip(names, runs[i].params):
                    p.grad = grads[name][position]
                runs[i].step(step)
        _check_deadline(deadline, step, task, f"{len(live)} rows")
        stack, live = _drop_failed(stack, live, runs, names)
    for position, i in enumerate(live):
        with torch.no_grad():
            for name, t in [*models[i].named_parameters(), *models[i].named_buffers()]:
                t.copy_((stack[0] if name in stack[0] else stack[1])[name][position])
        runs[i].evaluate(models[i])
    return runs


def _drop_failed(stack, live: list[int], runs: list[_Run], names: list[str]):
    """The stack (parameters, buffers) without the rows that have failed, each live row's
    optimizer moved onto its new slices (its state buffers go with it)."""
    keep = [position for position, i in enumerate(live) if runs[i].error is None]
    if len(keep) == len(live):
        return stack, live
    stack = tuple({k: v[keep] for k, v in part.items()} for part in stack)
    live = [live[position] for position in keep]
    for position, i in enumerate(live):
        optimizer = runs[i].optimizer
        new = [stack[0][k][position] for k in names]
        for old, p in zip(runs[i].params, new):
            if old in optimizer.state:
                optimizer.state[p] = optimizer.state.pop(old)
        optimizer.param_groups[0]["params"] = new
    return stack, live


def _result(runs: list[_Run], steps: int, record_curves: bool, seconds: float, cpu_seconds: float) -> RowsResult:
    names = {split: [] for split in SPLITS}  # metric names in the order the task gives them
    for run in runs:
        for split in SPLITS:
            for k in (run.metrics or {}).get(split, ()):
                if k not in names[split]:
                    names[split].append(k)
    table = {split: {k: tuple((run.metrics or {}).get(split, {}).get(k, math.nan) for run in runs)
                     for k in names[split] or ["loss"]}
             for split in SPLITS}
    curves = None
    if record_curves:
        curves = tuple(tuple(run.curve) + (math.nan,) * (steps - len(run.curve)) for run in runs)
    finished = any(run.metrics is not None for run in runs)
    done = steps if finished else max((len(run.curve) for run in runs), default=0)
    return RowsResult(tuple(run.row for run in runs), table, tuple(run.error for run in runs), done, seconds,
                      cpu_seconds, None, curves)


def untrained_metrics(task: Any, seeds: Sequence[int]) -> dict[str, dict[str, tuple[float, ...]]]:
    """``{split: {metric: (one value per seed)}}`` of ``task.model(seed)`` before any training:
    what learning nothing scores (``RowsResult.metrics`` form)."""
    out: dict[str, dict[str, list[float]]] = {split: {} for split in SPLITS}
    with training.cpu_settings(), torch.no_grad():
        for seed in seeds:
            model = build_model(task, seed)
            for split in SPLITS:
                for name, value in task.evaluate(model, split).items():
                    out[split].setdefault(name, []).append(float(value))
    return {split: {k: tuple(v) for k, v in metrics.items()} for split, metrics in out.items()}
