"""``symopt bench``: the optimizer-step benchmark table (``benchmarks/optimizer_step.py``).

The benchmark is a script of the repository, not part of the installed package: this command
runs it from the checkout the package is installed from (an editable install), in this
process, with the options passed through.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Optional

import typer

from . import app

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "optimizer_step.py"


@app.command("bench")
def bench(
    suite: str = typer.Option("a,b", help="a: one 16M-element tensor; b: 200 tensors of 80k; a,b: both"),
    quick: bool = typer.Option(False, "--quick", help="fewer repeats: a rough table in under a minute"),
    threads: Optional[int] = typer.Option(None, help="torch intra-op threads (default: up to 2)"),
    repeats: Optional[int] = typer.Option(None, help="timed batches per row"),
) -> None:
    """Time a Lion step on each backend against lion-pytorch, torch's AdamW and the memory floor."""
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
    try:
        module.main(argv)
    except SystemExit as exc:  # argparse's errors (an unknown suite)
        raise typer.Exit(exc.code or 0)
