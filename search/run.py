"""``search.run(config)``: one search run, from a fresh run directory or resumed from one.

    summary = search.run(load_config("quick"))
    summary = search.run(resume="runs/quick-20260101-120000")

The loop is steady-state regularized evolution: whenever a worker is free, a tournament
picks a parent, ``Mutator`` makes a valid child, the cache answers if the child (by hash or
fingerprint) is known, and otherwise the child goes to Ray. Each result streams to the store
in one transaction and the child joins the population. No generation barrier: a slow
evaluation holds up nobody.

Resuming reads everything back from the store: the counters, the current epoch's population
(its last P members), the cache (every hash and fingerprint evaluated), and the children that
were in flight, which are sent again. Completed evaluations are never redone.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import random
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from rich.console import Console

from .config import SearchConfig, from_dict
from .evolution import Candidate, Member
from .fitness import multipliers
from .fingerprint import Cache, fingerprint
from .live import LiveView, Stats
from .mutate import Mutator
from .store import EvaluationRecord, Outcome, RunStore
from .strategy import make_strategy

CONFIG_NAME = "config.json"
COUNTERS = ("attempts", "children", "gave_up", "lookups", "hash_hits", "fingerprint_hits", "evaluations",
            "failures", "stopped", "infrastructure", "epoch", "restarts", "plateau_since", "plateau_best", "elapsed_s")


@dataclass(frozen=True)
class RunSummary:
    """What a run did (returned by ``run``; the details are in the store)."""

    run_dir: Path
    evaluations: int
    session_evaluations: int
    seconds: float
    evals_per_s: float
    cache_hit_rate: float
    valid_child_rate: float
    best: EvaluationRecord | None
    initial: EvaluationRecord | None
    stopped_by: str
    population: tuple[Member, ...]


def run(
    config: SearchConfig | None = None,
    *,
    resume: str | Path | None = None,
    evaluate: Callable[..., Any] | None = None,
    tasks: Sequence[Any] | None = None,
    console: Console | None = None,
) -> RunSummary:
    """Run (or, with ``resume=RUN_DIR``, continue) a search; see the module docstring.

    ``config`` defaults to the saved one when resuming, else to the ``quick`` preset.
    ``evaluate`` and ``tasks`` default to ``search.evaluate.evaluate`` and the config's tasks;
    tests pass cheap or faulty ones.
    """
    if resume is not None:
        run_dir = Path(resume)
        saved = load_run_config(run_dir)
        config = dataclasses.replace(config or saved, out=str(run_dir))
    else:
        if config is None:
            from .config import load_config

            config = load_config("quick")
        run_dir = Path(config.out or default_run_dir(config))
        if (run_dir / CONFIG_NAME).exists():
            raise FileExistsError(f"{run_dir} already holds a run; continue it with --resume {run_dir}")
        config = dataclasses.replace(config, out=str(run_dir))
    tasks = tuple(tasks) if tasks is not None else config.task_specs()
    check_tasks(tasks)  # a broken task is an error before anything starts
    evaluate, funnel_evaluate = _evaluators(evaluate, config)
    store = RunStore(run_dir, create=True)
    try:
        check_definition(store, config, tasks, evaluate)
        config.save(run_dir / CONFIG_NAME)
        return Search(config, store, evaluate, tasks, console or Console(), funnel_evaluate).run()
    finally:
        store.close()


def funnel(run_dir: str | Path, *, workers: int | None = None, address: str | None = None,
           minutes: float | None = None, live: bool | None = None, console: Console | None = None,
           evaluate: Callable[..., Any] | None = None, tasks: Sequence[Any] | None = None) -> list[EvaluationRecord]:
    """Run, or finish, the funnel of the search in ``run_dir`` (``symopt funnel RUN``): the
    stages and programs already in its store are not evaluated again. ``minutes`` bounds it
    (default: no bound; the run's own funnel budget is what stopped it). The programs that
    passed its last stage run. ``evaluate`` and ``tasks`` as for ``run``."""
    from .funnel import run_funnel
    from .report import funnel_table
    from .runner import RayPool

    config = load_run_config(run_dir).replace(workers=workers, address=address, live=live)
    config = dataclasses.replace(config, funnel=dataclasses.replace(config.funnel, minutes=minutes))  # finishing: no old budget
    console = console or Console()
    tasks = tuple(tasks) if tasks is not None else config.task_specs()
    searched, unhurdled = _evaluators(evaluate, config)
    with RunStore(run_dir) as store:
        check_definition(store, config, tasks, searched)
        if store.count() == 0:
            raise FileNotFoundError(f"{run_dir} has no evaluations yet: search first (symopt search --resume {run_dir})")
        with RayPool(unhurdled, (), workers=config.workers, address=config.address, timeout_s=config.eval_timeout_s) as pool:
            passed = run_funnel(store, pool, config, tasks, console)
        table = funnel_table(store)
        if table is not None:
            console.print(table)
        return passed


def _evaluators(evaluate: Callable[..., Any] | None,
                config: SearchConfig) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """(what the search scores with, what the funnel scores with): a given ``evaluate`` (a
    test's) for both, else ``search.evaluate.evaluate`` with the run's hurdle and without it
    (the funnel runs every task)."""
    if evaluate is not None:
        return evaluate, evaluate
    from .evaluate import evaluate as full

    return functools.partial(full, hurdle=config.hurdle), full


class DefinitionMismatch(ValueError):
    """A resume under another fitness definition than the run's (``definition.py``)."""


def check_tasks(tasks: Sequence[Any]) -> None:
    """Build every task of the suite and run a torch.nn task's ``check_task`` (one step):
    ``KeyError`` for a name that is no task, ``search.nn.TaskError`` for a broken one."""
    from . import trainer
    from .suite import TaskSpec

    for task in tasks:
        if isinstance(task, TaskSpec):
            built = trainer.build(task.name, task.scale)
            if not trainer.is_flat(task.name):
                from .nn import check_task

                check_task(built, task.name)


def refusals() -> tuple[type[BaseException], ...]:
    """What ``run`` refuses to start (or go on) with, each a one-line message for the command
    line, not a crash: ``except refusals() as exc``."""
    from .calibration import CalibrationError
    from .nn import TaskError
    from .store import StoreVersionError

    return (FileExistsError, FileNotFoundError, ConnectionError, DefinitionMismatch, CalibrationError, StoreVersionError,
            TaskError, KeyError)


def fitness_definition(config: SearchConfig, tasks: Sequence[Any], evaluate: Callable[..., Any]) -> dict:
    """The fitness definition a run with ``config`` on ``tasks`` is scored under."""
    from .calibration import BaselineGrid
    from .definition import describe

    fn = getattr(evaluate, "func", evaluate)
    name = f"{fn.__module__}.{getattr(fn, '__qualname__', fn)}"
    if getattr(evaluate, "keywords", None):
        name += "(" + ", ".join(f"{k}={v!r}" for k, v in sorted(evaluate.keywords.items())) + ")"
    definition = describe(tasks, evaluate=name, multipliers=config.lr_grid, hurdle=config.hurdle,
                          warm_start=config.warm_start, baseline=BaselineGrid())
    # not the fitness, but what its numbers mean: one store, one strategy; the CPU budget
    return {**definition, "strategy": config.strategy, "eval_timeout_s": config.eval_timeout_s}


def check_definition(store: RunStore, config: SearchConfig, tasks: Sequence[Any], evaluate: Callable[..., Any]) -> None:
    """Record the run's fitness definition, or refuse to go on under another one."""
    from .definition import differences

    current = fitness_definition(config, tasks, evaluate)
    stored = store.fitness_record("definition")
    if stored is None:
        store.set_fitness_record("definition", current)
        return
    problems = differences(stored, current)
    if problems:
        shown = "\n  ".join(problems[:12]) + ("\n  ..." if len(problems) > 12 else "")
        raise DefinitionMismatch(
            f"{store.run_dir} was scored under another fitness definition; its scores and these would not "
            f"compare, so it is not resumed. What differs:\n  {shown}\n"
            "Start a new run (or resume with the settings, code and data it was started with).")


def load_run_config(run_dir: str | Path) -> SearchConfig:
    """The config a run was started with (``RUN_DIR/config.json``)."""
    import json

    path = Path(run_dir) / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no search run at {run_dir} (no {CONFIG_NAME} there)")
    return from_dict(json.loads(path.read_text(encoding="utf-8")))


def default_run_dir(config: SearchConfig) -> Path:
    return Path("runs") / f"{config.preset}-{time.strftime('%Y%m%d-%H%M%S')}"


class Search:
    """The driver of one session of a run (module docstring)."""

    def __init__(self, config: SearchConfig, store: RunStore, evaluate, tasks, console: Console, funnel_evaluate=None):
        from symbolic_opt.loading import resolve_program

        self.config, self.store, self.evaluate, self.tasks, self.console = config, store, evaluate, tasks, console
        self.funnel_evaluate = funnel_evaluate or evaluate
        self.mutator = Mutator(config.mutation)
        self.initial = self._candidate(resolve_program(config.warm_start), None, "warm start", 0)
        saved = store.counters()
        self.counters = {name: saved.get(name, 0.0) for name in COUNTERS}
        self.counters["evaluations"] = store.count("evaluations")
        self.counters["plateau_best"] = saved.get("plateau_best", float("-inf"))
        self.rng = random.Random(f"{config.seed}:{store.count('members')}:{self.counters['evaluations']}")
        self.strategy = make_strategy(config, store, self.initial, self.counters, self._candidate)
        by_hash, by_fp = store.known_fitness()
        self.cache = Cache(by_hash, by_fp, lookups=int(self.counters["lookups"]),
                           hash_hits=int(self.counters["hash_hits"]), fingerprint_hits=int(self.counters["fingerprint_hits"]))
        self.resubmit = store.pending()
        for candidate in self.resubmit:
            self.cache.reserve(candidate.hash, candidate.fingerprint)
        self.waiting: dict[str, list[tuple[Candidate, str]]] = {}
        self.order: collections.deque[Candidate] = collections.deque()  # deterministic: submission order
        self.arrived: dict[Candidate, Outcome] = {}  # deterministic: results waiting for earlier ones
        self.session_evaluations = 0
        self.session_start = time.monotonic()
        self.search_end: float | None = None  # set when the search stops, before the funnel
        self.check_warm_start = True  # until the warm start's evaluation is in the store

    # --- the loop --------------------------------------------------------------------------
    def run(self) -> RunSummary:
        from .calibration import calibrate_suite
        from .funnel import run_funnel
        from .report import print_summary
        from .runner import RayPool

        if self.config.max_evals is not None and self.counters["evaluations"] >= self.config.max_evals:
            self.console.print(f"nothing to do: the run has {int(self.counters['evaluations'])} evaluations and "
                               f"--max-evals is {self.config.max_evals}; raise it to go on.", highlight=False)
            summary = self.summary("budget")
            print_summary(self.store, summary, self.console)
            return summary
        previous = _on_sigterm(_raise_interrupt)
        stopped_by = "budget"
        pool = RayPool(self.evaluate, (), workers=self.config.workers, address=self.config.address,
                       timeout_s=self.config.eval_timeout_s, max_in_flight=self.config.max_in_flight)
        try:
            with pool:
                self.pool = pool
                self.suite = calibrate_suite(self.store, pool, self.tasks, "calibration", self.console,
                                             multipliers=self.config.lr_grid, warm_start=self.config.warm_start,
                                             live=self.config.live)
                pool.set_tasks(self.suite)
                with LiveView(self.console, enabled=self.config.live) as view:
                    self.session_start = time.monotonic()
                    self._start()
                    stopped_by = self._loop(view)
                    self.search_end = time.monotonic()  # the summary's rate is the search's, not the funnel's
                    view.update(self.stats())
                if self.config.funnel.enabled:
                    pool.abandon()  # time is up: what is in flight stays pending for a resume
                    run_funnel(self.store, pool, self.config, self.tasks, self.console, self.funnel_evaluate)
        except KeyboardInterrupt:
            self._flush()
            stopped_by = "interrupted"
            self.console.print("[yellow]interrupted:[/yellow] in-flight evaluations abandoned "
                               "(they run again on --resume); the store is complete up to here.")
        finally:
            if previous is not None:
                _on_sigterm(previous)
            self.counters["elapsed_s"] += self._search_seconds()
            self._save_counters()
        summary = self.summary(stopped_by)
        print_summary(self.store, summary, self.console)
        return summary

    def _loop(self, view: LiveView) -> str:
        deadline = self.session_start + 60 * self.config.minutes if self.config.minutes else None
        shown = 0.0
        while True:
            if deadline is not None and time.monotonic() >= deadline:
                self._flush()
                return "time"
            if not self._budget_left() and self.pool.in_flight == 0 and not self.resubmit:
                return "budget"
            if self._warm_start_failed():
                return "warm start failed"
            if not self.strategy.started() and self.pool.in_flight == 0 and not self.resubmit and not self.arrived:
                self.console.print("[red]the warm start's evaluation was lost by the infrastructure twice[/red] "
                                   "(see the incidents in the store): nothing to search from; --resume tries again.")
                return "lost"
            if not self.config.deterministic or self._outstanding() == 0:
                self._refill()  # deterministic: children are made right after each result is applied
            self._arrive(self.pool.results(timeout=0.2))
            if time.monotonic() - shown >= 0.25:
                view.update(self.stats())
                shown = time.monotonic()

    def _warm_start_failed(self) -> bool:
        """A search from a warm start that fails (a timeout on a slow machine, a task it cannot
        learn) would breed from failures: it stops, saying so."""
        record = self.store.record(self.initial.hash) if self.check_warm_start else None
        self.check_warm_start = record is None
        if record is None or record.error is None:
            return False
        self.console.print(f"[red]the warm start fails:[/red] {record.error}; nothing to search from.", highlight=False)
        return True

    def _refill(self) -> None:
        """Submit children until ``max_in_flight`` are outstanding: first what a killed session
        left in flight (always: it is counted already), then new children while the budget lasts."""
        while self._outstanding() < self.pool.max_in_flight:
            if self.resubmit:
                candidate = self.resubmit.pop(0)
            elif self._budget_left():
                candidate = self._next_candidate()
            else:
                break
            if candidate is None:
                break
            self._submit(candidate)

    def _outstanding(self) -> int:
        """Children submitted and not yet applied (in flight, or arrived and waiting their turn)."""
        return self.pool.in_flight + len(self.arrived)

    def _budget_left(self) -> bool:
        """Whether a new child may be made: evaluations done, in flight and still to resend
        leave room under ``max_evals``."""
        if self.config.max_evals is None:
            return True
        return self.counters["evaluations"] + self._outstanding() + len(self.resubmit) < self.config.max_evals

    def _start(self) -> None:
        """A fresh run (or one killed before its strategy could begin) begins with the warm start."""
        if self.strategy.started() or self.resubmit:
            return
        known = self.cache.by_hash.get(self.initial.hash)
        if known is not None:
            self.strategy.start(known)
            self._save_counters()
        else:
            self.cache.reserve(self.initial.hash, self.initial.fingerprint)
            self.resubmit.append(self.initial)

    # --- making children -----------------------------------------------------------------------
    def _next_candidate(self) -> Candidate | None:
        """The next child to evaluate; cache hits on the way are told to the strategy directly."""
        for _ in range(100):  # bounded, so results keep being collected
            proposal = self.strategy.propose(self.rng)
            if proposal is None:
                return None  # the warm start is still being evaluated
            child = self.mutator.child(proposal.program, self.rng, proposal.hash, proposal.mutations)
            if child is None:
                self.counters["attempts"] += self.config.mutation.max_attempts
                self.counters["gave_up"] += 1
                continue
            self.counters["attempts"] += child.attempts
            self.counters["children"] += 1
            candidate = self._candidate(child.program, proposal.hash, child.mutation, proposal.epoch, child.hash)
            hit = self.cache.lookup(candidate.hash, candidate.fingerprint)
            if hit is None:
                return candidate
            if hit.fitness is None:
                self.waiting.setdefault(hit.pending, []).append((candidate, hit.via))
            else:
                self._join(candidate, hit.fitness, hit.via)
        return None

    def _candidate(self, program, parent_hash, mutation, epoch, program_hash=None) -> Candidate:
        from symbolic_opt.analysis import analyze

        program_hash = program_hash or analyze(program).hash
        return Candidate(program, program_hash, fingerprint(program, self.config.fingerprint_steps),
                         parent_hash, mutation, epoch)

    def _submit(self, candidate: Candidate) -> None:
        self.cache.reserve(candidate.hash, candidate.fingerprint)
        self.store.add_pending(candidate)
        self.pool.submit(candidate, candidate.program)
        if self.config.deterministic:
            self.order.append(candidate)

    # --- results ------------------------------------------------------------------------------
    def _arrive(self, results) -> None:
        """Results are in: apply them now, or (deterministic) each once every earlier child's is."""
        if not self.config.deterministic:
            for done in results:
                self._complete(done.key, done.outcome)
            return
        self.arrived.update((done.key, done.outcome) for done in results)  # all first: they left the pool
        while self.order and self.order[0] in self.arrived:
            head = self.order.popleft()
            self._complete(head, self.arrived.pop(head))
            self._refill()  # from the population as it is now, whatever else has arrived meanwhile

    def _flush(self) -> None:
        """The session ends: apply what has arrived (in order) so the store keeps every result;
        what is still in flight stays pending for a resume."""
        for candidate in list(self.order):
            if candidate in self.arrived:
                self._complete(candidate, self.arrived.pop(candidate))
        self.order.clear()

    def _complete(self, candidate: Candidate, outcome: Outcome) -> None:
        if outcome.infrastructure:
            self._lost(candidate, outcome)
            return
        self.counters["evaluations"] += 1
        self.counters["stopped"] += outcome.stopped is not None
        self.counters["failures"] += outcome.error is not None
        self.session_evaluations += 1
        failed = outcome.error is not None
        self.cache.add(candidate.hash, candidate.fingerprint, outcome.fitness, failed)
        self._sync_counters()
        self.store.add_evaluation(candidate, outcome, self.counters, seeds=self.strategy.seed_copies(candidate),
                                  joins=self.strategy.admits(candidate, outcome.fitness))
        self.strategy.tell(candidate, outcome.fitness, "evaluated")
        for waiter, via in self.waiting.pop(candidate.hash, []):
            if not (failed and via == "fingerprint"):  # a failure is not served by fingerprint
                self._join(waiter, outcome.fitness, via)

    def _lost(self, candidate: Candidate, outcome: Outcome) -> None:
        """The infrastructure lost the evaluation (twice): no fitness, nothing cached, nobody
        waiting on it joins; it stays pending in the store, so a resume evaluates it again."""
        self.counters["infrastructure"] += 1
        self.cache.release(candidate.hash, candidate.fingerprint)
        self.waiting.pop(candidate.hash, None)
        self._sync_counters()
        self.store.add_incident(candidate, outcome.error or "lost", self.counters)

    def _join(self, candidate: Candidate, fitness: float, via: str) -> None:
        """A child whose fitness the cache knew: recorded as a member, told to the strategy."""
        if candidate.epoch != self.strategy.epoch:
            return  # made for a population that has been replaced since
        self._sync_counters()
        self.store.add_member(candidate, fitness, via, self.counters, joins=self.strategy.admits(candidate, fitness))
        self.strategy.tell(candidate, fitness, via)

    # --- bookkeeping --------------------------------------------------------------------------
    def _sync_counters(self) -> None:
        self.counters.update(lookups=self.cache.lookups, hash_hits=self.cache.hash_hits,
                             fingerprint_hits=self.cache.fingerprint_hits, **self.strategy.counters())

    def _save_counters(self) -> None:
        self._sync_counters()
        self.store.set_counters(self.counters)

    def valid_child_rate(self) -> float:
        made, failed = self.counters["children"], self.counters["gave_up"]
        return made / (made + failed) if made + failed else 1.0

    def stats(self) -> Stats:
        best = self.store.best(1)
        initial = self.store.record(self.initial.hash)
        nan = float("nan")
        return Stats(
            elapsed_s=time.monotonic() - self.session_start,
            evaluations=int(self.counters["evaluations"]),
            session_evaluations=self.session_evaluations,
            children=int(self.counters["children"]),
            cache_hit_rate=self.cache.hit_rate,
            valid_child_rate=self.valid_child_rate(),
            in_flight=self.pool.in_flight,
            epoch=self.strategy.epoch,
            failures=int(self.counters["failures"]),
            best_fitness=best[0].fitness if best else nan,
            best_test_fitness=best[0].test_fitness if best else nan,
            best_text=self._live_text(best[0]) if best else "",
            initial_fitness=initial.fitness if initial else nan,
            initial_test_fitness=initial.test_fitness if initial else nan,
            max_evals=self.config.max_evals,
            best_multipliers=multipliers(best[0].per_task) if best else "",
            stopped=int(self.counters["stopped"]),
            infrastructure=int(self.counters["infrastructure"]),
        )

    def _live_text(self, record: EvaluationRecord) -> str:
        """The best program without its redundant statements (worked out once per new best)."""
        if getattr(self, "_shown", (None, ""))[0] != record.hash:
            from symbolic_opt.analysis import analyze
            from symbolic_opt.printer import print_program

            self._shown = (record.hash, print_program(analyze(record.program).live_program()))
        return self._shown[1]

    def _search_seconds(self) -> float:
        """This session's search, from its first proposal to its stop (the funnel not counted)."""
        return (self.search_end or time.monotonic()) - self.session_start

    def summary(self, stopped_by: str) -> RunSummary:
        seconds = self._search_seconds()
        best = self.store.best(1)
        return RunSummary(
            run_dir=self.store.run_dir,
            evaluations=int(self.counters["evaluations"]),
            session_evaluations=self.session_evaluations,
            seconds=seconds,
            evals_per_s=self.session_evaluations / seconds if seconds > 0 else 0.0,
            cache_hit_rate=self.cache.hit_rate,
            valid_child_rate=self.valid_child_rate(),
            best=best[0] if best else None,
            initial=self.store.record(self.initial.hash),
            stopped_by=stopped_by,
            population=self.strategy.population(),
        )


def _raise_interrupt(signum, frame) -> None:  # noqa: ARG001 - signal handler signature
    raise KeyboardInterrupt


def _on_sigterm(handler):
    """Make SIGTERM stop the search as Ctrl-C does (only possible in the main thread)."""
    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:
        return None
