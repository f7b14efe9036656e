"""The ``torch.nn`` task interface: what a user implements to compare optimizers on a model.

A task says what to train and how to score it. Subclass ``Task`` (or write any object with
the same members) and set or define:

- ``name: str`` and ``steps: int`` (training steps; a run takes exactly this many);
- ``scale: float`` (default 1.0): the size knob, if the task has one (width, depth, steps);
- ``vectorize: bool`` (default False): train a run's rows together with ``torch.func.vmap``
  (``train.py``: faster for small models whose loss is vmap-safe);
- ``model(seed) -> torch.nn.Module``: a fresh, untrained model, the same for the same seed
  (the harness builds it inside ``torch.random.fork_rng``, so ``torch.manual_seed(seed)``
  there is fine and leaves the caller's random state alone);
- ``batch(seed, step) -> anything``: the training batch of ``step`` (0 .. ``steps`` - 1), the
  same for the same seed and step, so every optimizer sees the same data in the same order
  (``rng(name, seed, step)`` gives a generator for it);
- ``loss(model, batch) -> Tensor``: the scalar training loss; the harness calls
  ``loss.backward()``;
- ``evaluate(model, split) -> dict[str, float]``: held-out metrics for ``split`` in
  ``"valid"`` (selection) and ``"test"`` (reporting), at least ``"loss"``; the harness calls
  it in ``model.eval()`` mode under ``torch.no_grad()``.

The whole contract in one small task: ``search/nn/example.py`` (``Regression``, the README's
example), named ``search.nn.example:Regression``; a task of your own in ``my_tasks.py`` on the
import path is ``my_tasks:MyTask`` (``load_task("my_tasks:MyTask", scale=2)``).

``load_task(spec, scale)`` takes a built-in name (``names()``) or ``package.module:attribute``
naming a task instance or a factory (a class or function, called with ``scale`` when it
takes an argument). ``check_task(task)`` runs one forward and backward pass on seed 0 and
raises a one-line ``TaskError`` for anything wrong, before a comparison spends any time.
"""

from __future__ import annotations

import importlib
import inspect
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

import torch

from ..flat import stable_seed

SPLITS = ("valid", "test")
MEMBERS = ("name", "steps", "model", "batch", "loss", "evaluate")
"""What every task has (``scale`` and ``vectorize`` are optional: 1.0 and False when absent)."""

BUILT_IN: dict[str, str] = {
    "digits_cnn": "search.nn.digits_cnn:DigitsCNN",
    "tiny_gpt": "search.nn.tiny_gpt:TinyGPT",
}


class TaskError(ValueError):
    """A task that cannot be used, with the spec and what is wrong in one line."""


class Task(ABC):
    """A training problem built from ``torch.nn`` modules (module docstring)."""

    name: str
    steps: int
    scale: float = 1.0
    vectorize: bool = False

    @abstractmethod
    def model(self, seed: int) -> torch.nn.Module:
        """A fresh model, initialised from ``seed``."""

    @abstractmethod
    def batch(self, seed: int, step: int) -> Any:
        """The training batch of ``step`` (0-based) for the run of ``seed``."""

    @abstractmethod
    def loss(self, model: torch.nn.Module, batch: Any) -> torch.Tensor:
        """The scalar training loss of ``model`` on ``batch``."""

    @abstractmethod
    def evaluate(self, model: torch.nn.Module, split: str) -> dict[str, float]:
        """Metrics on the held-out ``split`` (``"valid"`` or ``"test"``), at least ``"loss"``."""


def rng(*parts: object) -> torch.Generator:
    """A CPU generator seeded from ``parts`` (``rng(name, seed, step)``), the same in every
    process: independent streams without threading one generator through a run."""
    return torch.Generator().manual_seed(stable_seed(*parts) & (2**63 - 1))


def names() -> list[str]:
    """The built-in task names, sorted."""
    return sorted(BUILT_IN)


def label(task: Any) -> str:
    """``name`` or ``name@scale``: how errors and tables name a task."""
    scale = getattr(task, "scale", 1.0)
    return f"{task.name}" if scale == 1 else f"{task.name}@{scale:g}"


def load_task(spec: str, scale: float = 1.0) -> Any:
    """The task ``spec`` names at ``scale`` (module docstring); ``TaskError`` if there is none.

    Checks only the task's members; ``check_task`` runs it."""
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise TaskError(f"task {spec!r}: scale must be a positive number, got {scale!r}")
    path = BUILT_IN.get(spec, spec)
    if ":" not in path:
        raise TaskError(f"task {spec!r}: not a built-in task ({', '.join(names())}) nor an import path "
                        f"'package.module:attribute'")
    module_name, _, attribute = path.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as e:  # a user's module may fail in any way while importing
        raise TaskError(f"task {spec!r}: cannot import module {module_name!r} ({type(e).__name__}: {e})") from e
    for part in attribute.split("."):
        if not hasattr(obj, part):
            raise TaskError(f"task {spec!r}: module {module_name!r} has no attribute {attribute!r}")
        obj = getattr(obj, part)
    if _missing(obj) == [] and not isinstance(obj, type):
        if getattr(obj, "scale", 1.0) != scale:
            raise TaskError(f"task {spec!r}: is a task instance at scale {getattr(obj, 'scale', 1.0):g}, so it "
                            f"cannot run at scale {scale:g}; name a factory that takes the scale")
        return obj
    task = _call_factory(spec, obj, scale)
    if getattr(task, "scale", 1.0) != scale:
        raise TaskError(f"task {spec!r}: asked for scale {scale:g}, the factory made one at scale "
                        f"{getattr(task, 'scale', 1.0):g} (a task that can be scaled sets self.scale)")
    return task


