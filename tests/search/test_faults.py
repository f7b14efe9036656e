"""A candidate's exception, nan or hang is its fitness, never a crash of the search; a task
whose worker dies is retried."""

from __future__ import annotations

import time

import programs

from search.evaluate import WORST
from search.run import run
from search.runner import RayPool
from search.store import RunStore


def evaluate_each(pool: RayPool, fakes, modes: dict[str, dict], timeout_s: float) -> dict:
    program = programs.load("adamw_paper")
    for key, task in modes.items():
        pool.submit(key, program, tasks=pool.put([fakes.Task(**task)]), timeout_s=timeout_s)
    out, deadline = {}, time.monotonic() + 60
    while pool.in_flight and time.monotonic() < deadline:
        out.update({d.key: d.outcome for d in pool.results(timeout=0.5)})
    return out


def test_raise_nan_hang_and_a_lost_worker(tmp_path, fakes, local_ray):
    modes = {"ok": {}, "raise": {"mode": "raise"}, "nan": {"mode": "nan"}, "hang": {"mode": "hang"},
             "lost": {"mode": "die_once", "marks": str(tmp_path)}}
    with RayPool(fakes.evaluate, [fakes.Task()], timeout_s=1.0, max_in_flight=5) as pool:
        start = time.monotonic()
        out = evaluate_each(pool, fakes, modes, timeout_s=1.0)
        took = time.monotonic() - start
    assert set(out) == set(modes)
    assert out["ok"].error is None and out["ok"].fitness > 0
    assert out["raise"].fitness == WORST and "ValueError: this candidate raises" in out["raise"].error
    assert out["nan"].fitness == WORST and "non-finite" in out["nan"].error
    assert out["hang"].fitness == WORST and out["hang"].error.startswith("timeout")
    assert out["lost"].error is None and out["lost"].fitness == out["ok"].fitness  # retried on a new worker
    assert list(tmp_path.iterdir())  # ... after its first worker really died
    assert took < 30


def test_a_search_survives_failing_candidates(tmp_path, fakes, local_ray):
    config = fakes.config(tmp_path / "run", max_evals=40, eval_timeout_s=0.5)
    summary = run(config, evaluate=fakes.evaluate, tasks=[fakes.Task(mode="chaos")])
    assert summary.evaluations == 40 and summary.stopped_by == "budget"
    with RunStore(tmp_path / "run") as store:
        records = list(store.evaluations())
    errors = [r.error for r in records if r.error]
    assert errors, "the chaos evaluator should have failed some candidates"
    assert all(r.fitness == WORST for r in records if r.error)
    kinds = {e.split(":")[0].split(" ")[0] for e in errors}
    assert kinds <= {"ValueError", "non-finite", "timeout"}
    assert summary.best.fitness > WORST
