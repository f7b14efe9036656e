"""Mutation: a parent program -> a child, one change at a time (paper-notes section 3).

Three mutations, weighted by ``MutationConfig``:

* **insert** a random statement at a random place: a random op of the function set, each
  argument a variable bound at that point or a constant, assigned to a fresh temporary or
  to an existing variable that may be assigned (never ``w``, ``step`` or a hyperparameter);
* **delete** a random statement;
* **modify** one argument of a random statement: a variable becomes another bound
  variable or a constant; a constant is replaced by a N(0, 1) draw or multiplied by 2**a,
  a ~ N(0, 1) (or becomes a variable).

``Mutator.child`` retries, as the published search does, until the child passes abstract
execution (``analyze``) and its dataflow hash differs from the parent's. Redundant (dead)
statements are kept: they are stepping stones for later mutations.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from symbolic_opt import ops
from symbolic_opt.analysis import Analysis, analyze, live_variables
from symbolic_opt.errors import ProgramError
from symbolic_opt.ir import READ_ONLY_INPUTS, Arg, Const, Program, Statement, Var
from symbolic_opt.printer import format_statement

from .config import MutationConfig

NAMED_CONSTANTS = tuple(ops.CONSTANTS)
"""``pi``, ``e``, ``eps``: a drawn constant is one of these one time in five."""


@dataclass(frozen=True)
class Child:
    """A valid child: its program, its analysis, what was changed, and how many tries it took."""

    program: Program
    analysis: Analysis
    mutation: str
    attempts: int

    @property
    def hash(self) -> str:
        return self.analysis.hash


class Mutator:
    """Makes children of programs; see the module docstring."""

    def __init__(self, config: MutationConfig = MutationConfig()):
        self.config = config
        self.ops = tuple(config.ops) or ops.SEARCH_OPS
        unknown = [name for name in self.ops if name not in ops.OPS]
        if unknown:
            raise ValueError(f"unknown op(s) in the function set: {', '.join(unknown)}")

    def child(self, parent: Program, rng: random.Random, parent_hash: str | None = None, mutations: int = 1) -> Child | None:
        """A child that analyzes and differs from ``parent`` by hash, or ``None`` if
        ``max_attempts`` mutations gave none. ``mutations > 1``: that many such steps, one
        after another (each valid), described together."""
        if mutations > 1:
            return self._several(parent, rng, parent_hash, mutations)
        parent_hash = parent_hash or analyze(parent).hash
        for attempt in range(1, self.config.max_attempts + 1):
            program, description = self.mutate(parent, rng)
            try:
                analysis = analyze(program)
            except ProgramError:
                continue
            if analysis.hash != parent_hash:
                return Child(program, analysis, description, attempt)
        return None

    def _several(self, parent: Program, rng: random.Random, parent_hash: str | None, mutations: int) -> Child | None:
        start = parent_hash or analyze(parent).hash
        steps, attempts, current, current_hash = [], 0, parent, start
        for _ in range(mutations):
            child = self.child(current, rng, current_hash)
            if child is None:
                return None
            steps.append(child.mutation)
            attempts += child.attempts
            current, current_hash = child.program, child.hash
            last = child
        if current_hash == start:  # the steps undid each other
            return None
        return Child(last.program, last.analysis, "; ".join(steps), attempts)

    def mutate(self, parent: Program, rng: random.Random) -> tuple[Program, str]:
        """One random mutation of ``parent`` (which may not analyze) and its description."""
        kinds = {
            "insert": self.config.insert if len(parent.body) < self.config.max_statements else 0.0,
            "delete": self.config.delete if parent.body else 0.0,
            "modify": self.config.modify if any(s.args for s in parent.body) else 0.0,
        }
        if not any(kinds.values()):
            kinds["insert"] = 1.0
        kind = rng.choices(list(kinds), weights=list(kinds.values()))[0]
        return getattr(self, f"_{kind}")(parent, rng)

    # --- the three mutations -------------------------------------------------------------
    def _insert(self, program: Program, rng: random.Random) -> tuple[Program, str]:
        index = rng.randint(0, len(program.body))
        op = ops.OPS[rng.choice(self.ops)]
        bound = live_variables(program, index)
        args = tuple(self._new_arg(bound, rng, program) for _ in range(op.arity))
        stmt = Statement(self._target(program, rng), op.name, args)
        body = program.body[:index] + (stmt,) + program.body[index:]
        return program.with_body(body), f"insert at {index + 1}: {format_statement(stmt)}"

    def _delete(self, program: Program, rng: random.Random) -> tuple[Program, str]:
        index = rng.randrange(len(program.body))
        stmt = program.body[index]
        body = program.body[:index] + program.body[index + 1:]
        return program.with_body(body), f"delete {index + 1}: {format_statement(stmt)}"

    def _modify(self, program: Program, rng: random.Random) -> tuple[Program, str]:
        index, position = rng.choice([(i, j) for i, s in enumerate(program.body) for j in range(len(s.args))])
        stmt = program.body[index]
        old = stmt.args[position]
        new = self._changed_arg(old, live_variables(program, index), rng, program)
        args = stmt.args[:position] + (new,) + stmt.args[position + 1:]
        changed = stmt.with_args(args)
        body = program.body[:index] + (changed,) + program.body[index + 1:]
        return program.with_body(body), f"modify {index + 1}: {format_statement(stmt)}  ->  {format_statement(changed)}"

    # --- arguments, constants and targets ------------------------------------------------
    def _new_arg(self, bound: list[str], rng: random.Random, program: Program) -> Arg:
        if rng.random() < self.config.const_prob:
            return self._new_constant(rng, program)
        return Var(rng.choice(bound))

    def _changed_arg(self, old: Arg, bound: list[str], rng: random.Random, program: Program) -> Arg:
        if isinstance(old, Const):
            if rng.random() < 1 - self.config.const_prob:
                return self._mutated_constant(old.value, rng)
            return Var(rng.choice(bound))
        if rng.random() < self.config.const_prob:
            return self._new_constant(rng, program)
        others = [name for name in bound if name != old.name]
        return Var(rng.choice(others)) if others else self._new_constant(rng, program)

    def _new_constant(self, rng: random.Random, program: Program) -> Const:
        if rng.random() < 0.2:
            name = rng.choice(NAMED_CONSTANTS)
            # where the program has a variable of that name (adamw's eps=1e-8) the text must
            # spell the number, so the constant is a plain number too: parse(print(p)) == p
            return Const(ops.CONSTANTS[name], None if name in _declared(program) else name)
        return Const(_round(rng.gauss(0.0, 1.0)))

    def _mutated_constant(self, value: float, rng: random.Random) -> Const:
        if rng.random() < self.config.scale_prob:
            scaled = value * 2.0 ** rng.gauss(0.0, 1.0)
            if math.isfinite(scaled) and scaled != 0.0:
                return Const(_round(scaled))
        return Const(_round(rng.gauss(0.0, 1.0)))

    def _target(self, program: Program, rng: random.Random) -> str:
        """A fresh temporary half the time, else a variable the program may assign."""
        hyper = {h for h, _ in program.hyperparams}
        assignable = sorted(
            ({p for p in program.params if p not in READ_ONLY_INPUTS} | {s.target for s in program.body}) - hyper
        )
        if assignable and rng.random() < 0.5:
            return rng.choice(assignable)
        return fresh_name(program)


def _declared(program: Program) -> set[str]:
    return set(program.params) | {h for h, _ in program.hyperparams} | {s.target for s in program.body}


def fresh_name(program: Program) -> str:
    """A temporary name the program does not use (``t1``, ``t2``, ...)."""
    taken = _declared(program)
    n = 1
    while f"t{n}" in taken:
        n += 1
    return f"t{n}"


def _round(value: float) -> float:
    """Four significant digits, as the paper's constants (0.899, 1.109, 0.4602): readable
    programs, and a mutation small enough to matter is still possible via 2**a."""
    return float(f"{value:.4g}")
