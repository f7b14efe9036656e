"""From an analysis to a plan any backend can emit: what runs where, in which order, and
how the update is applied to the weight.

**The update application.** The training loop applies ``w <- w - update``. When the update
is affine in ``w`` with scalar coefficients,

    update = A * w + sum_i c_i * X_i        (A, c_i scalars; X_i not w itself)

the step is applied as the references do: ``w *= 1 - A`` (decoupled weight decay), then
``w -= c_i * X_i`` for each term, as ``w.add_(X_i, alpha=-c_i)`` or, where ``X_i = a / b`` or
``a * b``, as ``addcdiv_`` / ``addcmul_``. The statements that built the sum are folded into
that application ("absorbed") and never materialize a tensor. Lion's literal
``w - (sign(c) + w * wd) * lr`` thus runs as lion-pytorch's ``w *= 1 - lr * wd;
w -= lr * sign(c)``, with its rounding, and one pass over the weights fewer.

**The schedule.** Scalar statements (kind SCALAR) run once per step before everything
else. The rest run per parameter tensor, except group reductions, which need every tensor
at once: they split the per-tensor work into *levels*. Level ``L`` is a barrier (group
reductions and scalars of the group) followed by a loop over the tensors; a value produced
in loop ``L`` reaches a group reduction at barrier ``L + 1``. Most programs have one level.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from . import ops
from .analysis import Analysis, Ref
from .kinds import Kind

W = Ref("input", "w")


@dataclass(frozen=True)
class Coef:
    """A product of scalar values, possibly negated."""

    factors: tuple[Ref, ...] = ()
    negate: bool = False

    def times(self, factor: Ref) -> "Coef":
        return Coef(self.factors + (factor,), self.negate)

    def negated(self) -> "Coef":
        return Coef(self.factors, not self.negate)


@dataclass(frozen=True)
class Term:
    """``w <- w - coef * value``; ``fused`` names the torch op (addcdiv / addcmul) that folds
    ``value``'s own statement into the application, reading ``operands`` directly."""

    coef: Coef
    value: Ref
    fused: str | None = None
    operands: tuple[Ref, ...] = ()


@dataclass(frozen=True)
class Plan:
    analysis: Analysis
    decay: tuple[Coef, ...]
    """w <- w * (1 - sum(decay)) first."""
    terms: tuple[Term, ...]
    """Then w <- w - coef * value for each term."""
    absorbed: frozenset[int]
    """Statements folded into the application above."""
    host: tuple[int, ...]
    """Statements of kind SCALAR, computed once per step, in program order."""
    device: tuple[int, ...]
    """The other live statements, in execution order."""
    level: dict[int, int]
    """The level of each device statement."""
    at_barrier: frozenset[int]
    """Device statements that run at their level's barrier rather than in its loop."""
    end_level: int
    """The loop in which the update is applied and state written back."""

    @cached_property
    def position(self) -> dict[int, int]:
        """Each device statement's place in the execution order."""
        return {i: p for p, i in enumerate(self.device)}

    @property
    def end(self) -> int:
        """The execution position of the update application and state write-back."""
        return len(self.device)

    @cached_property
    def end_reads(self) -> list[Ref]:
        reads = [t.value for t in self.terms if not t.fused]
        reads += [r for t in self.terms if t.fused for r in t.operands]
        reads += [f for c in self.decay for f in c.factors]
        reads += [f for t in self.terms for f in t.coef.factors]
        reads += [self.analysis.state_out[s] for s in self.analysis.carried]
        return reads

    @cached_property
    def reads(self) -> dict[Ref, list[int]]:
        """For each value, the execution positions that read it (``end`` for the application)."""
        out: dict[Ref, list[int]] = {}
        for i in self.device:
            for r in self.analysis.args[i]:
                out.setdefault(r, []).append(self.position[i])
        for r in self.end_reads:
            out.setdefault(r, []).append(self.end)
        return out

    def last_read(self, ref: Ref) -> int:
        return max(self.reads.get(ref, [-1]))

    def levels(self) -> range:
        return range(self.end_level + 1)


