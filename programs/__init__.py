"""The program library: one optimizer a file, in the program syntax.

    import programs
    programs.names()              # ['adam', 'adamw', 'lion', ...]
    programs.found()              # ['found/...']
    programs.load("lion")         # a Program
    programs.load("found/NAME")   # a program a search of ours found (programs/found/, with its story)
    programs.load("path/to/my_program.py")

The files are parsed, never imported: they are valid Python only so that editors
highlight them.
"""

from __future__ import annotations

import functools
from pathlib import Path

from symbolic_opt.ir import Program
from symbolic_opt.parser import parse_file

LIBRARY = Path(__file__).parent


def names() -> list[str]:
    """The names of the library's programs (the known optimizers), sorted."""
    return sorted(p.stem for p in LIBRARY.glob("*.py") if not p.name.startswith("_"))


def found() -> list[str]:
    """The programs our searches found (``programs/found/``), as ``found/NAME``, sorted."""
    return sorted(f"found/{p.stem}" for p in (LIBRARY / "found").glob("*.py") if not p.name.startswith("_"))


def path(name: str) -> Path:
    """The file holding the library program ``name``."""
    file = LIBRARY / f"{name}.py"
    if name.startswith("_") or "_" == name.rpartition("/")[2][:1] or ".." in name or not file.is_file():
        raise KeyError(f"no library program {name!r}; the library has: {', '.join(names())}")
    return file


def load(name_or_path: str | Path) -> Program:
    """A library program by name, or the program in a file given by path."""
    if isinstance(name_or_path, Path) or str(name_or_path).endswith(".py"):
        return parse_file(name_or_path)
    return _load_library(name_or_path)


@functools.lru_cache(maxsize=None)
def _load_library(name: str) -> Program:
    return parse_file(path(name))


def source(name: str) -> str:
    """The text of a library program, as written."""
    return path(name).read_text(encoding="utf-8")
