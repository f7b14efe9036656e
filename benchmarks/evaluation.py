"""How long one evaluation of the default proxy suite takes: with the lr grid, at one lr, and
against the limit it is measured by.

    python benchmarks/evaluation.py [--repeats 10] [--scale 1] [--tasks quadratic,teacher_student,...]

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
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import programs  # noqa: E402
from search.calibration import calibration  # noqa: E402
from search.evaluate import DEFAULT_SUITE, TaskSpec, evaluate_optimizer  # noqa: E402
from search.training import HandWrittenAdamW, ProgramStep  # noqa: E402
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--tasks", default=",".join(DEFAULT_SUITE))
    args = parser.parse_args()
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
