"""``symopt show PROGRAM``: the program, its live part, its real state, its mathematics and
the torch code it compiles to.

PROGRAM is a library name (``lion``), a program file, program text, or, with ``--run
RUN_DIR``, the hash (or a unique prefix of it) of a program in that search run's store.
``load_program`` is shared by every command that takes a program; bad input is a message
on stderr and exit status 1, never a traceback.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import NoReturn, Optional

import typer
from rich.console import Console
from rich.syntax import Syntax

from ..analysis import Ref, analyze
from ..canonical import canonical_hash
from ..codegen import target
from ..compiler import compile_program
from ..dataflow import prune
from ..errors import ProgramError
from ..ir import Program
from ..loading import resolve_program
from ..lowering import plan
from ..printer import format_statement, print_program
from ..symbolic import symbolic, tree_size
from . import app

MAX_TREE = 20_000
"""Larger expressions are not printed (their text grows exponentially with sharing)."""
RUN_HELP = "a search run directory: PROGRAM is then a hash (or unique prefix) in its store"


def wide_console(**options) -> Console:
    """A console for tables: the terminal's width, or 120 columns in a log or a pipe (rich's
    80 squeezes the tables' numbers into ellipses)."""
    console = Console(**options)
    return console if console.is_terminal else Console(width=120, **options)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code``."""
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    console.print("error: ", style="red", end="")
    console.print(message, markup=False)
    raise typer.Exit(code)


def load_program(spec: str, run: Optional[Path] = None, *, code: int = 1) -> Program:
    """The program ``spec`` names (module docstring), checked; ``fail`` with a clear message otherwise."""
    try:
        program = _from_run(spec, run) if run is not None else resolve_program(spec)
        analyze(program)
        return program
    except ProgramError as exc:
        hint = ""
        if run is None and re.fullmatch(r"[0-9a-fA-F]{4,16}", spec.strip()):
            hint = f"\n(to look {spec!r} up as a hash, name its run: --run RUN_DIR)"
        fail(f"{exc}{hint}", code)
    except (TypeError, OSError) as exc:
        fail(str(exc), code)


def _from_run(spec: str, run: Path) -> Program:
    try:
        from search.store import RunStore  # the search package is optional for the language
    except ImportError as exc:
        raise ProgramError(f"cannot read search runs: the search package is not available ({exc})") from None
    try:
        with RunStore(run) as store:
            return store.program(spec)
    except FileNotFoundError as exc:
        raise ProgramError(str(exc)) from None
    except KeyError as exc:
        raise ProgramError(exc.args[0] if exc.args else f"no program {spec!r} in {run}") from None
    except sqlite3.DatabaseError as exc:
        raise ProgramError(f"cannot read the run store in {run}: {exc}") from None


def print_code(console: Console, text: str) -> None:
    """Python source: highlighted on a terminal, as it is otherwise (pipes, files, tests)."""
    if console.is_terminal:
        console.print(Syntax(text, "python", theme="ansi_dark", word_wrap=True))
    else:
        console.print(text, markup=False)


@app.command()
def show(
    program: str = typer.Argument(..., help="a library name, a program file, program text, or a hash with --run"),
    run: Optional[Path] = typer.Option(None, "--run", help=RUN_HELP),
    backend: str = typer.Option("foreach", help="whose generated code to print: eager, foreach, fused, tensor"),
    latex: bool = typer.Option(False, "--latex", help="the mathematics as LaTeX instead of sympy's notation"),
) -> None:
    """Print a program, its live part and real state, its sympy form and its generated torch code."""
    prog = load_program(program, run)
    try:
        compiled = compile_program(prog, backend)
    except ValueError as exc:
        fail(str(exc))
    analysis = analyze(prog)
    live = prune(prog)
    console = Console(highlight=False, soft_wrap=True)
    console.rule(f"program {program}")
    print_code(console, print_program(prog))
    console.print(f"dataflow hash   {analysis.hash}    canonical hash  {canonical_hash(prog)}")
    console.rule("live part")
    if live.changed:
        for stmt in live.statements:
            console.print(f"  dead: {format_statement(stmt)}   (nothing live reads it)", markup=False)
        print_code(console, print_program(live.program, doc=False))
    else:
        console.print("every statement and state variable is live")
    console.rule("state")
    for s in prog.state:
        kind = analysis.state_kinds[s].describe()
        if s in analysis.carried:
            console.print(f"  {s}: carried, a buffer holding {kind}", markup=False)
        else:
            console.print(f"  {s}: dead (written before it is read: carries nothing, no buffer)", markup=False)
    if not prog.state:
        console.print("  (none)")
    console.rule(f"on the host, once per step ({backend})")
    for line in host_statements(analysis, backend):
        console.print(f"  {line}", markup=False)
    console.rule("mathematics (primes: next values; epsilon_div: the 1e-8 guard of '/')")
    size = tree_size(prog)
    if size > MAX_TREE:
        console.print(f"(too large to print: {size} terms written out)")
    else:
        form = symbolic(prog)
        console.print(form.latex() if latex else form.text(), markup=False)
    console.rule(f"generated torch code ({backend})")
    print_code(console, compiled.source)
    if run is not None:
        _print_run_record(console, analysis.hash, run)


def host_statements(analysis, backend: str) -> list[str]:
    """What the compiled step computes once per step rather than per element: the statements
    that depend only on lr, step and hyperparameters (folded when they depend on constants
    alone), the decay factor and the update's coefficients where the plan hoists them."""
    p = plan(analysis, target(backend))
    body = analysis.program.body
    where = "host, float64" if p.target.host_scalars or p.target.hoist else "as tensors, before the loop"

    def name(ref: Ref) -> str:
        if ref.source == "stmt":
            return body[ref.key].target
        return repr(ref.key) if ref.source == "const" else str(ref.key)

    def product(coef) -> str:
        return " * ".join(name(f) for f in coef.factors) or "1"

    lines = []
    for i, stmt in enumerate(body):
        ref = Ref("stmt", i)
        if ref in p.folded:
            lines.append(f"{format_statement(stmt)}   (folded at compile time: {p.folded[ref]!r})")
        elif i in p.host:
            lines.append(f"{format_statement(stmt)}   ({where})")
    if p.host_decay:
        decay = " ".join(("+ " if c.negate else "- ") + product(c) for c in p.decay)
        lines.append(f"decay = 1 {decay}   (host, float64: the decoupled weight decay w <- w * decay)")
    for k in p.hoisted:
        lines.append(f"coef = {product(p.terms[k].coef)}   (host, float64: the update's coefficient)")
    if not lines:
        lines.append("nothing: every statement runs on the parameters")
    return lines


def _print_run_record(console: Console, program_hash: str, run: Path) -> None:
    """How the run scored the program: per task, where its learning rate landed and its scores."""
    from search.report import record_table
    from search.store import RunStore

    with RunStore(run) as store:
        record = store.record(program_hash)
        funnel = [r for r in store.funnel() if r.hash == program_hash]
    console.rule(f"in the run {run}")
    if record is None:
        console.print("not evaluated in this run (a cache hit or still pending)")
        return
    if record.error:
        console.print(f"failed: {record.error}", markup=False)
        return
    console.print(record_table(record))
    for r in funnel:
        console.print(record_table(r))
        if r.verdict:
            console.print(f"funnel at scale {r.scale:g}: {r.verdict.get('why', '')}", markup=False)
