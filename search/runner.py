"""Evaluations on Ray: steady state, a bounded number in flight, results as they complete.

    with RayPool(evaluate, tasks, workers=2) as pool:
        pool.submit(candidate, program)
        for done in pool.results(timeout=0.5):
            done.key, done.outcome            # an Outcome, always: never an exception

The driver keeps up to ``max_in_flight`` tasks running and collects them with
``ray.wait`` as they finish (no generation barrier). The evaluate function and the task
list go into the object store once; a task only ships its program. Workers run torch on
one thread.

A candidate's failure is its fitness, never the search's: an exception, a nan, or no answer
within the time limit (the task is then force-cancelled, which kills its worker; Ray starts
another) all come back as an ``Outcome`` scoring worst with the reason in ``error``. A task
whose worker dies (killed, out of memory, node lost) is retried by Ray up to ``retries`` times
before it, too, scores worst.

The default is an embedded local Ray on ``workers`` CPUs; ``address`` joins a cluster.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import socket
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Sequence

import ray
import ray.exceptions

from .store import Outcome

Evaluate = Callable[..., Any]
"""``evaluate(program, tasks, *, deadline_s) -> Evaluation`` (``search.evaluate.evaluate``)."""

GRACE_S = 2.0
"""How long past its time limit a task may take to answer before it is killed: the
evaluator gets the limit as its own deadline and should stop by itself."""


@dataclass(frozen=True)
class Done:
    """A finished evaluation: what was submitted (``key``) and how it went."""

    key: Hashable
    outcome: Outcome


def worst() -> float:
    """The evaluator's worst fitness (imported on the driver only: workers need not know it)."""
    from .evaluate import WORST

    return WORST


def failure(error: str, seconds: float = 0.0) -> Outcome:
    """The outcome of a candidate that gave no usable result."""
    return Outcome(worst(), worst(), {}, seconds, error)


def finalize(outcome: Outcome) -> Outcome:
    """On the driver: a failed or non-finite fitness becomes the worst, saying why."""
    fitness, test, error = outcome.fitness, outcome.test_fitness, outcome.error
    bad = worst()
    if error is None and not (math.isfinite(fitness) or fitness == bad):
        error = f"non-finite fitness ({fitness})"
    if error is not None:
        fitness = bad
    if not (math.isfinite(test) or test == bad):
        test = bad
    return dataclasses.replace(outcome, fitness=fitness, test_fitness=test, error=error)


def _evaluate_on_worker(program, tasks, evaluate: Evaluate, deadline_s: float | None) -> Outcome:
    """The Ray task: one candidate's evaluation, any exception turned into an Outcome."""
    import torch

    torch.set_num_threads(1)
    start = time.perf_counter()
    try:
        ev = evaluate(program, tasks, deadline_s=deadline_s)
        return Outcome(float(ev.fitness), float(ev.test_fitness), dict(ev.per_task or {}),
                       float(ev.seconds if ev.seconds is not None else time.perf_counter() - start), ev.error)
    except Exception as exc:  # noqa: BLE001 - a bad candidate is a fitness, not a crash
        where = traceback.extract_tb(exc.__traceback__)[-1]
        return Outcome(math.nan, math.nan, {}, time.perf_counter() - start,
                       f"{type(exc).__name__}: {exc} ({os.path.basename(where.filename)}:{where.lineno})")


@dataclass
class _Flight:
    key: Hashable
    submitted: float
    timeout_s: float | None
    started: float | None = None


