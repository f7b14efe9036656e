"""One entry point to train any task's rows with a program, whatever kind of task it is.

    optimizer = optimizer_for("char_lm", program)
    result = train_rows("char_lm", 1.0, optimizer, rows, splits={"valid": range(6)})

A task name is a proxy problem of ``search.tasks`` (a hand-written model in a flat buffer: its
rows train together, one row of an ``[R, N]`` buffer each, ``training.train``) or a
``torch.nn`` task (``search.nn``: a built-in name such as ``tiny_gpt``, or a user's
``package.module:attribute``), whose rows train one after another through
``SymbolicOptimizer`` and autograd. Both give a ``rows.RowsResult``.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any, Mapping, Sequence

import torch

from symbolic_opt.ir import Program

from . import tasks as flat_tasks
from .pruning import Groups
from .rows import Row, RowsResult
from .tasks.base import SPLITS
from .training import Optimizer, ProgramStep, initial_metrics, train


def is_flat(name: str) -> bool:
    """Whether ``name`` is a flat-buffer proxy problem (else a torch.nn task)."""
    return name in flat_tasks.names()


@functools.lru_cache(maxsize=64)
def build(name: str, scale: float = 1.0) -> Any:
    """The task itself: a ``tasks.base.Problem`` or a ``search.nn`` task, once per process.
    Raises ``KeyError`` for a name that is no task, ``search.nn.TaskError`` for a user's task
    that cannot be loaded."""
    if is_flat(name):
        return flat_tasks.build(name, scale)
    from . import nn

    if ":" not in name and name not in nn.names():
        raise KeyError(f"no task {name!r}; the proxy tasks are {', '.join(flat_tasks.names())}, the torch.nn tasks "
                       f"{', '.join(nn.names())}; or name a task of your own as 'package.module:attribute'")
    return nn.load_task(name, scale)


SMALL_TASK = 1000
"""Parameters per model below which extra rows cost next to nothing (a step is mostly the
fixed cost of its torch calls): held-out seeds then train in the validation batch."""


def small(name: str, scale: float = 1.0) -> bool:
    """Whether ``name`` is a flat problem small enough that more rows are almost free."""
    return is_flat(name) and build(name, scale).layout.size <= SMALL_TASK


def describe(name: str, scale: float = 1.0) -> str:
    """One line: what the task trains, on what, its size and steps (from its docstring: the
    task class's, or its module's where the class defers to it)."""
    import inspect

    task = build(name, scale)
    doc = inspect.getdoc(type(task)) or ""
    if not doc or doc.startswith("See the module"):
        doc = inspect.getdoc(inspect.getmodule(type(task))) or ""
    first = doc.split("\n\n")[0].replace("\n", " ").strip().rstrip(".")
    if first.startswith("``") and ": " in first:
        first = first.split(": ", 1)[1]  # a module docstring starts with the task's name
    if is_flat(name):
        size = task.layout.size
    else:
        from .nn.task import build_model

        size = sum(p.numel() for p in build_model(task, 0).parameters())
    where = name if scale == 1 else f"{name}@{scale:g}"
    return f"{where}: {first} ({size:,} parameters, {task.steps} steps)"


def optimizer_for(name: str, program: Program | Optimizer) -> Any:
    """What ``train_rows`` needs for this kind of task: flat problems take an ``Optimizer``
    (a program compiled once, ``training.ProgramStep``), torch.nn tasks the program itself."""
    if not is_flat(name):
        if not isinstance(program, Program):
            raise TypeError(f"a torch.nn task ({name}) trains programs, not {type(program).__name__}")
        return program
    return ProgramStep.of(program) if isinstance(program, Program) else program


def train_rows(
    name: str,
    scale: float,
    optimizer: Any,
    rows: Sequence[Row],
    *,
    splits: Mapping[str, Sequence[int]] | None = None,
    deadline: float | None = None,
    record_curves: bool = False,
    groups: Groups | None = None,
) -> RowsResult:
    """Train ``rows`` of task ``name`` at ``scale`` with ``optimizer`` (from ``optimizer_for``).
    ``deadline`` is a ``time.process_time()`` value; ``groups``, what each row's setting is
    (``pruning.py``: flat problems only). Never raises for a failing candidate."""
    task = build(name, scale)
    if is_flat(name):
        return train(task, rows, optimizer, splits=splits, deadline=deadline, record_curves=record_curves, groups=groups)
    from . import nn

    return nn.train_rows(task, optimizer, rows, deadline=deadline, record_curves=record_curves)


def untrained(name: str, scale: float, seeds: Sequence[int]) -> dict[str, dict[str, tuple[float, ...]]]:
    """``{split: {metric: (per seed)}}`` of the models before training: what "no training" scores."""
    task = build(name, scale)
    if is_flat(name):
        return initial_metrics(task, seeds)
    from . import nn

    return nn.untrained_metrics(task, seeds)


@functools.lru_cache(maxsize=64)
def data_hash(name: str, scale: float = 1.0) -> str:
    """16 hex digits naming a task's data and initialisations: a fitness definition records it,
    so a run resumed where the data differ (the character LM's text is the running Python's
    standard library) is refused instead of mixing scores of two tasks. A proxy problem hashes
    its data tensors and seed 0's initialisation; a torch.nn task, seed 0's initial weights,
    its first batch, and what the untrained model scores on each split (its held-out data)."""
    task = build(name, scale)
    digest = hashlib.blake2b(digest_size=8)
    digest.update(repr((name, scale, task.steps)).encode())
    if is_flat(name):
        parts = [getattr(task, "data", {}), task.init((0,))]
    else:
        from .nn.task import build_model

        parts = [build_model(task, 0).state_dict(), task.batch(0, 0), untrained(name, scale, (0,))]
    for tensor in _tensors(parts):
        digest.update(tensor.detach().contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()


def _tensors(data: Any):
    """Every tensor in a task's data, in a fixed order (dicts by key, then tuples in order)."""
    if isinstance(data, torch.Tensor):
        yield data
    elif isinstance(data, (int, float)):
        yield torch.tensor(float(data), dtype=torch.float64)
    elif isinstance(data, Mapping):
        for key in sorted(data):
            yield from _tensors(data[key])
    elif isinstance(data, (tuple, list)):
        for item in data:
            yield from _tensors(item)


__all__ = ["SPLITS", "build", "data_hash", "is_flat", "optimizer_for", "small", "train_rows", "untrained"]
