"""Evaluations on Ray: one actor per worker, a bounded number in flight, results as they complete.

    with RayPool(evaluate, tasks, workers=2) as pool:
        pool.submit(candidate, program)
        for done in pool.results(timeout=0.5):
            done.key, done.outcome            # an Outcome, always: never an exception
        calibrations = pool.map(calibrate, specs)   # any function, on the workers, in parallel

Each worker is a Ray actor that runs one job at a time. The driver hands a job to an idle
actor only (the rest wait in the driver's queue), so a job's time limit counts from when its
worker starts it, never while it waits. The evaluate function and the task list go into the
object store once; a job ships its program.

**What is the program's and what is not.** A candidate's own failures come back as its
outcome, scoring worst with the reason: an exception from its step, a nan, divergence, or
running past its own deadline (the evaluator's ``deadline_s``, counted in the worker's CPU
seconds, which a busy machine does not use up). Everything else is infrastructure and never a
fitness: a worker that dies (killed, out of memory, node lost), a cancelled job, an exception
out of the evaluator itself (it never raises for a candidate: a broken task, a missing
module, a bug), and a job that gives no answer for ``watchdog(timeout_s)`` wall seconds (the
machine is too busy, or the worker is stuck: the actor is killed and replaced). Such a job is retried once; if
that fails too, its outcome is marked ``infrastructure=True``, which the search neither
stores as a fitness nor caches, and sends again on ``--resume``.

The default is an embedded local Ray on ``workers`` CPUs; ``address`` joins a cluster.
"""

from __future__ import annotations

import collections
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

GRACE_S = 5.0
"""Slack added to the watchdog: a worker's clock may start a little after the driver's."""


def watchdog(timeout_s: float | None, grace_s: float = GRACE_S) -> float | None:
    """Wall seconds after which a job that has not answered is given up on: twice its CPU
    budget (a machine where a job gets under half a core is too busy to judge it) plus
    ``grace_s``."""
    return None if timeout_s is None else 2.0 * timeout_s + grace_s


@dataclass(frozen=True)
class Done:
    """A finished evaluation: what was submitted (``key``) and how it went."""

    key: Hashable
    outcome: Outcome


def worst() -> float:
    """The evaluator's worst fitness (imported on the driver only: workers need not know it)."""
    from .fitness import WORST

    return WORST


def infrastructure_failure(error: str, seconds: float = 0.0) -> Outcome:
    """The outcome of a job the infrastructure lost: no fitness at all."""
    return Outcome(math.nan, math.nan, {}, seconds, error, infrastructure=True)


def finalize(outcome: Outcome) -> Outcome:
    """On the driver: a failed or non-finite fitness becomes the worst, saying why; an
    infrastructure failure stays what it is; a test fitness not measured stays nan."""
    if outcome.infrastructure:
        return outcome
    fitness, test, error = outcome.fitness, outcome.test_fitness, outcome.error
    bad = worst()
    if error is None and not (math.isfinite(fitness) or fitness == bad):
        error = f"non-finite fitness ({fitness})"
    if error is not None:
        fitness, test = bad, bad
    elif not (math.isfinite(test) or test == bad or outcome.stopped):
        test = bad
    return dataclasses.replace(outcome, fitness=fitness, test_fitness=test, error=error)


def _evaluate_on_worker(program, tasks, evaluate: Evaluate, deadline_s: float | None) -> Outcome:
    """An evaluation job: one candidate, any exception turned into its outcome."""
    import torch

    torch.set_num_threads(1)
    start = time.perf_counter()
    try:
        ev = evaluate(program, tasks, deadline_s=deadline_s)
        return Outcome(float(ev.fitness), float(ev.test_fitness), dict(ev.per_task or {}),
                       float(ev.seconds if ev.seconds is not None else time.perf_counter() - start), ev.error,
                       stopped=getattr(ev, "stopped", None))
    except Exception as exc:  # noqa: BLE001 - evaluate never raises for a candidate: this is not its fitness
        where = traceback.extract_tb(exc.__traceback__)[-1]
        return _Raised(f"{type(exc).__name__}: {exc} ({os.path.basename(where.filename)}:{where.lineno})")


class _Worker:
    """A Ray actor: runs one job at a time, in its own process."""

    def ready(self) -> bool:
        import torch  # noqa: F401 - every job needs it; import it before the first job's clock starts

        return True

    def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return fn(*args)


@dataclass
class _Job:
    key: Hashable
    fn: Callable[..., Any]
    args: tuple
    timeout_s: float | None
    attempts: int = 0
    started: float = 0.0
    actor: Any = None
    is_evaluation: bool = True


