"""Turn what a user hands us (a ``Program``, program text, a file path, a library name)
into a ``Program``."""

from __future__ import annotations

from pathlib import Path

from .errors import ProgramError
from .ir import Program
from .parser import parse, parse_file


def resolve_program(program: Program | str | Path) -> Program:
    """A ``Program`` from a ``Program``, program text, a path to a program file, or the
    name of a program in the library (``programs.names()``)."""
    if isinstance(program, Program):
        return program
    if isinstance(program, Path):
        return parse_file(program)
    if not isinstance(program, str):
        raise TypeError(f"expected a Program, program text, a path or a library name, got {type(program).__name__}")
    if "def " in program and "\n" in program.strip() or program.lstrip().startswith("def "):
        return parse(program)
    if program.endswith(".py") or Path(program).is_file():
        return parse_file(program)
    import programs  # the library; imported lazily so the language does not depend on it

    try:
        return programs.load(program)
    except KeyError:
        raise ProgramError(
            f"{program!r} is neither a program, a program file, nor a library program "
            f"(library: {', '.join(programs.names())})"
        ) from None
