"""Canonical form: one program text for every way of writing the same dataflow.

    canonical(p)        # a Program: names t1.., s1.., h1.., a canonical statement order
    canonical_hash(p)   # 16 hex digits: the hash of canonical(p)'s text

Two programs get the same canonical form when they differ only in

* variable names (temporaries, state variables, hyperparameters),
* dead code: statements nothing live reads, state variables that carry nothing (written
  before read), hyperparameters and ``step`` that nothing live reads,
* the order of independent statements and of the state variables in the signature,
* the order of the arguments of commutative ops (``+ * max min dot ...``),
* duplicated statements (two statements computing the same op of the same values are one),

and get different ones otherwise: the canonical form *is* the dataflow graph of the update
and the carried state, written out. (Equal semantics reached by algebra, such as
``interp(x, y, a) == interp(y, x, 1 - a)``, is ``equivalence``'s and ``simplify``'s business.)

How. Every value gets a key, a Merkle hash of its op and its arguments' keys (sorted for a
commutative op), with the inputs by name, constants by value, and the state variables and
hyperparameters by an index. The indices are the labeling, over every permutation of the
carried state variables and of the used hyperparameters, whose list of output keys is the
smallest, so the result does not depend on declaration order. (Past ``MAX_LABELINGS``
permutations, declaration order is used.) Statements are then written in depth-first
post-order from the outputs, each distinct key once, named ``t1, t2, ...``.

``analysis.hash`` is the search's cache key, the same idea except that it counts a
hyperparameter by its default value (two programs that differ only in writing ``0.9`` or
``beta1=0.9`` share it) and keeps the declaration order of the state; ``canonical_hash``
keeps hyperparameters as knobs of the optimizer.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from dataclasses import dataclass

from . import ops
from .analysis import Analysis, Ref, analyze
from .ir import Const, Program, Statement, Var
from .printer import print_program

MAX_LABELINGS = 5040
"""The most (state x hyperparameter) permutations tried before settling for declaration order."""


def canonical(program: Program) -> Program:
    """The canonical form of ``program`` (module docstring). ``ProgramError`` if it does not check."""
    return _Canonicalizer(analyze(program)).program()


def canonical_hash(program: Program) -> str:
    """16 hex digits identifying ``canonical(program)``; stable across runs and machines."""
    text = print_program(canonical(program), doc=False)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


@dataclass(frozen=True)
class _Labeling:
    states: tuple[str, ...]
    hypers: tuple[str, ...]
    keys: dict[Ref, str]
    signature: tuple[str, ...]


class _Canonicalizer:
    def __init__(self, analysis: Analysis):
        self.a = analysis
        self.p = analysis.program
        self.roots = [analysis.update] + [analysis.state_out[s] for s in analysis.carried]
        self.reachable = self._reachable()
        self.hypers = tuple(h for h, _ in self.p.hyperparams if Ref("hyper", h) in self.reachable)

    def _reachable(self) -> set[Ref]:
        seen: set[Ref] = set()
        stack = list(self.roots)
        while stack:
            ref = stack.pop()
            if ref not in seen:
                seen.add(ref)
                if ref.source == "stmt":
                    stack.extend(self.a.args[ref.key])
        return seen

    # --- labeling -----------------------------------------------------------------------
    def _labelings(self):
        states, hypers = tuple(self.a.carried), self.hypers
        if math.factorial(len(states)) * math.factorial(len(hypers)) > MAX_LABELINGS:
            return [(states, hypers)]
        return itertools.product(itertools.permutations(states), itertools.permutations(hypers))

    def _label(self, states: tuple[str, ...], hypers: tuple[str, ...]) -> _Labeling:
        state_index = {s: i + 1 for i, s in enumerate(states)}
        hyper_index = {h: i + 1 for i, h in enumerate(hypers)}
        defaults = self.p.defaults
        keys: dict[Ref, str] = {}

        def key(ref: Ref) -> str:
            if ref.source == "stmt":
                return keys[ref]
            if ref.source == "state":
                return f"s{state_index[ref.key]}"
            if ref.source == "hyper":
                return f"h{hyper_index[ref.key]}={defaults[ref.key]!r}"
            if ref.source == "const":
                return f"c{float(ref.key)!r}"
            return f"in:{ref.key}"

        for i, stmt in enumerate(self.p.body):  # body order is a topological order
            ref = Ref("stmt", i)
            if ref in self.reachable:
                children = [key(r) for r in self.a.args[i]]
                if ops.OPS[stmt.op].commutative:
                    children.sort()
                keys[ref] = _digest(f"{stmt.op}({','.join(children)})")
        for ref in self.reachable:
            keys.setdefault(ref, key(ref))
        signature = tuple(keys[r] for r in self.roots[:1]) + tuple(
            keys[self.a.state_out[s]] for s in states
        ) + tuple(key(Ref("hyper", h)) for h in hypers)
        return _Labeling(states, hypers, keys, signature)

    # --- writing it out -------------------------------------------------------------------
    def program(self) -> Program:
        best = min((self._label(s, h) for s, h in self._labelings()), key=lambda lab: lab.signature)
        state_name = {s: f"s{i + 1}" for i, s in enumerate(best.states)}
        hyper_name = {h: f"h{i + 1}" for i, h in enumerate(best.hypers)}
        name_of_key: dict[str, str] = {}
        body: list[Statement] = []

        def leaf(ref: Ref):
            if ref.source == "const":
                return Const(float(ref.key))
            if ref.source == "state":
                return Var(state_name[ref.key])
            if ref.source == "hyper":
                return Var(hyper_name[ref.key])
            return Var(ref.key)

        def ordered_args(ref: Ref) -> list[Ref]:
            args = list(self.a.args[ref.key])
            if ops.OPS[self.p.body[ref.key].op].commutative:
                args.sort(key=lambda r: best.keys[r])
            return args

        def arg(ref: Ref):
            return Var(name_of_key[best.keys[ref]]) if ref.source == "stmt" else leaf(ref)

        for root in self.roots[:1] + [self.a.state_out[s] for s in best.states]:
            stack: list[tuple[Ref, bool]] = [(root, False)]
            while stack:  # iterative depth-first post-order
                ref, expanded = stack.pop()
                if ref.source != "stmt" or best.keys[ref] in name_of_key:
                    continue
                if expanded:
                    name = f"t{len(body) + 1}"
                    body.append(Statement(name, self.p.body[ref.key].op, tuple(arg(r) for r in ordered_args(ref))))
                    name_of_key[best.keys[ref]] = name
                else:
                    stack.append((ref, True))
                    stack.extend((r, False) for r in reversed(ordered_args(ref)))

        def returned(ref: Ref) -> str:
            return name_of_key[best.keys[ref]] if ref.source == "stmt" else leaf(ref).name

        step = ["step"] if Ref("input", "step") in self.reachable else []
        params = ("w", "g", *(state_name[s] for s in best.states), "lr", *step)
        returns = (returned(self.a.update),) + tuple(returned(self.a.state_out[s]) for s in best.states)
        hyperparams = tuple((hyper_name[h], self.p.defaults[h]) for h in best.hypers)
        return Program(params=params, body=tuple(body), returns=returns, hyperparams=hyperparams)
