"""``search.bench``: a fair, tuned comparison of optimizers, the way careful benchmarks run.

    from search import bench
    result = bench(["lion", "adamw"], ["char_lm", "digits_mlp@10", "tiny_gpt"], seeds=3)
    cell = result.cell("lion", "char_lm")
    cell.test_mean, cell.test_std, cell.chosen.describe(), cell.p_value
    print(result.markdown())
    result.write("bench-out")          # bench.md, bench.csv, tuning-*.png, training-*.png

For each program and task (DeepOBS, AlgoPerf): every setting of a grid trains on ``seeds``
validation seeds; the setting with the lowest mean validation loss is chosen; the program is
then trained at it on as many held-out seeds and scored on the test split. Reported: the
validation and test loss as mean ± standard deviation over seeds, the chosen lr and weight
decay, whether the chosen lr lies at an end of the grid (the best may lie beyond) and whether
the weight decay does (its largest, or its smallest when that is above 0), and a
two-sided Welch t-test over seeds of the test losses against the first program (or
``against``): the p-value of "they differ".

**The grid.** Given ``lr_grid``, exactly that (times ``wd_grid`` for a program with a ``wd``
hyperparameter). By default it is found, not guessed, so that one grid serves programs
whatever scale their lr carries (Lion wants ~1e-4, the paper's AdamW program with its own
``lr * 0.001`` wants ~4): decades ``1e-5 .. 100`` at the program's own weight decay, then
``x 1/4, 1/2, 2, 4`` around the best decade, then ``wd_grid`` at the best lr and its
neighbours a factor 2 away: 24 settings, the best within a factor 2.

A proxy problem trains all of a sweep's settings and seeds as rows of one batch; a torch.nn
task trains them in turn (or vmapped, where the task says it pays). A program that fails at
every setting, an unknown program or task: a row of the table that says why; the rest runs.
"""

from __future__ import annotations

import csv
import io
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

from symbolic_opt.ir import Program

from . import trainer
from .stats import mean as _mean, std as _std
from .suite import parse_task, seed_sets
from .tuning import HeldOut, Setting, Sweep, held_out, validate

DECADES = tuple(10.0**k for k in range(-5, 3))
"""The default grid's first sweep."""
AROUND = (0.25, 0.5, 2.0, 4.0)
"""Its second: factors of the best decade."""
WD_GRID = (0.0, 0.01, 0.1, 1.0)
"""Weight decays tried for a program with a ``wd`` hyperparameter (decoupled: it multiplies lr)."""


@dataclass(frozen=True)
class Cell:
    """One program on one task, tuned (module docstring)."""

    program: str
    task: str
    chosen: Setting | None = None
    valid_losses: tuple[float, ...] = ()
    test_losses: tuple[float, ...] = ()
    tried: tuple[tuple[Setting, float, float], ...] = ()
    """Every setting tried: (setting, mean validation loss or inf, its standard deviation)."""
    curves: tuple[tuple[float, ...], ...] = ()
    """Per held-out seed, the training loss at every step at the chosen setting."""
    on_edge: bool = False
    """The chosen lr is the grid's smallest or largest: the best may lie beyond it."""
    wd_on_edge: bool = False
    """The chosen weight decay is the grid's largest (or its smallest, when that is above 0)."""
    error: str | None = None
    seconds: float = 0.0
    p_value: float | None = None
    """Welch t-test of the test losses against the reference program's (None for the reference)."""
    extra: Mapping[str, float] = field(default_factory=dict)
    """Other test metrics at the chosen setting (accuracy), as means."""

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def valid_mean(self) -> float:
        return _mean(self.valid_losses)

    @property
    def valid_std(self) -> float:
        return _std(self.valid_losses)

    @property
    def test_mean(self) -> float:
        return _mean(self.test_losses)

    @property
    def test_std(self) -> float:
        return _std(self.test_losses)


