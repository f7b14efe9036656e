"""Progress of a long phase (baseline tuning, the funnel, a bench): k of n done, elapsed, time left.

    with Phase(console, "funnel at scale 10", total=5, live=True) as phase:
        ...
        phase.done("3f2a9c01 passed")     # one of the n finished
        phase.tick()                      # while waiting: a status line when one is due

On a terminal with ``live`` it is a rich progress bar; elsewhere (a log file, ``--no-live``) a
status line every ``every_s`` seconds, and one per finished item. Time left is
``elapsed / done * (total - done)`` once something has finished (items of a phase cost about
the same), before that the ``estimate_s`` the caller gives, if any; once the wait since the last
finished item exceeds that average (a heavy last item), it says so instead of a number.
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def duration(seconds: float) -> str:
    """``42s``, ``3.5 min``, ``1.2 h``."""
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


class Phase:
    """One long phase's progress (module docstring)."""

    def __init__(self, console: Console, what: str, total: int, *, live: bool = True, every_s: float = 10.0,
                 estimate_s: float | None = None):
        self.console = console
        self.what = what
        self.total = total
        self.finished = 0
        self.every_s = every_s
        self.estimate_s = estimate_s
        self.interactive = live and console.is_terminal
        self._progress: Progress | None = None
        self._start = self._last_line = self._last_done = time.monotonic()

    def __enter__(self) -> "Phase":
        self._start = self._last_line = self._last_done = time.monotonic()
        if self.interactive:
            self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(),
                                      console=self.console, transient=False)
            self._progress.__enter__()
            self._task = self._progress.add_task(self.what, total=self.total)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)
            self._progress = None

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self._start

    def left_s(self) -> float | None:
        """Estimated seconds to the end of the phase (module docstring)."""
        if self.finished:
            return self.elapsed_s / self.finished * (self.total - self.finished)
        return None if self.estimate_s is None else max(0.0, self.estimate_s - self.elapsed_s)

    def line(self) -> str:
        head = f"{self.what}: {self.finished} of {self.total} done, {duration(self.elapsed_s)} elapsed"
        if self.finished == self.total:
            return head
        if self.finished and time.monotonic() - self._last_done > (self._last_done - self._start) / self.finished:
            return head + ", the rest take longer than the average so far"  # a heavy last item: no number beats a wrong one
        left = self.left_s()
        return head if left is None else f"{head}, about {duration(left)} left"

    def done(self, note: str = "") -> None:
        """One item finished; ``note`` says which and how it went."""
        self.finished += 1
        self._last_done = time.monotonic()
        if self._progress is not None:
            self._progress.advance(self._task)
            if note:
                self._progress.console.print(f"  {note}", highlight=False)
            return
        self._last_line = time.monotonic()
        self.console.print(self.line() + (f"  ({note})" if note else ""), highlight=False, soft_wrap=True)

    def tick(self) -> None:
        """Called while waiting: a status line every ``every_s`` seconds (the bar refreshes itself)."""
        if self._progress is None and time.monotonic() - self._last_line >= self.every_s:
            self._last_line = time.monotonic()
            self.console.print(self.line(), highlight=False, soft_wrap=True)
