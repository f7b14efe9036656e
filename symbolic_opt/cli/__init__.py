"""``symopt``: the command line. Each command lives in a module of this package.

    symopt show lion                 the program, its analysis, its generated code
    symopt search --preset quick     a search (see search/)
    symopt simplify|diff|export|bench|report|ops
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="symopt",
    help="Discover, inspect and simplify optimizers written as symbolic programs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Discover, inspect and simplify optimizers written as symbolic programs."""


from . import show  # noqa: E402,F401  (registers its command)
from . import inspect  # noqa: E402,F401  (registers simplify, diff and export)
from . import discover  # noqa: E402,F401  (registers search and report)
from . import bench  # noqa: E402,F401  (registers bench)
from . import ops  # noqa: E402,F401  (registers ops)


def main() -> None:  # pragma: no cover - the console script
    app()
