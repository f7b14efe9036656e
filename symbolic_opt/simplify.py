"""Simplify a program step by step, saying at each step what changed and why it is equal.

    result = simplify(programs.load("discovered"))
    print(result.program)                 # Lion's form, one state variable
    for step in result.steps: print(step)

The paper's three stages (paper-notes section 3):

1. **dead code and dead state** (``dataflow.prune``): statements no output reads, and state
   variables written before they are read, whose buffers go. Exact by dataflow.
2. **algebra** (``rewrites.py``): rules applied one at a time, first statement first, until
   none applies; each application is a step, checked by sympy on the statement it changes
   (what the statement computed, and what replaces it, as functions of the values they read:
   equal, exactly or up to the division guard; a folded constant counts as the exact value
   it rounds; ``rewrites.prove``). Where sympy finds no proof, a randomized numeric check of the whole program
   decides, and a rewrite that fails it is not taken. Statements left dead go at once.
3. **small effect** (optional, ``score``): each statement in turn is dropped (its readers
   read one of its arguments of the same kind instead: ``clip(g, lr)`` -> ``g``, or
   ``update + wd`` -> ``update``); a drop that moves the score by at most ``tolerance``
   from the program's score on entering this stage is kept, then stages 1 and 2 run again.
   (A drop that changes the score more, for better or worse, changes the optimizer: it is
   not a simplification.) Not an equivalence: the step records both scores.

The result keeps the original statement order and, where it can, the original names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Callable

from .analysis import Ref, analyze
from .canonical import canonical_hash
from .dataflow import base_name, prune, readable, rename_for_display, replace_value, to_ssa
from .equivalence import compare
from .errors import ProgramError
from .ir import Program, Var
from .linear import LinearView
from .printer import format_statement
from .proof import Proof
from .rewrites import Rewrite, candidates, prove

Score = Callable[[Program], float]

MAX_STEPS = 200


@dataclass(frozen=True)
class Step:
    """One change: its stage (1, 2, 3), what it did, why the result is the same optimizer."""

    stage: int
    title: str
    changes: tuple[str, ...]
    """``- old statement`` / ``+ new statement`` lines, in the program's own names."""
    why: str
    proof: Proof | None
    """How it was established; ``None`` for stage 3 (a measured drop, not an equivalence)."""
    program: Program
    """The program after this step (SSA names; ``readable`` to print)."""

    def __str__(self) -> str:
        lines = [f"[{self.stage}] {self.title}"]
        lines += [f"      {c}" for c in self.changes]
        lines.append(f"      why: {self.why}")
        if self.proof is not None:
            lines.append(f"      proof: {self.proof.detail}")
        return "\n".join(lines)


@dataclass(frozen=True)
class Simplification:
    """The result of ``simplify``."""

    original: Program
    program: Program
    steps: tuple[Step, ...] = field(default=())

    @property
    def exact(self) -> bool:
        """Whether every step was proven (no stage-3 drop, no numeric-only check)."""
        return all(s.proof is not None and s.proof.symbolic for s in self.steps)


def _show(stmt) -> str:
    return rename_for_display(format_statement(stmt))


# --- stage 1 ----------------------------------------------------------------------------------
def remove_dead(program: Program) -> Step | None:
    """Stage 1 on ``program``: the step, or ``None`` when nothing is dead."""
    pruned = prune(program)
    if not pruned.changed:
        return None
    changes = [f"- {_show(s)}" for s in pruned.statements]
    changes += [f"- state {s}: written before it is read, it carries nothing between steps; no buffer"
                for s in pruned.state]
    why = "no output (the update or a carried state's next value) reads what was removed"
    return Step(1, "remove dead code" + (" and dead state" if pruned.state else ""), tuple(changes), why,
                Proof("exact", "dataflow: the outputs are computed by the very same statements"), pruned.program)


# --- stage 2 ----------------------------------------------------------------------------------
def _changes(before: Program, rewrite: Rewrite, pruned) -> list[str]:
    old = before.body[rewrite.index]
    lines = [f"- {_show(old)}"]
    if rewrite.alias is not None:
        lines.append(f"  its readers read {rename_for_display(str(rewrite.alias))} instead")
    else:
        lines += [f"+ {_show(s)}" for s in rewrite.statements]
    lines += [f"- {_show(s)}   (no longer read)" for s in pruned.statements if s != old]
    lines += [f"- state {s}   (no longer read)" for s in pruned.state]
    return lines


TITLES = {
    "fold": "fold constants",
    "identity": "remove an identity",
    "abs": "sqrt(x * x) is |x|",
    "sign": "x / |x| is sign(x)",
    "linear chain": "merge a linear chain",
    "linear recurrence": "merge a linear recurrence",
}


