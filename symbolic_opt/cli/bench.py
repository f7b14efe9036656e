"""``symopt bench``: a tuned comparison of optimizers (``search.compare``); ``symopt speed``:
the optimizer-step timing table (``benchmarks/optimizer_step.py``).

``bench`` tunes each program on each task (an lr sweep, and weight decay for programs that
have a ``wd``), chooses on validation, reports the held-out test loss with its spread over
seeds and a Welch t-test against the first program, and writes Markdown, CSV and plots with
``--out``. ``speed`` runs the timing script from the checkout the package is installed from
(an editable install), in this process, with the options passed through.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from . import app
from .show import RUN_HELP, fail, load_program, wide_console

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "optimizer_step.py"


def _grid(text: Optional[str], what: str, console: Console) -> Optional[List[float]]:
    """A comma-separated grid; non-positive (or, for lr, zero) values are dropped with one line each."""
    if text is None:
        return None
    values = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        try:
            value = float(part)
        except ValueError:
            fail(f"--{what}: {part!r} is not a number")
        if value > 0 or (what == "wd-grid" and value == 0):
            values.append(value)
        else:
            console.print(f"warning: --{what}: {part} dropped (must be {'>= 0' if what == 'wd-grid' else '> 0'})",
                          style="yellow", highlight=False)
    if not values:
        fail(f"--{what}: no usable value left in {text!r}")
    return values


@app.command("bench")
def bench_command(
    programs: List[str] = typer.Argument(..., help="library names, program files, or hashes with --run"),
    task: List[str] = typer.Option(["char_lm", "digits_mlp", "tiny_gpt"], "--task",
                                   help="NAME[@SCALE]: a proxy task, a torch.nn task, or package.module:attribute (repeat)"),
    seeds: int = typer.Option(3, help="validation seeds, and as many held-out seeds for the test split"),
    lr_grid: Optional[str] = typer.Option(None, "--lr-grid", help="comma-separated lrs (default: decades 1e-5..100, "
                                          "then refined around the best)"),
    wd_grid: Optional[str] = typer.Option(None, "--wd-grid", help="comma-separated weight decays, for programs with "
                                          "a wd hyperparameter (default 0,0.01,0.1,1)"),
    against: Optional[str] = typer.Option(None, help="the program the t-test compares with (default: the first)"),
    out: Optional[Path] = typer.Option(None, help="write bench.md, bench.csv and the plots here"),
    run: Optional[Path] = typer.Option(None, "--run", help=RUN_HELP),
) -> None:
    """Compare optimizers, each tuned on each task (lr, and wd where it has one): test loss ± sd, Welch t-test, plots.

    For the optimizer-step timing table, see `symopt speed`.
    """
    from search.compare import WD_GRID, bench
    from search.progress import Phase

    console = wide_console(highlight=False)
    if seeds < 2:
        fail("--seeds must be at least 2 (a spread and a t-test need several)")
    lrs = _grid(lr_grid, "lr-grid", console)
    wds = _grid(wd_grid, "wd-grid", console) or list(WD_GRID)
    resolved, labels = [], []
    for spec in programs:
        try:
            resolved.append(load_program(spec, run))
            labels.append(spec)
        except typer.Exit:  # load_program printed why; the rest of the comparison still runs
            continue
    if not resolved:
        raise typer.Exit(1)
    if against is not None and against not in labels:
        fail(f"--against {against!r} is not one of the programs ({', '.join(labels)})")
    from search import trainer
    from search.compare import parse_task

    for spec in task:
        try:
            console.print(trainer.describe(*parse_task(spec)), markup=False)
        except (KeyError, ValueError) as exc:  # the comparison says so in its row and goes on
            console.print(f"{spec}: {exc.args[0] if exc.args else exc}", style="red", markup=False)
    with Phase(console, "bench: programs x tasks tuned", len(resolved) * len(task)) as phase:

        def done(cell) -> None:
            phase.done(f"tuned {cell.program} on {cell.task}")

        result = bench(resolved, task, seeds=seeds, lr_grid=lrs, wd_grid=wds, against=against, names=labels, on_cell=done)
    console.print(_table(result))
    for row in result.rows():
        if row["error"]:
            console.print(f"{row['program']} on {row['task']}: {row['error']}", style="red", markup=False)
            continue
        if row["on_edge"]:
            console.print(f"{row['program']} on {row['task']}: the best lr ({row['lr']:.3g}) is at an end of the grid; "
                          "the best may lie beyond it", style="yellow", markup=False)
        if row["wd_on_edge"]:
            console.print(f"{row['program']} on {row['task']}: the best weight decay ({row['wd']:g}) is at an end of "
                          "--wd-grid; the best may lie beyond it", style="yellow", markup=False)
    if out is not None:
        for path in result.write(out):
            console.print(f"wrote {path}", markup=False)
    console.print(f"wall time {result.wall_s:.0f} s" + ("" if result.complete else " (interrupted: the finished cells)"))
    if not result.complete:
        raise typer.Exit(130)


def _table(result) -> Table:
    table = Table(title=f"tuned on validation ({result.seeds} seeds), reported on test ({result.seeds} held-out seeds)",
                  title_justify="left")
    for name in ("task", "program", "valid loss", "test loss", "lr", "wd", f"p vs {result.reference}"):
        table.add_column(name, justify="left" if name in ("task", "program") else "right")
    for r in result.rows():
        if r["error"]:
            table.add_row(r["task"], r["program"], "failed", "", "", "", "")
            continue
        table.add_row(r["task"], r["program"], f"{r['valid_mean']:.4f} ± {r['valid_std']:.4f}",
                      f"{r['test_mean']:.4f} ± {r['test_std']:.4f}", f"{r['lr']:.3g}" + ("!" if r["on_edge"] else ""),
                      "" if r["wd"] is None else f"{r['wd']:g}" + ("!" if r["wd_on_edge"] else ""), "" if r["p_value"] is None else f"{r['p_value']:.3g}")
    return table


@app.command("speed")
def speed(
    suite: str = typer.Option("a,b", help="a: one 16M-element tensor; b: 200 tensors of 80k; a,b: both"),
    quick: bool = typer.Option(False, "--quick", help="fewer repeats: a rough table in under a minute"),
    threads: Optional[int] = typer.Option(None, help="torch intra-op threads (default: up to 2)"),
    repeats: Optional[int] = typer.Option(None, help="timed batches per row"),
    library: bool = typer.Option(False, "--library", help="also every library program's fused, foreach and eager "
                                 "step against torch's fused and foreach equivalents and its own floor"),
    only_library: bool = typer.Option(False, "--only-library", help="only the library table"),
    programs: Optional[str] = typer.Option(None, help="library programs for that table (default: all), comma-separated"),
) -> None:
    """Time a Lion step on each backend against lion-pytorch, torch's AdamW and the memory floor (--library: every program)."""
    if not SCRIPT.is_file():
        typer.echo(f"error: the benchmark script is not here: {SCRIPT} (run from a checkout of the repository)", err=True)
        raise typer.Exit(1)
    spec = importlib.util.spec_from_file_location("symbolic_opt_benchmark_optimizer_step", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    argv = ["--suite", suite] + (["--quick"] if quick else [])
    argv += ["--threads", str(threads)] if threads else []
    argv += ["--repeats", str(repeats)] if repeats else []
    argv += ["--library"] if library else []
    argv += ["--only-library"] if only_library else []
    argv += ["--programs", programs] if programs else []
    try:
        module.main(argv)
    except SystemExit as exc:  # argparse's errors (an unknown suite)
        raise typer.Exit(exc.code or 0)
