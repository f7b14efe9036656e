"""Crash and resume: a search subprocess killed with SIGKILL mid-run, then resumed, loses no
evaluation and repeats none; the population, cache and counters come back from the store."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from search.run import Search, load_run_config, run
from search.store import RunStore

SCRIPT = """
from search.run import load_run_config, run
run_dir = {run_dir!r}
task = fakes.FakeTask(delay_s=0.1, log={log!r})
if {resume}:
    run(load_run_config(run_dir), resume=run_dir, evaluate=fakes.fake_evaluate, tasks=[task])
else:
    run(fakes.fake_config(run_dir, max_evals={max_evals}), evaluate=fakes.fake_evaluate, tasks=[task])
"""


def search_process(fakes, tmp_path: Path, run_dir: Path, log: Path, max_evals: int, resume: bool) -> subprocess.Popen:
    script = tmp_path / ("resume.py" if resume else "start.py")
    script.write_text(fakes.script_header + textwrap.dedent(
        SCRIPT.format(run_dir=str(run_dir), log=str(log), max_evals=max_evals, resume=resume)))
    # its own session, so that whatever Ray leaves behind after the SIGKILL can be cleaned up
    return subprocess.Popen([sys.executable, str(script)], start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def evaluated(run_dir: Path) -> int:
    try:
        with sqlite3.connect(run_dir / "store.sqlite", timeout=5) as db:
            return db.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


def test_sigkill_then_resume_loses_and_repeats_nothing(tmp_path, fakes):
    run_dir, log, total = tmp_path / "run", tmp_path / "calls.log", 70
    proc = search_process(fakes, tmp_path, run_dir, log, total, resume=False)
    try:
        deadline = time.monotonic() + 90
        while evaluated(run_dir) < 25:
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "the search made no progress"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        _kill_group(proc)
    before = evaluated(run_dir)
    assert 25 <= before < total
    with RunStore(run_dir) as store:
        in_flight = {c.hash for c in store.pending()}
        population_before = [m.hash for m in store.population(0, 16)]
    assert in_flight, "the kill should land while evaluations are in flight"

    proc = search_process(fakes, tmp_path, run_dir, log, total, resume=True)
    try:
        out, _ = proc.communicate(timeout=120)
    finally:
        _kill_group(proc)
    assert proc.returncode == 0, out

    with RunStore(run_dir) as store:
        hashes = [r.hash for r in store.evaluations()]
        assert store.count("pending") == 0
        counters = store.counters()
    assert len(hashes) == len(set(hashes)) == total == counters["evaluations"]  # nothing lost, nothing twice
    assert in_flight <= set(hashes)  # what was in flight at the kill was sent again
    calls = log.read_text().split()
    repeated = len(calls) - len(set(calls))
    # a completed call repeats only if the kill fell between its end and its commit
    assert repeated <= 3 and set(calls) == set(hashes)
    assert len(population_before) == 16


def test_resume_restores_population_cache_and_counters(tmp_path, fakes, local_ray):
    run_dir = tmp_path / "run"
    first = run(fakes.config(run_dir, max_evals=40), evaluate=fakes.evaluate, tasks=[fakes.Task()])
    config = load_run_config(run_dir).replace(max_evals=60)
    with RunStore(run_dir) as store:
        restored = Search(config, store, fakes.evaluate, [fakes.Task()], console=None)
        assert [m.hash for m in restored.strategy.population()] == [m.hash for m in first.population]
        assert restored.cache.hit_rate == first.cache_hit_rate
        assert restored.counters["evaluations"] == 40
        assert set(restored.cache.by_hash) >= {r.hash for r in store.evaluations()}
    second = run(config, resume=run_dir, evaluate=fakes.evaluate, tasks=[fakes.Task()])
    assert second.evaluations == 60 and second.session_evaluations == 20


def _kill_group(proc: subprocess.Popen) -> None:
    """End the process group this test started (the search and any Ray processes it left)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def test_a_resume_with_its_budget_spent_ends_at_once(tmp_path, fakes, local_ray, capsys):
    run_dir = tmp_path / "run"
    run(fakes.config(run_dir, max_evals=20), evaluate=fakes.evaluate, tasks=[fakes.Task()])
    for budget in (20, 10):
        start = time.monotonic()
        summary = run(load_run_config(run_dir).replace(max_evals=budget), resume=run_dir, evaluate=fakes.evaluate,
                      tasks=[fakes.Task()])
        assert time.monotonic() - start < 5 and summary.session_evaluations == 0 and summary.stopped_by == "budget"
        assert "nothing to do: the run has 20 evaluations and --max-evals is" in capsys.readouterr().out


