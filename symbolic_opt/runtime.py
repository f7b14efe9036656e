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
    """x * min(1, c / global_norm(x)) for every tensor of the group."""
    scale = torch.clamp(c / global_norm(xs), max=1.0)
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
