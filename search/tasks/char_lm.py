"""``char_lm``: a tiny character-level transformer language model on Python source.

Data: ``text.py`` (the standard library's sources; train/valid/test chunks). A training
example is a window of ``T + 1`` tokens at a random start in the training text.

Model: ``x_t = E[c_t] + pos_t`` (``E`` a ``[97, d]`` embedding), ``depth`` pre-norm causal
transformer blocks (``layers.block``), ``logits_t = rms(x_t) W_out + b_out``. Loss: mean
cross-entropy of predicting ``c_{t+1}`` from ``c_1..c_t`` over all ``T`` positions (nats per
character). Metrics: the same on 64 windows evenly spaced through the split.

Scale ``s``: width ``d = 24 * round(sqrt(s))`` with ``d / 24`` heads, MLP width ``2d``,
blocks ``1 + floor(log10 s)``, context ``T = 16 * round(s ** 0.25)``, steps ``100 * sqrt(s)``,
text ``300,000 * sqrt(s)`` characters; batch 4.
"""

from __future__ import annotations

import math

import torch

from .. import layers
from ..flat import Layout, Param
from . import text
from .base import Problem, extra_depth, scaled

EVAL_WINDOWS = 64


class CharLM(Problem):
    """See the module docstring."""

    name = "char_lm"

    def __init__(self, scale: float = 1.0):
        self.scale = scale
        self.d = scaled(24, scale, multiple=24)
        self.heads = self.d // 24
        self.depth = 1 + extra_depth(scale)
        self.seq = scaled(16, scale, power=0.25, multiple=16)
        self.steps = scaled(100, scale)
        self.batch_size = 4
        self.data = text.splits(scaled(300_000, scale))
        self.n_train = len(self.data["train"]) - self.seq
        self.offsets = torch.arange(self.seq + 1)
        self.eval_starts = {
            k: torch.linspace(0, len(self.data[k]) - self.seq - 1, EVAL_WINDOWS).long() for k in ("valid", "test")
        }
        d, v = self.d, text.VOCAB
        params = [Param("emb", (v, d), 0.1), Param("pos", (self.seq, d), 0.1)]
        for i in range(self.depth):
            params += layers.block_params(f"h{i}.", d, 2 * d)
        params += [Param("w_out", (d, v), 1 / math.sqrt(d)), Param("b_out", (v,))]
        self.layout = Layout(tuple(params))
        self.mask = layers.causal_mask(self.seq)
        self.seed_index = torch.arange(64).view(64, 1, 1)  # row s of the seed batch (grown on demand)

    def _windows(self, split, starts):
        return self.data[split][starts.unsqueeze(-1) + self.offsets]

    def _loss(self, p, windows):
        s, b = windows.shape[:2]
        if s > len(self.seed_index):
            self.seed_index = torch.arange(s).view(s, 1, 1)
        seeds = self.seed_index[:s]
        inputs, targets = windows[..., :-1], windows[..., 1:]
        h = (p["emb"][seeds, inputs] + p["pos"].unsqueeze(1)).view(s, b * self.seq, self.d)
        blocks = []
        for i in range(self.depth):
            h, c = layers.block(h, p, f"h{i}.", seq=self.seq, heads=self.heads, mask=self.mask)
            blocks.append(c)
        n, norm = layers.rms_norm(h)
        logits = layers.linear(n, p["w_out"], p["b_out"])
        loss, ce = layers.cross_entropy(logits, targets.reshape(s, b * self.seq))
        return loss, (seeds, inputs, blocks, norm, n, ce)

    def forward(self, p, batch):
        return self._loss(p, self._windows("train", batch))

    def backward(self, p, cache):
        seeds, inputs, blocks, norm, n, ce = cache
        s, b = inputs.shape[:2]
        grads = {}
        dn, grads["w_out"], grads["b_out"] = layers.linear_backward(layers.cross_entropy_backward(ce), n, p["w_out"])
        dh = layers.rms_norm_backward(dn, norm)
        for i in reversed(range(self.depth)):
            dh = layers.block_backward(dh, blocks[i], p, f"h{i}.", grads)
        dh = dh.view(s, b, self.seq, self.d)
        grads["pos"] = dh.sum(1)
        demb = torch.zeros(s, text.VOCAB, self.d)
        grads["emb"] = demb.index_put_((seeds, inputs), dh, accumulate=True)
        return grads

    def metrics(self, p, split):
        s = p["emb"].shape[0]
        windows = self._windows(split, self.eval_starts[split]).expand(s, -1, -1)
        return {"loss": self._loss(p, windows)[0]}