class RayPool:
    """Evaluations on Ray (module docstring). Use as a context manager."""

    def __init__(
        self,
        evaluate: Evaluate,
        tasks: Sequence[Any],
        *,
        workers: int | None = None,
        address: str | None = None,
        timeout_s: float | None = 60.0,
        max_in_flight: int | None = None,
        retries: int = 2,
    ):
        self._evaluate = evaluate
        self._tasks = tuple(tasks)
        self._address = address
        self._requested_workers = workers
        self.timeout_s = timeout_s
        self._max_in_flight = max_in_flight
        self._retries = retries
        self._flights: dict[ray.ObjectRef, _Flight] = {}
        self._started_ray = False
        self.workers = 0
        self.killed = 0

    # --- lifetime ------------------------------------------------------------------------
    def __enter__(self) -> "RayPool":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        if not ray.is_initialized():
            logging.getLogger("ray").setLevel(logging.ERROR)
            if self._address:
                check_reachable(self._address)
                ray.init(address=self._address, logging_level=logging.ERROR, log_to_driver=False)
            else:
                cpus = self._requested_workers or os.cpu_count() or 1
                ray.init(address="local", num_cpus=cpus, include_dashboard=False, logging_level=logging.ERROR,
                         log_to_driver=False, object_store_memory=128 * 1024**2)
            self._started_ray = True
        self.workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        if self._address is None and self._requested_workers:
            self.workers = min(self.workers, self._requested_workers)
        self._remote = ray.remote(num_cpus=1, max_retries=self._retries)(_evaluate_on_worker)
        self._evaluate_ref = ray.put(self._evaluate)
        self._tasks_ref = ray.put(self._tasks)

    def stop(self) -> None:
        self.abandon()
        if self._started_ray:
            ray.shutdown()
            self._started_ray = False

    # --- work ----------------------------------------------------------------------------
    @property
    def max_in_flight(self) -> int:
        return self._max_in_flight or self.workers + 1

    @property
    def in_flight(self) -> int:
        return len(self._flights)

    def put(self, value: Any) -> ray.ObjectRef:
        """Put ``value`` (a task list, say) in the object store once, for ``submit(tasks=...)``."""
        return ray.put(value)

    def submit(self, key: Hashable, program: Any, *, tasks: ray.ObjectRef | None = None,
               timeout_s: float | None = None) -> None:
        """Start evaluating ``program``; its result comes back from ``results`` under ``key``."""
        timeout = timeout_s if timeout_s is not None else self.timeout_s
        ref = self._remote.remote(program, tasks if tasks is not None else self._tasks_ref, self._evaluate_ref, timeout)
        self._flights[ref] = _Flight(key, time.monotonic(), timeout)

    def results(self, timeout: float = 0.5) -> list[Done]:
        """The evaluations finished (or timed out) by now; waits up to ``timeout`` for one."""
        if not self._flights:
            return []
        self._mark_started()
        refs = list(self._flights)
        ready, _ = ray.wait(refs, num_returns=1, timeout=timeout)
        if ready:
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        done = [self._collect(ref) for ref in ready]
        return done + self._kill_overdue()

    def abandon(self) -> list[Hashable]:
        """Cancel everything in flight; the keys of what was abandoned."""
        keys = []
        for ref, flight in list(self._flights.items()):
            try:
                ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - already finished or its worker gone: nothing to cancel
                pass
            keys.append(flight.key)
        self._flights.clear()
        return keys

    # --- internals -----------------------------------------------------------------------
    def _collect(self, ref: ray.ObjectRef) -> Done:
        flight = self._flights.pop(ref)
        seconds = time.monotonic() - (flight.started or flight.submitted)
        try:
            return Done(flight.key, finalize(ray.get(ref)))
        except ray.exceptions.TaskCancelledError:
            return Done(flight.key, failure("cancelled", seconds))
        except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError, ray.exceptions.ObjectLostError,
                ray.exceptions.OwnerDiedError, ray.exceptions.OutOfMemoryError) as exc:
            return Done(flight.key, failure(f"worker lost after {self._retries} retries: {type(exc).__name__}", seconds))
        except ray.exceptions.RayError as exc:
            return Done(flight.key, failure(f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}", seconds))

    def _mark_started(self) -> None:
        """Ray runs queued tasks in order as workers free up, so the first ``workers`` tasks in
        flight are the running ones: their time limit counts from when they got there."""
        now = time.monotonic()
        for flight in list(self._flights.values())[: self.workers]:
            if flight.started is None:
                flight.started = now

    def _kill_overdue(self) -> list[Done]:
        now = time.monotonic()
        overdue = [
            (ref, f) for ref, f in self._flights.items()
            if f.timeout_s is not None and f.started is not None and now - f.started > f.timeout_s + GRACE_S
        ]
        done = []
        for ref, flight in overdue:
            del self._flights[ref]
            try:
                ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - it finished meanwhile; its result is dropped
                pass
            self.killed += 1
            done.append(Done(flight.key, failure(f"timeout: no result after {flight.timeout_s:g}s", now - flight.started)))
        return done


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Raise ``ConnectionError`` at once if nothing listens at a ``host:port`` (or ``ray://host:port``)
    cluster address; Ray itself retries an unreachable address for minutes. ``auto`` is Ray's to resolve."""
    target = address.split("://", 1)[-1]
    host, sep, port = target.rpartition(":")
    if address == "auto" or not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise ConnectionError(
            f"no Ray cluster answers at {address} ({exc.strerror or exc}); start one with `ray start --head`, "
            "or leave out --address for a local Ray"
        ) from None
