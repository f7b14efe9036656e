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
Scalar statements of constants alone are folded at compile time (``Op.fold``).

**Buffers.** Every statement writes a fresh tensor unless it can overwrite one nobody reads
afterwards (in execution order, the update application included):

* a temporary at its last read (``update = sign(update)`` becomes ``update.sign_()``);
* a state variable's buffer: the chain of statements that ends in the variable's next value
  is computed in its buffer when the chain starts by reading the old value in place and the
  old value is not read afterwards (``m = interp(g, m, b2)`` becomes ``m.lerp_(g, 1 - b2)``);
  where the backend can (``Target.out``), the chain's last statement writes there with ``out=``.
Otherwise the next value is copied into the buffer at the end (``Plan.writeback``).

**Targets.** Planning needs a few facts about the code a backend writes (``Target``): whether
its scalars are host numbers, whether its values are lists of tensors (then an in-place form
exists per argument signature), whether it may write with ``out=`` or run on pieces. Each
emitter (``codegen.py``) declares its target; everything decided here, the emitter only writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Mapping

from . import ops
from .analysis import Analysis, Ref
from .kinds import Kind

W = Ref("input", "w")

OUT = -1
"""In ``Plan.inplace``, the position of a statement that writes a state's buffer with ``out=``."""


@dataclass(frozen=True)
class Target:
    """What a backend's generated code can say, as far as planning needs to know (module
    docstring). Declared by each emitter in ``codegen.py``."""

    name: str
    host_scalars: bool
    """Scalars are host numbers (else tensors: 0-d, or any shape broadcasting against w)."""
    lists: bool = False
    """A value is a list of tensors, one call per statement for the group (``torch._foreach_*``)."""
    out: bool = False
    """A statement may write a state's next value straight into its buffer with ``out=``."""
    pieces: bool = False
    """Elementwise steps may run on pieces of large tensors (``runtime.chunks`` / ``tiles``)."""
    hoist: bool = False
    """Scalars are tensors in the device code, but every value that depends only on ``lr``,
    ``step`` and hyperparameters is computed once per step on the host (float64), before it, and
    reaches it as one 0-d tensor (``torch.compile``: a new value is new data, never a new graph,
    and no kernel recomputes ``1 - beta1 ** step`` per element)."""


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
    ``value``'s own statement into the application, reading ``operands`` directly.

    ``form`` is how it is applied (decided by ``plan`` for its target):

    * ``"fused"``: ``w.addcdiv_(a, b, value=-coef)``, the coefficient a host number;
    * ``"fused_scaled"``: ``w.addcdiv_(a * coef, b, value=-1)``, the coefficient a tensor
      (``value=`` takes numbers only);
    * ``"alpha"``: ``w.add_(value, alpha=-coef)``, a host coefficient of a tensor;
    * ``"plain"``: ``w.sub_(value)`` (no coefficient);
    * ``"scaled"``: ``w.sub_(value * coef)``.

    (``add_`` instead of ``sub_``, and signs flipped, when ``coef`` is negated.)"""

    coef: Coef
    value: Ref
    fused: str | None = None
    operands: tuple[Ref, ...] = ()
    form: str = "scaled"


@dataclass(frozen=True)
class Plan:
    analysis: Analysis
    target: Target
    decay: tuple[Coef, ...]
    """w <- w * (1 - sum(decay)) first."""
    terms: tuple[Term, ...]
    """Then w <- w - coef * value for each term."""
    absorbed: frozenset[int]
    """Statements folded into the application above."""
    host: tuple[int, ...]
    """Statements of kind SCALAR computed once per step (in program order), before the rest."""
    device: tuple[int, ...]
    """The other live statements, in execution order."""
    level: dict[int, int]
    """The level of each device statement."""
    at_barrier: frozenset[int]
    """Device statements that run at their level's barrier rather than in its loop."""
    end_level: int
    """The loop in which the update is applied and state written back."""
    folded: Mapping[Ref, float] = field(default_factory=dict)
    """Scalar statements of constants, evaluated at compile time (not in ``host``)."""
    host_decay: bool = False
    """Whether the decay factor ``1 - sum(decay)`` is one host number, computed with the host
    statements (the multiply is then skipped when it is 1)."""
    inplace: Mapping[int, tuple[int, str]] = field(default_factory=dict)
    """Device statement -> (argument position whose buffer it overwrites, or ``OUT``;
    ``"state"`` or ``"temp"``): in-place forms (module docstring)."""
    in_state: Mapping[int, str] = field(default_factory=dict)
    """Device statement -> the state variable whose buffer holds its result."""
    clone_sources: frozenset[Ref] = frozenset()
    """Old values read by the write-back that something overwrites first: copied up front."""
    tiled: bool = False
    """Whether the step runs on pieces of the tensors (``_plan_pieces``)."""
    writeback: tuple[tuple[str, Ref], ...] = ()
    """(state, value) copied into the state's buffer at the end: the next values not already there."""
    hoisted: tuple[int, ...] = ()
    """Terms (positions in ``terms``) whose coefficient, a product of host values, is computed
    once on the host and reaches the device code as one scalar (``Target.hoist``)."""

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

    def is_number(self, ref: Ref) -> bool:
        """Whether the value is a host number in this target's code (not a tensor)."""
        if ref.source == "const" or ref in self.folded:
            return True
        return self.target.host_scalars and self.analysis.kind(ref) is Kind.SCALAR

    def coef_host(self, coef: Coef) -> bool:
        return all(self.is_number(f) for f in coef.factors)

    def on_host(self, ref: Ref) -> bool:
        """Whether the value is computed on the host (a number there; in the device code a
        number, or a 0-d tensor with ``Target.hoist``)."""
        return self.is_number(ref) or (self.target.hoist and self.analysis.kind(ref) is Kind.SCALAR)

    def inplace_template(self, op: ops.Op, refs: list[Ref]) -> str | None:
        """``op``'s in-place form for these arguments (argument 0 overwritten) in this target."""
        if self.target.lists:
            sig = "".join("L" if self.analysis.kind(r).per_parameter else "S" for r in refs)
            return op.foreach_inplace.get(sig)
        return op.inplace

    def can_mirror(self, refs: tuple[Ref, ...]) -> bool:
        """Whether the op table's mirror text (``1 - {2}``) can be written for these arguments:
        it is arithmetic on one value, so on a number, a 0-d tensor or a tensor, not a list."""
        return not (self.target.lists and any(self.analysis.kind(r).per_parameter for r in refs[2:]))

    def inplace_positions(self, i: int) -> list[int]:
        """Argument positions whose buffer statement ``i`` can overwrite in this target."""
        op = ops.OPS[self.analysis.program.body[i].op]
        refs = self.analysis.args[i]
        positions = []
        for pos in op.overwrites:
            if pos >= len(refs) or self.analysis.kind(refs[pos]) is not Kind.TENSOR:
                continue
            if pos == 1 and not (op.commutative or (op.mirror and self.can_mirror(refs))):
                continue
            if self.inplace_template(op, reordered(op, pos, list(refs))):
                positions.append(pos)
        return positions


