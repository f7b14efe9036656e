"""How long one evaluation of the default proxy suite takes, against the limit it is measured by.

    python benchmarks/evaluation.py [--repeats 10] [--scale 1] [--tasks digits_mlp,char_lm,...]

Rows: compiled candidates (``programs/adamw_paper.py``; Lion with its lr scaled like the warm
start's, at the best lr scale and weight decay tried; the warm start forced through the per-seed path that programs with a group reduction
take) and the LIMIT: the same proxy training with ``training.HandWrittenAdamW``, the warm start's
step written by hand in torch on the flat buffer (same numbers), in place of the candidate.
Target: a compiled candidate's evaluation within 1.2x of the limit; the whole default evaluation
<= 0.5 s of CPU. Evaluations are interleaved across rows so machine noise hits all alike; the
baselines (computed once per process) are warmed up first and never timed. One torch thread.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import programs  # noqa: E402
from search.evaluate import DEFAULT_SUITE, TaskSpec, evaluate_optimizer  # noqa: E402
from search.training import HandWrittenAdamW, ProgramStep  # noqa: E402
from symbolic_opt import compile_program, parse  # noqa: E402

LION_LR_SCALE = 0.002
LION_WD = 3.0  # the best of lr scales 0.0005-0.003 x weight decays 0-10 tried on the default suite (-0.017)

LION_SCALED = f"""
def train(w, g, m, lr, beta1=0.9, beta2=0.99, wd={LION_WD}):
    lr = lr * {LION_LR_SCALE}
    update = interp(g, m, beta1)
    update = sign(update)
    m = interp(g, m, beta2)
    decay = w * wd
    update = update + decay
    update = update * lr
    return update, m
"""


def rows() -> dict[str, object]:
    adamw = programs.load("adamw_paper")
    return {
        "adamw_paper (compiled)": ProgramStep.of(adamw),
        f"lion, lr x {LION_LR_SCALE:g}, wd {LION_WD:g} (compiled)": ProgramStep.of(parse(LION_SCALED)),
        "adamw_paper, per-seed path": ProgramStep(compile_program(adamw, "eager"), "per_seed"),
        "LIMIT: hand-written adamw_paper": HandWrittenAdamW(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--tasks", default=",".join(DEFAULT_SUITE))
    args = parser.parse_args()
    tasks = tuple(TaskSpec(name, args.scale) for name in args.tasks.split(","))
    optimizers = rows()
    for opt in optimizers.values():  # warm up: baselines, data, plans, first-call costs
        evaluate_optimizer(opt, tasks)
    wall: dict[str, list[float]] = {k: [] for k in optimizers}
    cpu: dict[str, list[float]] = {k: [] for k in optimizers}
    per_task: dict[str, dict[str, list[float]]] = {k: {t.key: [] for t in tasks} for k in optimizers}
    fitness: dict[str, tuple[float, float]] = {}
    for _ in range(args.repeats):
        for name, opt in optimizers.items():
            result = evaluate_optimizer(opt, tasks)
            if result.error:
                raise SystemExit(f"{name} failed: {result.error}")
            wall[name].append(result.seconds)
            cpu[name].append(result.cpu_seconds)
            for key, rec in result.per_task.items():
                per_task[name][key].append(rec["cpu_seconds"])
            fitness[name] = (result.fitness, result.test_fitness)

    limit = statistics.mean(cpu["LIMIT: hand-written adamw_paper"])
    print(f"default proxy evaluation: {', '.join(t.key for t in tasks)}; "
          f"{args.repeats} repeats, seeds 0-2 + test seeds 1000-1002 batched, 1 torch thread")
    print(f"{'optimizer':38s} {'cpu s':>7s} {'wall s':>7s} {'sd':>6s} {'vs limit':>8s} {'fitness':>8s} {'test':>7s}")
    for name in optimizers:
        c, w = statistics.mean(cpu[name]), statistics.mean(wall[name])
        sd = statistics.stdev(cpu[name]) if len(cpu[name]) > 1 else 0.0
        f, t = fitness[name]
        print(f"{name:38s} {c:7.3f} {w:7.3f} {sd:6.3f} {c / limit:7.2f}x {f:8.3f} {t:7.3f}")
    print("targets: compiled candidate <= 1.20x the limit; default evaluation <= 0.5 s CPU (aim ~0.15 s)")
    print()
    print("CPU seconds per task (mean):")
    print(f"{'optimizer':38s} " + " ".join(f"{t.key:>15s}" for t in tasks))
    for name in optimizers:
        print(f"{name:38s} " + " ".join(f"{statistics.mean(per_task[name][t.key]):15.4f}" for t in tasks))


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"\n(benchmark took {time.perf_counter() - start:.0f} s)")
