"""``Program`` -> text, in the paper's syntax. ``parse(print_program(p)) == p``.

One statement a line, ``+ - * /`` written infix, every other op called by name,
constants as the shortest text that reads back to the same float. The output is
deterministic, so printing is stable and diffs of programs are diffs of their text.
"""

from __future__ import annotations

from . import ops
from .errors import ProgramError
from .ir import Arg, Const, Program, Statement, format_number

INDENT = "    "


def print_program(program: Program, *, doc: bool = True) -> str:
    """The program's text. ``doc=False`` leaves the docstring out.

    A ``ProgramError`` if a number in it is not finite: no text parses back to it.
    """
    _check_finite(program)
    declared = _declared_names(program)
    params = list(program.params) + [f"{name}={format_number(value)}" for name, value in program.hyperparams]
    lines = [f"def {program.name}({', '.join(params)}):"]
    if doc and program.doc:
        lines.append(INDENT + _docstring(program.doc))
    lines += [INDENT + format_statement(s, declared) for s in program.body]
    lines.append(INDENT + "return " + ", ".join(program.returns))
    return "\n".join(lines) + "\n"


def format_statement(statement: Statement, declared: frozenset[str] = frozenset()) -> str:
    """``target = op(args)`` (or infix for ``+ - * /``). Any statement prints, even one that
    does not check (an unknown op, a wrong arity, a non-finite constant), since error
    messages show them."""
    op = ops.OPS.get(statement.op) if isinstance(statement.op, str) else None
    args = [format_arg(a, declared) for a in statement.args]
    if op is not None and op.infix and len(args) == 2:
        return f"{statement.target} = {args[0]} {op.infix} {args[1]}"
    return f"{statement.target} = {statement.op}({', '.join(args)})"


def format_arg(arg: Arg, declared: frozenset[str] = frozenset()) -> str:
    if isinstance(arg, Const):
        if arg.name and arg.name not in declared:
            return arg.name
        try:
            return format_number(arg.value)
        except ValueError:
            return repr(arg.value)  # nan, inf: shown in error messages, refused by print_program
    return str(getattr(arg, "name", arg))


def _check_finite(program: Program) -> None:
    for name, value in program.hyperparams:
        try:
            format_number(value)
        except (ValueError, TypeError):
            raise ProgramError(f"hyperparameter {name!r} has default {value!r}: not a finite number") from None
    for index, statement in enumerate(program.body):
        for arg in statement.args:
            if isinstance(arg, Const):
                try:
                    format_number(arg.value)
                except ValueError:
                    raise ProgramError(
                        f"statement {index + 1} ({format_statement(statement)}): constant {arg.value!r} is not a "
                        "finite number", line=statement.line,
                    ) from None


def _declared_names(program: Program) -> frozenset[str]:
    """Names the program binds; a named constant spelled like one is printed as its number."""
    return frozenset(program.params) | {h for h, _ in program.hyperparams} | {s.target for s in program.body}


def _docstring(doc: str) -> str:
    if '"""' not in doc and "\\" not in doc and not doc.endswith('"'):
        return f'"""{doc}"""'
    return repr(doc)