class CallError(RuntimeError):
    """A ``RayPool.map`` job raised, or the infrastructure lost it twice."""


class RayPool:
    """Jobs on Ray actors (module docstring). Use as a context manager."""

    def __init__(
        self,
        evaluate: Evaluate,
        tasks: Sequence[Any],
        *,
        workers: int | None = None,
        address: str | None = None,
        timeout_s: float | None = 60.0,
        max_in_flight: int | None = None,
        retries: int = 1,
        grace_s: float = GRACE_S,
    ):
        self._evaluate = evaluate
        self._tasks = tuple(tasks)
        self._address = address
        self._requested_workers = workers
        self.timeout_s = timeout_s
        self._max_in_flight = max_in_flight
        self.retries = retries
        self.grace_s = grace_s
        self._queue: collections.deque[_Job] = collections.deque()
        self._running: dict[ray.ObjectRef, _Job] = {}
        self._idle: list[Any] = []
        self._starting: dict[ray.ObjectRef, Any] = {}
        self._started_ray = False
        self.workers = 0
        self.killed = 0
        """Workers killed by the watchdog."""
        self.infrastructure_failures = 0
        """Jobs the infrastructure lost (each retried, or given up on after its retries)."""

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
        self._actor_class = ray.remote(num_cpus=1, max_restarts=0, max_task_retries=0)(_Worker)
        self._evaluate_ref = ray.put(self._evaluate)
        self._tasks_ref = ray.put(self._tasks)
        for _ in range(self.workers):
            self._spawn()
        self._wait_ready()

    def _wait_ready(self, timeout_s: float = 120.0) -> None:
        """Wait for the workers to start (each imports torch once), so that time budgets and
        the first jobs' clocks do not pay for it. A cluster slower than ``timeout_s`` just
        hands out jobs as its workers come up."""
        if self._starting:
            ray.wait(list(self._starting), num_returns=len(self._starting), timeout=timeout_s)
        self._dispatch()

    def stop(self) -> None:
        self.abandon()
        for actor in self._idle + list(self._starting.values()):
            _kill(actor)
        self._idle.clear()
        self._starting.clear()
        if self._started_ray:
            ray.shutdown()
            self._started_ray = False

    # --- work ----------------------------------------------------------------------------
    @property
    def max_in_flight(self) -> int:
        return self._max_in_flight or self.workers + 1

    @property
    def in_flight(self) -> int:
        """Jobs submitted and not yet answered: waiting for a worker or running."""
        return len(self._queue) + len(self._running)

    def set_tasks(self, tasks: Sequence[Any]) -> None:
        """The task list evaluations get by default from now on (in the object store once)."""
        self._tasks = tuple(tasks)
        self._tasks_ref = ray.put(self._tasks)

    def put(self, value: Any) -> ray.ObjectRef:
        """Put ``value`` (a task list, say) in the object store once, for ``submit(tasks=...)``."""
        return ray.put(value)

    def submit(self, key: Hashable, program: Any, *, tasks: ray.ObjectRef | None = None,
               timeout_s: float | None = None, evaluate: ray.ObjectRef | None = None) -> None:
        """Start evaluating ``program``; its result comes back from ``results`` under ``key``.
        ``tasks`` and ``evaluate``: object-store references to use instead of the pool's own."""
        timeout = timeout_s if timeout_s is not None else self.timeout_s
        args = (program, tasks if tasks is not None else self._tasks_ref,
                evaluate if evaluate is not None else self._evaluate_ref, timeout)
        self._queue.append(_Job(key, _evaluate_on_worker, args, timeout))
        self._dispatch()

    def results(self, timeout: float = 0.5) -> list[Done]:
        """The evaluations finished (or given up on) by now; waits up to ``timeout`` for one."""
        return [Done(job.key, value) for job, value in self._collect(timeout) if job.is_evaluation]

    def map(self, fn: Callable[..., Any], items: Sequence[Any], *, timeout_s: float | None = None,
            progress: Any = None) -> list[Any]:
        """``[fn(item) for item in items]``, run on the workers in parallel (nothing else may be
        in flight). Raises ``CallError`` naming the item if ``fn`` raised or the infrastructure
        lost its job twice. ``progress`` (a ``search.progress.Phase``) hears of each item done."""
        if self.in_flight:
            raise RuntimeError("map needs an idle pool")
        fn_ref = ray.put(fn)
        for i, item in enumerate(items):
            self._queue.append(_Job(i, _call, (fn_ref, item), timeout_s, is_evaluation=False))
        self._dispatch()
        out: dict[int, Any] = {}
        name = getattr(getattr(fn, "func", fn), "__name__", "the job")
        while len(out) < len(items):
            for job, value in self._collect(0.5):
                what = getattr(items[job.key], "key", None) or repr(items[job.key])[:80]
                if isinstance(value, Outcome):  # the infrastructure's answer: lost twice
                    self.abandon()
                    raise CallError(f"{name} of {what}: {value.error}")
                if isinstance(value, _Raised):
                    self.abandon()
                    raise CallError(f"{name} of {what}: {value.message}")
                out[job.key] = value
                if progress is not None:
                    progress.done(what)
            if progress is not None:
                progress.tick()
        return [out[i] for i in range(len(items))]

    def abandon(self) -> list[Hashable]:
        """Drop everything in flight (running jobs' workers are killed and replaced); the keys."""
        keys = [job.key for job in self._queue] + [job.key for job in self._running.values()]
        self._queue.clear()
        for job in self._running.values():
            _kill(job.actor)
            self._spawn()
        self._running.clear()
        return keys

    # --- internals -----------------------------------------------------------------------
    def _spawn(self) -> None:
        actor = self._actor_class.remote()
        self._starting[actor.ready.remote()] = actor

    def _dispatch(self) -> None:
        """Hand queued jobs to idle workers; a job's clock starts here."""
        if self._starting:
            ready, _ = ray.wait(list(self._starting), num_returns=len(self._starting), timeout=0)
            for ref in ready:
                actor = self._starting.pop(ref)
                try:
                    ray.get(ref)
                    self._idle.append(actor)
                except ray.exceptions.RayError:  # it died starting: another one
                    self._spawn()
        while self._queue and self._idle:
            job, actor = self._queue.popleft(), self._idle.pop()
            job.actor, job.started, job.attempts = actor, time.monotonic(), job.attempts + 1
            self._running[actor.run.remote(job.fn, *job.args)] = job

    def _collect(self, timeout: float) -> list[tuple[_Job, Any]]:
        self._dispatch()
        refs = list(self._running)
        done: list[tuple[_Job, Any]] = []
        if refs:
            ready, _ = ray.wait(refs, num_returns=1, timeout=timeout)
            if ready:
                ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
            for ref in ready:
                job = self._running.pop(ref)
                try:
                    value = ray.get(ref)
                except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
                        ray.exceptions.ObjectLostError, ray.exceptions.OwnerDiedError, ray.exceptions.OutOfMemoryError,
                        ray.exceptions.TaskCancelledError) as exc:
                    self._spawn()  # that worker is gone
                    done += self._lost(job, f"worker lost: {type(exc).__name__}")
                    continue
                except ray.exceptions.RayError as exc:
                    self._idle.append(job.actor)
                    done += self._lost(job, f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
                    continue
                self._idle.append(job.actor)
                if job.is_evaluation and isinstance(value, _Raised):
                    done += self._lost(job, f"the evaluator raised {value.message}")
                    continue
                done.append((job, finalize(value) if job.is_evaluation else value))
        elif self._queue:
            time.sleep(min(timeout, 0.05))  # workers still starting
        done += self._kill_overdue()
        self._dispatch()
        return done

    def _lost(self, job: _Job, why: str) -> list[tuple[_Job, Any]]:
        """Infrastructure lost ``job``: queue it again once, else give it up as such."""
        self.infrastructure_failures += 1
        if job.attempts <= self.retries:
            self._queue.appendleft(job)
            return []
        tries = f"{job.attempts} tries" if job.attempts > 1 else "1 try"
        return [(job, infrastructure_failure(f"{why} ({tries})", time.monotonic() - job.started))]

    def _kill_overdue(self) -> list[tuple[_Job, Any]]:
        now = time.monotonic()
        done = []
        for ref, job in list(self._running.items()):
            limit = watchdog(job.timeout_s, self.grace_s)
            if limit is not None and now - job.started > limit:
                del self._running[ref]
                _kill(job.actor)
                self.killed += 1
                self._spawn()
                done += self._lost(job, f"timeout: no answer after {limit:g} s of wall time")
        return done


@dataclass(frozen=True)
class _Raised:
    message: str


def _call(fn: Callable[..., Any], item: Any) -> Any:
    """A ``map`` job: ``fn(item)``, an exception returned (as ``_Raised``) rather than raised."""
    try:
        return fn(item)
    except Exception as exc:  # noqa: BLE001 - reported on the driver, with its message
        return _Raised(f"{type(exc).__name__}: {exc}")


def _kill(actor: Any) -> None:
    try:
        ray.kill(actor, no_restart=True)
    except Exception:  # noqa: BLE001 - already gone
        pass


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
