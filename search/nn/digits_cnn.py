"""``digits_cnn``: a small ``torch.nn`` convolutional net classifying scikit-learn's 8x8 digits.

Data: ``search/tasks/digits.py`` (1,197 training, 300 validation, 300 test images, pixels
standardised), each image reshaped to ``1 x 8 x 8``. A training batch is 32 images drawn
with replacement (``rng("digits_cnn", seed, step)``).

Model (``CNN``): ``Conv2d(1, c, 3, pad 1) -> ReLU -> MaxPool2d(2)`` (8x8 -> 4x4),
``Conv2d(c, 2c, 3, pad 1) -> ReLU -> MaxPool2d(2)`` (-> 2x2), flatten, ``Linear(8c, 10)``;
``c = 16`` (6,090 parameters), PyTorch's default initialisation from
``torch.manual_seed(seed)``. A run's rows train together (``vectorize``, see ``train.py``).

Loss: mean softmax cross-entropy. Metrics: "loss" (cross-entropy) and "accuracy" over the
whole valid or test split.

Steps: 500 (about 0.9 s of CPU on one slow laptop core, one torch thread).

Scale ``s``: channels ``c = 16 sqrt(s)`` rounded to a multiple of 8, steps ``500 * sqrt(s)``;
the batch and the data stay fixed.
"""

from __future__ import annotations

import torch
from torch import nn

from ..tasks import digits
from ..tasks.base import scaled
from .task import Task, rng

BATCH = 32


class CNN(nn.Sequential):
    """Two conv-ReLU-pool stages and a linear classifier (module docstring)."""

    def __init__(self, channels: int, classes: int = 10):
        c = channels
        super().__init__(
            nn.Conv2d(1, c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c, 2 * c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(2 * c * 2 * 2, classes),
        )


class DigitsCNN(Task):
    """See the module docstring."""

    name = "digits_cnn"
    vectorize = True  # 1.1x (3 rows) to 1.4-1.6x (6-12 rows) faster: benchmarks/nn_vectorize.py

    def __init__(self, scale: float = 1.0):
        self.scale = scale
        self.channels = scaled(16, scale, multiple=8)
        self.steps = scaled(500, scale)
        self.data = {k: (x.view(-1, 1, 8, 8), y) for k, (x, y) in digits.splits().items()}

    def model(self, seed: int) -> CNN:
        torch.manual_seed(seed)
        return CNN(self.channels)

    def batch(self, seed: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.data["train"]
        pick = torch.randint(len(y), (BATCH,), generator=rng(self.name, seed, step))
        return x[pick], y[pick]

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        return nn.functional.cross_entropy(model(x), y)

    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        x, y = self.data[split]
        logits = model(x)
        return {"loss": nn.functional.cross_entropy(logits, y).item(),
                "accuracy": (logits.argmax(-1) == y).float().mean().item()}
