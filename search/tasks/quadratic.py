"""``quadratic``: least squares on noisy samples of an ill-conditioned, rotated quadratic.

Data (fixed per scale): inputs ``x = z diag(sqrt(lambda)) Q^T`` with ``z ~ N(0, I_n)``,
``Q`` a random rotation and eigenvalues ``lambda_i = kappa^(-i / (n - 1))`` from 1 down to
``1 / kappa`` (``kappa = 1000``), so the Hessian ``Q diag(lambda) Q^T`` is ill-conditioned and
not axis-aligned (a diagonal preconditioner cannot undo it). Targets ``y = x . w* + 0.1 eps``
with ``w* ~ N(0, 0.1^2 I)``; the training set has ``8n`` samples, the validation and test sets
512 each, drawn the same way (noisy targets too: the noise floor ``0.1^2 / 2`` bounds how much
better than AdamW a candidate can look here, so this task cannot dominate the suite's mean).

Model: ``y_hat = x . w``, ``w`` drawn ``N(0, 0.1^2 I)`` per seed. Loss: ``mean (y_hat - y)^2 / 2``
over a batch of 16 (minibatch noise plus label noise); metric: the same on the validation/test
samples, about ``(w - w*)^T H (w - w*) / 2 + 0.1^2 / 2``.

Scale ``s``: dimension ``n = 32 * s``, steps ``200 * sqrt(s)``, training samples ``8n``.
"""

from __future__ import annotations

import torch

from .. import layers
from ..flat import Layout, Param, stable_seed
from .base import Problem, scaled

KAPPA = 1000.0
NOISE = 0.1
N_EVAL = 512


class Quadratic(Problem):
    """See the module docstring."""

    name = "quadratic"

    def __init__(self, scale: float = 1.0):
        self.scale = scale
        self.dim = scaled(32, scale, power=1.0)
        self.steps = scaled(200, scale)
        self.batch_size = 16
        self.n_train = 8 * self.dim
        gen = torch.Generator().manual_seed(stable_seed(self.name, scale, "problem"))
        n = self.dim
        q, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
        lam = KAPPA ** (-torch.arange(n, dtype=torch.float64) / max(1, n - 1))
        basis = (lam.sqrt().unsqueeze(1) * q.T).float()  # rows scaled: x = z @ basis
        w_star = 0.1 * torch.randn(n, 1, generator=gen)
        self.data = {}
        for split, count in (("train", self.n_train), ("valid", N_EVAL), ("test", N_EVAL)):
            x = torch.randn(count, n, generator=gen) @ basis
            y = x @ w_star + NOISE * torch.randn(count, 1, generator=gen)
            self.data[split] = (x.contiguous(), y.contiguous())
        self.layout = Layout((Param("w", (n, 1), 0.1),))

    def forward(self, p, batch):
        x, y = self.data["train"]
        xb = x[batch]
        loss, r = layers.mse(torch.bmm(xb, p["w"]), y[batch])
        return loss, (xb, r)

    def backward(self, p, cache):
        xb, r = cache
        return {"w": torch.bmm(xb.transpose(1, 2), layers.mse_backward(r))}

    def metrics(self, p, split):
        x, y = self.data[split]
        s = p["w"].shape[0]
        return {"loss": layers.mse(torch.matmul(x, p["w"]), y.expand(s, -1, -1))[0]}