def plan(analysis: Analysis) -> Plan:
    decay, terms, absorbed = _decompose_update(analysis)
    host, device, level, at_barrier = _schedule(analysis, absorbed)
    end_refs = [t.value for t in terms] + [r for t in terms for r in t.operands]
    end_refs += [analysis.state_out[s] for s in analysis.carried]
    # coefficients too: a decay or a term scaled by a group reduction (w * global_norm(x))
    # must wait for the barrier that computes it
    end_refs += [f for c in decay for f in c.factors] + [f for t in terms for f in t.coef.factors]
    end_level = max([_level_of(r, level) for r in end_refs] + [0])
    loop_levels = [level[i] for i in device if i not in at_barrier]
    end_level = max([end_level] + loop_levels)
    return Plan(analysis, decay, terms, absorbed, host, device, level, at_barrier, end_level)


def _level_of(ref: Ref, level: dict[int, int]) -> int:
    return level.get(ref.key, 0) if ref.source == "stmt" else 0


def _decompose_update(a: Analysis) -> tuple[tuple[Coef, ...], tuple[Term, ...], frozenset[int]]:
    carried_outs = {a.state_out[s] for s in a.carried}
    decay: list[Coef] = []
    terms: list[Term] = []
    absorbed: set[int] = set()

    def foldable(ref: Ref, root: bool) -> bool:
        return (
            ref.source == "stmt"
            and len(a.uses.get(ref, [])) == (0 if root else 1)
            and ref not in carried_outs
            and a.kind(ref) is Kind.TENSOR
        )

    def walk(ref: Ref, coef: Coef, root: bool = False) -> None:
        if ref == W:
            decay.append(coef)
            return
        if foldable(ref, root):
            i = ref.key
            op = a.program.body[i].op
            args = a.args[i]
            kinds = [a.kind(r) for r in args]
            if op in ("add", "sub"):
                absorbed.add(i)
                walk(args[0], coef)
                walk(args[1], coef if op == "add" else coef.negated())
                return
            if op == "negative":
                absorbed.add(i)
                walk(args[0], coef.negated())
                return
            if op == "mul" and Kind.TENSOR in kinds and kinds != [Kind.TENSOR, Kind.TENSOR]:
                tensor_pos = kinds.index(Kind.TENSOR)
                absorbed.add(i)
                walk(args[tensor_pos], coef.times(args[1 - tensor_pos]))
                return
            fused = {"exact_div": "addcdiv", "mul": "addcmul"}.get(op)
            if fused and all(k is Kind.TENSOR for k in kinds) and W not in args and all(_host(a, f) for f in coef.factors):
                absorbed.add(i)
                terms.append(Term(coef, ref, fused, tuple(args)))
                return
        terms.append(Term(coef, ref))

    walk(a.update, Coef(), root=True)
    return tuple(decay), tuple(terms), frozenset(absorbed)


def _host(a: Analysis, ref: Ref) -> bool:
    return a.kind(ref) is Kind.SCALAR


def _schedule(a: Analysis, absorbed: frozenset[int]):
    level: dict[int, int] = {}
    host: list[int] = []
    keyed: list[tuple[int, int]] = []
    at_barrier: set[int] = set()
    for i, alive in enumerate(a.live):
        if not alive or i in absorbed:
            continue
        op = ops.OPS[a.program.body[i].op]
        kind = a.kinds[i]
        if kind is Kind.SCALAR and not op.needs_group:
            host.append(i)
            continue
        refs = a.args[i]
        barrier = op.needs_group or kind is Kind.GROUP
        if barrier:
            lv = max(
                [_level_of(r, level) + (1 if a.kind(r).per_parameter else 0) for r in refs if a.kind(r).on_device]
                + [0]
            )
            at_barrier.add(i)
        else:
            lv = max([_level_of(r, level) for r in refs] + [0])
        level[i] = lv
        keyed.append((2 * lv + (0 if barrier else 1), i))
    device = tuple(i for _, i in sorted(keyed))
    return tuple(host), device, level, frozenset(at_barrier)
