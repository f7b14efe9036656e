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

**Arithmetic.** Each elementwise statement of the program, alone, as torch's own kernel
computes it, on data already in cache (``CACHED`` elements, the suite's threads), scaled to
the step's elements: the costliest of them. No step can be faster than its costliest
operation, and when that is a transcendental such as ``arcsin`` it can be slower than the
memory (the paper's discovered program on a 2-core CPU). Torch's kernel is the yardstick, so
an op torch computes slowly lowers the bar; cheap ops never bind.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache

import torch

CACHED = 1 << 18
"""Elements of the in-cache operands of the arithmetic bound: 1 MB each in fp32."""


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
    op, per_element = costliest_op(name, repeats)
    return Floor(one_pass, reread, (one_pass + reread) * elements / rmw_bandwidth, per_element * elements, op)


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
def costliest_op(name: str, repeats: int = 10) -> tuple[str, float]:
    """The program's costliest elementwise statement run alone on in-cache operands, and its
    seconds per element (module docstring)."""
    from symbolic_opt import ops, runtime
    from symbolic_opt.kinds import Kind

    analysis = _analysis(name)
    gen = torch.Generator().manual_seed(0)
    operand = {
        Kind.TENSOR: lambda: torch.rand(CACHED, generator=gen) * 0.4 + 0.1,  # inside every op's domain
        Kind.TSCALAR: lambda: torch.tensor(0.5),
        Kind.GROUP: lambda: torch.tensor(0.5),
        Kind.SCALAR: lambda: 0.5,
    }
    best = ("", 0.0)
    for i, statement in enumerate(analysis.program.body):
        op = ops.get(statement.op)
        if not analysis.live[i] or analysis.kinds[i] is not Kind.TENSOR or op.reduces or op.torch is None:
            continue
        kinds = [analysis.kind(r) for r in analysis.args[i]]
        # as the generated code passes them: a number where the op takes a tensor is a 0-d one
        kinds = [Kind.GROUP if k is Kind.SCALAR and pos in op.tensor_args else k for pos, k in enumerate(kinds)]
        names = {f"a{pos}": operand[k]() for pos, k in enumerate(kinds)}
        call = compile(op.torch.format(*names), f"<{statement.op}>", "eval")
        namespace = {"torch": torch, "_rt": runtime, **names}
        seconds = _best(lambda: eval(call, namespace), repeats)  # noqa: S307 - the op table's own template
        if seconds / CACHED > best[1]:
            best = (statement.op, seconds / CACHED)
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
