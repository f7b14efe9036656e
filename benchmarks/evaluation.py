"""How long one evaluation of the default proxy suite takes: with the lr grid, at one lr, and
against the limit it is measured by; and (``--backward``) what the proxy tasks' hand-written
backward passes save over autograd.

    python benchmarks/evaluation.py [--repeats 10] [--scale 1] [--tasks quadratic,teacher_student,...]
    python benchmarks/evaluation.py --backward [--repeats 7] [--scales 1,10,100] [--tasks ...]

Rows, all in this process on one torch thread, interleaved so machine noise hits all alike:

* ``adamw_paper, lr grid`` is the search's evaluation today: on every task the candidate trains
  at the warm start's best peak times each of the 5 multipliers (1/16 .. 16) on the 3
  validation seeds, in one batch; then its 3 held-out seeds at the chosen multiplier.
* ``adamw_paper, one lr`` is the evaluation before the grid: the peak alone, validation and
  held-out seeds in one batch of 6 rows (the calibrated grid cut to multiplier 1).
* ``lion, lr x 0.001, lr grid``: a sign-update candidate through the same grid.
* ``LIMIT: hand-written adamw_paper, lr grid``: the grid evaluation with the warm start's step
  written by hand in torch on the flat buffer (``training.HandWrittenAdamW``, the same numbers).

Calibration (the warm start's peak, AdamW tuned; once per run in a search) is done first and
never timed. Target: the grid at most 2x the one-lr evaluation; a compiled candidate within
1.2x of the limit.

``--backward``: for every task at every scale (default: all tasks, at the proxy's 1 and the
funnel's 10 and 100), a training step as an evaluation runs it (the gradient of every row,
then the hand-written AdamW step on the flat buffer) on the rows of its lr grid: 5 multipliers
x 3 seeds at scale 1, x 5 seeds (the funnel's) above. Four variants, interleaved in each
repeat so machine noise hits all alike: the hand-written backward (``Problem.loss_and_grad``),
autograd on the same forward (``layers.autograd_loss_and_grad``), the hand-written again
(its ratio to the first is the noise), and the hand-written with the public formulas in place
of aten's private backward kernels (what a torch that broke them would cost). Each time is
CPU seconds per step over enough steps to take 0.3 s (at most the task's whole run), best of
the repeats; quote ratios, not times, on a busy machine. ``pairs``: autograd/hand-written in
each repeat, lowest to highest. ``verdict``: ``hand`` where autograd's best time exceeds the
hand-written's by more than the noise (the A/A ratio's distance from 1, at least 2%), else
``same``. The figures, and what was kept, are in ``search/layers.py``'s docstring.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import programs  # noqa: E402
import torch  # noqa: E402
from search import layers, tasks as proxy_tasks  # noqa: E402
from search.calibration import MULTIPLIERS, calibration  # noqa: E402
from search.evaluate import DEFAULT_SUITE, TaskSpec, evaluate_optimizer  # noqa: E402
from search.rows import Row  # noqa: E402
from search.training import HandWrittenAdamW, ProgramStep, cpu_settings, plan  # noqa: E402
from symbolic_opt import parse  # noqa: E402

LION = """
def train(w, g, m, lr, beta1=0.9, beta2=0.99):
    lr = lr * 0.001
    update = interp(g, m, beta1)
    update = sign(update)
    m = interp(g, m, beta2)
    update = update * lr
    return update, m
"""

GRID, ONE, LIMIT = "adamw_paper, lr grid (compiled)", "adamw_paper, one lr (compiled)", "LIMIT: hand-written adamw_paper, lr grid"


def rows(tasks) -> dict[str, tuple]:
    grid = [calibration(t) for t in tasks]
    one = [dataclasses.replace(c, multipliers=(1.0,)) for c in grid]
    adamw = ProgramStep.of(programs.load("adamw_paper"))
    return {
        GRID: (adamw, grid),
        ONE: (adamw, one),
        "lion, lr x 0.001, lr grid (compiled)": (ProgramStep.of(parse(LION)), grid),
        LIMIT: (HandWrittenAdamW(), grid),
    }


def one_lr(optimizer, calibrations):
    """The one-lr evaluation: validation and held-out seeds in one batch (as before the grid)."""
    from search.tuning import validate

    for c in calibrations:
        sweep = validate(c.spec.name, c.spec.scale, optimizer, c.settings(), c.spec.seeds, test_seeds=c.spec.test_seeds)
        assert sweep.best is not None


BACKWARDS = {  # name: (the gradient, the elementwise backward kernels)
    "hand": (None, layers.KERNELS),
    "autograd": (layers.autograd_loss_and_grad, layers.KERNELS),
    "hand again": (None, layers.KERNELS),
    "hand, public kernels": (None, layers.PUBLIC_KERNELS),
}


def step_seconds(problem, run, rows, gradient, kernels, steps: int) -> float:
    """CPU seconds per training step: ``gradient`` (None: the hand-written one) with ``kernels``,
    then the hand-written AdamW step, from the initialisation on ``run``'s batches."""
    flat = run.init.clone()
    grad = torch.zeros_like(flat)
    views = problem.layout.views(flat)
    step = HandWrittenAdamW().bind(flat, grad, problem.layout, rows)
    before, layers.KERNELS = layers.KERNELS, kernels
    try:
        start = time.process_time()
        for t in range(1, steps + 1):
            if gradient is None:
                problem.loss_and_grad(views, run.batches[t - 1], grad)
            else:
                gradient(problem, views, run.batches[t - 1], grad)
            step(run.lrs[t - 1], t)
        return (time.process_time() - start) / steps
    finally:
        layers.KERNELS = before


