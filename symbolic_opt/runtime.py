"""Helpers that generated step functions call (imported there as ``_rt``).

Only what a one-line template cannot say: reductions over a whole parameter group,
and turning a host number into a 0-d tensor for torch functions that insist on tensors.
Group reductions accumulate in float32 (or float64 for float64 tensors) so a group that
mixes dtypes still reduces, and so bf16 sums do not lose the small terms.
"""

from __future__ import annotations

from typing import Sequence

import torch

Tensors = Sequence[torch.Tensor]


def scalar_like(value, like: torch.Tensor) -> torch.Tensor:
    """``value`` as a 0-d tensor with ``like``'s dtype and device."""
    if isinstance(value, torch.Tensor):
        return value.to(dtype=like.dtype, device=like.device)
    return torch.full((), float(value), dtype=like.dtype, device=like.device)


def _acc(t: torch.Tensor) -> torch.Tensor:
    return t if t.dtype == torch.float64 else t.float()


def global_norm(xs: Tensors) -> torch.Tensor:
    """sqrt(sum over tensors t of sum(t ** 2)), a 0-d tensor."""
    norms = [_acc(n) for n in torch._foreach_norm(list(xs))]
    return torch.linalg.vector_norm(torch.stack(norms))


def group_dot(xs: Tensors, ys: Tensors) -> torch.Tensor:
    """sum over tensors of sum(x * y), a 0-d tensor (either side may be per-tensor scalars)."""
    return torch.stack([_acc(torch.sum(x * y)) for x, y in zip(xs, ys)]).sum()


def cosine_sim(xs: Tensors, ys: Tensors) -> torch.Tensor:
    """dot(x, y) / (global_norm(x) * global_norm(y)); unguarded, as published."""
    return group_dot(xs, ys) / (global_norm(xs) * global_norm(ys))


def clip_by_global_norm(xs: Tensors, c) -> list[torch.Tensor]:
    """x * min(1, c / global_norm(x)) for every tensor of the group.

    ``c`` is a number or a 0-d tensor, or, when the program hands it a value per parameter
    (a per-tensor scalar, or even a tensor: then min is elementwise), a list with one per x.
    """
    norm = global_norm(xs)
    if isinstance(c, (list, tuple)):
        return [x * torch.clamp(ci / norm, max=1.0).to(x.dtype) for x, ci in zip(xs, c)]
    scale = torch.clamp(c / norm, max=1.0)
    return [x * scale.to(x.dtype) for x in xs]


def addcmul(x, y, z) -> torch.Tensor:
    """x + y * z in one rounding (op ``addcmul``). A host-number factor goes in as ``alpha``,
    kept at full precision as torch.optim's ``g.add(w, alpha=wd)`` keeps it, rather than
    rounded to a bf16 0-d tensor."""
    if not isinstance(z, torch.Tensor):
        return torch.add(x, y, alpha=z)
    if not isinstance(y, torch.Tensor):
        return torch.add(x, z, alpha=y)
    return torch.addcmul(x, y, z)


def addcmul_(x: torch.Tensor, y, z) -> torch.Tensor:
    """``addcmul`` overwriting ``x``."""
    if not isinstance(z, torch.Tensor):
        return x.add_(y, alpha=z)
    if not isinstance(y, torch.Tensor):
        return x.add_(z, alpha=y)
    return x.addcmul_(y, z)


def writable(tensors: Tensors) -> Tensors:
    """``tensors`` with each 0-d float64 tensor as a 1-element view of itself, for the fused
    backend: torch.compile (2.13, CPU) silently drops in-place writes to a 0-d float64 graph
    input, and keeps writes through a view. Other lists are returned as they are."""
    if not any(t.dim() == 0 and t.dtype == torch.float64 for t in tensors):
        return tensors
    return [t.view(1) if t.dim() == 0 and t.dtype == torch.float64 else t for t in tensors]
