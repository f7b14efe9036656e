"""A search's settings: one frozen dataclass, loaded from a TOML preset, overridden from the CLI.

    config = load_config("quick", population=50, max_evals=500)
    config = load_config("my_search.toml")

A preset lives in ``search/presets/NAME.toml``; its top-level keys are ``SearchConfig``'s
fields, ``[mutation]`` and ``[funnel]`` are their sub-configs, and each ``[[tasks]]`` table
is a ``TaskSpec`` (none: the evaluator's ``default_tasks()``); ``tasks = ["char_lm@10",
"mypkg.tasks:tiny_gpt"]`` names them as strings instead. A run saves its config as
``config.json`` in its run directory, which is what ``--resume`` reads back.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .suite import parse_task

PRESETS = Path(__file__).parent / "presets"


@dataclass(frozen=True)
class TaskChoice:
    """One proxy task of the fitness (``search.evaluate.TaskSpec``'s fields)."""

    name: str
    scale: float = 1.0
    seeds: tuple[int, ...] = (0, 1, 2)
    test_seeds: tuple[int, ...] = (1000, 1001, 1002)

    def __post_init__(self) -> None:
        parse_task(f"{self.name}@{self.scale!r}")  # a table's scale refused as a string's would be


@dataclass(frozen=True)
class MutationConfig:
    """How a child is made from its parent (paper-notes section 3)."""

    insert: float = 1.0
    """Relative weight of inserting a random statement at a random place."""
    delete: float = 1.0
    """Relative weight of deleting a random statement."""
    modify: float = 1.0
    """Relative weight of changing one argument of a random statement."""
    ops: tuple[str, ...] = ()
    """The function set an inserted statement draws from; empty: ``ops.SEARCH_OPS``."""
    const_prob: float = 0.25
    """Chance that a newly drawn argument is a constant rather than a variable."""
    scale_prob: float = 0.5
    """Chance that a constant is mutated by a factor 2**a (a ~ N(0, 1)) rather than replaced by N(0, 1)."""
    max_statements: int = 40
    """Insertion is off for a parent this long (keeps evaluation cheap; the paper has no limit)."""
    max_attempts: int = 1000
    """Mutations tried per child until one analyzes and differs from its parent by hash (a try
    costs about 0.1 ms; a parent whose update ignores most of its statements needs hundreds)."""


@dataclass(frozen=True)
class FunnelConfig:
    """Funnel selection at the end of a search (paper-notes section 3)."""

    enabled: bool = True
    top_k: int = 5
    """How many of the best programs (by proxy fitness) enter the funnel."""
    scales: tuple[float, ...] = (10.0, 100.0)
    """Task scales of the stages; a program goes on only if it beat the baseline at the last."""
    seeds: int = 5
    """Validation seeds, and as many held-out seeds, at every stage (the significance test needs several)."""
    alpha: float = 0.05
    """A program passes a stage when a one-sided Welch t-test over seeds says it beats the tuned
    baseline on validation at this level (and its mean test score is not below the baseline's)."""
    timeout_s: float | None = None
    """An evaluation's CPU-time limit in the funnel; None: ``eval_timeout_s`` times the scale
    times the seeds' share (``seeds / 3``)."""
    minutes: float | None = None
    """Wall-time budget of the whole funnel (``--funnel-minutes``; ``--minutes`` bounds only the
    search); None: unbounded. A funnel stopped by it is finished by ``symopt funnel RUN``."""


@dataclass(frozen=True)
class SearchConfig:
    """Everything a search run needs to know. See the preset files for examples."""

    strategy: str = "evolution"
    """What proposes children (``strategy.py``): ``evolution`` (regularized evolution) or
    ``random`` (the control: a few random mutations of the warm start, no selection)."""
    population: int = 100
    """P: the population size of regularized evolution."""
    tournament: int = 2
    """T: how many members a tournament samples; the fittest is the parent."""
    max_evals: int | None = None
    """Stop after this many new (not cached) evaluations in the run, all sessions together."""
    minutes: float | None = None
    """Stop this session after this many minutes of wall time."""
    workers: int | None = None
    """Local Ray workers (CPUs); None: every core of the machine. Ignored with ``address``."""
    address: str | None = None
    """Join this Ray cluster instead of starting an embedded one (``auto`` or ``host:port``)."""
    seed: int = 0
    out: str | None = None
    """The run directory; None: ``runs/<preset>-<time>``."""
    preset: str = "custom"
    warm_start: str = "adamw_paper"
    """The initial program (a library name or a file)."""
    max_in_flight: int | None = None
    """Evaluations in flight at once; None: one per worker plus one, so no worker waits for the driver."""
    deterministic: bool = False
    """Apply results in the order their children were made, so that a run with the same seed,
    config and worker count evaluates the same programs in the same order whatever finishes
    first. Costs some throughput (a fast result waits for earlier, slower ones); wall-clock
    limits (timeouts, ``minutes``) stay outside it, and a SIGKILL loses the results that had
    arrived but were waiting for an earlier one (``--resume`` evaluates them again)."""
    eval_timeout_s: float = 60.0
    """An evaluation's CPU-time limit: past it the candidate scores worst (its own deadline,
    counted in the worker's CPU seconds); a worker silent for twice as long in wall time is
    replaced and the job retried (``runner.py``: the infrastructure's failure, not a fitness)."""
    lr_grid: tuple[float, ...] = (1 / 16, 1 / 4, 1.0, 4.0, 16.0)
    """The learning-rate multipliers a candidate trains at on each task, around the warm
    start's best peak (``calibration.MULTIPLIERS``); the best on validation counts."""
    hurdle: float | None = -0.5
    """Stop an evaluation once its running mean score over the tasks done (cheapest first) is
    below this (``evaluate.HURDLE``); None: every candidate runs every task."""
    cull: bool = True
    """Evolution: children that failed, or scored below the hurdle (-1, no better than not
    training, when there is no hurdle), are stored but do not join the population
    (``Evolution.admits``)."""
    restart_plateau: int = 0
    """Restart after this many new evaluations without a better best in the current
    population (0: never)."""
    restart_from: str = "alternate"
    """What a restart's population starts from: ``best`` so far, the ``initial`` program
    (an independent population), or ``alternate`` between the two."""
    fingerprint_steps: int = 5
    """Steps of the behavioural fingerprint (0: dataflow hash only)."""
    live: bool = True
    """Show the rich live view (off: a status line every few seconds)."""
    tasks: tuple[TaskChoice, ...] = ()
    """The proxy tasks; empty: the evaluator's ``default_tasks()``."""
    mutation: MutationConfig = field(default_factory=MutationConfig)
    funnel: FunnelConfig = field(default_factory=FunnelConfig)

    def __post_init__(self) -> None:
        if self.population < 1 or not 1 <= self.tournament <= self.population:
            raise ValueError(f"need population >= 1 and 1 <= tournament <= population, got P={self.population}, T={self.tournament}")
        from .strategy import STRATEGIES

        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {self.strategy!r}; the strategies are {', '.join(STRATEGIES)}")
        if self.restart_from not in ("best", "initial", "alternate"):
            raise ValueError(f"restart_from must be best, initial or alternate, got {self.restart_from!r}")
        if not self.lr_grid or any(not m > 0 for m in self.lr_grid):
            raise ValueError(f"lr_grid needs positive multipliers, got {self.lr_grid}")
        object.__setattr__(self, "lr_grid", tuple(sorted(float(m) for m in self.lr_grid)))
        if self.funnel.seeds < 2:
            raise ValueError(f"the funnel's significance test needs at least 2 seeds, got {self.funnel.seeds}")
        if self.funnel.minutes is not None and not self.funnel.minutes > 0:
            raise ValueError(f"the funnel's budget must be positive minutes, got {self.funnel.minutes}")

    def replace(self, **changes: Any) -> "SearchConfig":
        """A copy with ``changes``; ``None`` values are ignored (unset CLI options)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def task_specs(self) -> tuple:
        """The tasks as the evaluator's ``TaskSpec`` (its ``default_tasks()`` when none are set)."""
        from .evaluate import TaskSpec, default_tasks

        if not self.tasks:
            return tuple(default_tasks())
        return tuple(TaskSpec(**dataclasses.asdict(t)) for t in self.tasks)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")


def from_dict(data: Mapping[str, Any]) -> SearchConfig:
    """A ``SearchConfig`` from plain data (a parsed TOML or JSON file); unknown keys raise."""
    data = dict(data)
    _check_keys(SearchConfig, data, "search config")
    if "mutation" in data:
        _check_keys(MutationConfig, data["mutation"], "[mutation]")
        data["mutation"] = MutationConfig(**_tuples(data["mutation"]))
    if "funnel" in data:
        _check_keys(FunnelConfig, data["funnel"], "[funnel]")
        data["funnel"] = FunnelConfig(**_tuples(data["funnel"]))
    if "tasks" in data:
        data["tasks"] = tuple(task_choice(t) for t in data["tasks"])
    if "lr_grid" in data:
        data["lr_grid"] = tuple(float(m) for m in data["lr_grid"])
    return SearchConfig(**data)


def task_choice(entry: Any) -> TaskChoice:
    """A task of a config: a table of ``TaskChoice``'s fields, or a string ``NAME[@SCALE]``
    (``char_lm@10``, ``mypkg.tasks:tiny_gpt``)."""
    if isinstance(entry, str):
        return TaskChoice(*parse_task(entry))
    if not isinstance(entry, Mapping):
        raise ValueError(f"a task is a name (NAME[@SCALE]) or a table of {', '.join(f.name for f in dataclasses.fields(TaskChoice))}, got {entry!r}")
    _check_keys(TaskChoice, entry, "[[tasks]]")
    return TaskChoice(**_tuples(entry))


def load_config(preset_or_path: str | Path = "quick", **overrides: Any) -> SearchConfig:
    """A preset by name (``search/presets/NAME.toml``) or a TOML/JSON file, with ``overrides``
    (``None`` values ignored)."""
    path = Path(preset_or_path)
    if not path.suffix:
        path = PRESETS / f"{preset_or_path}.toml"
        if not path.is_file():
            raise FileNotFoundError(f"no preset {preset_or_path!r}; presets: {', '.join(preset_names())}")
    text = path.read_text(encoding="utf-8")
    data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    data.setdefault("preset", path.stem)
    return from_dict(data).replace(**overrides)


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS.glob("*.toml"))


def _check_keys(cls: type, data: Mapping[str, Any], where: str) -> None:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"unknown key(s) in {where}: {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}")


def _tuples(data: Mapping[str, Any]) -> dict[str, Any]:
    """TOML and JSON give lists; the frozen configs hold tuples (hashable)."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
