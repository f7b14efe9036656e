"""``symopt ops``: the op table as a table, read from ``symbolic_opt.ops`` (the one place ops
are listed), so the documentation of the language can never drift from what it accepts."""

from __future__ import annotations

from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from ..ops import CONSTANTS, OPS, unknown_op_message
from . import app
from .show import fail


@app.command("ops")
def ops_command(
    search_only: bool = typer.Option(False, "--search", help="only the paper's search space (what mutations draw)"),
    name: Optional[str] = typer.Argument(None, help="one function: print its entry"),
) -> None:
    """List every function a program may call: arity, what it reduces over, its exact math."""
    console = Console(highlight=False)
    if name is not None:
        op = OPS.get(name)
        if op is None:
            fail(unknown_op_message(name))
        console.print(f"[bold]{op.name}[/]  arity {op.arity}, {op.rule.value}"
                      f"{'' if op.search else ', outside the search space'}\n{op.math}")
        console.print(f"torch: {op.torch or op.group}")
        return
    table = Table(title="functions (symbolic_opt/ops.py)", title_justify="left")
    for column in ("name", "arity", "kind", "search", "math"):
        table.add_column(column, overflow="fold")
    for op in OPS.values():
        if op.search or not search_only:
            table.add_row(op.name, str(op.arity), op.rule.name.lower(), "yes" if op.search else "", op.math)
    console.print(table)
    console.print("constants: " + ", ".join(f"{k} = {v:g}" for k, v in CONSTANTS.items()) +
                  "; infix: + - * / (add, sub, mul, div)")
