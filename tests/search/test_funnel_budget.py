"""The funnel's budget and progress: ``--funnel-minutes`` stops it with its pending programs
named (in the store, the report and the message), ``symopt funnel RUN`` finishes exactly what
is pending, and every long phase says k of n done and the time left."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from search.config import FunnelConfig
from search.funnel import pending
from search.progress import Phase, duration
from search.report import funnel_table
from search.run import funnel, run
from search.store import RunStore
from search.writeup import _funnel


def _console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=200, force_terminal=False), out


def test_a_phase_says_how_far_it_is_and_how_long_is_left(monkeypatch):
    now = [0.0]
    monkeypatch.setattr("search.progress.time.monotonic", lambda: now[0])
    console, out = _console()
    with Phase(console, "funnel at scale 10", 3, live=True, estimate_s=100.0) as phase:
        now[0] = 10.0
        assert phase.left_s() == pytest.approx(90.0)  # before anything finished: the caller's estimate
        now[0] = 30.0
        phase.done("a passed")
        assert phase.left_s() == pytest.approx(60.0)  # 30 s for one of three: 60 s for the other two
        now[0] = 35.0
        phase.tick()  # a status line only every 10 s
        now[0] = 45.0
        phase.tick()
        now[0] = 61.0  # 31 s since the last finished, more than the 30 s average: no number
        phase.tick()
    assert out.getvalue().splitlines() == [
        "funnel at scale 10: 1 of 3 done, 30s elapsed, about 60s left  (a passed)",
        "funnel at scale 10: 1 of 3 done, 45s elapsed, about 1.5 min left",
        "funnel at scale 10: 1 of 3 done, 61s elapsed, the rest take longer than the average so far",
    ]


def test_durations_read_naturally():
    assert [duration(s) for s in (42, 210, 7200)] == ["42s", "3.5 min", "2.0 h"]


def test_a_funnel_stopped_by_its_budget_says_what_is_pending_and_symopt_funnel_finishes_it(tmp_path, fakes, local_ray):
    log = tmp_path / "evaluated"
    tasks = [fakes.Task(log=str(log), funnel_delay_s=2.0)]
    config = fakes.config(tmp_path / "run", max_evals=30, deterministic=True,
                          funnel=FunnelConfig(enabled=True, top_k=3, scales=(10.0,), seeds=3, minutes=0.02))
    console, out = _console()
    run(config, evaluate=fakes.evaluate, tasks=tasks, console=console)
    text = " ".join(out.getvalue().split())  # rich wraps long paths
    assert "funnel stopped by its budget" in text and f"symopt funnel {tmp_path / 'run'}" in text
    with RunStore(tmp_path / "run") as store:
        waiting = pending(store)
        assert len(waiting) == 3 and {s for s, _ in waiting} == {10.0}  # nothing finished in 1.2 s
        shown = io.StringIO()
        Console(file=shown, width=200).print(funnel_table(store))
        assert shown.getvalue().count("pending") == 3
        assert sum("| pending |" in line for line in _funnel(store)) == 3
    assert len(log.read_text().splitlines()) == 30  # the search's, none of the funnel's

    console, out = _console()
    passed = funnel(tmp_path / "run", evaluate=fakes.evaluate, tasks=tasks, console=console)  # no budget: it finishes
    with RunStore(tmp_path / "run") as store:
        assert pending(store) == []
        judged = [r for r in store.funnel() if r.scale == 10.0]
    assert len(judged) == 3 and {r.hash for r in passed} == {r.hash for r in judged if r.beat_baseline}
    assert sum(" done, " in line for line in out.getvalue().splitlines()) >= 3  # a line per finished program
    assert len(log.read_text().splitlines()) == 33

    funnel(tmp_path / "run", evaluate=fakes.evaluate, tasks=tasks, console=_console()[0])
    assert len(log.read_text().splitlines()) == 33  # a finished funnel evaluates nothing again


def test_a_funnel_needs_a_search_first(tmp_path, fakes):
    config = fakes.config(tmp_path / "run")
    (tmp_path / "run").mkdir()
    config.save(tmp_path / "run" / "config.json")
    with pytest.raises(FileNotFoundError, match="no search run"):
        funnel(tmp_path / "run", evaluate=fakes.evaluate, tasks=[fakes.Task()])


def test_the_summary_rate_is_the_searchs_not_the_funnels(tmp_path, fakes, local_ray):
    import time

    tasks = [fakes.Task(log=str(tmp_path / "evaluated"), funnel_delay_s=2.0)]
    config = fakes.config(tmp_path / "run", max_evals=20, deterministic=True,
                          funnel=FunnelConfig(enabled=True, top_k=2, scales=(10.0,), seeds=3))
    begun = time.monotonic()
    summary = run(config, evaluate=fakes.evaluate, tasks=tasks, console=_console()[0])
    wall = time.monotonic() - begun
    assert summary.seconds < wall - 2.0  # at least one 2 s funnel evaluation is not in it
    assert summary.evals_per_s == pytest.approx(summary.session_evaluations / summary.seconds)
    with RunStore(tmp_path / "run") as store:
        assert store.counters()["elapsed_s"] == pytest.approx(summary.seconds, abs=0.5)


def test_a_budget_spent_between_stages_calibrates_no_further(tmp_path, fakes, local_ray, monkeypatch):
    """The 10x stage finishes inside the budget; the clock then jumps past it, so the 100x stage
    is not calibrated (which can take hours), and its programs are pending."""
    import time
    import types

    import search.funnel as funnel_module

    offset = [0.0]
    monkeypatch.setattr(funnel_module, "time", types.SimpleNamespace(monotonic=lambda: time.monotonic() + offset[0]))
    run_stage = funnel_module._run_stage

    def stage_then_late(*args, **kwargs):
        finished = run_stage(*args, **kwargs)
        offset[0] = 3600.0
        return finished

    monkeypatch.setattr(funnel_module, "_run_stage", stage_then_late)
    calibrate, calibrated = funnel_module.calibrate_suite, []

    def recorded(store, pool, tasks, key, *args, **kwargs):
        calibrated.append(key)
        return calibrate(store, pool, tasks, key, *args, **kwargs)

    monkeypatch.setattr(funnel_module, "calibrate_suite", recorded)
    tasks = [fakes.Task(log=str(tmp_path / "evaluated"))]
    config = fakes.config(tmp_path / "run", max_evals=20, deterministic=True,
                          funnel=FunnelConfig(enabled=True, top_k=2, scales=(10.0, 100.0), seeds=3, minutes=30))
    console, out = _console()
    run(config, evaluate=fakes.evaluate, tasks=tasks, console=console)
    text = " ".join(out.getvalue().split())
    with RunStore(tmp_path / "run") as store:
        assert calibrated == ["calibration@10"]
        passed_10 = {r.hash for r in store.funnel() if r.scale == 10.0 and r.beat_baseline}
        assert passed_10 and {h for s, h in pending(store) if s == 100.0} == passed_10
    assert "funnel stopped by its budget (30 min)" in text and "pending at scale 100" in text
