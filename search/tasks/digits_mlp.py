"""``digits_mlp``: a ReLU multi-layer perceptron classifying the 8x8 digits.

Model: ``h_0 = x`` (64 standardised pixels), ``h_i = relu(h_{i-1} W_i + b_i)`` for each hidden
layer, ``logits = h_L W_out + b_out`` (10 classes); weights ``N(0, 1/fan_in)``, biases 0.
Loss: mean softmax cross-entropy over a batch; metrics: validation/test cross-entropy and
accuracy over the whole split.

Scale ``s``: hidden width ``32 * sqrt(s)``, hidden layers ``1 + floor(log10 s)``, steps
``200 * sqrt(s)``; batch 32 and the data (all 1,197 training images) stay fixed.
"""

from __future__ import annotations

from .. import layers
from ..flat import Layout
from . import digits
from .base import Problem, extra_depth, scaled


class DigitsMLP(Problem):
    """See the module docstring."""

    name = "digits_mlp"

    def __init__(self, scale: float = 1.0):
        self.scale = scale
        self.width = scaled(32, scale)
        self.depth = 1 + extra_depth(scale)
        self.steps = scaled(200, scale)
        self.batch_size = 32
        self.data = digits.splits()
        self.n_train = len(self.data["train"][1])
        sizes = [64] + [self.width] * self.depth + [10]
        self.layout = Layout(tuple(layers.mlp_params(sizes)))
        self.n_layers = len(sizes) - 1

    def forward(self, p, batch):
        x, y = self.data["train"]
        acts = layers.mlp(x[batch], p, self.n_layers, "relu")
        loss, ce = layers.cross_entropy(acts[-1], y[batch])
        return loss, (acts, ce)

    def backward(self, p, cache):
        acts, ce = cache
        return layers.mlp_backward(layers.cross_entropy_backward(ce), acts, p, "relu")

    def metrics(self, p, split):
        x, y = self.data[split]
        s = p["w0"].shape[0]
        logits = layers.mlp(x.expand(s, *x.shape), p, self.n_layers, "relu")[-1]
        labels = y.expand(s, -1)
        return {"loss": layers.cross_entropy(logits, labels)[0], "accuracy": layers.accuracy(logits, labels)}