def reordered(op: ops.Op, pos: int, refs: list) -> list:
    """The arguments with position ``pos`` first: swapped (commutative) or mirrored (``op.mirror``:
    the arguments' order; ``codegen`` writes the mirror's text)."""
    if pos == 0:
        return refs
    return [refs[1], refs[0], *refs[2:]]


def plan(analysis: Analysis, target: Target) -> Plan:
    """What runs where and how, for ``target`` (module docstring)."""
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
    folded, host = _fold(analysis, host)
    p = Plan(analysis, target, decay, terms, absorbed, host, device, level, at_barrier, end_level, folded)
    p = replace(p, host_decay=bool(decay) and all(p.on_host(f) for c in decay for f in c.factors),
                terms=tuple(replace(t, form=_form(p, t)) for t in terms))
    if target.hoist:
        p = replace(p, hoisted=tuple(
            k for k, t in enumerate(p.terms) if len(t.coef.factors) > 1 and all(p.on_host(f) for f in t.coef.factors)
        ))
    p = replace(p, clone_sources=_clone_sources(analysis))
    inplace, in_state = _plan_buffers(p)
    p = replace(p, inplace=inplace, in_state=in_state)
    writeback = tuple(
        (s, out) for s in analysis.carried
        if (out := analysis.state_out[s]) != Ref("state", s) and not (out.source == "stmt" and in_state.get(out.key) == s)
    )
    return replace(p, writeback=writeback, tiled=_plan_pieces(p))


def _fold(a: Analysis, host: tuple[int, ...]) -> tuple[dict[Ref, float], tuple[int, ...]]:
    """Scalar statements whose arguments are all constants (or folded): their values."""
    folded: dict[Ref, float] = {}
    rest = []
    for i in host:
        refs = a.args[i]
        if all(r.source == "const" or r in folded for r in refs):
            values = [float(r.key) if r.source == "const" else folded[r] for r in refs]
            folded[Ref("stmt", i)] = ops.OPS[a.program.body[i].op].fold(values)
        else:
            rest.append(i)
    return folded, tuple(rest)


def _form(p: Plan, term: Term) -> str:
    """How ``term`` is applied (``Term``'s docstring)."""
    host = p.coef_host(term.coef)
    if term.fused:
        return "fused" if host else "fused_scaled"
    if not term.coef.factors:
        return "plain"
    if host and p.analysis.kind(term.value) is Kind.TENSOR:
        return "alpha"
    return "scaled"


# --- buffers ------------------------------------------------------------------------------------
def _plan_buffers(p: Plan) -> tuple[dict[int, tuple[int, str]], dict[int, str]]:
    """Which statements overwrite a buffer in place (module docstring)."""
    a = p.analysis
    inplace: dict[int, tuple[int, str]] = {}
    in_state: dict[int, str] = {}
    claimed: set[int] = set()
    for s in a.carried:
        chain = _state_chain(p, s, claimed)
        if chain:
            for i, pos in chain:
                inplace[i] = (pos, "state")
                in_state[i] = s
                claimed.add(i)
    for i in p.device:
        if i in inplace or i in p.at_barrier or a.kinds[i] is not Kind.TENSOR:
            continue
        for pos in p.inplace_positions(i):
            v = a.args[i][pos]
            if _reusable_temp(p, v, i, in_state):
                inplace[i] = (pos, "temp")
                break
    return inplace, in_state