def test_a_resume_with_only_pending_work_left_finishes_it_and_stops(tmp_path, fakes, local_ray):
    """A session killed with evaluations in flight, resumed with a budget those fill: the pending
    ones are evaluated, no new child is made, and the session ends (it used to spin)."""
    run_dir = tmp_path / "run"
    run(fakes.config(run_dir, max_evals=20), evaluate=fakes.evaluate, tasks=[fakes.Task()])
    with RunStore(run_dir) as store:
        for child in _children(store, 3):
            store.add_pending(child)  # as a SIGKILL leaves them
        extra = store.count("pending")
    start = time.monotonic()
    summary = run(load_run_config(run_dir).replace(max_evals=20 + extra), resume=run_dir, evaluate=fakes.evaluate,
                  tasks=[fakes.Task()])
    assert time.monotonic() - start < 30 and summary.evaluations == 20 + extra and summary.stopped_by == "budget"
    with RunStore(run_dir) as store:
        assert store.count("pending") == 0


def test_a_resume_under_another_fitness_definition_is_refused(tmp_path, fakes, local_ray):
    from search.run import DefinitionMismatch

    run_dir = tmp_path / "run"
    run(fakes.config(run_dir, max_evals=10), evaluate=fakes.evaluate, tasks=[fakes.Task()])
    for changes, what in (({"lr_grid": (0.5, 1.0, 2.0)}, "lr_multipliers"), ({"hurdle": -0.25}, "hurdle")):
        with pytest.raises(DefinitionMismatch, match=rf"(?s)another fitness definition.*{what}: .* in the run's definition"):
            run(load_run_config(run_dir).replace(**changes, max_evals=20), resume=run_dir, evaluate=fakes.evaluate,
                tasks=[fakes.Task()])
    with pytest.raises(DefinitionMismatch, match=r"tasks\[0\]\.task"):
        run(load_run_config(run_dir).replace(max_evals=20), resume=run_dir, evaluate=fakes.evaluate,
            tasks=[fakes.Task(delay_s=0.01)])
    assert load_run_config(run_dir).lr_grid == (1 / 16, 1 / 4, 1.0, 4.0, 16.0)  # the refused config was not saved
    summary = run(load_run_config(run_dir).replace(max_evals=15), resume=run_dir, evaluate=fakes.evaluate,
                  tasks=[fakes.Task()])
    assert summary.evaluations == 15  # the same definition resumes


def test_a_store_of_another_schema_version_is_a_clear_error(tmp_path):
    from search.store import SCHEMA_VERSION, StoreVersionError

    run_dir = tmp_path / "run"
    RunStore(run_dir, create=True).close()
    with sqlite3.connect(run_dir / "store.sqlite") as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreVersionError, match=rf"a newer run store \(schema {SCHEMA_VERSION + 1}; .* reads schema {SCHEMA_VERSION}\)"):
        RunStore(run_dir)
    with sqlite3.connect(run_dir / "store.sqlite") as db:
        db.execute("PRAGMA user_version = 0")  # as schema 1 left it
    with pytest.raises(StoreVersionError, match=r"an older run store \(schema 1; .*start a new run"):
        RunStore(run_dir, create=True)


def _children(store: RunStore, n: int):
    import random

    from search.evolution import Candidate
    from search.fingerprint import fingerprint
    from search.mutate import Mutator

    known = {r.hash for r in store.evaluations()}
    parent = store.best(1)[0]
    mutator, rng, out = Mutator(), random.Random(1), []
    while len(out) < n:
        child = mutator.child(parent.program, rng, parent.hash)
        if child is not None and child.hash not in known | {c.hash for c in out}:
            out.append(Candidate(child.program, child.hash, fingerprint(child.program), parent.hash, child.mutation, 0))
    return out
