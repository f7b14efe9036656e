"""Proxy tasks for the search: cheap, download-free training problems with a scale knob.

    from search import tasks
    tasks.names()                      # ['char_lm', 'digits_mlp', 'digits_vit', 'quadratic', 'teacher_student']
    problem = tasks.build("digits_mlp", scale=10)   # a Problem (tasks/base.py), cached per process

One module per task family; each module's docstring gives the model, the loss and what
``scale`` changes.
"""

from __future__ import annotations

import functools
import importlib

from .base import Problem

_FAMILIES: dict[str, tuple[str, str]] = {
    "char_lm": ("char_lm", "CharLM"),
    "digits_mlp": ("digits_mlp", "DigitsMLP"),
    "digits_vit": ("digits_vit", "DigitsViT"),
    "quadratic": ("quadratic", "Quadratic"),
    "teacher_student": ("teacher_student", "TeacherStudent"),
}


def names() -> list[str]:
    """The registered task names, sorted."""
    return sorted(_FAMILIES)


def get(name: str) -> type[Problem]:
    """The ``Problem`` class of task ``name``: ``get(name)(scale)`` builds one."""
    try:
        module, cls = _FAMILIES[name]
    except KeyError:
        raise KeyError(f"no task {name!r}; the tasks are: {', '.join(names())}") from None
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


def build(name: str, scale: float = 1.0) -> Problem:
    """Task ``name`` at ``scale``, built once per process (data loading is the slow part)."""
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    return _build(name, float(scale))


@functools.lru_cache(maxsize=64)
def _build(name: str, scale: float) -> Problem:
    return get(name)(scale)


__all__ = ["Problem", "build", "get", "names"]
