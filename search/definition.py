"""A run's fitness definition: what its numbers mean, recorded in its store.

    definition = describe(tasks, multipliers=..., hurdle=..., ...)
    problems = differences(stored, definition)     # [] when a resume may go on

A fitness is only comparable with another measured the same way: on the same tasks at the
same scales, the same seeds and held-out seeds, the same learning-rate grid and hurdle, the
same warm start centring that grid, the same baseline tuned over the same grid, the same
code and libraries, and the same data. The definition writes all of that down as plain
JSON; the data as a hash of each task's data and initialisations (``trainer.data_hash``:
the character LM's text is the running Python's own standard library, which differs
between Python versions). A run stores its definition when it starts; ``--resume`` under a
different one is refused, saying what differs. The calibration computed from a definition
(``calibration.py``: the centres, the tuned baseline) is stored beside it and reused.
"""

from __future__ import annotations

import importlib.metadata
import platform
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from symbolic_opt.loading import resolve_program
from symbolic_opt.printer import print_program

from . import trainer
from .calibration import BaselineGrid
from .suite import TaskSpec


def versions() -> dict[str, str]:
    """The versions a number depends on."""
    try:
        package = importlib.metadata.version("symbolic-opt")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout without installing
        package = "unknown"
    return {"symbolic-opt": package, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def describe_task(task: Any) -> dict[str, Any]:
    """One task of the definition: its spec and its data's hash (a test's fake: its repr)."""
    if isinstance(task, TaskSpec):
        return {**task.to_dict(), "data_hash": trainer.data_hash(task.name, task.scale)}
    return {"task": repr(task)}


def describe(
    tasks: Sequence[Any],
    *,
    evaluate: str,
    multipliers: Sequence[float],
    hurdle: float | None,
    warm_start: str,
    baseline: BaselineGrid,
) -> dict[str, Any]:
    """The fitness definition of a suite (module docstring), as JSON-friendly data."""
    return {
        "evaluate": evaluate,
        "tasks": [describe_task(t) for t in tasks],
        "lr_multipliers": [float(m) for m in multipliers],
        "hurdle": hurdle,
        "warm_start": print_program(resolve_program(warm_start)),
        "baseline": {**baseline.to_dict(), "text": print_program(resolve_program(baseline.program))},
        "versions": versions(),
    }


def differences(stored: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """What differs between two definitions, one line each (``[]``: the same)."""
    out: list[str] = []
    _diff(stored, current, "", out)
    return out


def _diff(a: Any, b: Any, where: str, out: list[str]) -> None:
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        for key in sorted(set(a) | set(b), key=str):
            path = f"{where}.{key}" if where else str(key)
            if key not in a:
                out.append(f"{path}: not in the run's definition, {_short(b[key])} now")
            elif key not in b:
                out.append(f"{path}: {_short(a[key])} in the run's definition, absent now")
            else:
                _diff(a[key], b[key], path, out)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            _diff(x, y, f"{where}[{i}]", out)
    elif a != b:
        out.append(f"{where}: {_short(a)} in the run's definition, {_short(b)} now")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."
