"""``symopt simplify``, ``symopt diff``, ``symopt export``: reduce a program to its essence,
compare two, take one away as code.

Each takes programs as ``symopt show`` does (a library name, a file, program text, or a hash
with ``--run``). Bad input exits with status 1 (``diff``: 2, since 1 means "they differ").
"""

from __future__ import annotations

import time
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

from ..analysis import analyze
from ..equivalence import DIV_GUARD, DRAWS, STEPS, TRIALS, compare
from ..export import ExportError, export
from ..printer import print_program
from ..simplify import simplify
from . import app
from .show import RUN_HELP, fail, load_program, print_code


def _state_summary(program) -> str:
    carried = analyze(program).carried
    state = ", ".join(program.state) or "none"
    extra = f" (carried: {', '.join(carried) or 'none'})" if tuple(carried) != program.state else ""
    return f"{len(program.body)} statements; state {state}{extra}"


def _task_score(names: List[str], scale: float):
    """``program -> fitness`` on the search's proxy tasks (the search package, imported here)."""
    try:
        from search import tasks as registry
        from search.evaluate import TaskSpec, evaluate
    except ImportError as exc:
        fail(f"--task needs the search package, which is not available ({exc})")
    unknown = [n for n in names if n not in registry.names()]
    if unknown:
        fail(f"unknown task {', '.join(unknown)}; the tasks are: {', '.join(registry.names())}")
    specs = [TaskSpec(n, scale) for n in names]
    console = Console(highlight=False, soft_wrap=True)
    start, scored = time.monotonic(), [0]

    def score(program) -> float:
        """The fitness, and a line per variant: stage 3 trains each one, a minute or more at scale 10."""
        begun = time.monotonic()
        fitness = evaluate(program, specs).fitness
        scored[0] += 1
        what = "the program on entering stage 3" if scored[0] == 1 else f"variant {scored[0] - 1}"
        console.print(f"  stage 3: {what} scored {fitness:.4f} on {', '.join(names)} in "
                      f"{time.monotonic() - begun:.0f}s ({time.monotonic() - start:.0f}s elapsed)", markup=False)
        return fitness

    return score


@app.command("simplify")
def simplify_command(
    program: str = typer.Argument(..., help="a library name, a program file, program text, or a hash with --run"),
    run: Optional[Path] = typer.Option(None, "--run", help=RUN_HELP),
    algebra: bool = typer.Option(True, "--algebra/--no-algebra", help="stage 2: algebraic rewrites"),
    task: List[str] = typer.Option([], "--task", help="stage 3 on this proxy task (repeat for several)"),
    scale: float = typer.Option(1.0, help="the tasks' scale for stage 3"),
    tolerance: float = typer.Option(0.002, help="stage 3 keeps a drop that moves fitness by at most this"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="print only the simplified program"),
) -> None:
    """Simplify a program step by step, saying what each step changed and why.

    (1) dead statements and dead state;
    (2) algebraic rewrites, each proven by sympy;
    (3) with --task: drop statements whose removal moves fitness by at most --tolerance.
    """
    prog = load_program(program, run)
    score = _task_score(task, scale) if task else None
    result = simplify(prog, algebra=algebra, score=score, tolerance=tolerance)
    console = Console(highlight=False, soft_wrap=True)
    if quiet:
        typer.echo(print_program(result.program), nl=False)
        return
    console.print(f"simplify {program}: {_state_summary(prog)}", markup=False)
    for step in result.steps:
        console.print(str(step), markup=False)
    if not result.steps:
        console.print("already as simple as the rules make it")
    grades = sorted({s.proof.grade for s in result.steps if s.proof is not None})
    drops = sum(1 for s in result.steps if s.stage == 3)
    how = f"proofs: {', '.join(grades) or 'none needed'}"
    if drops:
        how += f"; {drops} drop(s) measured on {', '.join(task)}"
    console.print(f"result: {_state_summary(result.program)} ({how})", markup=False)
    print_code(console, print_program(result.program))


@app.command("diff")
def diff_command(
    a: str = typer.Argument(..., help="the first program"),
    b: str = typer.Argument(..., help="the second program"),
    run: Optional[Path] = typer.Option(None, "--run", help="a search run directory for programs given by hash"),
    trials: int = typer.Option(
        TRIALS, min=1, help="numeric check: training-like runs from zero state (gradients of drifting scale and sign)"),
    steps: int = typer.Option(STEPS, min=1, help="numeric check: steps per run"),
    draws: int = typer.Option(
        DRAWS, min=0, help="numeric check: batches of 512 states set directly, 0 to 1e6 times |g| (0: none)"),
    seed: int = typer.Option(0, help="numeric check: random seed"),
    rtol: float = typer.Option(1e-4, help="numeric check: relative tolerance"),
) -> None:
    """Whether two programs are the same optimizer, and where they differ.

    Decided by canonical form, a sympy proof, or a search for a
    counterexample: training-like runs, states set directly, and points
    sympy picks beside each kink (sign, abs, max, min).

    Exit status: 0 the same (also the same up to the 1e-8 division guard,
    said as such), 1 different, 2 bad input.
    """
    pa, pb = load_program(a, run, code=2), load_program(b, run, code=2)
    verdict = compare(pa, pb, trials=trials, steps=steps, draws=draws, seed=seed, rtol=rtol)
    console = Console(highlight=False, soft_wrap=True)
    console.print(f"A: {a}    B: {b}", markup=False)
    word = "equivalent" if verdict.equivalent else "different"
    if verdict.up_to_guard:
        word = f"equivalent up to the {DIV_GUARD:.0e} division guard".replace("e-0", "e-")
    console.print(f"{word} ({verdict.how}): {verdict.detail}", markup=False)
    if verdict.up_to_guard:
        console.print(f"where it matters: {verdict.guard}", markup=False)
    if verdict.state_pairs:
        console.print("state: " + ", ".join(f"A's {s} = B's {t}" for s, t in verdict.state_pairs.items()), markup=False)
    only_a, only_b = verdict.unpaired
    if only_a or only_b:
        console.print(f"no partner: A's {', '.join(only_a) or '-'}; B's {', '.join(only_b) or '-'}", markup=False)
    for d in verdict.differences:
        console.print(str(d), markup=False)
    raise typer.Exit(0 if verdict.equivalent else 1)


class Format(str, Enum):
    torch = "torch"
    latex = "latex"
    sympy = "sympy"


@app.command("export")
def export_command(
    program: str = typer.Argument(..., help="a library name, a program file, program text, or a hash with --run"),
    to: Format = typer.Option(..., "--to", help="torch: a standalone optimizer file; latex; sympy source"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="write here instead of printing"),
    class_name: Optional[str] = typer.Option(None, help="the optimizer class's name (torch)"),
    run: Optional[Path] = typer.Option(None, "--run", help=RUN_HELP),
) -> None:
    """Export a program: a torch.optim.Optimizer in one file that needs only torch, LaTeX, or sympy."""
    prog = load_program(program, run)
    name = class_name
    if name is None and to is Format.torch and Path(program).stem.isidentifier() and run is None:
        name = "".join(w[:1].upper() + w[1:] for w in Path(program).stem.split("_"))
    try:
        text = export(prog, to.value, class_name=name)
    except ExportError as exc:
        fail(str(exc))
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {output}: {exc}")
    Console(stderr=True, highlight=False).print(f"wrote {output}", markup=False)
