"""``digits_vit``: a tiny vision transformer classifying the 8x8 digits.

Model: the image is cut into 4 patches of 4x4 pixels (tokens of 16 values);
``x = patches W_in + b_in + pos`` (``pos`` a learned ``[4, d]`` position embedding), then
``depth`` pre-norm transformer blocks without a mask (``layers.block``: self-attention and a
ReLU MLP, each added to the residual stream), ``z = mean_tokens rms(x)``,
``logits = z W_out + b_out``. Loss: mean softmax cross-entropy; metrics: validation/test
cross-entropy and accuracy over the whole split.

Scale ``s``: model width ``d = 16 * round(sqrt(s))`` with ``d / 16`` heads, MLP width ``2d``,
blocks ``1 + floor(log10 s)``, steps ``200 * sqrt(s)``; batch 16 and the data stay fixed.
"""

from __future__ import annotations

import math

import torch

from .. import layers
from ..flat import Layout, Param
from . import digits
from .base import Problem, extra_depth, scaled

PATCH = 4  # 2x2 patches (16 tokens) learn far less in 200 steps and cost 1.5x as much
TOKENS = (8 // PATCH) ** 2


def patches(x: torch.Tensor) -> torch.Tensor:
    """``[n, 64]`` images -> ``[n, TOKENS, PATCH * PATCH]`` patches, row-major."""
    n = x.shape[0]
    g = 8 // PATCH
    return x.view(n, g, PATCH, g, PATCH).permute(0, 1, 3, 2, 4).reshape(n, TOKENS, PATCH * PATCH).contiguous()


class DigitsViT(Problem):
    """See the module docstring."""

    name = "digits_vit"

    def __init__(self, scale: float = 1.0):
        self.scale = scale
        self.d = scaled(16, scale, multiple=16)
        self.heads = self.d // 16
        self.depth = 1 + extra_depth(scale)
        self.steps = scaled(200, scale)
        self.batch_size = 16
        self.data = {k: (patches(x), y) for k, (x, y) in digits.splits().items()}
        self.n_train = len(self.data["train"][1])
        d, pdim = self.d, PATCH * PATCH
        params = [Param("w_in", (pdim, d), 1 / math.sqrt(pdim)), Param("b_in", (d,)), Param("pos", (TOKENS, d), 0.1)]
        for i in range(self.depth):
            params += layers.block_params(f"h{i}.", d, 2 * d)
        params += [Param("w_out", (d, 10), 1 / math.sqrt(d)), Param("b_out", (10,))]
        self.layout = Layout(tuple(params))
        self.mask = torch.zeros(TOKENS, TOKENS)

    def _logits(self, p, x):
        s, b = x.shape[:2]
        rows = x.reshape(s, b * TOKENS, -1)
        h = (layers.linear(rows, p["w_in"], p["b_in"]).view(s, b, TOKENS, self.d) + p["pos"].unsqueeze(1)).view(s, b * TOKENS, self.d)
        blocks = []
        for i in range(self.depth):
            h, c = layers.block(h, p, f"h{i}.", seq=TOKENS, heads=self.heads, mask=self.mask)
            blocks.append(c)
        n, norm = layers.rms_norm(h)
        z = n.view(s, b, TOKENS, self.d).mean(2)
        return layers.linear(z, p["w_out"], p["b_out"]), (rows, blocks, norm, z)

    def forward(self, p, batch):
        x, y = self.data["train"]
        logits, cache = self._logits(p, x[batch])
        loss, ce = layers.cross_entropy(logits, y[batch])
        return loss, (cache, ce)

    def backward(self, p, cache):
        (rows, blocks, norm, z), ce = cache
        s, b = z.shape[:2]
        grads = {}
        dz, grads["w_out"], grads["b_out"] = layers.linear_backward(layers.cross_entropy_backward(ce), z, p["w_out"])
        dn = (dz / TOKENS).unsqueeze(2).expand(s, b, TOKENS, self.d).reshape(s, b * TOKENS, self.d)
        dh = layers.rms_norm_backward(dn, norm)
        for i in reversed(range(self.depth)):
            dh = layers.block_backward(dh, blocks[i], p, f"h{i}.", grads)
        grads["pos"] = dh.view(s, b, TOKENS, self.d).sum(1)
        _, grads["w_in"], grads["b_in"] = layers.linear_backward(dh, rows, p["w_in"], need_dx=False)
        return grads

    def metrics(self, p, split):
        x, y = self.data[split]
        s = p["w_in"].shape[0]
        logits, _ = self._logits(p, x.expand(s, *x.shape))
        labels = y.expand(s, -1)
        return {"loss": layers.cross_entropy(logits, labels)[0], "accuracy": layers.accuracy(logits, labels)}
