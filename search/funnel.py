"""Funnel selection against meta-overfitting (paper-notes section 3).

At the end of a search, the ``top_k`` programs by proxy fitness (counting programs with exactly
the same proxy scores once: equivalent programs the fingerprint did not merge) are re-evaluated on the same
tasks made ``scales[0]`` times larger (10x), beside the baseline (the AdamW program); those
that beat the baseline there go on to ``scales[1]`` (100x), and so on. Every result is a row
of the store's ``funnel`` table (the baseline's with ``role = 'baseline'``); a stage already
in the store is not run again, so a resumed run finishes an interrupted funnel.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

from rich.console import Console

from symbolic_opt.analysis import analyze
from symbolic_opt.loading import resolve_program
from symbolic_opt.printer import print_program

from .config import SearchConfig
from .store import EvaluationRecord, Outcome, RunStore


def run_funnel(store: RunStore, pool, config: SearchConfig, tasks: Sequence, console: Console) -> list[EvaluationRecord]:
    """Run the funnel on ``pool`` (a started ``RayPool``); the survivors of the last stage."""
    funnel = config.funnel
    baseline = resolve_program(funnel.baseline)
    baseline_hash = analyze(baseline).hash
    survivors = _distinct(store.best(10 * funnel.top_k + 1), baseline_hash, funnel.top_k)
    results: list[EvaluationRecord] = []
    for scale in funnel.scales:
        if not survivors:
            break
        console.print(f"funnel: {len(survivors)} program(s) at scale {scale:g} against {funnel.baseline}", highlight=False)
        scaled = pool.put(tuple(dataclasses.replace(t, scale=t.scale * scale) for t in tasks))
        timeout = funnel.timeout_s or config.eval_timeout_s * scale
        jobs = {baseline_hash: (print_program(baseline), "baseline")}
        jobs.update({r.hash: (r.text, "candidate") for r in survivors})
        outcomes: dict[str, Outcome] = {}
        for program_hash, (text, role) in jobs.items():
            done = store.funnel_result(program_hash, scale)
            if done is not None:
                outcomes[program_hash] = Outcome(done.fitness, done.test_fitness, done.per_task, done.seconds or 0.0, done.error)
            else:
                pool.submit(program_hash, resolve_program(text), tasks=scaled, timeout_s=timeout)
        while pool.in_flight:
            for done in pool.results(timeout=0.5):
                outcomes[done.key] = done.outcome
                text, role = jobs[done.key]
                store.add_funnel(done.key, text, role, scale, done.outcome, None)
        bar = outcomes[baseline_hash]
        results = []
        for program_hash, (text, role) in jobs.items():
            beat = None if role == "baseline" else outcomes[program_hash].error is None and outcomes[program_hash].fitness > bar.fitness
            store.add_funnel(program_hash, text, role, scale, outcomes[program_hash], beat)
        results = [r for r in store.funnel() if r.scale == scale and r.role == "candidate" and r.beat_baseline]
        survivors = results
    return results


def _distinct(records: Sequence[EvaluationRecord], baseline_hash: str, k: int) -> list[EvaluationRecord]:
    """The first ``k`` records with distinct proxy scores, the baseline left out."""
    out, seen = [], set()
    for r in records:
        key = (round(r.fitness, 12), round(r.test_fitness, 12))
        if r.hash != baseline_hash and key not in seen:
            seen.add(key)
            out.append(r)
    return out[:k]