def _call_factory(spec: str, factory: Any, scale: float) -> Any:
    if not callable(factory):
        raise TaskError(f"task {spec!r}: is {type(factory).__name__} {_short_repr(factory)}, not a task (it lacks "
                        f"{', '.join(_missing(factory))}) nor a factory of one")
    try:
        takes_scale = bool(inspect.signature(factory).parameters)
    except (TypeError, ValueError):  # some builtins have no signature: try with the scale
        takes_scale = True
    if not takes_scale and scale != 1:
        raise TaskError(f"task {spec!r}: its factory takes no scale, so it cannot run at scale {scale:g}")
    try:
        task = factory(scale) if takes_scale else factory()
    except TaskError:
        raise
    except Exception as e:
        raise TaskError(f"task {spec!r}: the factory raised {type(e).__name__}: {e}") from e
    missing = _missing(task)
    if missing:
        raise TaskError(f"task {spec!r}: the factory returned {type(task).__name__} {_short_repr(task)}, not a "
                        f"task (it lacks {', '.join(missing)})")
    return task


def _missing(obj: Any) -> list[str]:
    return [m for m in MEMBERS if not hasattr(obj, m)]


def check_task(task: Any, spec: str | None = None) -> None:
    """Raise a one-line ``TaskError`` unless ``task`` is usable: its members have the right
    types, ``model(0)`` has trainable parameters, ``loss`` on the first batch is a finite
    scalar whose backward reaches them, and ``evaluate`` gives a finite ``"loss"`` on both
    splits. Runs one forward and backward pass (and two evaluations) on seed 0."""
    where = check_members(task, spec)
    model = build_model(task, 0, where)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise TaskError(f"{where}: model(0) has no trainable parameters")
    loss = _call(where, "loss", task.loss, model, _call(where, "batch", task.batch, 0, 0))
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1 or not loss.is_floating_point():
        got = f"a tensor of shape {tuple(loss.shape)}, {loss.dtype}" if isinstance(loss, torch.Tensor) else \
            f"a {type(loss).__name__}"
        raise TaskError(f"{where}: loss must be a scalar float tensor, got {got}")
    if not math.isfinite(loss.item()):
        raise TaskError(f"{where}: loss of the untrained model on the first batch is {loss.item()}, not finite")
    if not loss.requires_grad:
        raise TaskError(f"{where}: loss does not depend on the model's parameters (no grad_fn)")
    loss.backward()
    if all(p.grad is None for p in params):
        raise TaskError(f"{where}: loss.backward() reaches none of the model's parameters")
    model.eval()
    for split in SPLITS:
        with torch.no_grad():
            metrics = _call(where, "evaluate", task.evaluate, model, split)
        if not isinstance(metrics, Mapping) or "loss" not in metrics:
            got = f"keys {sorted(metrics)}" if isinstance(metrics, Mapping) else f"a {type(metrics).__name__}"
            raise TaskError(f"{where}: evaluate(model, {split!r}) must give a dict with 'loss', got {got}")
        try:
            values = {k: float(v) for k, v in metrics.items()}
        except (TypeError, ValueError) as e:
            raise TaskError(f"{where}: evaluate(model, {split!r}) gave a metric that is not a number ({e})") from e
        if not math.isfinite(values["loss"]):
            raise TaskError(f"{where}: evaluate(model, {split!r}) gave loss {values['loss']}, not finite")


def check_members(task: Any, spec: str | None = None) -> str:
    """Raise a one-line ``TaskError`` unless ``task`` has every member with the right type
    (runs nothing); gives how errors name it, ``"task 'spec'"``."""
    where = f"task {spec or getattr(task, 'name', type(task).__name__)!r}"
    missing = _missing(task)
    if missing:
        raise TaskError(f"{where}: not a task (it lacks {', '.join(missing)})")
    if not isinstance(task.name, str) or not task.name:
        raise TaskError(f"{where}: name must be a non-empty str, got {task.name!r}")
    if isinstance(task.steps, bool) or not isinstance(task.steps, int) or task.steps < 1:
        raise TaskError(f"{where}: steps must be a positive int, got {task.steps!r}")
    for m in MEMBERS[2:]:
        if not callable(getattr(task, m)):
            raise TaskError(f"{where}: {m} must be a method, got {type(getattr(task, m)).__name__}")
    return where


def build_model(task: Any, seed: int, where: str | None = None) -> torch.nn.Module:
    """``task.model(seed)`` with the caller's random state saved and restored (module docstring)."""
    where = where or f"task {label(task)!r}"
    with torch.random.fork_rng(devices=[]):
        model = _call(where, "model", task.model, seed)
    if not isinstance(model, torch.nn.Module):
        raise TaskError(f"{where}: model({seed}) must return a torch.nn.Module, got a {type(model).__name__}")
    return model


def _call(where: str, what: str, fn, *args):
    try:
        return fn(*args)
    except Exception as e:  # the task's own code: say whose it is
        raise TaskError(f"{where}: {what}({', '.join(map(_short, args))}) raised {type(e).__name__}: {e}") from e


def _short_repr(x: Any) -> str:
    text = repr(x).replace("\n", " ")
    return text if len(text) <= 40 else text[:37] + "..."


def _short(x: Any) -> str:
    return repr(x) if isinstance(x, (int, str)) else type(x).__name__
