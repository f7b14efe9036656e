"""Program surgery: SSA form, dead code and dead state removal, readable names.

The rewrites of ``simplify`` work on programs in *SSA form*: every statement assigns a
name nobody else assigns and that is not an argument, so a value can be read by its
name anywhere after it is computed, and replacing a value is replacing a name. ``to_ssa``
keeps a name's first assignment and calls later ones ``name__1``, ``name__2`` ...;
``readable`` gives them their base names back wherever that clobbers nothing still needed.

``prune`` is step 1 of simplification, and exact by construction: a statement neither the
update nor a carried state reads (transitively) changes no output, and a state variable
whose incoming value is never read (it is written before it is read) carries nothing from
one step to the next, so its buffer, its place in the signature and its return go.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Iterable

from .analysis import analyze
from .ir import READ_ONLY_INPUTS, Arg, Const, Program, Statement, Var

_SUFFIX = re.compile(r"__\d+$")


def base_name(name: str) -> str:
    """The name an SSA name was made from: ``update__2`` -> ``update``."""
    return _SUFFIX.sub("", name)


def fresh_name(base: str, taken: Iterable[str]) -> str:
    """``base__k`` with the smallest ``k`` not in ``taken``."""
    taken = set(taken)
    k = 1
    while f"{base}__{k}" in taken:
        k += 1
    return f"{base}__{k}"


def names(program: Program) -> set[str]:
    """Every name the program binds: arguments, hyperparameters, targets."""
    return set(program.params) | {h for h, _ in program.hyperparams} | {s.target for s in program.body}


def to_ssa(program: Program) -> Program:
    """The same program with every target assigned once and distinct from the arguments."""
    taken = names(program)
    current: dict[str, str] = {n: n for n in (*program.params, *(h for h, _ in program.hyperparams))}
    body = []
    for stmt in program.body:
        args = tuple(Var(current[a.name]) if isinstance(a, Var) else a for a in stmt.args)
        target = stmt.target
        if target in current:  # rebinding: a new name for the new value
            target = fresh_name(base_name(target), taken)
            taken.add(target)
        current[stmt.target] = target
        body.append(replace(stmt, target=target, args=args))
    returns = tuple(current[r] for r in program.returns)
    return replace(program, body=tuple(body), returns=returns)


@dataclass(frozen=True)
class Pruned:
    """What ``prune`` removed."""

    program: Program
    statements: tuple[Statement, ...]
    state: tuple[str, ...]

    @property
    def changed(self) -> bool:
        return bool(self.statements or self.state)


def prune(program: Program) -> Pruned:
    """Remove dead statements and dead state variables (module docstring)."""
    a = analyze(program)
    dead_state = set(a.dead_state)
    body = tuple(s for s, alive in zip(program.body, a.live) if alive)
    removed = tuple(s for s, alive in zip(program.body, a.live) if not alive)
    params = tuple(p for p in program.params if p not in dead_state)
    returns = (program.returns[0],) + tuple(
        r for s, r in zip(program.state, program.returns[1:]) if s not in dead_state
    )
    pruned = replace(program, params=params, body=body, returns=returns)
    return Pruned(pruned, removed, tuple(s for s in program.state if s in dead_state))


def replace_value(program: Program, name: str, by: Arg) -> Program:
    """An SSA program with every read of ``name`` reading ``by`` instead (the returns too,
    when ``by`` is a variable). The statement computing ``name`` stays (``prune`` drops it)."""
    if isinstance(by, Const) and name in program.returns:
        raise ValueError(f"{name} is returned, so it cannot become the constant {by}")

    def swap(a: Arg) -> Arg:
        return by if isinstance(a, Var) and a.name == name else a

    body = tuple(s.with_args(tuple(swap(a) for a in s.args)) for s in program.body)
    returns = tuple(by.name if r == name else r for r in program.returns) if isinstance(by, Var) else program.returns
    return replace(program, body=body, returns=returns)


def splice(program: Program, index: int, statements: Iterable[Statement]) -> Program:
    """``program`` with statement ``index`` replaced by ``statements``."""
    body = list(program.body)
    body[index:index + 1] = list(statements)
    return program.with_body(body)


def readable(program: Program) -> Program:
    """An SSA program with each value renamed to its base name where that is safe: the
    value the name held before is read by no later statement and is not returned."""
    read_only = set(READ_ONLY_INPUTS) | {h for h, _ in program.hyperparams}
    last_read: dict[str, int] = {}
    for i, stmt in enumerate(program.body):
        for n in stmt.reads():
            last_read[n] = i
    end = len(program.body)
    for r in program.returns:
        last_read[r] = end
    holder: dict[str, str] = {p: p for p in program.params}  # visible name -> SSA value it holds
    shown: dict[str, str] = {p: p for p in (*program.params, *(h for h, _ in program.hyperparams))}
    body = []
    for i, stmt in enumerate(program.body):
        args = tuple(Var(shown[a.name]) if isinstance(a, Var) else a for a in stmt.args)
        display = stmt.target
        for candidate in (base_name(stmt.target), stmt.target):
            held = holder.get(candidate)
            if candidate in read_only or (held is not None and last_read.get(held, -1) > i):
                continue
            display = candidate
            break
        else:
            display = fresh_name(base_name(stmt.target), set(holder) | names(program))
        holder[display] = stmt.target
        shown[stmt.target] = display
        body.append(replace(stmt, target=display, args=args))
    returns = tuple(shown[r] for r in program.returns)
    return replace(program, body=tuple(body), returns=returns)


def rename_for_display(text: str) -> str:
    """Text with SSA suffixes taken off names (``update__2 = ...`` -> ``update = ...``)."""
    return re.sub(r"\b([A-Za-z_][A-Za-z_0-9]*?)__\d+\b", r"\1", text)
