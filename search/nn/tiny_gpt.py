"""``tiny_gpt``: a small decoder-only transformer language model, built from ``torch.nn``.

Data: ``search/tasks/text.py`` (the standard library's own sources, character tokens,
``VOCAB = 97``), the first 300,000 characters, split into train/valid/test chunks there. A
training batch is 8 windows of ``T + 1`` tokens at random starts in the training text
(``rng("tiny_gpt", seed, step)``); inputs are the first ``T``, targets the last ``T``.

Model (``GPT``): token embedding plus a learned position embedding (``nn.Embedding``), two
pre-norm ``nn.TransformerEncoderLayer`` blocks (self-attention under a causal mask, GELU MLP of
width ``4d``, no dropout), a final ``nn.LayerNorm`` and an ``nn.Linear`` head, PyTorch's
default initialisation from ``torch.manual_seed(seed)``. ``d = 48`` with 3 heads, context
``T = 32``; 67,585 parameters.

Loss: mean cross-entropy of each next character, in nats per character. Metrics ("loss"):
the same over 64 windows evenly spaced through the valid or test split, fixed for every run.

Steps: 300 (about 1.3 s of CPU on one slow laptop core, one torch thread).

Scale ``s``: width ``d = 48 sqrt(s)`` rounded to a multiple of 16 (``d / 16`` heads), layers
``2 + floor(log10 s)``, context ``T = 32 * round(s ** 0.25)``, steps ``300 * sqrt(s)``, text
``300,000 * sqrt(s)`` characters; the batch stays 8 windows.
"""

from __future__ import annotations

import torch
from torch import nn

from ..tasks import text
from ..tasks.base import extra_depth, scaled
from .task import Task, rng

BATCH = 8
EVAL_WINDOWS = 64


class GPT(nn.Module):
    """Embeddings -> ``layers`` causal pre-norm transformer blocks -> LayerNorm -> logits."""

    def __init__(self, vocab: int, d: int, heads: int, layers: int, context: int):
        super().__init__()
        self.tokens = nn.Embedding(vocab, d)
        self.positions = nn.Embedding(context, d)
        block = nn.TransformerEncoderLayer(d, heads, dim_feedforward=4 * d, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        # enable_nested_tensor only matters for padding masks, which a language model has none of
        self.blocks = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab)
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(context), persistent=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """``[batch, T]`` token ids -> ``[batch, T, vocab]`` next-token logits."""
        t = ids.shape[1]
        h = self.tokens(ids) + self.positions.weight[:t]
        h = self.blocks(h, mask=self.mask[:t, :t], is_causal=True)
        return self.head(self.norm(h))


class TinyGPT(Task):
    """See the module docstring."""

    name = "tiny_gpt"
    vectorize = False  # vmap measured 1-15% slower here: benchmarks/nn_vectorize.py

    def __init__(self, scale: float = 1.0):
        self.scale = scale
        self.d = scaled(48, scale, multiple=16)
        self.heads = self.d // 16
        self.layers = 2 + extra_depth(scale)
        self.context = scaled(32, scale, power=0.25, multiple=32)
        self.steps = scaled(300, scale)
        self.data = text.splits(scaled(300_000, scale))
        self.offsets = torch.arange(self.context + 1)
        self.held_out = {
            split: self._windows(split, torch.linspace(0, len(self.data[split]) - self.context - 1,
                                                       EVAL_WINDOWS).long())
            for split in ("valid", "test")
        }

    def _windows(self, split: str, starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        w = self.data[split][starts.unsqueeze(-1) + self.offsets]
        return w[:, :-1], w[:, 1:]

    def model(self, seed: int) -> GPT:
        torch.manual_seed(seed)
        return GPT(text.VOCAB, self.d, self.heads, self.layers, self.context)

    def batch(self, seed: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        high = len(self.data["train"]) - self.context
        return self._windows("train", torch.randint(high, (BATCH,), generator=rng(self.name, seed, step)))

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        inputs, targets = batch
        logits = model(inputs)
        return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))

    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        return {"loss": self.loss(model, self.held_out[split]).item()}
