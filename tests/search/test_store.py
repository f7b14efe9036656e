"""The run store: what goes in comes back out, the hall of fame, lookups by hash prefix."""

from __future__ import annotations

import math
import random

import programs
import pytest

from search.evolution import Candidate
from search.fingerprint import fingerprint
from search.mutate import Mutator
from search.store import Outcome, RunStore
from symbolic_opt import analyze


def candidate(program, parent=None, mutation="test", epoch=0) -> Candidate:
    return Candidate(program, analyze(program).hash, fingerprint(program), parent, mutation, epoch)


def children(n: int, seed: int = 0) -> list[Candidate]:
    rng, mutator = random.Random(seed), Mutator()
    parent = programs.load("adamw_paper")
    out, seen = [], set()
    while len(out) < n:
        child = mutator.child(parent, rng)
        if child.hash not in seen:
            seen.add(child.hash)
            out.append(candidate(child.program, analyze(parent).hash, child.mutation))
    return out


@pytest.fixture
def store(tmp_path):
    with RunStore(tmp_path / "run", create=True) as s:
        yield s


def test_evaluations_stream_in_and_read_back(store):
    cands = children(5)
    for i, c in enumerate(cands):
        store.add_pending(c)
        store.add_evaluation(c, Outcome(float(i), float(i) / 2, {"task": {"valid": i}}, 0.1, None), {"evaluations": i + 1})
    records = list(store.evaluations())
    assert [r.hash for r in records] == [c.hash for c in cands]
    r = records[3]
    assert (r.fitness, r.test_fitness, r.per_task, r.mutation) == (3.0, 1.5, {"task": {"valid": 3}}, cands[3].mutation)
    assert r.parent_hash == cands[3].parent_hash and r.fingerprint == cands[3].fingerprint
    assert r.program == cands[3].program
    assert store.count("pending") == 0
    assert store.counters()["evaluations"] == 5
    assert [b.fitness for b in store.best(2)] == [4.0, 3.0]


def test_errors_and_nan_are_stored_and_kept_out_of_the_best(store):
    a, b = children(2)
    store.add_evaluation(a, Outcome(-1000.0, -1000.0, {}, 0.0, "ValueError: boom"), {})
    store.add_evaluation(b, Outcome(math.nan, math.nan, {}, 0.0, None), {})
    assert store.record(a.hash).error == "ValueError: boom"
    assert math.isnan(store.record(b.hash).fitness)
    assert store.best(5) == []


def test_hall_of_fame_has_the_best_of_each_length(store):
    cands = children(12, seed=1)
    for i, c in enumerate(cands):
        store.add_evaluation(c, Outcome(float(i), 0.0, {}, 0.0, None), {})
    fame = store.hall_of_fame()
    lengths = sorted({c.length for c in cands})
    assert [r.length for r in fame] == lengths
    for r in fame:
        assert r.fitness == max(float(i) for i, c in enumerate(cands) if c.length == r.length)


def test_program_by_hash_or_prefix(store):
    cands = children(30, seed=2)
    for c in cands:
        store.add_evaluation(c, Outcome(0.0, 0.0, {}, 0.0, None), {})
    c = cands[7]
    assert store.program(c.hash) == c.program
    assert store.program(c.hash[:10]) == c.program
    with pytest.raises(KeyError, match="no program with hash"):
        store.program("zzzz")
    with pytest.raises(KeyError, match="ambiguous"):
        store.program(_common_prefix(cands))


def _common_prefix(cands) -> str:
    """A one-digit prefix shared by at least two hashes (30 hashes, 16 digits: one exists)."""
    firsts = [c.hash[0] for c in cands]
    return next(d for d in firsts if firsts.count(d) > 1)


def test_population_pending_and_cache_restore(store):
    seed = candidate(programs.load("adamw_paper"), mutation="warm start")
    store.add_evaluation(seed, Outcome(0.0, 0.0, {}, 0.0, None), {}, seeds=3)
    cands = children(6, seed=3)
    for i, c in enumerate(cands[:4]):
        store.add_evaluation(c, Outcome(float(i), 0.0, {}, 0.0, None), {})
    store.add_member(cands[4], 2.0, "fingerprint", {})
    store.add_pending(cands[5])
    population = store.population(epoch=0, size=5)
    assert [m.hash for m in population] == [c.hash for c in cands[:5]]  # the last 5 members, oldest first
    assert len(store.population(epoch=0, size=100)) == 4 + 4 + 1
    by_hash, by_fp = store.known_fitness()
    assert by_hash[cands[4].hash] == 2.0 and by_hash[cands[2].hash] == 2.0
    assert by_fp[cands[1].fingerprint] == 1.0
    assert [p.hash for p in store.pending()] == [cands[5].hash]


def test_a_reader_sees_the_writer_meanwhile(store):
    c = children(1)[0]
    store.add_evaluation(c, Outcome(1.0, 1.0, {}, 0.0, None), {})
    with RunStore(store.run_dir) as reader:
        assert reader.best(1)[0].hash == c.hash


def test_opening_a_missing_run_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="no search run"):
        RunStore(tmp_path / "nothing")
