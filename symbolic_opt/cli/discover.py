"""``symopt search`` and ``symopt report``: run, resume and report on an optimizer search.

The ``search`` package (Ray, the proxy tasks) is imported only when one of these runs, so
the rest of the command line stays quick to start.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from . import app
from .show import wide_console


@app.command("search")
def search_command(
    preset: str = typer.Option("quick", help="a preset in search/presets: quick, medium, discovery, paper"),
    config: Optional[Path] = typer.Option(None, help="a TOML config file (instead of --preset)"),
    resume: Optional[Path] = typer.Option(None, help="continue the run in this directory"),
    strategy: Optional[str] = typer.Option(None, help="evolution (regularized evolution, the default) or random "
                                           "(the control: a few random mutations of the warm start, no selection)"),
    population: Optional[int] = typer.Option(None, help="population size P"),
    tournament: Optional[int] = typer.Option(None, help="tournament size T"),
    max_evals: Optional[int] = typer.Option(None, help="stop after this many new evaluations in the run"),
    minutes: Optional[float] = typer.Option(None, help="stop this session after this many minutes"),
    workers: Optional[int] = typer.Option(None, help="local Ray workers (default: every core)"),
    address: Optional[str] = typer.Option(None, help="join this Ray cluster ('auto' or host:port)"),
    seed: Optional[int] = typer.Option(None, help="random seed of the search"),
    deterministic: Optional[bool] = typer.Option(
        None, "--deterministic/--no-deterministic",
        help="apply results in the order children were made: same seed and workers, same search (slower)"),
    out: Optional[Path] = typer.Option(None, help="the run directory (default runs/PRESET-TIME)"),
    live: Optional[bool] = typer.Option(None, "--live/--no-live", help="the live view (default: on a terminal)"),
    funnel: Optional[bool] = typer.Option(None, "--funnel/--no-funnel", help="funnel selection at the end"),
    funnel_minutes: Optional[float] = typer.Option(
        None, help="wall-time budget of the funnel (--minutes bounds the search only); a funnel stopped by it is "
                   "finished by symopt funnel RUN"),
) -> None:
    """Search for an optimizer by regularized evolution on proxy tasks (Ray-parallel).

    Every evaluated program streams to RUN_DIR/store.sqlite; kill it any time and continue with --resume RUN_DIR.
    """
    import dataclasses

    from search.config import load_config
    from search.run import load_run_config, run

    console = wide_console()
    overrides = dict(strategy=strategy, population=population, tournament=tournament, max_evals=max_evals, minutes=minutes,
                     workers=workers, address=address, seed=seed, live=live, deterministic=deterministic)
    try:
        if resume is not None:
            cfg = load_run_config(resume).replace(**overrides)
        else:
            cfg = load_config(config or preset, **overrides, out=str(out) if out else None)
        if funnel is not None or funnel_minutes is not None:
            cfg = dataclasses.replace(cfg, funnel=dataclasses.replace(
                cfg.funnel, enabled=cfg.funnel.enabled if funnel is None else funnel,
                minutes=cfg.funnel.minutes if funnel_minutes is None else funnel_minutes))
    except (FileNotFoundError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(1)
    from search.run import refusals

    try:
        summary = run(cfg, resume=resume, console=console)
    except refusals() as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        console.print("[red]error:[/red] ", end="", highlight=False)
        console.print(message, markup=False, highlight=False)
        raise typer.Exit(1)
    if summary.stopped_by == "interrupted":
        raise typer.Exit(130)  # the shell's convention for a run stopped by Ctrl-C


@app.command("funnel")
def funnel_command(
    run_dir: Path = typer.Argument(..., help="a search's run directory"),
    workers: Optional[int] = typer.Option(None, help="local Ray workers (default: every core)"),
    address: Optional[str] = typer.Option(None, help="join this Ray cluster ('auto' or host:port)"),
    minutes: Optional[float] = typer.Option(None, help="wall-time budget (default: none)"),
    live: Optional[bool] = typer.Option(None, "--live/--no-live", help="a progress bar (default: on a terminal)"),
) -> None:
    """Run or finish a search's funnel: its best distinct programs at larger scales against AdamW tuned there.

    What is already in the store (a finished stage, a finished program) is not evaluated again.
    """
    from search.run import funnel, refusals

    console = wide_console()
    try:
        funnel(run_dir, workers=workers, address=address, minutes=minutes, live=live, console=console)
    except (*refusals(), ValueError) as exc:
        console.print("[red]error:[/red] ", end="", highlight=False)
        console.print(str(exc), markup=False, highlight=False)
        raise typer.Exit(1)


@app.command("report")
def report_command(
    run_dir: Path = typer.Argument(..., help="a search's run directory"),
    plot: bool = typer.Option(True, "--plot/--no-plot", help="write RUN_DIR/fitness.png"),
    control: Optional[Path] = typer.Option(None, help="a control run (--strategy random) to compare with"),
    out: Optional[Path] = typer.Option(None, help="write report.md and its figures here (default: with --control, "
                                       "RUN_DIR)"),
) -> None:
    """Print a run's hall of fame, best program and funnel; plot fitness over time; with --out or
    --control, write report.md with the search's progress against the control's and its figures."""
    from search.report import plot_fitness, print_report
    from search.run import load_run_config
    from search.store import RunStore

    from ..analysis import analyze
    from ..loading import resolve_program

    console = wide_console()
    try:
        store = RunStore(run_dir)
    except FileNotFoundError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(1)
    with store:
        initial_hash = analyze(resolve_program(load_run_config(run_dir).warm_start)).hash
        print_report(store, console, initial_hash)
        if plot:
            console.print(f"plot: {plot_fitness(store)}", highlight=False)
        if out is not None or control is not None:
            from search.writeup import write_report

            other = RunStore(control) if control is not None else None
            try:
                path = write_report(store, out or run_dir, control=other, initial_hash=initial_hash)
            finally:
                if other is not None:
                    other.close()
            console.print(f"report: {path}", highlight=False)
