"""``symopt show PROGRAM``: the program, its analysis, and the code it compiles to."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.syntax import Syntax

from ..analysis import analyze
from ..compiler import compile_program
from ..errors import ProgramError
from ..loading import resolve_program
from ..printer import print_program
from . import app


@app.command()
def show(
    program: str = typer.Argument(..., help="a library name, a program file, or program text"),
    backend: str = typer.Option("foreach", help="which backend's generated code to print: eager, foreach, fused"),
) -> None:
    """Print a program, its analysis (kinds, dead code, carried state) and its generated torch code."""
    console = Console()
    try:
        prog = resolve_program(program)
        analysis = analyze(prog)
        compiled = compile_program(prog, backend)
    except (ProgramError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
        raise typer.Exit(1)
    console.rule(f"program {program}")
    console.print(Syntax(print_program(prog), "python", theme="ansi_dark"))
    console.rule("analysis")
    console.print(f"hash            {analysis.hash}")
    console.print(f"state carried   {', '.join(analysis.carried) or '(none)'}")
    if analysis.dead_state:
        console.print(f"state dead      {', '.join(analysis.dead_state)} (written before read: no buffer)")
    dead = [prog.body[i] for i in analysis.dead_statements]
    console.print(f"statements      {len(prog.body)} ({len(dead)} dead)")
    for i, (stmt, kind) in enumerate(zip(prog.body, analysis.kinds)):
        mark = "dead" if not analysis.live[i] else ""
        console.print(f"  {stmt.target:>12} : {kind.name:<8} {mark}", highlight=False)
    console.rule(f"generated code ({backend})")
    console.print(Syntax(compiled.source, "python", theme="ansi_dark"))