def _try(program: Program, rewrite: Rewrite) -> Step | None:
    after = rewrite.apply(program)
    try:
        pruned = prune(after)
    except ProgramError:
        return None
    proof = prove(program, rewrite)
    if proof is None:
        verdict = compare(program, pruned.program, use_sympy=False)
        if not verdict.equivalent:
            return None
        proof = verdict.proof
    title = f"{TITLES.get(rewrite.rule, rewrite.rule)}: {base_name(program.body[rewrite.index].target)}"
    detail = rename_for_display(proof.detail)
    if rewrite.exact and proof.grade != "numeric":
        shown = ", ".join(sorted({repr(_folded(rewrite, k, j)) for k, j in rewrite.exact}))
        detail += f", with {shown} taken as the exact value it rounds to float64"
    proof = replace(proof, detail=detail)
    return Step(2, title, tuple(_changes(program, rewrite, pruned)), rewrite.reason, proof, pruned.program)


def _folded(rewrite: Rewrite, k: int, j: int) -> float:
    return rewrite.alias.value if k < 0 else rewrite.statements[k].args[j].value


def _chain(program: Program, index: int) -> int:
    return LinearView(analyze(program)).combination(Ref("stmt", index)).steps


def _simpler(before: Program, step: Step, rewrite: Rewrite) -> bool:
    """The measure that makes rewriting terminate: fewer statements, or as many and a
    shorter linear chain at the rewritten statement."""
    n_before, n_after = len(before.body), len(step.program.body)
    if n_after != n_before or not rewrite.rule.startswith("linear"):
        return n_after <= n_before
    target = before.body[rewrite.index].target
    index = next((i for i, s in enumerate(step.program.body) if s.target == target), None)
    return index is not None and _chain(step.program, index) < _chain(before, rewrite.index)


def rewrite_steps(program: Program, max_steps: int = MAX_STEPS) -> list[Step]:
    """Stage 2 on a pruned SSA program: the steps, in order."""
    steps: list[Step] = []
    while len(steps) < max_steps:
        for rewrite in candidates(analyze(program)):
            step = _try(program, rewrite)
            if step is not None and _simpler(program, step, rewrite):
                steps.append(step)
                program = step.program
                break
        else:
            return steps
    return steps


# --- stage 3 ----------------------------------------------------------------------------------
def _drops(program: Program):
    """``(index, argument)``: statement ``index`` replaced by its argument of the same kind."""
    a = analyze(program)
    for i, stmt in enumerate(program.body):
        seen = set()
        for x, ref in zip(stmt.args, a.args[i]):
            if isinstance(x, Var) and x.name not in seen and a.kind(ref) is a.kinds[i]:
                seen.add(x.name)
                yield i, x


def small_effect_steps(program: Program, score: Score, tolerance: float) -> list[Step]:
    """Stage 3 on a simplified SSA program (module docstring), with stages 1 and 2 after each drop."""
    cache: dict[str, float] = {}

    def measured(p: Program) -> float:
        key = canonical_hash(p)
        if key not in cache:
            try:
                value = float(score(readable(p)))
            except Exception:  # noqa: BLE001 - a program the scorer cannot run is as bad as it gets
                value = -math.inf
            cache[key] = value if value == value else -math.inf
        return cache[key]

    reference = measured(program)
    steps: list[Step] = []
    tried: set[tuple[str, str]] = set()
    changed = True
    while changed and len(steps) < MAX_STEPS:
        changed = False
        for i, x in _drops(program):
            stmt = program.body[i]
            try:
                candidate = prune(replace_value(program, stmt.target, x)).program
                analyze(candidate)
            except (ProgramError, ValueError):
                continue
            key = (canonical_hash(program), f"{i}:{x.name}")
            if key in tried:
                continue
            tried.add(key)
            value = measured(candidate)
            if abs(value - reference) <= tolerance:
                why = (f"score {value:.4f} without it, {reference:.4f} on entering this stage: "
                       f"a change within the tolerance {tolerance:g}")
                lines = [f"- {_show(stmt)}", f"  its readers read {rename_for_display(x.name)} instead"]
                steps.append(Step(3, f"drop {_show(stmt)}", tuple(lines), why, None, candidate))
                program = candidate
                steps += rewrite_steps(program)
                program = steps[-1].program
                changed = True
                break
    return steps


# --- all of it --------------------------------------------------------------------------------
def simplify(
    program: Program,
    *,
    algebra: bool = True,
    score: Score | None = None,
    tolerance: float = 0.002,
) -> Simplification:
    """Simplify ``program`` (module docstring). ``algebra=False`` stops after stage 1;
    ``score`` (higher is better) turns on stage 3."""
    analyze(program)  # a ProgramError here, before anything else
    current = to_ssa(program)
    steps: list[Step] = []
    dead = remove_dead(current)
    if dead is not None:
        steps.append(dead)
        current = dead.program
    if algebra:
        steps += rewrite_steps(current)
        current = steps[-1].program if steps else current
    if score is not None:
        steps += small_effect_steps(current, score, tolerance)
        current = steps[-1].program if steps else current
    result = replace(readable(current), name=program.name, doc=None)
    return Simplification(program, result, tuple(steps))

