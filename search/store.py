"""The run store: every program a search evaluates, in ``RUN_DIR/store.sqlite``.

    store = RunStore("runs/quick-20260101-120000")
    store.best(5)                    # the five fittest evaluated programs
    store.hall_of_fame()             # the fittest program of each length (live statements)
    store.program("3fa2")            # a Program by hash or unique hash prefix
    for record in store.evaluations(): ...

Tables (SQLite, WAL, one writer: the search driver; any number of readers meanwhile):

* ``evaluations``: one row per program actually trained (unique dataflow hash): its
  fingerprint, text, parent, mutation, live length, proxy fitness, held-out test fitness,
  per-task JSON, seconds, error, restart epoch, time;
* ``members``: every child made, in order (evaluated ones and cache hits, which cost
  nothing), and the seed members of each epoch, with whether it joined the population
  (evolution keeps failed children out). The population is the last P members of the current
  epoch that joined, which is how a search resumes;
* ``pending``: children sent for evaluation and not back yet; a resumed search sends them again;
* ``counters``: the search's counters (mutation attempts, invalid children, epoch, ...);
* ``funnel``: re-evaluations at larger task scales (``funnel.py``), with each verdict;
* ``fitness``: what the run's numbers mean: its fitness definition (tasks, seeds, lr grid,
  baseline, versions, data hashes) and each suite's calibration (``definition.py``);
* ``incidents``: jobs the infrastructure lost (a worker died, the watchdog fired): never a
  fitness; the candidate stays in ``pending``, so a resume evaluates it again;
* the view ``hall_of_fame``: the fittest evaluated program of each length.

Each completed evaluation is one transaction (evaluation, member, pending row, counters), so a
SIGKILL at any moment leaves a consistent store. The schema's version is SQLite's
``PRAGMA user_version`` (``SCHEMA_VERSION``): a store of another version is refused with a
message, never misread.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

from symbolic_opt.ir import Program
from symbolic_opt.parser import parse

from .evolution import Candidate, Member

STORE_NAME = "store.sqlite"

SCHEMA_VERSION = 3
"""1: before fitness definitions (no ``fitness`` and ``incidents`` tables). 2: without
``members.joined``. 3: this one."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS evaluations (
    id INTEGER PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE,
    fingerprint TEXT,
    text TEXT NOT NULL,
    parent_hash TEXT,
    mutation TEXT,
    length INTEGER NOT NULL,
    fitness REAL,
    test_fitness REAL,
    per_task TEXT NOT NULL,
    seconds REAL,
    error TEXT,
    stopped TEXT,           -- why the evaluation stopped early (a hurdle), or NULL
    epoch INTEGER NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS evaluations_fitness ON evaluations (fitness);
