"""The floor of one optimizer step on this machine: the least time any implementation of the
program could take, whichever of two bounds binds (a roofline).

**Memory.** A step reads w, g and each tensor state, and writes w and each state:
``4 * (3 + 2 * S)`` bytes per fp32 element, in one pass. A reduction the update depends on
(LAMB's ``tensor_norm``, cautious Lion's ``tensor_mean``, ``global_norm``) must finish before w
is written, so every tensor it reads (through the statements that feed it) is read once more,
in a pass of its own: 4 more bytes per element for each. That is the schedule the fused backend
runs (the update pass recomputes what it needs rather than storing a temporary); storing one
instead could save at most one stream of the re-read, for a tensor more of memory. The bytes
are timed at the read-modify-write bandwidth of ``a.add_(b)``, measured beside the step.

**Arithmetic.** Each one-argument statement of the program (``arcsin``, ``exp``, ``sqrt``),
alone, as torch's own vectorized kernel computes it (the one inductor's code calls too), over
the step's elements with the suite's threads, from one tensor into another: 8 bytes an element,
less than any step moves, so an op that takes longer than the memory does is bound by its
arithmetic, and no step that computes it can be faster. The costliest counts. It binds for the
paper's discovered program (``arcsin``) and PowerSign (``exp``) on this 2-core CPU; cheap ops
never do. Operations of
two or more arguments are cheap arithmetic (``where`` is a blend, ``mul`` a multiply) and are
not timed: torch's eager kernels for them cost memory and dispatch, not arithmetic.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from functools import lru_cache

import torch


@dataclass(frozen=True)
class Floor:
    """A program's floor at ``elements`` parameters."""

    one_pass_bytes: int
    """Per element: reads w, g and each tensor state; writes w and each state."""
    reread_bytes: int
    """Per element: the tensors a reduction the update needs reads again."""
    memory_s: float
    arithmetic_s: float
    costliest_op: str

    @property
    def seconds(self) -> float:
        return max(self.memory_s, self.arithmetic_s)

    @property
    def bound(self) -> str:
        """What sets it: ``memory``, ``memory, 2 passes`` or ``arithmetic: OP``."""
        if self.arithmetic_s > self.memory_s:
            return f"arithmetic: {self.costliest_op}"
        return "memory, 2 passes" if self.reread_bytes else "memory"


def floor(name: str, elements: int, rmw_bandwidth: float, repeats: int = 10) -> Floor:
    """The floor (module docstring) of library program ``name``'s step over ``elements`` fp32
    elements, at ``rmw_bandwidth`` bytes per second."""
    one_pass, reread = step_bytes(name)
    op, seconds = costliest_op(name, elements, repeats)
    return Floor(one_pass, reread, (one_pass + reread) * elements / rmw_bandwidth, seconds, op)


@lru_cache(maxsize=None)
def step_bytes(name: str) -> tuple[int, int]:
    """Per fp32 element: the one-pass bytes and the bytes of the reductions' second reads."""
    analysis = _analysis(name)
    from symbolic_opt.kinds import Kind

    states = sum(1 for k in analysis.state_kinds.values() if k is Kind.TENSOR)
    return 4 * (3 + 2 * states), 4 * len(reduction_inputs(analysis))


def reduction_inputs(analysis) -> frozenset:
    """The tensors (``w``, ``g``, tensor states, as ``Ref``s) that the live reductions of a
    program read, through the statements that feed them."""
    from symbolic_opt import ops
    from symbolic_opt.kinds import Kind

    seen: set = set()
    found: set = set()

    def walk(ref) -> None:
        if ref in seen:
            return
        seen.add(ref)
        if ref.source == "stmt":
            for r in analysis.args[ref.key]:
                walk(r)
        elif ref.source in ("input", "state") and analysis.kind(ref) is Kind.TENSOR:
            found.add(ref)

    for i, statement in enumerate(analysis.program.body):
        if analysis.live[i] and ops.get(statement.op).reduces:
            for r in analysis.args[i]:
                walk(r)
    return frozenset(found)


@lru_cache(maxsize=None)
def costliest_op(name: str, elements: int, repeats: int = 10) -> tuple[str, float]:
    """The program's costliest one-argument statement, timed alone over ``elements`` (module
    docstring), and its seconds: the last call of the op's in-place form (``sqrt_`` of
    ``abs_().sqrt_()``: the ``abs`` is free in a fused kernel), written into another tensor."""
    from symbolic_opt import ops
    from symbolic_opt.kinds import Kind

    analysis = _analysis(name)
    x = torch.rand(elements, generator=torch.Generator().manual_seed(0)) * 0.4 + 0.1  # in every op's domain
    y = torch.empty_like(x)
    best = ("", 0.0)
    for i, statement in enumerate(analysis.program.body):
        op = ops.get(statement.op)
        if not analysis.live[i] or analysis.kinds[i] is not Kind.TENSOR or op.arity != 1 or not op.inplace:
            continue
        method, args = re.findall(r"\.(\w+)_\(([^()]*)\)", op.inplace)[-1]
        call = getattr(torch, method)
        extra = [float(a) for a in args.split(",") if a.strip()]
        seconds = _best(lambda: call(x, *extra, out=y), repeats)
        if seconds > best[1]:
            best = (statement.op, seconds)
    return best


def _best(fn, repeats: int) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


@lru_cache(maxsize=None)
def _analysis(name: str):
    import programs

    from symbolic_opt.analysis import analyze

    return analyze(programs.load(name))
