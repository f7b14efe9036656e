"""A small deterministic MLP regression to train any optimizer on (shared by the optimizer tests)."""

from __future__ import annotations

from typing import Callable

import torch


def make_mlp(seed: int = 0, dtype: torch.dtype = torch.float32):
    """A 8-32-32-1 tanh MLP (1,377 weights) and a fixed batch, identical for a given seed."""
    gen = torch.Generator().manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(8, 32), torch.nn.Tanh(), torch.nn.Linear(32, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1)
    )
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    x = torch.randn(64, 8, generator=gen)
    y = torch.sin(x.sum(1, keepdim=True))
    return model.to(dtype), x.to(dtype), y.to(dtype)


def train_mlp(
    make_optimizer: Callable, steps: int = 500, seed: int = 0, dtype: torch.dtype = torch.float32, on_step=None
) -> tuple[list[torch.Tensor], list[float]]:
    """Train a fresh ``make_mlp(seed)`` for ``steps`` full-batch steps; its final weights and losses."""
    model, x, y = make_mlp(seed, dtype)
    opt = make_optimizer(model.parameters())
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        if on_step is not None:
            on_step(opt)
        losses.append(loss.item())
    return [p.detach().clone() for p in model.parameters()], losses


def max_diff(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    """The largest |a - b| over every element of two lists of tensors (in float64)."""
    return max((x.double() - y.double()).abs().max().item() for x, y in zip(a, b, strict=True))
