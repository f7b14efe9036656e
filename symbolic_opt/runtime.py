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


def device_scalars(like: torch.Tensor, *values) -> list[torch.Tensor]:
    """Host numbers (or 0-d tensors) as 0-d tensors on ``like``'s device, for a compiled graph
    (fused backend): a new value is new data, never a new graph. float32, or float64 for
    float64 tensors (bf16 would round beta2 = 0.999 to 1.0)."""
    dtype = torch.float64 if like.dtype == torch.float64 else torch.float32
    return [torch.tensor(float(v), dtype=dtype, device=like.device) for v in values]


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


def then(tensors: list[torch.Tensor], inplace_op) -> list[torch.Tensor]:
    """``inplace_op(tensors)``, then ``tensors``: a foreach op applied in place to a fresh list
    (``torch._foreach_sqrt_`` on ``torch._foreach_abs(x)``), saving a list of temporaries."""
    inplace_op(tensors)
    return tensors


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
    if all(map(torch.Tensor.dim, tensors)):  # no 0-d tensor (the common case, checked fastest)
        return tensors
    if not any(t.dim() == 0 and t.dtype == torch.float64 for t in tensors):
        return tensors
    return [t.view(1) if t.dim() == 0 and t.dtype == torch.float64 else t for t in tensors]


CHUNK = 1 << 22
"""Elements per piece of a large tensor (16 MB of fp32). Pieces exist so that a temporary is
not fresh memory every step: glibc serves blocks above its mmap threshold (at most 32 MB) from
new pages, each a page fault, and a 16M-element step spent more time faulting than computing.
Few pieces, though: every torch op on a piece is a parallel region, and on a busy machine a
descheduled OpenMP thread stalls each region (1 MB pieces ran 20x slower next to one busy
process). A multiple of torch's CPU grain size (32768), so pieces split where its threads do."""
TILE = 1 << 18
"""Elements per tile of small tensors in the foreach backend (a piece of a large tensor is a
tile of its own). A tile's temporaries are freed before the next tile allocates; many MB of
small blocks freed at once would make glibc trim its heap and fault the pages back in."""


def chunks(*lists: Tensors, size: int | None = None):
    """The zipped lists, one tuple per parameter, a large parameter in pieces of ``size``
    elements: views of the same range of every tensor of the tuple. Elementwise code run on
    each piece computes what it computes on the whole (the generated step runs this way when
    ``codegen`` finds it elementwise). Tensors that are not all contiguous with the same
    number of elements go whole. ``size`` defaults to ``CHUNK``."""
    size = size or CHUNK
    for tensors in zip(*lists):
        n = tensors[0].numel()
        if n < 2 * size or not all(t.is_contiguous() and t.numel() == n for t in tensors):
            yield tensors
            continue
        flat = [t.view(-1) for t in tensors]
        for start in range(0, n, size):
            yield tuple(f[start:start + size] for f in flat)


def tiles(*lists: Tensors, size: int | None = None):
    """The lists cut into tiles: small tensors grouped up to ``size`` elements (default
    ``TILE``), each piece of a large tensor (``chunks``) a tile of its own. For each tile, one
    list per input list."""
    size = size or TILE
    batch: list[list[torch.Tensor]] = [[] for _ in lists]
    count = 0
    for tensors in chunks(*lists):
        n = tensors[0].numel()
        if count and count + n > size:
            yield batch
            batch, count = [[] for _ in lists], 0
        for out, t in zip(batch, tensors):
            out.append(t)
        count += n
    if count:
        yield batch
