"""Abstract execution: what a program computes, found without running it.

``analyze(program)`` checks the program and returns an ``Analysis``:

* **structure**: every op exists and gets its arity, every variable is assigned before it
  is read, no read-only input is assigned, the return names bound variables;
* **kinds** (``kinds.py``): the kind of every value, from the op table's abstract
  rules, and a ``ProgramError`` where an op gets a kind it cannot take (a reduction of
  a scalar). A state variable's kind is a fixed point: the kind of the value it is given
  back, starting from a scalar per tensor;
* **dataflow**: each argument resolved to the value it reads (``Ref``), i.e. SSA form;
* **liveness**: which statements contribute to the update or to state that is read later,
  and which state variables are *carried*: their incoming value is read before it is
  overwritten, so it must be kept between steps. A state variable that is written before
  it is read carries nothing and needs no buffer;
* **a dataflow hash**: of how the update and the carried state are computed from the
  inputs. Names, dead statements and the order of independent statements do not change it;
  arguments of commutative ops are sorted; hyperparameters count by their default values.
"""

from __future__ import annotations

import hashlib
import keyword
import math
from dataclasses import dataclass
from functools import cached_property
from typing import Mapping

from . import ops
from .errors import ProgramError
from .ir import INPUTS, READ_ONLY_INPUTS, Const, Program, Var
from .kinds import Kind, join
from .ops import Rule

INPUT_KINDS: Mapping[str, Kind] = {"w": Kind.TENSOR, "g": Kind.TENSOR, "lr": Kind.SCALAR, "step": Kind.SCALAR}


@dataclass(frozen=True)
class Ref:
    """Where a value comes from: an input, a state variable's incoming value, a
    hyperparameter, a constant, or the result of statement ``key`` (its index in the body)."""

    source: str  # "input" | "state" | "hyper" | "const" | "stmt"
    key: str | int | float

    def __str__(self) -> str:
        return f"<{self.source} {self.key}>"


@dataclass(frozen=True)
class Analysis:
    """The result of ``analyze``. See the module docstring."""

    program: Program
    args: tuple[tuple[Ref, ...], ...]
    """For each statement, the value each argument reads."""
    kinds: tuple[Kind, ...]
    """For each statement, the kind of its result."""
    state_kinds: Mapping[str, Kind]
    """For each state variable, the kind of its buffer."""
    outputs: tuple[Ref, ...]
    """The update, then each state variable's next value (as ``program.returns``)."""
    live: tuple[bool, ...]
    """For each statement, whether it contributes to the update or to carried state."""
    carried: tuple[str, ...]
    """State variables whose incoming value is read: they need a buffer."""

    @property
    def update(self) -> Ref:
        return self.outputs[0]

    @property
    def state_out(self) -> dict[str, Ref]:
        """Each state variable's next value."""
        return dict(zip(self.program.state, self.outputs[1:]))

    @property
    def dead_statements(self) -> tuple[int, ...]:
        return tuple(i for i, alive in enumerate(self.live) if not alive)

    @property
    def dead_state(self) -> tuple[str, ...]:
        return tuple(s for s in self.program.state if s not in self.carried)

    def kind(self, ref: Ref) -> Kind:
        if ref.source == "stmt":
            return self.kinds[ref.key]
        if ref.source == "state":
            return self.state_kinds[ref.key]
        if ref.source == "input":
            return INPUT_KINDS[ref.key]
        return Kind.SCALAR

    @cached_property
    def uses(self) -> dict[Ref, list[int]]:
        """For each value, the live statements that read it (in order, repeats kept)."""
        out: dict[Ref, list[int]] = {}
        for i, refs in enumerate(self.args):
            if self.live[i]:
                for r in refs:
                    out.setdefault(r, []).append(i)
        return out

    @cached_property
    def hash(self) -> str:
        """The dataflow hash (16 hex digits). See the module docstring."""
        memo: dict[Ref, str] = {}
        defaults = self.program.defaults
        carried_index = {s: i for i, s in enumerate(self.carried)}

        def node(ref: Ref) -> str:
            if ref in memo:
                return memo[ref]
            if ref.source == "stmt":
                stmt = self.program.body[ref.key]
                children = [node(r) for r in self.args[ref.key]]
                if ops.OPS[stmt.op].commutative:
                    children.sort()
                text = f"{stmt.op}({','.join(children)})"
            elif ref.source == "state":
                text = f"state{carried_index[ref.key]}"
            elif ref.source == "hyper":
                text = f"const:{defaults[ref.key]!r}"
            elif ref.source == "const":
                text = f"const:{float(ref.key)!r}"
            else:
                text = f"input:{ref.key}"
            digest = hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
            memo[ref] = digest
            return digest

        roots = [node(self.update)] + [node(self.state_out[s]) for s in self.carried]
        return hashlib.blake2b("|".join(roots).encode(), digest_size=8).hexdigest()

    def live_program(self) -> Program:
        """The program without its dead statements (state variables are kept)."""
        return self.program.with_body(s for s, alive in zip(self.program.body, self.live) if alive)


