"""Behaviour, for the funnel: whether two programs do the same thing, up to their learning rate.

``behaviour(program)`` is the updates a program makes on one fixed, realistic sequence of
weights and gradients (the weights do not follow its updates, so every program answers the
same questions), and ``same_behaviour`` calls two programs the same when those updates agree
up to one positive factor (the search tunes each program's learning rate), within
``SAME_TOLERANCE``: the funnel's test that its top programs are distinct in what they do, not
only by hash (a search once sent five programs that were one: AdamW with beta1 0.355 plus
``v * c`` for five small ``c``). The fingerprint (``fingerprint.py``) asks the stricter
question the cache needs: whether two programs train exactly alike.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from symbolic_opt.compiler import compile_program
from symbolic_opt.ir import Program

from .fingerprint import split_row, step_inputs
from .training import schedule


BEHAVIOUR_SHAPES = ((8, 6), (16,))
"""The parameters ``behaviour`` feeds a program: two tensors, 64 numbers."""
BEHAVIOUR_STEPS = 200
"""As many steps as the proxy tasks train."""
SAME_TOLERANCE = 1e-4
"""``same_behaviour``'s default: the largest ``behaviour_distance`` that is still one program.
Measured (tests/search/test_fingerprint.py): AdamW with beta1 0.355 plus ``v * c`` for ``c``
from 0.01 to 0.2, and a program against itself with 4x its learning rate, are within 4e-6;
Adam and AMSGrad (which differ once gradients shrink) are 2.6e-4 apart, AdamW with weight
decay 0.01 and 0 9e-4, Adam and AdamW 4.7e-3, AdamW with beta1 0.9 and 0.355, or AdamW and
Lion, 0.7. 1e-4 is 25 times the first and 2.5 times below the nearest different pair."""


def behaviour(program: Program) -> np.ndarray | None:
    """The updates ``program`` makes on one fixed sequence of weights and gradients, all steps
    concatenated (``BEHAVIOUR_STEPS * 64`` numbers); ``None`` if it fails or is not finite.

    The sequence looks like the proxy tasks under AdamW (measured: weights of median size 0.1,
    gradients from 1e-5 to 0.05 that shrink as training goes): weights ``N(0, 0.15^2)``
    drifting slowly; gradients with a magnitude per coordinate from 1e-5 to 0.1, shrinking
    ten-fold over the run, a persistent direction under twice as much noise (so momentum and
    second moments matter, and a term such as ``v * c`` stays as small as it is there); ``lr`` on
    ``training.schedule`` with peak 1 (warmup, cosine to 0), ``step`` 1, 2, ... The weights do
    NOT follow the program's updates: every program is asked the same questions, so their
    answers compare number for number."""
    try:
        compiled = compile_program(program, "eager")
        ws, grads, lrs = _behaviour_inputs()
        states = compiled.init_state(split_row(ws[0], BEHAVIOUR_SHAPES))
        updates = torch.empty_like(ws)
        with torch.no_grad(), np.errstate(all="ignore"):
            for t, lr in enumerate(lrs):
                w = ws[t].clone()
                compiled.fn(split_row(w, BEHAVIOUR_SHAPES), split_row(grads[t], BEHAVIOUR_SHAPES), *states,
                            **step_inputs(compiled, lr, t + 1))
                torch.sub(ws[t], w, out=updates[t])
    except Exception:  # noqa: BLE001 - a program that cannot run has no behaviour to compare
        return None
    out = updates.numpy().reshape(-1)
    return out if np.all(np.isfinite(out)) else None


def behaviour_distance(a: np.ndarray | Program | None, b: np.ndarray | Program | None) -> float:
    """How far apart two behaviours (or programs) are, up to a positive factor: the size of
    what is left of one after the best positive multiple of the other is taken away, relative
    to its own size. That is ``sin`` of the angle between the two update sequences when they
    point the same way (``cos > 0``), else 1 (the best positive multiple is 0). Symmetric;
    0 for two programs that never move; ``inf`` where a behaviour is ``None`` (unknown)."""
    a = behaviour(a) if isinstance(a, Program) else a
    b = behaviour(b) if isinstance(b, Program) else b
    if a is None or b is None:
        return math.inf
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0 or nb == 0:
        return 0.0 if na == nb else 1.0
    a, b = a / na, b / nb
    cos = float(a @ b)
    return float(np.linalg.norm(a - cos * b)) if cos > 0 else 1.0


def same_behaviour(a: np.ndarray | Program | None, b: np.ndarray | Program | None, tol: float = SAME_TOLERANCE) -> bool:
    """Whether two behaviours (or programs) are one program up to its learning rate:
    ``behaviour_distance(a, b) <= tol``. The search tunes each program's learning rate, so a
    program that is another times 4 trains as that one does; the funnel should send one."""
    return behaviour_distance(a, b) <= tol


@functools.lru_cache(maxsize=1)
def _behaviour_inputs() -> tuple[torch.Tensor, torch.Tensor, tuple[float, ...]]:
    """``[T, 64]`` weights and gradients and ``T`` learning rates (``behaviour``'s docstring)."""
    gen = torch.Generator().manual_seed(2718)
    n, steps = sum(math.prod(s) for s in BEHAVIOUR_SHAPES), BEHAVIOUR_STEPS
    randn = lambda *shape: torch.randn(*shape, generator=gen, dtype=torch.float64)  # noqa: E731
    progress = torch.linspace(0, 1, steps, dtype=torch.float64).view(-1, 1)
    ws = 0.15 * randn(n) + 0.05 * randn(n) * progress
    magnitude = 10.0 ** (torch.rand(n, generator=gen, dtype=torch.float64) * 4 - 5)
    grads = magnitude * 10.0 ** -progress * (0.5 * randn(n) + randn(steps, n))
    return ws, grads, schedule(steps)
