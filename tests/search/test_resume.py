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
        assert [m.hash for m in restored.population] == [m.hash for m in first.population]
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
