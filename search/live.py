"""The live view of a running search (rich): rates, the best fitness, the best program.

On a terminal it is a ``rich.live.Live`` panel refreshed a few times a second; elsewhere
(a log file, a test) or with ``enabled=False`` (``--no-live``) it prints one status line
every ``every_s`` seconds instead.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table

from .fitness import format_score


@dataclass(frozen=True)
class Stats:
    """A snapshot of a search's progress."""

    elapsed_s: float
    evaluations: int
    """New evaluations, all sessions of the run."""
    session_evaluations: int
    children: int
    cache_hit_rate: float
    valid_child_rate: float
    """Parents that got a valid child within the allowed attempts."""
    in_flight: int
    epoch: int
    failures: int
    best_fitness: float
    best_test_fitness: float
    best_text: str
    initial_fitness: float
    initial_test_fitness: float
    max_evals: int | None = None
    best_multipliers: str = ""
    """Where the best program's learning rate landed on each task (``char_lm x4, ...``)."""
    stopped: int = 0
    """Evaluations stopped at the hurdle."""
    infrastructure: int = 0
    """Evaluations the infrastructure lost (not fitnesses; a resume retries them)."""

    @property
    def evals_per_s(self) -> float:
        return self.session_evaluations / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def line(self) -> str:
        return (f"[{self.elapsed_s:6.0f}s] evals {self.evaluations} ({self.evals_per_s:.1f}/s)  "
                f"children {self.children}  cache hits {self.cache_hit_rate:.0%}  valid {self.valid_child_rate:.1%}  "
                f"best {format_score(self.best_fitness)} (start {format_score(self.initial_fitness)})  epoch {self.epoch}")


class LiveView:
    """``with LiveView(console) as view: view.update(stats)``."""

    def __init__(self, console: Console | None = None, *, enabled: bool = True, every_s: float = 10.0):
        self.console = console or Console()
        self.interactive = enabled and self.console.is_terminal
        self.every_s = every_s
        self._live: Live | None = None
        self._last_line = 0.0

    def __enter__(self) -> "LiveView":
        if self.interactive:
            self._live = Live(console=self.console, refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)
            self._live = None

    def update(self, stats: Stats) -> None:
        if self._live is not None:
            self._live.update(render(stats))
        elif time.monotonic() - self._last_line >= self.every_s:
            self._last_line = time.monotonic()
            self.console.print(stats.line(), highlight=False, soft_wrap=True)


def render(stats: Stats) -> Panel:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    budget = f" / {stats.max_evals}" if stats.max_evals else ""
    table.add_row("evaluations", f"{stats.evaluations}{budget}   ({stats.evals_per_s:.1f} new/s, {stats.in_flight} in flight)")
    table.add_row("children", f"{stats.children}   cache hits {stats.cache_hit_rate:.1%}   valid {stats.valid_child_rate:.1%}")
    table.add_row("failures", f"{stats.failures}   stopped at the hurdle {stats.stopped}   "
                              f"lost by the infrastructure {stats.infrastructure}")
    table.add_row("best fitness", f"{format_score(stats.best_fitness)}  (test {format_score(stats.best_test_fitness)})")
    if stats.best_multipliers:
        table.add_row("best's lr", stats.best_multipliers)
    table.add_row("warm start", f"{format_score(stats.initial_fitness)}  (test {format_score(stats.initial_test_fitness)})")
    table.add_row("epoch", str(stats.epoch))
    program = Syntax(stats.best_text or "(none yet)", "python", theme="ansi_dark")
    return Panel(Group(table, Panel(program, title="best program")), title=f"symopt search  {stats.elapsed_s:.0f}s")
