"""The example task of the docs (README, ``task.py``): a linear regression in ``torch.nn``.

Try it: ``symopt bench lion adamw --task search.nn.example:Regression``. Your own task is a
module like this one on your import path.
"""

import torch
from search.nn import Task, rng

class Regression(Task):
    """Fit y = x w* + noise with one nn.Linear."""
    name, steps = "regression", 100

    def __init__(self, scale=1.0):
        self.scale, self.dim = scale, max(1, round(8 * scale))
        self.w_true = torch.randn(self.dim, 1, generator=rng("regression", "w"))
        self.held_out = {s: self._sample(rng("regression", s), 256) for s in ("valid", "test")}

    def _sample(self, gen, n):
        x = torch.randn(n, self.dim, generator=gen)
        return x, x @ self.w_true + 0.1 * torch.randn(n, 1, generator=gen)

    def model(self, seed):                      # a fresh model, the same for the same seed
        torch.manual_seed(seed)
        return torch.nn.Linear(self.dim, 1)

    def batch(self, seed, step):                # the same data for every optimizer
        return self._sample(rng("regression", seed, step), 32)

    def loss(self, model, batch):               # trained with autograd
        x, y = batch
        return torch.nn.functional.mse_loss(model(x), y)

    def evaluate(self, model, split):           # "valid" chooses, "test" reports
        return {"loss": float(self.loss(model, self.held_out[split]))}