@dataclass(frozen=True)
class BenchResult:
    """A comparison: its cells by (program, task), in the order asked for."""

    programs: tuple[str, ...]
    tasks: tuple[str, ...]
    seeds: int
    cells: Mapping[tuple[str, str], Cell]
    reference: str
    wall_s: float
    complete: bool = True
    """False when it was interrupted: the cells are the finished ones."""

    def cell(self, program: str, task: str) -> Cell | None:
        return self.cells.get((program, task))

    def rows(self) -> list[dict]:
        """The table as data: one dict per cell (what ``markdown`` and ``csv`` print)."""
        out = []
        for task in self.tasks:
            for program in self.programs:
                c = self.cells.get((program, task))
                if c is None:
                    continue
                row = {"task": task, "program": program, "error": c.error or ""}
                if c.ok:
                    row.update(valid_mean=c.valid_mean, valid_std=c.valid_std, test_mean=c.test_mean, test_std=c.test_std,
                               lr=c.chosen.lr_peak, wd=c.chosen.hyperparams.get("wd"), on_edge=c.on_edge,
                               wd_on_edge=c.wd_on_edge, p_value=c.p_value, **{f"test_{k}": v for k, v in c.extra.items()})
                out.append(row)
        return out

    def markdown(self) -> str:
        lines = [f"Tuned on validation ({self.seeds} seeds), reported on test ({self.seeds} held-out seeds); "
                 f"p: Welch t-test of the test losses against {self.reference}.", "",
                 "| task | program | valid loss | test loss | lr | wd | p vs " + self.reference + " |",
                 "|---|---|---|---|---|---|---|"]
        for r in self.rows():
            if r["error"]:
                lines.append(f"| {r['task']} | {r['program']} | failed: {r['error'][:80]} | | | | |")
                continue
            edge = " (edge)" if r["on_edge"] else ""
            wd = "" if r["wd"] is None else f"{r['wd']:g}" + (" (edge)" if r["wd_on_edge"] else "")
            p = "" if r["p_value"] is None else f"{r['p_value']:.3g}"
            lines.append(f"| {r['task']} | {r['program']} | {r['valid_mean']:.4f} ± {r['valid_std']:.4f} | "
                         f"{r['test_mean']:.4f} ± {r['test_std']:.4f} | {r['lr']:.3g}{edge} | {wd} | {p} |")
        lines += ["", f"wall time {self.wall_s:.0f} s" + ("" if self.complete else " (interrupted: the finished cells)")]
        return "\n".join(lines) + "\n"

    def csv(self) -> str:
        rows = self.rows()
        keys = list(dict.fromkeys(k for r in rows for k in r))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue()

    def write(self, out: str | Path) -> list[Path]:
        """``bench.md``, ``bench.csv`` and the plots (``plots.py``) in ``out``; the paths."""
        from .plots import plot_bench

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "bench.md").write_text(self.markdown(), encoding="utf-8")
        (out / "bench.csv").write_text(self.csv(), encoding="utf-8")
        return [out / "bench.md", out / "bench.csv", *plot_bench(self, out)]


def bench(
    programs: Sequence[str | Program],
    tasks: Sequence[str],
    *,
    seeds: int = 3,
    lr_grid: Sequence[float] | None = None,
    wd_grid: Sequence[float] = WD_GRID,
    against: str | None = None,
    names: Sequence[str] | None = None,
    on_cell: Callable[[Cell], None] | None = None,
) -> BenchResult:
    """Tune every program on every task and compare them (module docstring).

    ``programs``: library names, program files or text, or ``Program``s (``names`` labels
    them). ``tasks``: ``NAME[@SCALE]`` (a proxy problem, a torch.nn task, or a user's
    ``package.module:attribute``). ``on_cell`` is called as each cell finishes (a progress
    bar). A ``KeyboardInterrupt`` returns what finished, ``complete=False``."""
    from symbolic_opt.loading import resolve_program

    labels = list(names) if names is not None else [p if isinstance(p, str) else p.name for p in programs]
    reference = against or labels[0]
    if reference not in labels:
        raise ValueError(f"against={reference!r} is not one of the programs compared ({', '.join(labels)})")
    if seeds < 2:
        raise ValueError(f"seeds must be at least 2 (a spread and a t-test need several), got {seeds}")
    valid_seeds, test_seeds = seed_sets(seeds)
    start = time.perf_counter()
    cells: dict[tuple[str, str], Cell] = {}
    complete = True
    try:
        for task in tasks:
            for label, spec in zip(labels, programs):
                t0 = time.perf_counter()
                try:
                    program = resolve_program(spec)
                    cell = tune(program, label, task, valid_seeds, test_seeds, lr_grid, wd_grid)
                except (KeyError, ValueError, OSError) as exc:  # an unknown program or task: a row that says so
                    cell = Cell(label, task, error=exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc))
                cell = _with(cell, seconds=time.perf_counter() - t0)
                cells[(label, task)] = cell
                if on_cell is not None:
                    on_cell(cell)
    except KeyboardInterrupt:
        complete = False
    cells = _with_p_values(cells, reference, list(tasks))
    return BenchResult(tuple(labels), tuple(tasks), seeds, cells, reference, time.perf_counter() - start, complete)


