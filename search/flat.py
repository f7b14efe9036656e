"""Flat parameter buffers: every parameter of a proxy model is a view into one tensor.

A proxy model's parameters for ``S`` seeds live in one ``[S, N]`` buffer (``N`` the model's
parameter count), so a candidate optimizer's step is a handful of tensor ops on one tensor
instead of a loop over layers. A ``Layout`` says where each parameter lives::

    layout = Layout((Param("w1", (64, 32), std=0.125), Param("b1", (32,))))
    flat = layout.init([0, 1, 2])                 # [3, N]: one initialisation per seed
    views = layout.views(flat)                    # {"w1": [3, 64, 32], "b1": [3, 32]}, views of flat
    layout.pack([gw1, gb1], out=grad)             # per-parameter grads -> the flat grad buffer

Views are made once per training run: the optimizer updates ``flat`` in place, so they stay
current.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from functools import cached_property
from typing import Sequence

import torch


@dataclass(frozen=True)
class Param:
    """One parameter: its name, shape, and initialisation ``N(0, std^2)`` (``std=0``: zeros)."""

    name: str
    shape: tuple[int, ...]
    std: float = 0.0

    @property
    def size(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class Layout:
    """Where each parameter of a model lives in a flat ``[S, N]`` buffer, in order."""

    params: tuple[Param, ...]

    @cached_property
    def offsets(self) -> tuple[int, ...]:
        out, at = [], 0
        for p in self.params:
            out.append(at)
            at += p.size
        return tuple(out)

    @property
    def size(self) -> int:
        """``N``, the number of scalars in one model."""
        return sum(p.size for p in self.params)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def views(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """``flat[S, N]`` -> each parameter as an ``[S, *shape]`` view (no copy)."""
        s = flat.shape[0]
        return {
            p.name: flat[:, at : at + p.size].view(s, *p.shape) for p, at in zip(self.params, self.offsets)
        }

    def split(self, row: torch.Tensor) -> list[torch.Tensor]:
        """One model's ``[N]`` row -> its parameters as separate views (for per-tensor ops)."""
        return [row[at : at + p.size].view(p.shape) for p, at in zip(self.params, self.offsets)]

    def pack(self, tensors: Sequence[torch.Tensor], out: torch.Tensor) -> torch.Tensor:
        """Write ``[S, *shape]`` tensors, in layout order, into ``out[S, N]`` (one ``cat``)."""
        s = out.shape[0]
        return torch.cat([t.reshape(s, -1) for t in tensors], dim=1, out=out)

    def init(self, seeds: Sequence[int], salt: str = "") -> torch.Tensor:
        """``[len(seeds), N]``: row ``i`` is the initialisation drawn from ``seeds[i]``.

        Each seed's draw depends only on the seed and ``salt`` (the task's name), so a seed
        gives the same model whatever other seeds it is batched with.
        """
        rows = []
        for seed in seeds:
            gen = torch.Generator().manual_seed(stable_seed(salt, "init", seed))
            parts = [
                torch.randn(p.size, generator=gen) * p.std if p.std else torch.zeros(p.size) for p in self.params
            ]
            rows.append(torch.cat(parts))
        return torch.stack(rows)


def stable_seed(*parts: object) -> int:
    """A 63-bit seed from ``parts``, the same in every process (``hash`` of a str is not)."""
    text = "\x1f".join(map(str, parts)).encode()
    return (zlib.crc32(text) << 31) ^ zlib.adler32(text)