def analyze(program: Program) -> Analysis:
    """Check ``program`` and work out its kinds, dataflow and liveness (module docstring).

    Raises ``ProgramError`` naming the statement (its line, when parsed from text) and the
    reason when the program is malformed or ill-kinded.
    """
    args, outputs = _resolve(program)
    kinds, state_kinds = _infer_kinds(program, args, outputs)
    live, carried = _liveness(program, args, outputs)
    return Analysis(
        program=program,
        args=args,
        kinds=kinds,
        state_kinds=state_kinds,
        outputs=outputs,
        live=live,
        carried=carried,
    )


def _where(program: Program, index: int | None) -> dict:
    if index is None:
        return {}
    stmt = program.body[index]
    return {"line": stmt.line} if stmt.line is not None else {}


def _error(program: Program, index: int | None, reason: str) -> ProgramError:
    where = _where(program, index)
    if index is not None and "line" not in where:
        reason = f"statement {index + 1} ({_format(program, index)}): {reason}"
    return ProgramError(reason, **where)


def _format(program: Program, index: int) -> str:
    from .printer import format_statement

    return format_statement(program.body[index])


def _resolve(program: Program) -> tuple[tuple[tuple[Ref, ...], ...], tuple[Ref, ...]]:
    """SSA: the value each argument and each returned name reads."""
    params = program.params
    if len(set(params)) != len(params):
        raise ProgramError(f"duplicate argument names in {params}")
    hyper_names = [h for h, _ in program.hyperparams]
    for name in (*params, *hyper_names):
        if not _is_name(name):
            raise ProgramError(f"argument {name!r} is not a valid variable name")
    for name, value in program.hyperparams:
        if not (isinstance(value, (int, float)) and math.isfinite(value)):
            raise ProgramError(f"hyperparameter {name!r} has default {value!r}; defaults must be finite numbers")
    if len(set(hyper_names) | set(params)) != len(hyper_names) + len(params):
        raise ProgramError("a hyperparameter has the name of another argument")
    for required in ("w", "g", "lr"):
        if required not in params:
            raise ProgramError(f"missing input {required!r}")
    for h in hyper_names:
        if h in INPUTS:
            raise ProgramError(f"input {h!r} cannot be a hyperparameter")
    env: dict[str, Ref] = {}
    for p in params:
        env[p] = Ref("input", p) if p in INPUTS else Ref("state", p)
    for h in hyper_names:
        env[h] = Ref("hyper", h)
    read_only = set(READ_ONLY_INPUTS) | set(hyper_names)
    resolved = []
    for i, stmt in enumerate(program.body):
        op = ops.OPS.get(stmt.op)
        if op is None:
            raise _error(program, i, ops.unknown_op_message(stmt.op))
        if len(stmt.args) != op.arity:
            raise _error(program, i, f"{stmt.op}() takes {op.arity} argument(s), got {len(stmt.args)}")
        refs = []
        for a in stmt.args:
            if isinstance(a, Var):
                if a.name not in env:
                    raise _error(program, i, f"variable {a.name!r} is used before it is assigned")
                refs.append(env[a.name])
            elif isinstance(a, Const):
                if not math.isfinite(a.value):
                    raise _error(program, i, f"constant {a.value!r} is not a finite number")
                refs.append(Ref("const", a.value))
            else:
                raise _error(program, i, f"argument {a!r} is neither a variable nor a constant")
        if stmt.target in read_only:
            raise _error(program, i, f"cannot assign to read-only {stmt.target!r}")
        if not _is_name(stmt.target):
            raise _error(program, i, f"{stmt.target!r} is not a valid variable name")
        resolved.append(tuple(refs))
        env[stmt.target] = Ref("stmt", i)
    if len(program.returns) != 1 + len(program.state):
        raise ProgramError(
            f"return gives {len(program.returns)} value(s); expected the update and one per state variable "
            f"({', '.join(program.state) or 'none'})"
        )
    outputs = []
    for name in program.returns:
        if name not in env:
            raise ProgramError(f"return names {name!r}, which is never assigned")
        outputs.append(env[name])
    return tuple(resolved), tuple(outputs)