def tune(program: Program, label: str, task: str, valid_seeds: Sequence[int], test_seeds: Sequence[int],
         lr_grid: Sequence[float] | None = None, wd_grid: Sequence[float] = WD_GRID) -> Cell:
    """One cell: ``program`` tuned on ``task`` (``NAME[@SCALE]``), scored on held-out seeds."""
    name, scale = parse_task(task)
    trainer.build(name, scale)  # an unknown task raises here, before any training
    optimizer = trainer.optimizer_for(name, program)
    defaults = dict(program.hyperparams)
    has_wd = "wd" in defaults
    wds = tuple(wd_grid) if has_wd and wd_grid else (None,)
    own = (defaults["wd"],) if has_wd else (None,)  # the first sweeps, at the program's own weight decay

    def settings(lrs: Iterable[float], decays=wds) -> list[Setting]:
        return [Setting(lr, () if wd is None else (("wd", wd),)) for lr in lrs for wd in decays]

    def sweep(grid: list[Setting]) -> Sweep:
        return validate(name, scale, optimizer, grid, valid_seeds)

    if lr_grid is not None:
        sweeps = [sweep(settings(sorted(lr_grid)))]
        lrs = sorted(lr_grid)
    else:
        first = sweep(settings(DECADES, own))
        sweeps, lrs = [first], list(DECADES)
        if first.best is not None:
            best = first.settings[first.best].lr_peak
            sweeps.append(sweep(settings([best * f for f in AROUND], own)))
            lrs += [best * f for f in AROUND]
            if has_wd and wd_grid:
                best = _best(sweeps)[0].lr_peak
                sweeps.append(sweep(settings([best / 2, best, best * 2])))
                lrs += [best / 2, best * 2]
    tried = tuple((s.settings[i], s.mean(i), s.std(i)) for s in sweeps for i in range(len(s.settings)))
    chosen, losses = _best(sweeps)
    if chosen is None:
        why = next((s.failure() for s in sweeps), "no setting finished")
        return Cell(label, task, tried=tried, error=f"fails at every setting: {why}")
    test: HeldOut = held_out(name, scale, optimizer, chosen, test_seeds, record_curves=True)
    if test.error is not None:
        return Cell(label, task, chosen, losses, tried=tried, error=f"a held-out seed fails at {chosen.describe()}: {test.error}")
    extra = {k: _mean(v) for k, v in test.metrics.items() if k != "loss"}
    on_edge = len(set(lrs)) > 1 and (chosen.lr_peak <= min(lrs) or chosen.lr_peak >= max(lrs))
    wd = chosen.hyperparams.get("wd")
    decays = sorted(d for d in wds if d is not None)
    wd_on_edge = wd is not None and len(decays) > 1 and (wd >= decays[-1] or 0 < wd <= decays[0])
    return Cell(label, task, chosen, losses, test.losses, tried, test.curves or (), on_edge, wd_on_edge, extra=extra)


def _best(sweeps: Sequence[Sweep]) -> tuple[Setting | None, tuple[float, ...]]:
    """The setting with the lowest mean validation loss over all sweeps, and its losses."""
    found = [(s.mean(s.best), s.settings[s.best], s.losses[s.best]) for s in sweeps if s.best is not None]
    if not found:
        return None, ()
    _, setting, losses = min(found, key=lambda f: f[0])
    return setting, losses


def _with_p_values(cells: dict, reference: str, tasks: list[str]) -> dict:
    from scipy import stats

    out = dict(cells)
    for task in tasks:
        ref = cells.get((reference, task))
        for (label, t), c in cells.items():
            if t != task or label == reference or not c.ok or ref is None or not ref.ok:
                continue
            _, p = stats.ttest_ind(c.test_losses, ref.test_losses, equal_var=False)
            out[(label, t)] = _with(c, p_value=1.0 if math.isnan(p) else float(p))
    return out


def _with(cell: Cell, **changes) -> Cell:
    import dataclasses

    return dataclasses.replace(cell, **changes)
