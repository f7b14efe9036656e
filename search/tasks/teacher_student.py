"""``teacher_student``: a tanh network regressing a fixed random teacher network.

Data (fixed per scale): inputs ``x ~ N(0, I_16)``; the teacher is ``f(x) = tanh(x A + a) B``
with 64 hidden units, ``A ~ N(0, 1/16)``, ``a ~ N(0, 0.1^2)``, ``B ~ N(0, 1/64)``. Targets
``f(x) + 0.1 eps``: ``256 * sqrt(s)`` training samples, 512 validation and 512 test samples
(the noise floor ``0.1^2 / 2`` keeps this task's log-ratio score in a range like the others').

Model (the student): ``h_i = tanh(h_{i-1} W_i + b_i)`` for each hidden layer, then
``y_hat = h_L W_out + b_out``; weights ``N(0, 1/fan_in)``, biases 0. Loss: ``mean (y_hat - y)^2 / 2``
over a batch of 32; metric: the same on the validation/test samples.

Scale ``s``: student width ``32 * sqrt(s)``, hidden layers ``1 + floor(log10 s)``, steps
``200 * sqrt(s)``, training samples ``256 * sqrt(s)``; the teacher stays fixed.
"""

from __future__ import annotations

import math

import torch

from .. import layers
from ..flat import Layout, stable_seed
from .base import Problem, extra_depth, scaled

D_IN, TEACHER_WIDTH, NOISE, N_EVAL = 16, 64, 0.1, 512


class TeacherStudent(Problem):
    """See the module docstring."""

    name = "teacher_student"

    def __init__(self, scale: float = 1.0):
        self.scale = scale
        self.width = scaled(32, scale)
        self.depth = 1 + extra_depth(scale)
        self.steps = scaled(200, scale)
        self.batch_size = 32
        self.n_train = scaled(256, scale)
        teacher = torch.Generator().manual_seed(stable_seed(self.name, "teacher"))
        a = torch.randn(D_IN, TEACHER_WIDTH, generator=teacher) / math.sqrt(D_IN)
        a0 = 0.1 * torch.randn(TEACHER_WIDTH, generator=teacher)
        b = torch.randn(TEACHER_WIDTH, 1, generator=teacher) / math.sqrt(TEACHER_WIDTH)
        gen = torch.Generator().manual_seed(stable_seed(self.name, scale, "data"))
        self.data = {}
        for split, count in (("train", self.n_train), ("valid", N_EVAL), ("test", N_EVAL)):
            x = torch.randn(count, D_IN, generator=gen)
            y = torch.tanh(x @ a + a0) @ b + NOISE * torch.randn(count, 1, generator=gen)
            self.data[split] = (x, y)
        sizes = [D_IN] + [self.width] * self.depth + [1]
        self.layout = Layout(tuple(layers.mlp_params(sizes)))
        self.n_layers = len(sizes) - 1

    def forward(self, p, batch):
        x, y = self.data["train"]
        acts = layers.mlp(x[batch], p, self.n_layers, "tanh")
        loss, r = layers.mse(acts[-1], y[batch])
        return loss, (acts, r)

    def backward(self, p, cache):
        acts, r = cache
        return layers.mlp_backward(layers.mse_backward(r), acts, p, "tanh")

    def metrics(self, p, split):
        x, y = self.data[split]
        s = p["w0"].shape[0]
        pred = layers.mlp(x.expand(s, *x.shape), p, self.n_layers, "tanh")[-1]
        return {"loss": layers.mse(pred, y.expand(s, -1, -1))[0]}