def backward_table(names, scales, repeats: int) -> None:
    """The ``--backward`` table (module docstring)."""
    print(f"hand-written backward vs autograd: CPU per training step (gradient + AdamW step), best of {repeats}, "
          f"1 torch thread; kernels in use {layers.kernels()}")
    print(f"{'task':20s} {'rows':>4s} {'steps':>5s} {'hand ms':>8s} {'autograd':>9s} {'pairs':>10s} {'noise':>6s} "
          f"{'verdict':7s} {'public kernels':>14s}")
    with cpu_settings():
        for scale in scales:
            for name in names:
                problem = proxy_tasks.get(name)(scale)
                seeds = tuple(range(3 if scale == 1 else 5))
                rows = [Row(seed, lr_peak=m) for m in MULTIPLIERS for seed in seeds]
                run = plan(problem, tuple(r.seed for r in rows))
                for gradient, kernels in BACKWARDS.values():  # warm up
                    first = max(step_seconds(problem, run, rows, gradient, kernels, 2), 1e-6)
                steps = min(problem.steps, max(3, math.ceil(0.3 / first)))
                times: dict[str, list[float]] = {k: [] for k in BACKWARDS}
                for _ in range(repeats):
                    for k, (gradient, kernels) in BACKWARDS.items():
                        times[k].append(step_seconds(problem, run, rows, gradient, kernels, steps))
                best = {k: min(v) for k, v in times.items()}
                ratio = best["autograd"] / best["hand"]
                noise = max(0.02, abs(best["hand again"] / best["hand"] - 1))
                pairs = [a / h for a, h in zip(times["autograd"], times["hand"])]
                key = name if scale == 1 else f"{name}@{scale:g}"
                print(f"{key:20s} {len(rows):4d} {steps:5d} {best['hand'] * 1e3:8.2f} {ratio:8.2f}x "
                      f"{min(pairs):5.2f}-{max(pairs):4.2f} {noise:6.1%} {'hand' if ratio > 1 + noise else 'same':7s} "
                      f"{best['hand, public kernels'] / best['hand']:13.2f}x", flush=True)
                del problem, run  # quadratic@100's data is 330 MB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=None, help="default 10; 7 with --backward")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--tasks", default=None, help="default: the default suite; every task with --backward")
    parser.add_argument("--backward", action="store_true", help="the hand-written backward passes against autograd")
    parser.add_argument("--scales", default="1,10,100", help="with --backward")
    args = parser.parse_args()
    if args.backward:
        every = [*DEFAULT_SUITE, *sorted(set(proxy_tasks.names()) - set(DEFAULT_SUITE))]
        names = args.tasks.split(",") if args.tasks else every
        backward_table(names, [float(s) for s in args.scales.split(",")], args.repeats or 7)
        return
    args.repeats = args.repeats or 10
    args.tasks = args.tasks or ",".join(DEFAULT_SUITE)
    tasks = tuple(TaskSpec(name, args.scale) for name in args.tasks.split(","))
    cases = rows(tasks)
    cpu: dict[str, list[float]] = {k: [] for k in cases}
    fitness: dict[str, tuple[float, float]] = {}

    def once(name: str) -> float:
        optimizer, calibrations = cases[name]
        start = time.process_time()
        if name == ONE:
            one_lr(optimizer, calibrations)
            fitness[name] = (float("nan"), float("nan"))
        else:
            result = evaluate_optimizer(optimizer, calibrations)
            if result.error:
                raise SystemExit(f"{name} failed: {result.error}")
            fitness[name] = (result.fitness, result.test_fitness)
        return time.process_time() - start

    for name in cases:  # warm up: calibration, data, plans, first-call costs
        once(name)
    for _ in range(args.repeats):
        for name in cases:
            cpu[name].append(once(name))

    limit, single = statistics.mean(cpu[LIMIT]), statistics.mean(cpu[ONE])
    print(f"default proxy evaluation: {', '.join(t.key for t in tasks)}; {args.repeats} repeats, 1 torch thread; "
          f"lr grid x{len(cases[GRID][1][0].multipliers)} on 3 validation seeds + 3 held-out seeds at the choice")
    print(f"{'evaluation':42s} {'cpu s':>7s} {'sd':>6s} {'vs one lr':>9s} {'vs limit':>8s} {'fitness':>8s} {'test':>7s}")
    for name in cases:
        c = statistics.mean(cpu[name])
        sd = statistics.stdev(cpu[name]) if len(cpu[name]) > 1 else 0.0
        f, t = fitness[name]
        print(f"{name:42s} {c:7.3f} {sd:6.3f} {c / single:8.2f}x {c / limit:7.2f}x {f:8.3f} {t:7.3f}")
    print("targets: the grid <= 2x the one-lr evaluation; compiled <= 1.20x the limit")


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"\n(benchmark took {time.perf_counter() - start:.0f} s)")
