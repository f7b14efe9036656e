"""scikit-learn's bundled 8x8 digits (1,797 images, 10 classes), split once for every task.

A fixed shuffle (independent of any run's seed) gives 1,197 training, 300 validation and
300 test images. Pixels (0..16) are standardised per pixel with the training split's mean
and standard deviation. No download: the data ships inside scikit-learn.
"""

from __future__ import annotations

import functools

import torch

from ..flat import stable_seed

N_VALID = N_TEST = 300


@functools.lru_cache(maxsize=1)
def splits() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``{"train" | "valid" | "test": (x[n, 64] float32, y[n] int64)}``."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.data, dtype=torch.float32)
    y = torch.tensor(data.target, dtype=torch.int64)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(stable_seed("digits", "split")))
    x, y = x[order], y[order]
    n_train = len(y) - N_VALID - N_TEST
    mean, std = x[:n_train].mean(0), x[:n_train].std(0).clamp_min(1.0)
    x = (x - mean) / std
    cuts = {"train": slice(0, n_train), "valid": slice(n_train, n_train + N_VALID), "test": slice(n_train + N_VALID, None)}
    return {k: (x[c].contiguous(), y[c].contiguous()) for k, c in cuts.items()}