def _is_name(name: object) -> bool:
    """A Python identifier that is not a keyword (``lambda`` is an identifier to ``isidentifier``)."""
    return isinstance(name, str) and name.isidentifier() and not keyword.iskeyword(name)


def _infer_kinds(program: Program, args, outputs) -> tuple[tuple[Kind, ...], dict[str, Kind]]:
    state_kinds = {s: Kind.TSCALAR for s in program.state}
    while True:
        kinds: list[Kind] = []

        def kind_of(ref: Ref) -> Kind:
            if ref.source == "stmt":
                return kinds[ref.key]
            if ref.source == "state":
                return state_kinds[ref.key]
            if ref.source == "input":
                return INPUT_KINDS[ref.key]
            return Kind.SCALAR

        for i, (stmt, refs) in enumerate(zip(program.body, args)):
            kinds.append(_op_kind(program, i, ops.OPS[stmt.op], [kind_of(r) for r in refs]))
        grown = {s: max(state_kinds[s], kind_of(out)) for s, out in zip(program.state, outputs[1:])}
        if grown == state_kinds:
            return tuple(kinds), state_kinds
        state_kinds = grown


def _op_kind(program: Program, index: int, op: ops.Op, arg_kinds: list[Kind]) -> Kind:
    """The kind of ``op``'s result, or a ProgramError if it cannot take these kinds."""
    if op.rule is Rule.MAP:
        return join(*arg_kinds)
    reduced = arg_kinds if op.rule is not Rule.GROUP_MAP else arg_kinds[:1]
    for position, kind in enumerate(reduced):
        if not kind.per_parameter:
            raise _error(
                program,
                index,
                f"{op.name}() {op.rule.value}, so argument {position + 1} must hold a value per parameter "
                f"(a tensor), not {kind.describe()}",
            )
    if op.rule is Rule.TENSOR_REDUCE:
        return Kind.TSCALAR
    if op.rule is Rule.GROUP_REDUCE:
        return Kind.GROUP
    return join(*arg_kinds)


def _liveness(program: Program, args, outputs) -> tuple[tuple[bool, ...], tuple[str, ...]]:
    """Backward reachability from the update, adding a state variable's next value as a
    root whenever its incoming value turns out to be read."""
    state_out = dict(zip(program.state, outputs[1:]))
    needed: set[Ref] = set()
    carried: set[str] = set()
    stack: list[Ref] = [outputs[0]]
    while stack:
        ref = stack.pop()
        if ref in needed:
            continue
        needed.add(ref)
        if ref.source == "stmt":
            stack.extend(args[ref.key])
        elif ref.source == "state" and ref.key not in carried:
            carried.add(ref.key)
            stack.append(state_out[ref.key])
    live = tuple(Ref("stmt", i) in needed for i in range(len(program.body)))
    return live, tuple(s for s in program.state if s in carried)


def live_variables(program: Program, index: int) -> list[str]:
    """The variable names bound just before statement ``index`` (what an inserted
    statement there may read), in a stable order: inputs, state, hyperparameters, temps."""
    names: dict[str, None] = {p: None for p in program.params}
    names.update({h: None for h, _ in program.hyperparams})
    for stmt in program.body[:index]:
        names[stmt.target] = None
    return list(names)

