"""Tasks built from ordinary ``torch.nn`` modules, trained through ``SymbolicOptimizer``:
the path users really train with, and the interface for bringing your own model.

    from search.nn import load_task, check_task, train_rows
    task = load_task("tiny_gpt")                # or "my_package.my_module:MyTask", scale=...
    check_task(task)                            # a one-line TaskError if the task is broken
    result = train_rows(task, "lion", [Row(0, lr_peak=3e-4), Row(1, lr_peak=3e-4)])

``task.py`` defines the interface (with a complete example), ``train.py`` the training loop,
``tiny_gpt.py`` and ``digits_cnn.py`` the built-in tasks. Unlike the proxy tasks of
``search/tasks`` (hand-written models on one flat buffer, for the search's speed), these are
``nn.Module`` models trained with a torch LR scheduler, as a user's script would.
"""

from __future__ import annotations

from .task import SPLITS, Task, TaskError, check_task, load_task, names, rng
from .train import train_rows, untrained_metrics

__all__ = ["SPLITS", "Task", "TaskError", "check_task", "load_task", "names", "rng", "train_rows", "untrained_metrics"]
