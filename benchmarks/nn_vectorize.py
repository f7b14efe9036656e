"""Is training R rows of a ``torch.nn`` task faster vectorized with ``torch.func`` or one row
after another through ``SymbolicOptimizer``? Prints a table; ``python benchmarks/nn_vectorize.py``.

Every way trains the same rows (seeds 0..R-1, peak learning rates spread over 4x) with the
same program (``adamw``) and schedule for ``--steps`` steps, in this process, on one torch
thread (``training.cpu_settings``), and scores both splits at the end:

- sequential: ``train_rows(..., vectorize=False)``: a model, a ``SymbolicOptimizer`` and a
  ``LambdaLR`` per row, one row after another (a user's loop);
- vmap: ``train_rows(..., vectorize=True)``: the rows' models stacked
  (``torch.func.stack_module_state``), loss and gradient of all of them from one
  ``vmap(grad_and_value(...))`` over ``functional_call``, then each row's own optimizer and
  scheduler on its slices of the stacked parameters (per-row lr, group reductions per model);
- vmap+batched step: the same gradients, then AdamW written in torch ops on the stacked
  tensors with the per-row lr broadcast, one step for all rows: the bound on what vmap could
  give (only an elementwise program could run this way, and it is not ``SymbolicOptimizer``).

Times are CPU seconds (``time.process_time``) per run of R rows, the best of ``--repeats``;
each ratio is sequential over that way (above 1: vectorizing wins). "agree" is the largest
difference between sequential and vmap final validation losses (batched kernels round
differently). About 50 s with the defaults.
"""

from __future__ import annotations

import argparse
import copy
import math
import time
import warnings

import torch
from torch.func import functional_call, grad_and_value, stack_module_state, vmap
from torch.utils._pytree import tree_map

from search import training
from search.nn import load_task, train_rows
from search.nn.task import build_model
from search.rows import Row
from symbolic_opt.loading import resolve_program

PEAKS = {"tiny_gpt": 3e-3, "digits_cnn": 1e-2}


def rows_for(task_name: str, r: int) -> list[Row]:
    peak = PEAKS[task_name]
    return [Row(seed, lr_peak=peak * 2 ** (2 * seed / max(1, r - 1) - 1)) for seed in range(r)]


def train_batched_step(task, rows: list[Row]) -> list[float]:
    """vmap+batched step (module docstring): the final validation loss of each row."""
    models = [build_model(task, row.seed) for row in rows]
    params, buffers = stack_module_state(models)
    params = {k: v.detach() for k, v in params.items()}
    skeleton = copy.deepcopy(models[0]).to("meta")

    def loss(p, b, batch):
        return task.loss(lambda *args: functional_call(skeleton, {**p, **b}, args), batch)

    grads_and_losses = vmap(grad_and_value(loss))
    factors = training.schedule(task.steps)
    m = {k: torch.zeros_like(v) for k, v in params.items()}
    v = {k: torch.zeros_like(v) for k, v in params.items()}
    peaks = torch.tensor([row.lr_peak for row in rows])
    alive = [True] * len(rows)
    limits = [math.inf] * len(rows)
    for step in range(task.steps):
        batch = tree_map(lambda *xs: torch.stack(xs), *[task.batch(row.seed, step) for row in rows])
        grads, losses = grads_and_losses(params, buffers, batch)
        for i, value in enumerate(losses.tolist()):  # the same divergence check, for the same work
            limits[i] = abs(value) * training.DIVERGED if step == 0 else limits[i]
            alive[i] = alive[i] and value <= limits[i]
        _adamw_stacked(params, grads, m, v, peaks * factors[step], step + 1)
    out = []
    with torch.no_grad():
        for i, model in enumerate(models):
            for name, t in [*model.named_parameters(), *model.named_buffers()]:
                t.copy_({**params, **buffers}[name][i])
            model.eval()
            out.append(task.evaluate(model, "valid")["loss"] if alive[i] else math.nan)
    return out


def _adamw_stacked(params, grads, m, v, lr: torch.Tensor, t: int, beta1=0.9, beta2=0.999, eps=1e-8, wd=0.01):
    """torch.optim.AdamW's step on ``[R, ...]`` stacked tensors with ``lr[R]`` per row."""
    for k, p in params.items():
        g = grads[k]
        row_lr = lr.view(-1, *[1] * (p.dim() - 1))
        p.mul_(1 - row_lr * wd)
        m[k].lerp_(g, 1 - beta1)
        v[k].mul_(beta2).addcmul_(g, g, value=1 - beta2)
        denom = (v[k].sqrt() / math.sqrt(1 - beta2**t)).add_(eps)
        p.sub_(row_lr / (1 - beta1**t) * m[k] / denom)


def best_cpu(fn, repeats: int) -> tuple[float, object]:
    best, out = math.inf, None
    for _ in range(repeats):
        start = time.process_time()
        out = fn()
        best = min(best, time.process_time() - start)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="training steps per run (default 60)")
    parser.add_argument("--rows", type=int, nargs="+", default=[3, 6, 12])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    # torch has no vmap rule for CPU flash attention and says so at every call; it falls back to a
    # loop over rows for that op (forcing the math kernel instead measured no faster)
    warnings.filterwarnings("ignore", message="There is a performance drop")
    program = resolve_program("adamw")
    start = time.perf_counter()
    print(f"{args.steps} steps, program adamw, 1 torch thread, CPU s per run of R rows (best of {args.repeats})")
    print(f"{'task':<11} {'R':>3} {'sequential':>10} {'vmap':>7} {'ratio':>6} {'agree':>8} "
          f"{'vmap+batched step':>17} {'ratio':>6}")
    for name in ("tiny_gpt", "digits_cnn"):
        task = load_task(name)
        task.steps = args.steps  # the same work for each way; the built-ins are plain objects
        for r in args.rows:
            rows = rows_for(name, r)
            with training.cpu_settings():
                train_rows(task, program, rows[:2], vectorize=True)  # first-call costs out of the timing
                train_batched_step(task, rows[:2])
                seq, sequential = best_cpu(lambda: train_rows(task, program, rows, vectorize=False), args.repeats)
                vec, vectorized = best_cpu(lambda: train_rows(task, program, rows, vectorize=True), args.repeats)
                bat, _ = best_cpu(lambda: train_batched_step(task, rows), args.repeats)
            agree = max(abs(a - b) for a, b in zip(sequential.losses("valid"), vectorized.losses("valid")))
            print(f"{name:<11} {r:>3} {seq:>10.2f} {vec:>7.2f} {seq / vec:>6.2f} {agree:>8.1e} {bat:>17.2f} "
                  f"{seq / bat:>6.2f}", flush=True)
    print(f"(ratio: sequential / that way, above 1: vectorizing wins; {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
