"""``compile_program``: a program -> a step function that updates tensors in place.

    compiled = compile_program(program, backend="foreach")
    print(compiled.source)                       # the generated torch code
    compiled(params, grads, [m_buffers], lr=1e-4, beta1=0.9, ...)

``params`` and ``grads`` are lists of tensors; ``states`` holds, for each *carried* state
variable in order (``compiled.state``), the list of its buffers. Backends: ``eager``
(per tensor), ``foreach`` (``torch._foreach_*``), ``fused`` (``torch.compile`` of the
per-tensor step with every scalar a 0-d tensor, so a new lr never recompiles), ``tensor``
(that code run as plain Python: scalars are tensors of any shape that broadcasts against
the parameters, e.g. one learning rate per row of ``R`` models stacked in an ``[R, N]`` tensor).
"""

from __future__ import annotations

import functools
import linecache
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from . import runtime
from .analysis import Analysis, analyze
from .codegen import BACKENDS, generate, target
from .ir import Program
from .kinds import Kind
from .lowering import plan


@dataclass(frozen=True, eq=False)
class CompiledProgram:
    """A program compiled for one backend. Call it to take one step (module docstring)."""

    program: Program
    analysis: Analysis
    backend: str
    source: str
    state: tuple[str, ...]
    """The carried state variables: the buffers a caller keeps, in this order."""
    scalars: tuple[str, ...]
    """The scalar inputs the step takes by keyword: ``lr``, maybe ``step``, the hyperparameters."""
    fn: Callable[..., None] = field(repr=False)

    @property
    def state_kinds(self) -> Mapping[str, Kind]:
        return {s: self.analysis.state_kinds[s] for s in self.state}

    def __call__(
        self,
        params: Sequence[torch.Tensor],
        grads: Sequence[torch.Tensor],
        states: Sequence[Sequence[torch.Tensor]] = (),
        **scalars: Any,
    ) -> None:
        if len(states) != len(self.state):
            raise ValueError(f"expected {len(self.state)} state lists ({', '.join(self.state) or 'none'}), got {len(states)}")
        merged = {**self.program.defaults, **scalars}
        missing = [s for s in self.scalars if s not in merged]
        if missing:
            raise TypeError(f"missing scalar input(s): {', '.join(missing)}")
        kwargs = {s: merged[s] for s in self.scalars}
        self.fn(list(params), list(grads), *[list(s) for s in states], **kwargs)

    def init_state(self, params: Sequence[torch.Tensor], dtype: torch.dtype | None = None) -> list[list[torch.Tensor]]:
        """Zero buffers for ``params``: one list per carried state variable."""
        out = []
        for s in self.state:
            if self.analysis.state_kinds[s] is Kind.TENSOR:
                out.append([torch.zeros_like(p, dtype=dtype or p.dtype) for p in params])
            else:
                out.append([torch.zeros((), dtype=dtype or p.dtype, device=p.device) for p in params])
        return out


def compile_program(program: Program, backend: str = "foreach") -> CompiledProgram:
    """Compile ``program`` for ``backend`` (one of ``eager``, ``foreach``, ``fused``, ``tensor``).

    Raises ``ProgramError`` if the program does not check (``analyze``). Cached by
    program and backend.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    return _compile(program, backend)


FUSED_OPTIONS = {"size_asserts": False, "realize_reads_threshold": 64, "cpp.max_horizontal_fusion_size": 8}
"""Inductor options of the fused graph.

``size_asserts``: its generated code checks the size and stride of every input again after
dynamo's guards have (``dynamic=False``: a graph is only ever entered with the sizes and strides
it was compiled for): 800 checks a step for 200 tensors of AdamW, a third of the step's overhead.

``realize_reads_threshold``: inductor stores a value read by two kernels in a temporary as large
as the parameter when it reads more than this many buffers (default 4), and recomputes it in
each reader otherwise. Every hoisted scalar is a 0-d buffer, so LAMB's ``r`` (read by the
``tensor_norm`` pass and by the update pass) reads 12 and was stored: a fresh 64 MB tensor per
step for a 16M parameter, whose page faults cost more than the step's arithmetic (LAMB and
lion_cautious at 5x their floor). Raised, the update pass recomputes it from the state it reads
anyway: no temporary, one pass fewer (LAMB 3 -> 2). With it every library program compiles
(``TORCH_LOGS=output_code``, one 4096-element tensor) to one pass that loads w, g and its states
once and stores w and its states, with no temporary; LAMB and lion_cautious to two passes, the
reduction's and the update's, with none. Inductor's operation-count limit
(``realize_cpu_opcount_threshold``) still stores a value too costly to compute twice.

``cpp.max_horizontal_fusion_size``: inductor's CPU backend fuses the per-tensor kernels of
parameters of one size into one loop, up to this many scheduler nodes (default 16). A loop
over 16 of RAdam's tensors streams 16 x 5 arrays at once, more than the core's prefetchers
follow, and its body spills registers. At 8 (A/B in one process, interleaved, best of 7, suite
(b): 200 tensors of 80k) RAdam's step went 19.1 -> 12.3 ms, NAdam 15.7 -> 10.0, LAMB 25.7 ->
19.2, PowerSign 11.5 -> 9.6, AddSign 7.5 -> 7.2; AdamW, Lion and SGD moved within noise
(11.5 -> 10.8, 7.0 -> 7.0, 7.9 -> 8.2 ms). One large tensor (suite (a)) has nothing to fuse."""


@functools.lru_cache(maxsize=4096)
def _compile(program: Program, backend: str) -> CompiledProgram:
    analysis = analyze(program)
    generated = generate(plan(analysis, target(backend)), function_name=f"{_identifier(program.name)}_{backend}")
    namespace = _load(generated.source, analysis.hash, backend)
    if backend == "fused":
        graph = generated.graph_function or generated.function_name
        namespace[graph] = torch.compile(namespace[graph], fullgraph=True, dynamic=False, options=FUSED_OPTIONS)
    fn = namespace[generated.function_name]
    return CompiledProgram(program, analysis, backend, generated.source, generated.state, generated.scalars, fn)


def _identifier(name: str) -> str:
    return name if name.isidentifier() else "program"


def _load(source: str, program_hash: str, backend: str) -> dict[str, Any]:
    """Turn generated source into functions: the namespace it defines them in.

    The source is our own code generator's output: every line comes from the op table's
    templates, the program's variable names (checked identifiers) and float literals. It is
    registered with ``linecache`` so tracebacks and ``inspect`` show it.
    """
    filename = f"<symbolic_opt {program_hash} {backend}>"
    code = compile(source, filename, "exec")
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace: dict[str, Any] = {"torch": torch, "np": np, "_rt": runtime}
    exec(code, namespace)  # noqa: S102 - generated by codegen.py, never user text
    return namespace