CREATE INDEX IF NOT EXISTS evaluations_length ON evaluations (length, fitness);
CREATE TABLE IF NOT EXISTS members (
    seq INTEGER PRIMARY KEY,
    epoch INTEGER NOT NULL,
    hash TEXT NOT NULL,
    text TEXT NOT NULL,
    parent_hash TEXT,
    mutation TEXT,
    fitness REAL,
    source TEXT NOT NULL,   -- seed | evaluated | hash (cache hit) | fingerprint (cache hit)
    joined INTEGER NOT NULL DEFAULT 1,  -- 0: a child the strategy kept out of its population
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS members_epoch ON members (epoch, seq);
CREATE TABLE IF NOT EXISTS pending (
    hash TEXT PRIMARY KEY,
    fingerprint TEXT,
    text TEXT NOT NULL,
    parent_hash TEXT,
    mutation TEXT,
    epoch INTEGER NOT NULL,
    submitted REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value REAL NOT NULL);
CREATE TABLE IF NOT EXISTS funnel (
    id INTEGER PRIMARY KEY,
    hash TEXT NOT NULL,
    text TEXT NOT NULL,
    role TEXT NOT NULL,     -- candidate | baseline
    scale REAL NOT NULL,
    fitness REAL,
    test_fitness REAL,
    per_task TEXT NOT NULL,
    seconds REAL,
    error TEXT,
    beat_baseline INTEGER,
    verdict TEXT,           -- JSON: the significance test, means and spreads (candidates)
    created REAL NOT NULL,
    UNIQUE (hash, scale)
);
CREATE TABLE IF NOT EXISTS fitness (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS incidents (
    id INTEGER PRIMARY KEY,
    hash TEXT NOT NULL,
    text TEXT NOT NULL,
    error TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE VIEW IF NOT EXISTS hall_of_fame AS
    SELECT * FROM evaluations AS e
    WHERE e.error IS NULL AND e.id = (
        SELECT id FROM evaluations AS f
        WHERE f.length = e.length AND f.error IS NULL
        ORDER BY f.fitness DESC, f.id LIMIT 1)
    ORDER BY e.length;
"""


@dataclass(frozen=True)
class EvaluationRecord:
    """One row of ``evaluations`` (or of ``funnel``, where ``scale`` and ``role`` are set)."""

    id: int
    hash: str
    text: str
    fitness: float
    test_fitness: float
    per_task: Mapping[str, Any]
    seconds: float | None
    error: str | None
    created: float
    fingerprint: str | None = None
    parent_hash: str | None = None
    mutation: str | None = None
    length: int | None = None
    epoch: int | None = None
    scale: float | None = None
    role: str | None = None
    beat_baseline: bool | None = None
    stopped: str | None = None
    verdict: Mapping[str, Any] | None = None

    @property
    def program(self) -> Program:
        return parse(self.text)


@dataclass(frozen=True)
class Outcome:
    """What an evaluation gave, as stored (``search.evaluate.Evaluation``'s fields)."""

    fitness: float
    test_fitness: float
    per_task: Mapping[str, Any]
    seconds: float
    error: str | None
    stopped: str | None = None
    """Why the evaluation stopped early (a hurdle); its fitness is still the program's."""
    infrastructure: bool = False
    """The infrastructure lost the job (``runner.py``): no fitness, never stored as one."""


class StoreVersionError(RuntimeError):
    """A store written by another version of the schema."""


class RunStore:
    """A run directory's store. ``create=True`` makes the directory and the tables."""

    def __init__(self, run_dir: str | Path, *, create: bool = False):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / STORE_NAME
        if create:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        elif not self.path.is_file():
            raise FileNotFoundError(f"no search run at {self.run_dir} (no {STORE_NAME} there)")
        self._db = sqlite3.connect(self.path, timeout=30.0)
        self._db.row_factory = sqlite3.Row
        self._check_version(create)
        # WAL + NORMAL: a committed transaction survives the process being killed
        self._db.execute("PRAGMA synchronous=NORMAL")

    def _check_version(self, create: bool) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        has_tables = self._db.execute("SELECT COUNT(*) FROM sqlite_master WHERE name = 'evaluations'").fetchone()[0]
        if has_tables and version == 0:
            version = 1  # schema 1 set no user_version
        if version not in (0, SCHEMA_VERSION):
            self._db.close()
            age = "an older" if version < SCHEMA_VERSION else "a newer"
            advice = ("its scores were measured under a fitness this version no longer computes: start a new run"
                      if version < SCHEMA_VERSION else "upgrade symbolic-opt to read it")
            raise StoreVersionError(f"{self.path} is {age} run store (schema {version}; this version of symbolic-opt "
                                    f"reads schema {SCHEMA_VERSION}): {advice}")
        if version == 0:
            if not create:
                self._db.close()
                raise StoreVersionError(f"{self.path} is not a run store (no tables)")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(SCHEMA)
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "RunStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- reading (for everyone) --------------------------------------------------------
    def evaluations(self) -> Iterator[EvaluationRecord]:
        """Every evaluated program, in the order the evaluations completed."""
        for row in self._db.execute("SELECT * FROM evaluations ORDER BY id"):
            yield _record(row)

    def best(self, n: int = 10) -> list[EvaluationRecord]:
        """The ``n`` fittest evaluated programs (by proxy fitness), best first."""
        rows = self._db.execute(
            "SELECT * FROM evaluations WHERE error IS NULL AND fitness IS NOT NULL "
            "ORDER BY fitness DESC, id LIMIT ?", (n,))
        return [_record(r) for r in rows]

    def hall_of_fame(self) -> list[EvaluationRecord]:
        """The fittest evaluated program of each length (live statements), shortest first.
        The best overall is the fittest of these."""
        return [_record(r) for r in self._db.execute("SELECT * FROM hall_of_fame")]

    def program(self, hash_or_prefix: str) -> Program:
        """The program with this dataflow hash, or the one hash that starts with this prefix.
        ``KeyError`` saying why when there is none or more than one."""
        prefix = hash_or_prefix.strip().lower()
        if not prefix:
            raise KeyError("empty hash")
        found: dict[str, str] = {}
        for table in ("evaluations", "members", "funnel", "pending"):
            for row in self._db.execute(f"SELECT hash, text FROM {table} WHERE hash LIKE ? || '%'", (prefix,)):
                found.setdefault(row["hash"], row["text"])
        if not found:
            raise KeyError(f"no program with hash {hash_or_prefix!r} in {self.path}")
        if len(found) > 1:
            shown = ", ".join(sorted(found)[:8])
            raise KeyError(f"hash prefix {hash_or_prefix!r} is ambiguous: {len(found)} programs match ({shown}...)")
        return parse(next(iter(found.values())))

    def record(self, program_hash: str) -> EvaluationRecord | None:
        """The evaluation of this exact hash, if any."""
        row = self._db.execute("SELECT * FROM evaluations WHERE hash = ?", (program_hash,)).fetchone()
        return _record(row) if row else None

    def funnel(self) -> list[EvaluationRecord]:
        """The funnel's re-evaluations, by scale, fittest first."""
        rows = self._db.execute("SELECT * FROM funnel ORDER BY scale, fitness DESC")
        return [_record(r) for r in rows]

    def counters(self) -> dict[str, float]:
        return {r["name"]: r["value"] for r in self._db.execute("SELECT name, value FROM counters")}

    def count(self, table: str = "evaluations") -> int:
        if table not in ("evaluations", "members", "pending", "funnel", "incidents"):
            raise ValueError(f"no table {table!r}")
        return self._db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]

    def timeline(self) -> list[tuple[float, float]]:
        """``(created, fitness)`` of every successful evaluation, in order (for plots)."""
        rows = self._db.execute("SELECT created, fitness FROM evaluations WHERE error IS NULL ORDER BY id")
        return [(r[0], r[1]) for r in rows]

    def history(self) -> list[tuple]:
        """``(id, created, fitness, error, stopped, length, mutation, parent_hash, hash)`` of
        every evaluation, in order (for reports)."""
        rows = self._db.execute("SELECT id, created, fitness, error, stopped, length, mutation, parent_hash, hash "
                                "FROM evaluations ORDER BY id")
        return [tuple(r) for r in rows]

    def children(self) -> list[tuple]:
        """``(epoch, fitness, source, mutation, hash, joined)`` of every member row (children
        made, and seeds), in order; ``joined``: whether it entered the population."""
        rows = self._db.execute("SELECT epoch, fitness, source, mutation, hash, joined FROM members ORDER BY seq")
        return [tuple(r) for r in rows]

    def fitness_keys(self) -> list[str]:
        """The keys of the ``fitness`` table (``definition``, ``calibration``, ``calibration@10``...)."""
        return [r[0] for r in self._db.execute("SELECT key FROM fitness ORDER BY key")]

    # --- restoring a search --------------------------------------------------------------
    def population(self, epoch: int, size: int) -> list[Member]:
        """The last ``size`` members of ``epoch``, oldest first."""
        rows = self._db.execute(
            "SELECT hash, text, fitness FROM members WHERE epoch = ? AND joined ORDER BY seq DESC LIMIT ?", (epoch, size))
        return [Member(parse(r["text"]), r["hash"], _float(r["fitness"])) for r in reversed(rows.fetchall())]

    def known_fitness(self) -> tuple[dict[str, float], dict[str, float]]:
        """Fitness by hash (every evaluation and member) and by fingerprint (evaluations):
        the cache a resumed search starts with."""
        by_hash: dict[str, float] = {}
        by_fp: dict[str, float] = {}
        for r in self._db.execute("SELECT hash, fitness FROM members"):
            by_hash[r[0]] = _float(r[1])
        for r in self._db.execute("SELECT hash, fingerprint, fitness, error FROM evaluations ORDER BY id"):
            by_hash[r[0]] = _float(r[2])
            if r[1] is not None and r[3] is None:  # failures by hash only (fingerprint.Cache.add)
                by_fp.setdefault(r[1], _float(r[2]))
        return by_hash, by_fp

    def pending(self) -> list[Candidate]:
        rows = self._db.execute("SELECT * FROM pending ORDER BY submitted")
        return [
            Candidate(parse(r["text"]), r["hash"], r["fingerprint"], r["parent_hash"], r["mutation"], r["epoch"])
            for r in rows
        ]

    # --- writing (the search driver only) ------------------------------------------------
    def add_pending(self, candidate: Candidate) -> None:
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO pending VALUES (?, ?, ?, ?, ?, ?, ?)",
                (candidate.hash, candidate.fingerprint, candidate.text, candidate.parent_hash,
                 candidate.mutation, candidate.epoch, time.time()))

    def add_evaluation(self, candidate: Candidate, outcome: Outcome, counters: Mapping[str, float],
                       seeds: int = 0, joins: bool = True) -> None:
        """Store an evaluation, its child joining the population (with ``seeds`` more copies:
        the warm start fills the first population), and the counters, in one transaction."""
        now = time.time()
        with self._db:
            self._db.execute(
                "INSERT OR IGNORE INTO evaluations (hash, fingerprint, text, parent_hash, mutation, length, fitness,"
                " test_fitness, per_task, seconds, error, stopped, epoch, created) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (candidate.hash, candidate.fingerprint, candidate.text, candidate.parent_hash, candidate.mutation,
                 candidate.length, outcome.fitness, outcome.test_fitness, _json(outcome.per_task), outcome.seconds,
                 outcome.error, outcome.stopped, candidate.epoch, now))
            self._insert_member(candidate, outcome.fitness, "evaluated", now, joins)
            for _ in range(seeds):
                self._insert_member(candidate, outcome.fitness, "seed", now)
            self._db.execute("DELETE FROM pending WHERE hash = ?", (candidate.hash,))
            self._set_counters(counters)

    def add_member(self, candidate: Candidate, fitness: float, source: str, counters: Mapping[str, float],
                   joins: bool = True) -> None:
        """A child whose fitness the cache knew (no evaluation)."""
        with self._db:
            self._insert_member(candidate, fitness, source, time.time(), joins)
            self._set_counters(counters)

    def add_seeds(self, candidate: Candidate, fitness: float, copies: int, counters: Mapping[str, float]) -> None:
        """A (re)started population: ``copies`` copies of one program."""
        now = time.time()
        with self._db:
            for _ in range(copies):
                self._insert_member(candidate, fitness, "seed", now)
            self._set_counters(counters)

    def set_counters(self, counters: Mapping[str, float]) -> None:
        with self._db:
            self._set_counters(counters)

    def add_funnel(self, program_hash: str, text: str, role: str, scale: float, outcome: Outcome,
                   beat_baseline: bool | None, verdict: Mapping[str, Any] | None = None) -> None:
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO funnel (hash, text, role, scale, fitness, test_fitness, per_task, seconds,"
                " error, beat_baseline, verdict, created) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (program_hash, text, role, scale, outcome.fitness, outcome.test_fitness, _json(outcome.per_task),
                 outcome.seconds, outcome.error, beat_baseline, None if verdict is None else _json(verdict), time.time()))

    # --- what the numbers mean, and what went wrong around them --------------------------
    def fitness_record(self, key: str) -> Any | None:
        """The JSON stored under ``key`` in ``fitness`` (``definition``, ``calibration@1``...), or None."""
        row = self._db.execute("SELECT value FROM fitness WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def set_fitness_record(self, key: str, value: Any) -> None:
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO fitness VALUES (?, ?)", (key, _json(value)))

    def add_incident(self, candidate: Candidate, error: str, counters: Mapping[str, float]) -> None:
        """The infrastructure lost ``candidate``'s evaluation: logged, left pending, not a fitness."""
        with self._db:
            self._db.execute("INSERT INTO incidents (hash, text, error, created) VALUES (?,?,?,?)",
                             (candidate.hash, candidate.text, error, time.time()))
            self._set_counters(counters)

    def incidents(self) -> list[tuple[str, str, float]]:
        """``(hash, error, created)`` of every job the infrastructure lost, in order."""
        return [(r[0], r[1], r[2]) for r in self._db.execute("SELECT hash, error, created FROM incidents ORDER BY id")]

    def funnel_result(self, program_hash: str, scale: float) -> EvaluationRecord | None:
        row = self._db.execute("SELECT * FROM funnel WHERE hash = ? AND scale = ?", (program_hash, scale)).fetchone()
        return _record(row) if row else None

    def _insert_member(self, candidate: Candidate, fitness: float, source: str, now: float, joins: bool = True) -> None:
        self._db.execute(
            "INSERT INTO members (epoch, hash, text, parent_hash, mutation, fitness, source, joined, created)"
            " VALUES (?,?,?,?,?,?,?,?,?)",
            (candidate.epoch, candidate.hash, candidate.text, candidate.parent_hash, candidate.mutation, fitness,
             source, int(joins), now))

    def _set_counters(self, counters: Mapping[str, float]) -> None:
        self._db.executemany("INSERT OR REPLACE INTO counters VALUES (?, ?)", list(counters.items()))


def _record(row: sqlite3.Row) -> EvaluationRecord:
    keys = row.keys()
    get = lambda k: row[k] if k in keys else None  # noqa: E731
    return EvaluationRecord(
        id=row["id"], hash=row["hash"], text=row["text"], fitness=_float(row["fitness"]),
        test_fitness=_float(row["test_fitness"]), per_task=json.loads(row["per_task"]), seconds=row["seconds"],
        error=row["error"], created=row["created"], fingerprint=get("fingerprint"), parent_hash=get("parent_hash"),
        mutation=get("mutation"), length=get("length"), epoch=get("epoch"), scale=get("scale"), role=get("role"),
        beat_baseline=None if get("beat_baseline") is None else bool(get("beat_baseline")),
        stopped=get("stopped"), verdict=None if get("verdict") is None else json.loads(get("verdict")),
    )


def _float(value: float | None) -> float:
    """SQLite stores nan as NULL; read it back as nan."""
    return math.nan if value is None else float(value)


def _json(data: Mapping[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, default=str)
