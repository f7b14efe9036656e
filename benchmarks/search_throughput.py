"""How fast the search evaluates new programs, with 1 and with 2 Ray workers.

    python benchmarks/search_throughput.py [--seconds 60] [--warmup 10] [--preset quick]

For each worker count: a real search (the preset's settings, the default proxy suite, funnel
off) runs for ``warmup + seconds`` in a fresh run directory; the rate counts the new (not
cached) evaluations that completed after the warm-up (Ray's workers start, import torch and
calibrate the suite once before it). Printed per row: new evaluations/s, cache hit rate,
valid-child rate after retries, and the mean evaluation time (worker wall seconds; failed
candidates stop early, so the mean is below a full evaluation's).

The limit: one full evaluation of the default suite with the warm start's step written by hand
in torch (``search.training.HandWrittenAdamW``) and with the compiled warm start, in this
process on one thread; ``workers / hand-written seconds`` is what the search would reach if
every candidate cost a full evaluation, with no driver, Ray, or cache.

Also: the share of evaluations that failed (the candidate's own failure), that stopped at the
hurdle, and of jobs the infrastructure lost (never a fitness; retried on --resume).

Targets: >= 15 new evaluations/s with 2 workers on a 2-core machine (issue 7), >= 1.7x from 1
to 2 workers, valid children >= 99%.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich.console import Console  # noqa: E402

from search.config import load_config  # noqa: E402
from search.run import run  # noqa: E402
from search.store import RunStore  # noqa: E402


def search_rate(preset: str, workers: int, warmup: float, seconds: float, root: Path) -> dict:
    """One timed search; its rates from the store's timestamps."""
    config = load_config(preset, workers=workers, minutes=(warmup + seconds) / 60, live=False,
                         out=str(root / f"workers-{workers}"), max_evals=None)
    config = config.replace(funnel=type(config.funnel)(enabled=False))
    start = time.time()
    summary = run(config, console=Console(file=io.StringIO()))
    with RunStore(config.out) as store:
        records = list(store.evaluations())
        infrastructure = len(store.incidents())
    first = min(r.created for r in records)
    counted = [r for r in records if r.created >= first + warmup]
    window = max(r.created for r in records) - (first + warmup)
    return {
        "workers": workers,
        "rate": len(counted) / window,
        "evaluations": summary.session_evaluations,
        "hit_rate": summary.cache_hit_rate,
        "valid": summary.valid_child_rate,
        "mean_eval_s": statistics.mean(r.seconds for r in counted),
        "mean_ok_eval_s": statistics.mean([r.seconds for r in counted if r.error is None and r.stopped is None]
                                          or [float("nan")]),
        "failed": sum(r.error is not None for r in counted) / len(counted),
        "stopped": sum(r.stopped is not None for r in counted) / len(counted),
        "infrastructure": infrastructure / max(1, infrastructure + summary.session_evaluations),
        "wall_s": time.time() - start,
    }


def limit(repeats: int = 5) -> dict:
    """Seconds of one default-suite evaluation: hand-written AdamW step vs the compiled program."""
    import programs
    import torch
    from search.evaluate import default_tasks, evaluate_optimizer
    from search.training import HandWrittenAdamW, ProgramStep

    torch.set_num_threads(1)
    tasks = default_tasks()
    rows = {"hand-written": HandWrittenAdamW(), "compiled adamw_paper": ProgramStep.of(programs.load("adamw_paper"))}
    for opt in rows.values():
        evaluate_optimizer(opt, tasks)  # warm up: baselines, data, first calls
    times: dict[str, list[float]] = {k: [] for k in rows}
    for _ in range(repeats):
        for name, opt in rows.items():
            times[name].append(evaluate_optimizer(opt, tasks).seconds)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="measured seconds per worker count")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds left out at the start")
    parser.add_argument("--preset", default="quick")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [search_rate(args.preset, w, args.warmup, args.seconds, Path(tmp)) for w in (1, 2)]
    lim = limit()
    print(f"search throughput, preset {args.preset}, default proxy suite, {args.seconds:g}s measured after "
          f"{args.warmup:g}s warm-up per row")
    print(f"{'workers':>7}  {'new evals/s':>11}  {'cache hits':>10}  {'valid children':>14}  "
          f"{'mean eval s':>11}  {'(full ones)':>11}  {'failed':>6}  {'hurdle':>6}  {'infra':>5}")
    for r in rows:
        print(f"{r['workers']:>7}  {r['rate']:>11.1f}  {r['hit_rate']:>10.1%}  {r['valid']:>14.2%}  "
              f"{r['mean_eval_s']:>11.3f}  {r['mean_ok_eval_s']:>11.3f}  {r['failed']:>6.0%}  {r['stopped']:>6.0%}  "
              f"{r['infrastructure']:>5.1%}")
    print(f"scaling 1 -> 2 workers: {rows[1]['rate'] / rows[0]['rate']:.2f}x")
    hand, compiled = lim["hand-written"], lim["compiled adamw_paper"]
    print(f"limit: a full default-suite evaluation takes {hand:.3f}s with the hand-written AdamW step, "
          f"{compiled:.3f}s compiled ({compiled / hand:.2f}x); every candidate at that cost: "
          f"{1 / hand:.1f} evals/s per worker, {2 / hand:.1f} with 2")


if __name__ == "__main__":
    main()
