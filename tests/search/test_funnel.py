"""Funnel selection: the best programs are re-evaluated on the same tasks at 10x, only those
that beat the baseline there go on to 100x, and a resumed run re-runs no stage."""

from __future__ import annotations

import programs
from search.config import FunnelConfig
from search.run import run
from search.store import RunStore
from symbolic_opt import analyze


def test_the_funnel_promotes_only_winners_and_a_resume_reruns_nothing(tmp_path, fakes, local_ray):
    log = tmp_path / "evaluated"
    tasks = [fakes.Task(log=str(log))]
    funnel = FunnelConfig(enabled=True, top_k=3, scales=(10.0, 100.0))
    run(fakes.config(tmp_path / "run", max_evals=40, funnel=funnel), evaluate=fakes.evaluate, tasks=tasks)
    with RunStore(tmp_path / "run") as store:
        rows = store.funnel()
        ranked = store.best(100)
    baseline_hash = analyze(programs.load("adamw_paper")).hash
    stage = {scale: [r for r in rows if r.scale == scale] for scale in (10.0, 100.0)}

    baseline = [r for r in stage[10.0] if r.role == "baseline"]
    assert [r.hash for r in baseline] == [baseline_hash]
    candidates = [r for r in stage[10.0] if r.role == "candidate"]
    expected, seen = [], set()  # the fittest three, equal scores counted once, the baseline left out
    for r in ranked:
        if r.hash != baseline_hash and r.fitness not in seen:
            seen.add(r.fitness)
            expected.append(r.hash)
    assert {r.hash for r in candidates} == set(expected[:3])
    for r in stage[10.0] + stage[100.0]:
        assert r.per_task["fake"]["scale"] == r.scale  # evaluated on the scaled tasks
    for r in candidates:
        assert r.beat_baseline == (r.fitness > baseline[0].fitness)
    winners = {r.hash for r in candidates if r.beat_baseline}
    assert winners, "the fake search improves on the warm start, so some should pass"
    assert {r.hash for r in stage[100.0] if r.role == "candidate"} == winners

    evaluated = log.read_text().splitlines()
    assert len(evaluated) == 40 + len(stage[10.0]) + len(stage[100.0])
    run(resume=tmp_path / "run", evaluate=fakes.evaluate, tasks=tasks)
    assert log.read_text().splitlines() == evaluated  # no search evaluation and no funnel stage ran again
