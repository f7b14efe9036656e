"""Text already on every machine: the Python standard library's own source files.

The corpus is the top-level ``*.py`` files of the running interpreter's standard library
(``sysconfig.get_paths()["stdlib"]``), in sorted file-name order, each followed by a blank
line, cut to the first ``n_chars`` characters. It is cut into 1,000-character chunks: every
tenth chunk goes to the validation split, the one after it to the test split, the rest to
training, so all three splits mix all files and never overlap.

Characters become tokens: ``'\\n'`` -> 1, printable ASCII ``' '..'~'`` -> 2..96, anything
else -> 0 (``VOCAB = 97``). The corpus depends on the Python version, so compare fitness
only between runs on the same interpreter (baselines are always computed on the spot).
"""

from __future__ import annotations

import functools
import sysconfig
from pathlib import Path

import numpy as np
import torch

VOCAB = 97
CHUNK = 1000


def _lookup() -> np.ndarray:
    table = np.zeros(256, dtype=np.int64)
    table[ord("\n")] = 1
    table[32:127] = np.arange(2, 97)
    return table


def stdlib_files() -> list[Path]:
    return sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))


@functools.lru_cache(maxsize=8)
def splits(n_chars: int) -> dict[str, torch.Tensor]:
    """``{"train" | "valid" | "test": int64 token ids}`` from the first ``n_chars`` characters."""
    parts, total = [], 0
    for f in stdlib_files():
        text = f.read_text(encoding="utf-8", errors="replace") + "\n\n"
        parts.append(text)
        total += len(text)
        if total >= n_chars:
            break
    corpus = "".join(parts)[:n_chars]
    ids = _lookup()[np.frombuffer(corpus.encode("ascii", errors="replace"), dtype=np.uint8)]
    chunks = [ids[i : i + CHUNK] for i in range(0, len(ids), CHUNK)]
    pick = {"valid": [c for i, c in enumerate(chunks) if i % 10 == 8], "test": [c for i, c in enumerate(chunks) if i % 10 == 9]}
    pick["train"] = [c for i, c in enumerate(chunks) if i % 10 < 8]
    return {k: torch.from_numpy(np.concatenate(v)) for k, v in pick.items()}