def _state_chain(p: Plan, s: str, claimed: set[int]) -> list[tuple[int, int]] | None:
    a = p.analysis
    out = a.state_out[s]
    old = Ref("state", s)
    if out.source != "stmt" or a.state_kinds[s] is not Kind.TENSOR:
        return None
    chain: list[tuple[int, int]] = []
    cur = out
    while True:
        i = cur.key
        if i in claimed or i not in p.position or a.kinds[i] is not Kind.TENSOR:
            return None
        if i in p.at_barrier:
            return None
        positions = p.inplace_positions(i)
        step = next(((pos, None) for pos in positions if a.args[i][pos] == old), None)
        for pos in positions if step is None else ():
            v = a.args[i][pos]
            if (
                v.source == "stmt"
                and v.key in p.position
                and p.reads.get(v, []) == [p.position[i]]
                and a.kinds[v.key] is Kind.TENSOR
                and v not in p.clone_sources
            ):
                step = (pos, v)
                break
        if step is None and _writes_out(p, i):
            step = (OUT, None)
        if step is None:
            return None
        chain.append((i, step[0]))
        if step[1] is None:
            start = p.position[i]
            later = [q for q in p.reads.get(old, []) if q > start]
            if later:
                return None
            return chain
        cur = step[1]


def _writes_out(p: Plan, i: int) -> bool:
    """Whether statement ``i`` may write its state's next value straight into the buffer with
    ``out=``, saving the copy at the end: the target can, its template is one torch call, and
    nothing but the write-back reads the value (so no later statement sees it in the buffer's
    dtype rather than its own). Old values read after ``i`` are checked by the caller."""
    a = p.analysis
    ref = Ref("stmt", i)
    return (
        p.target.out
        and ops.OPS[a.program.body[i].op].out_template is not None
        and p.reads.get(ref, []) == [p.end]
        and all(t.value != ref and ref not in t.operands and ref not in t.coef.factors for t in p.terms)
        and not any(ref in c.factors for c in p.decay)
        and list(a.state_out.values()).count(ref) == 1
    )


def _reusable_temp(p: Plan, v: Ref, i: int, in_state: Mapping[int, str]) -> bool:
    if v.source != "stmt" or v.key not in p.position or v.key in in_state:
        return False
    if p.analysis.kinds[v.key] is not Kind.TENSOR or v in p.clone_sources:
        return False
    return p.last_read(v) == p.position[i]


def _clone_sources(a: Analysis) -> frozenset[Ref]:
    """Old values read by the write-back that something overwrites first."""
    out = set()
    for s in a.carried:
        r = a.state_out[s]
        if r == W or (r.source == "state" and r.key != s and a.state_out[r.key] != r):
            out.add(r)
    return frozenset(out)


def _plan_pieces(p: Plan) -> bool:
    """Whether the step may run on pieces of the tensors (``_rt.chunks`` / ``_rt.tiles``):
    when every device statement is elementwise on tensors shaped like w, so that a piece of
    each input gives the same piece of each result. Then temporaries are a piece's size,
    allocated from memory the allocator already holds (a whole 16M-element temporary is
    fresh pages every step: page faults cost more than the arithmetic; ``runtime.CHUNK``
    says why pieces are few and large). Only where the target may (not with tensor scalars:
    torch.compile makes one pass anyway; an ``[R, 1]`` scalar does not cut into pieces of a
    row), and not for group or per-tensor reductions, per-tensor state, or write-backs that
    need copies."""
    a = p.analysis
    if not p.target.pieces or p.at_barrier or p.end_level != 0 or p.clone_sources:
        return False
    if any(a.state_kinds[s] is not Kind.TENSOR for s in a.carried):
        return False
    for i in p.device:
        if ops.OPS[a.program.body[i].op].rule is not ops.Rule.MAP or a.kinds[i] is not Kind.TENSOR:
            return False
    refs = [r for i in p.device for r in a.args[i]] + list(p.end_reads)
    return all(a.kind(r) in (Kind.SCALAR, Kind.TENSOR) for r in refs)


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
            op = ops.OPS[a.program.body[i].op]
            args = a.args[i]
            kinds = [a.kind(r) for r in args]
            if op.signs is not None:  # a signed sum of its arguments
                absorbed.add(i)
                for arg, sign in zip(args, op.signs):
                    walk(arg, coef if sign > 0 else coef.negated())
                return
            if op.scales and Kind.TENSOR in kinds and kinds != [Kind.TENSOR, Kind.TENSOR]:
                tensor_pos = kinds.index(Kind.TENSOR)
                absorbed.add(i)
                walk(args[tensor_pos], coef.times(args[1 - tensor_pos]))
                return
            if op.apply and all(k is Kind.TENSOR for k in kinds) and W not in args and all(_host(a, f) for f in coef.factors):
                absorbed.add(i)
                terms.append(Term(coef, ref, op.apply, tuple(args)))
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
