"""Regularized evolution, the fingerprint cache, and a small whole search on a fake evaluator."""

from __future__ import annotations

import collections
import random

import programs
import pytest

from search.evolution import Member, Plateau, Population
from search.fingerprint import Cache, fingerprint
from search.run import run
from search.store import RunStore
from symbolic_opt import analyze, parse, print_program


def member(name: str, fitness: float) -> Member:
    return Member(programs.load("lion"), name, fitness)


def test_the_oldest_member_leaves_whatever_its_fitness():
    pop = Population(3, 2, [member("a", 9.0), member("b", 1.0), member("c", 2.0)])
    pop.add(member("d", 0.0))
    assert [m.hash for m in pop] == ["b", "c", "d"]


def test_tournament_picks_the_fittest_of_its_sample():
    pop = Population(5, 5, [member(str(i), float(i)) for i in range(5)])
    assert pop.select(random.Random(0)).hash == "4"  # T = P: always the best
    pop = Population(5, 2, [member(str(i), float(i)) for i in range(5)])
    picks = collections.Counter(pop.select(random.Random(s)).hash for s in range(500))
    assert "0" not in picks  # with T = 2 the worst never wins
    assert picks["4"] > picks["1"]


def test_plateau_counts_evaluations_without_improvement():
    plateau = Plateau(3)
    assert not plateau.update(1.0)
    assert [plateau.update(0.5) for _ in range(3)] == [False, False, True]
    assert not plateau.update(2.0)
    assert not Plateau(0).update(-1.0)


ADAMW = print_program(programs.load("adamw_paper"))


@pytest.mark.parametrize("old, new", [
    ("g2 = square(g)", "g2 = g * g"),
    ("wd = w * 0.01", "wd = w * 0.005\n    wd = wd + wd"),
    ("update = update + wd", "update = wd + update\n    update = update * 1.0"),
    ("sqrt_v = sqrt(v)", "sqrt_v = sqrt(v)\n    sqrt_v = abs(sqrt_v)"),
])
def test_fingerprint_sees_through_algebra_the_hash_misses(old, new):
    a, b = programs.load("adamw_paper"), parse(ADAMW.replace(old, new))
    assert analyze(a).hash != analyze(b).hash
    assert fingerprint(a) == fingerprint(b) is not None


@pytest.mark.parametrize("old, new", [
    ("v = interp(g2, v, 0.999)", "v = interp(g2, v, 0.99)"),
    ("update = m / sqrt_v", "update = sign(m)"),
    ("g2 = square(g)", "g2 = square(g)\n    g = clip(g, lr)"),
])
def test_fingerprint_tells_different_programs_apart(old, new):
    assert fingerprint(programs.load("adamw_paper")) != fingerprint(parse(ADAMW.replace(old, new)))


def test_fingerprint_merges_reads_of_a_state_that_stays_zero():
    sgd = parse("def train(w, g, m, lr):\n    u = g * lr\n    return u, m\n")
    disguised = parse("def train(w, g, m, lr):\n    u = g * lr\n    s = sqrt(m)\n    u = u + s\n    m = sign(m)\n    return u, m\n")
    assert analyze(sgd).hash != analyze(disguised).hash
    assert fingerprint(sgd) == fingerprint(disguised)


def test_fingerprint_of_a_program_that_blows_up_is_none():
    assert fingerprint(parse(ADAMW.replace("wd = w * 0.01", "wd = exp(w)\n    wd = exp(wd)\n    wd = exp(wd)\n    wd = exp(wd)"))) is None


def test_cache_hits_by_hash_by_fingerprint_and_in_flight():
    cache = Cache()
    assert cache.lookup("h1", "f1") is None
    cache.reserve("h1", "f1")
    assert cache.lookup("h1", "f9").pending == "h1"
    assert cache.lookup("h2", "f1").pending == "h1"
    cache.add("h1", "f1", 0.5)
    assert cache.lookup("h1", None).fitness == 0.5
    hit = cache.lookup("h3", "f1")
    assert (hit.via, hit.fitness) == ("fingerprint", 0.5)
    assert cache.lookup("h3", None).via == "hash"  # now known by its own hash too
    assert (cache.lookups, cache.hits) == (6, 5)


