"""What a proxy task is: data splits, a model in a flat buffer, a loss and its gradient.

A ``Problem`` is one task family at one scale. It trains ``S`` models at once (one per seed,
see ``layers.py``): ``init(seeds)`` draws their parameters into one ``[S, N]`` buffer,
``batches(seeds)`` fixes every seed's data order for the whole run, ``loss_and_grad`` is one
training step's forward and hand-written backward, and ``metrics`` scores the models on the
``valid`` or ``test`` split. A seed's initialisation and data order depend only on the task,
its scale and the seed, so every candidate sees exactly the same ones.

Scale: ``scale = 1`` is the proxy; each task says which of width, depth, steps and data grow
with it (the funnel's 10x and 100x versions). ``scaled(base, scale)`` is the usual rule:
``round(base * sqrt(scale))``, so width x steps grows about linearly with ``scale``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Sequence

import torch

from ..flat import Layout, stable_seed

SPLITS = ("valid", "test")


def scaled(base: int, scale: float, power: float = 0.5, multiple: int = 1) -> int:
    """``base * scale**power``, rounded to a positive multiple of ``multiple``."""
    return max(multiple, multiple * round(base * scale**power / multiple))


def extra_depth(scale: float) -> int:
    """One more layer per factor of 10: 0 at scale 1, 1 at 10, 2 at 100."""
    return max(0, math.floor(math.log10(scale) + 1e-9)) if scale >= 1 else 0


class Problem(ABC):
    """One task family at one scale (module docstring). Subclasses set the attributes in
    ``__init__`` and implement ``forward``, ``backward`` and ``metrics``."""

    name: str
    scale: float
    layout: Layout
    steps: int
    batch_size: int
    n_train: int
    """Batches draw row indices ``0 .. n_train - 1`` (examples, or text start positions)."""

    def init(self, seeds: Sequence[int]) -> torch.Tensor:
        """``[S, N]`` initial parameters, row ``i`` drawn from ``seeds[i]``."""
        return self.layout.init(seeds, salt=f"{self.name}@{self.scale:g}")

    def batches(self, seeds: Sequence[int]) -> torch.Tensor:
        """``[steps, S, B]`` training-row indices: each seed walks through shuffled epochs."""
        need = self.steps * self.batch_size
        rows = []
        for seed in seeds:
            gen = torch.Generator().manual_seed(stable_seed(self.name, self.scale, "data", seed))
            epochs = -(-need // self.n_train)
            order = torch.cat([torch.randperm(self.n_train, generator=gen) for _ in range(epochs)])
            rows.append(order[:need].view(self.steps, self.batch_size))
        return torch.stack(rows, dim=1).contiguous()

    @abstractmethod
    def forward(self, p: dict[str, torch.Tensor], batch: torch.Tensor) -> tuple[torch.Tensor, object]:
        """The training loss ``[S]`` of each seed's model on its batch ``[S, B]``, and a cache."""

    @abstractmethod
    def backward(self, p: dict[str, torch.Tensor], cache) -> dict[str, torch.Tensor]:
        """The gradient of each seed's loss with respect to its parameters, by name."""

    @abstractmethod
    def metrics(self, p: dict[str, torch.Tensor], split: str) -> dict[str, torch.Tensor]:
        """``{"loss": [S], ...}`` on a held-out split (``valid`` or ``test``), no gradient."""

    def loss_and_grad(self, p: dict[str, torch.Tensor], batch: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """One step's forward and backward: returns the loss ``[S]``, writes the gradient into ``grad[S, N]``."""
        loss, cache = self.forward(p, batch)
        grads = self.backward(p, cache)
        self.layout.pack([grads[n] for n in self.layout.names], out=grad)
        return loss

    def describe(self) -> dict:
        """The sizes that matter, for reports."""
        return {"params": self.layout.size, "steps": self.steps, "batch": self.batch_size, "n_train": self.n_train}
