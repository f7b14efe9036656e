"""A candidate's nan or divergence is its fitness, never a crash of the search; what the
infrastructure does (a worker dies, a job hangs past the watchdog, the evaluator itself
raises) is never a fitness: the job is retried once, then logged as an incident, kept out of
the store and the cache, and evaluated again on --resume."""

from __future__ import annotations

import time

import programs

from search.evaluate import WORST
from search.run import load_run_config, run
from search.runner import RayPool, watchdog
from search.store import RunStore


def evaluate_each(pool: RayPool, fakes, modes: dict[str, dict], timeout_s: float) -> dict:
    program = programs.load("adamw_paper")
    for key, task in modes.items():
        pool.submit(key, program, tasks=pool.put([fakes.Task(**task)]), timeout_s=timeout_s)
    out, deadline = {}, time.monotonic() + 90
    while pool.in_flight and time.monotonic() < deadline:
        out.update({d.key: d.outcome for d in pool.results(timeout=0.5)})
    return out


def test_raise_nan_hang_and_lost_workers(tmp_path, fakes, local_ray):
    modes = {"ok": {}, "raise": {"mode": "raise"}, "nan": {"mode": "nan"}, "hang": {"mode": "hang"},
             "lost": {"mode": "die_once", "marks": str(tmp_path)}, "dead": {"mode": "die"}}
    with RayPool(fakes.evaluate, [fakes.Task()], timeout_s=1.0, max_in_flight=6, grace_s=0.5) as pool:
        start = time.monotonic()
        out = evaluate_each(pool, fakes, modes, timeout_s=1.0)
        took = time.monotonic() - start
        assert pool.killed == 2  # the hanging job, twice
    assert set(out) == set(modes)
    assert out["ok"].error is None and out["ok"].fitness > 0 and not out["ok"].infrastructure
    # the candidate's own failure (a nan fitness): its fitness
    assert out["nan"].fitness == WORST and "non-finite" in out["nan"].error and not out["nan"].infrastructure
    # the evaluator raising is never the candidate's (it returns a candidate's failures): retried, then lost
    assert out["raise"].infrastructure and "the evaluator raised ValueError: this candidate raises" in out["raise"].error
    # the infrastructure's: retried once, then marked as such, with no fitness
    assert out["lost"].error is None and out["lost"].fitness == out["ok"].fitness  # retried on a new worker
    assert list(tmp_path.iterdir())  # ... after its first worker really died
    for key, why in (("hang", "timeout: no answer after 2.5 s of wall time (2 tries)"), ("dead", "worker lost")):
        assert out[key].infrastructure and why in out[key].error, out[key]
        assert out[key].fitness != out[key].fitness  # nan: no fitness at all
    assert took < 60


def test_the_time_limit_counts_from_when_a_worker_starts_the_job(fakes, local_ray):
    """Four 1.5 s jobs on two workers, the watchdog at 2 s: the last two wait 1.5 s for a
    worker, which must not count against them (from submission they would take 3 s)."""
    with RayPool(fakes.evaluate, [fakes.Task()], timeout_s=1.0, max_in_flight=4, grace_s=0.0) as pool:
        assert watchdog(1.0, 0.0) == 2.0 and pool.workers == 2
        out = evaluate_each(pool, fakes, {f"job{i}": {"delay_s": 1.5} for i in range(4)}, timeout_s=1.0)
    assert all(o.error is None and not o.infrastructure for o in out.values()), out


def test_a_search_survives_failing_candidates(tmp_path, fakes, local_ray):
    config = fakes.config(tmp_path / "run", max_evals=40)
    summary = run(config, evaluate=fakes.evaluate, tasks=[fakes.Task(mode="chaos")])
    assert summary.evaluations == 40 and summary.stopped_by == "budget"
    with RunStore(tmp_path / "run") as store:
        records = list(store.evaluations())
    errors = [r.error for r in records if r.error]
    assert errors, "the chaos evaluator should have failed some candidates"
    assert all(r.fitness == WORST for r in records if r.error)
    kinds = {e.split(":")[0].split(" ")[0] for e in errors}
    assert kinds <= {"non-finite"}
    with RunStore(tmp_path / "run") as store:
        assert {e.split(":")[0] for _, e, _ in store.incidents()} <= {"the evaluator raised ValueError"}
    assert summary.best.fitness > WORST


def test_an_infrastructure_failure_is_no_fitness_is_not_cached_and_is_retried_on_resume(tmp_path, fakes, local_ray):
    marks = tmp_path / "marks"
    marks.mkdir()
    (marks / "DIE").write_text("workers die while this file exists")
    task = fakes.Task(mode="die_some", marks=str(marks))
    run_dir = tmp_path / "run"
    run(fakes.config(run_dir, max_evals=60), evaluate=fakes.evaluate, tasks=[task])
    with RunStore(run_dir) as store:
        lost = {h for h, _, _ in store.incidents()}
        evaluated = {r.hash for r in store.evaluations()}
        pending = {c.hash for c in store.pending()}
        by_hash, _ = store.known_fitness()
        assert store.counters()["infrastructure"] == len(store.incidents())
    assert lost, "some candidates' workers should have died"
    assert all("worker lost" in e for _, e, _ in RunStore(run_dir).incidents())
    assert not lost & evaluated and lost <= pending  # no fitness stored; waiting for a resume
    assert not lost & set(by_hash)  # and nothing the cache would serve

    (marks / "DIE").unlink()  # the infrastructure is fine again
    config = load_run_config(run_dir).replace(max_evals=60 + len(lost))
    run(config, resume=run_dir, evaluate=fakes.evaluate, tasks=[task])
    with RunStore(run_dir) as store:
        hashes = [r.hash for r in store.evaluations()]
        assert store.count("pending") == 0
    assert lost <= set(hashes) and len(hashes) == len(set(hashes))  # each evaluated, once


def test_a_lost_warm_start_stops_the_search_instead_of_waiting_forever(tmp_path, fakes, local_ray):
    marks = tmp_path / "marks"
    marks.mkdir()
    (marks / "DIE").write_text("workers die while this file exists")
    run_dir = tmp_path / "run"
    start = time.monotonic()
    summary = run(fakes.config(run_dir, max_evals=10), evaluate=fakes.evaluate,
                  tasks=[fakes.Task(mode="die_while", marks=str(marks))])
    assert summary.stopped_by == "lost" and summary.evaluations == 0 and time.monotonic() - start < 60
    with RunStore(run_dir) as store:
        assert store.count("pending") == 1 and len(store.incidents()) == 1
    (marks / "DIE").unlink()
    summary = run(load_run_config(run_dir), resume=run_dir, evaluate=fakes.evaluate,
                  tasks=[fakes.Task(mode="die_while", marks=str(marks))])
    assert summary.evaluations == 10