def test_search_never_trains_a_program_twice_and_improves(tmp_path, fakes, local_ray):
    config = fakes.config(tmp_path / "run", max_evals=120, population=16, tournament=4)
    summary = run(config, evaluate=fakes.evaluate, tasks=[fakes.Task(log=str(tmp_path / "log"))])
    with RunStore(tmp_path / "run") as store:
        records = list(store.evaluations())
        members = store.count("members")
        counters = store.counters()
    calls = (tmp_path / "log").read_text().split()
    assert len(records) == len(calls) == 120 == summary.evaluations
    assert len(set(calls)) == 120  # no hash evaluated twice
    fps = [r.fingerprint for r in records if r.fingerprint and r.error is None]
    assert len(fps) == len(set(fps))  # no behaviour evaluated twice either (failures are known by hash only)
    assert 0 < summary.cache_hit_rate < 1
    # the warm start and its 15 copies, then every child: evaluated, or a cache hit
    hits = counters["hash_hits"] + counters["fingerprint_hits"]
    assert 16 + 119 <= members <= 16 + 119 + hits
    assert counters["children"] == 119 + hits
    assert summary.valid_child_rate >= 0.99
    assert summary.best.fitness > summary.initial.fitness


def test_plateau_restarts_from_the_best_then_from_the_initial_program(tmp_path, fakes, local_ray):
    config = fakes.config(tmp_path / "run", max_evals=80, population=8, tournament=2, restart_plateau=8)
    summary = run(config, evaluate=fakes.evaluate, tasks=[fakes.Task()])
    with RunStore(tmp_path / "run") as store:
        counters = store.counters()
        seeds = store._db.execute(
            "SELECT epoch, mutation, COUNT(*) FROM members WHERE source = 'seed' GROUP BY epoch ORDER BY epoch").fetchall()
    assert counters["restarts"] >= 2 and counters["epoch"] == counters["restarts"]
    assert seeds[0][2] == 7  # the warm start's evaluation plus 7 copies
    assert "from the best" in seeds[1][1] and "from the initial program" in seeds[2][1]
    assert all(count == 8 for _, _, count in seeds[1:])
    assert summary.evaluations == 80


def test_deterministic_runs_repeat_exactly_whatever_finishes_first(tmp_path, fakes, local_ray):
    def search(name: str):
        log = tmp_path / f"{name}.log"
        config = fakes.config(tmp_path / name, max_evals=40, population=8, tournament=3, restart_plateau=12,
                              seed=7, deterministic=True)
        run(config, evaluate=fakes.evaluate, tasks=[fakes.Task(jitter_s=0.05, log=str(log))])
        with RunStore(tmp_path / name) as store:
            records = [(r.hash, r.parent_hash, r.mutation, r.fitness) for r in store.evaluations()]
            counters = store.counters()
        return records, (counters["children"], counters["restarts"], store_members(tmp_path / name)), log.read_text().split()

    first, first_state, first_finished = search("a")
    second, second_state, second_finished = search("b")
    assert len(first) == 40 and first == second and first_state == second_state
    applied = [h for h, *_ in first]
    # the workers finished in another order than the children were made, at least once
    assert first_finished != applied or second_finished != applied


def store_members(run_dir):
    with RunStore(run_dir) as store:
        return [(m.hash, m.fitness) for m in store.population(int(store.counters()["epoch"]), 8)]


def test_a_deterministic_session_stopped_by_time_keeps_every_result_and_resumes(tmp_path, fakes, local_ray):
    config = fakes.config(tmp_path / "run", max_evals=40, minutes=0.03, seed=3, deterministic=True)
    tasks = [fakes.Task(delay_s=0.1, jitter_s=0.2)]  # at most 2 workers x 1.8 s / 0.1 s = 36 in the first session
    first = run(config, evaluate=fakes.evaluate, tasks=tasks)
    assert first.stopped_by == "time" and 0 < first.evaluations < 40
    second = run(config.replace(minutes=2.0), resume=tmp_path / "run", evaluate=fakes.evaluate, tasks=tasks)
    assert second.stopped_by == "budget" and second.evaluations == 40
    with RunStore(tmp_path / "run") as store:
        hashes = [r.hash for r in store.evaluations()]
        assert store.count("pending") == 0
    assert len(hashes) == len(set(hashes)) == 40  # nothing lost, nothing evaluated twice


def test_random_search_mutates_the_warm_start_a_few_times_and_never_selects(tmp_path, fakes, local_ray):
    import programs
    from symbolic_opt import analyze

    config = fakes.config(tmp_path / "run", max_evals=40, strategy="random")
    summary = run(config, evaluate=fakes.evaluate, tasks=[fakes.Task()])
    warm = analyze(programs.load("adamw_paper")).hash
    with RunStore(tmp_path / "run") as store:
        records = list(store.evaluations())
    assert summary.evaluations == 40 and warm in {r.hash for r in records}
    children = [r for r in records if r.hash != warm]
    assert all(r.parent_hash == warm for r in children)  # no child of a child: no selection
    steps = [len(r.mutation.split("; ")) for r in children]
    assert set(steps) <= {1, 2, 3} and len(set(steps)) > 1
    assert [m.hash for m in summary.population] == [warm]
