"""``SymbolicOptimizer``: any program as a ``torch.optim.Optimizer``.

    opt = SymbolicOptimizer(model.parameters(), "lion", lr=1e-4, beta1=0.95, wd=0.1)
    opt = SymbolicOptimizer(params, program, lr=1e-3, backend="fused")

Per parameter it keeps exactly the program's carried state variables (``analysis.carried``;
a state variable the program overwrites before reading gets no buffer), and ``step``, a
float tensor as torch.optim keeps it, when the program reads ``step``. Param groups may
override ``lr`` and any hyperparameter. Follows torch.optim conventions: closures,
``zero_grad``, ``state_dict`` round trips, LR schedulers, ``maximize``, parameters without a
gradient skipped (their state untouched).
"""

from __future__ import annotations

from collections import defaultdict
from itertools import chain
from typing import Any, Callable, Iterable, Mapping

import torch
from torch.optim import Optimizer

from .codegen import TENSOR_SCALARS
from .compiler import CompiledProgram, compile_program
from .ir import Program
from .kinds import Kind
from .loading import resolve_program


class SymbolicOptimizer(Optimizer):
    """Train with a program (see the module docstring).

    Args:
        params: parameters, named parameters or param groups, as for any torch optimizer.
        program: a ``Program``, program text, a path to a program file, or a library name.
        lr: the learning rate the program receives as ``lr``.
        backend: ``"foreach"`` (default: one multi-tensor call per statement), ``"eager"``
            (per tensor), ``"fused"`` (``torch.compile``; compiles once, never on a new lr) or
            ``"tensor"`` (the fused code uncompiled: scalars as 0-d tensors).
        maximize: ascend instead of descend (the program sees ``-grad``).
        state_dtype: dtype of the state buffers; default each parameter's own dtype
            (``torch.float32`` keeps bf16 models' state in full precision, through
            ``state_dict`` round trips too).
        state_keys: names for the state buffers in ``state_dict`` (program variable -> key),
            e.g. ``{"m": "exp_avg"}`` to read and write torch/lion-pytorch checkpoints.
        **hyperparams: values for the program's hyperparameters (defaults from the program).
    """

    count_steps = False
    """Keep ``state["step"]`` even when the program does not read it (as torch.optim does)."""

    def __init__(
        self,
        params: Iterable,
        program: Program | str,
        lr: float = 1e-3,
        *,
        backend: str = "foreach",
        maximize: bool = False,
        state_dtype: torch.dtype | None = None,
        state_keys: Mapping[str, str] | None = None,
        **hyperparams: float,
    ):
        self._setup(resolve_program(program), backend, state_dtype, state_keys)
        if isinstance(program, str) and program.isidentifier():
            self.program_label = program  # a library name says more than the function's name
        defaults = {"lr": lr, "maximize": maximize, **self._check_hyperparams(self.program.defaults, hyperparams)}
        super().__init__(params, defaults)

    def _setup(self, program: Program, backend: str, state_dtype, state_keys) -> None:
        self.program = program
        self.program_label = program.name
        self.compiled: CompiledProgram = compile_program(program, backend)
        self.backend = backend
        self.state_dtype = state_dtype
        self.state_keys = {s: (state_keys or {}).get(s, s) for s in self.compiled.state}
        self._device_scalars: dict[tuple, dict[str, torch.Tensor]] = {}

    @property
    def _uses_step(self) -> bool:
        return self.program.uses_step or self.count_steps

    # --- hyperparameters --------------------------------------------------------------------
    def _check_hyperparams(self, defaults: Mapping[str, float], given: Mapping[str, Any]) -> dict[str, Any]:
        unknown = set(given) - set(defaults)
        if unknown:
            known = ", ".join(defaults) or "none"
            raise TypeError(
                f"unknown hyperparameter(s) {', '.join(sorted(unknown))} for program {self.program_label!r} "
                f"(its hyperparameters: {known})"
            )
        return {**defaults, **given}

    def add_param_group(self, param_group: dict) -> None:
        lr = param_group.get("lr", self.defaults.get("lr", 0.0))
        if not 0.0 <= lr:
            raise ValueError(f"invalid learning rate: {lr}")
        super().add_param_group(param_group)

    def hyperparameters(self, group: Mapping[str, Any]) -> dict[str, float]:
        """The program's hyperparameter values for a param group (subclasses translate
        familiar group keys, such as ``betas``, here)."""
        return {h: group[h] for h in self.program.defaults}

    # --- the step -------------------------------------------------------------------------------
    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        uses_step = self._uses_step
        for group_index, group in enumerate(self.param_groups):
            # One pass of plain attribute reads per parameter, the rest per list: with 200
            # small tensors this loop was half of a fused step.
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            for p in params:
                g = p.grad
                if g.is_sparse or p.is_complex() or g.is_complex():
                    position = next(i for i, q in enumerate(group["params"]) if q is p)
                    self._check_grad(p, group, group_index, position)
            states = [self.state[p] for p in params]
            fresh = [state for state in states if not state]
            for p, state in zip(params, states):
                if not state:
                    self._init_state(p, state)
            if uses_step and fresh:
                _share_counters(fresh)
            steps: list[float | None] = [None] * len(params)
            if uses_step:
                steps = _increment(states)
            buckets: dict[tuple, tuple[list, list]] = defaultdict(lambda: ([], []))
            for p, state, step in zip(params, states, steps):
                bucket = buckets[(step, p.device, p.dtype)]
                bucket[0].append(p)
                bucket[1].append(state)
            scalars = {"lr": group["lr"], **self.hyperparameters(group)}
            for (step, device, dtype), (bucket, bucket_states) in buckets.items():
                self._step_bucket(group_index, bucket, group["maximize"], {**scalars, "step": step}, device, dtype,
                                  bucket_states)
        return loss

    def _step_bucket(self, group_index, params, maximize, scalars, device, dtype, param_states=None) -> None:
        grads = [p.grad for p in params]
        if maximize:
            grads = torch._foreach_neg(grads)
        if self.state_dtype is not None and self.state_dtype != dtype:
            grads = [g.to(self.state_dtype) for g in grads]
        param_states = param_states or [self.state[p] for p in params]
        states = [[state[key] for state in param_states] for key in (self.state_keys[s] for s in self.compiled.state)]
        wanted = {k: v for k, v in scalars.items() if k in self.compiled.scalars}
        if self.backend in TENSOR_SCALARS:
            wanted = self._as_device_scalars(group_index, wanted, device, dtype)
        self.compiled(params, grads, states, **wanted)

    def _as_device_scalars(self, group_index, values, device, dtype) -> dict[str, torch.Tensor]:
        """0-d tensors holding this step's scalars, reused across steps: the compiled graph
        sees new values in the same tensors, so it never recompiles for a new lr. float32
        (float64 for float64 parameters) even for bf16 parameters, whose beta2 = 0.999 would
        round to 0.996."""
        scalar_dtype = torch.float64 if dtype == torch.float64 else torch.float32
        cache = self._device_scalars.setdefault((group_index, device, scalar_dtype), {})
        for name, value in values.items():
            t = cache.get(name)
            if t is None:
                t = cache[name] = torch.zeros((), dtype=scalar_dtype, device=device)
            t.fill_(float(value))
        return cache

    def _check_grad(self, p: torch.Tensor, group: Mapping, group_index: int, position: int) -> None:
        if not (p.grad.is_sparse or torch.is_complex(p) or torch.is_complex(p.grad)):
            return
        names = group.get("param_names")
        where = f"number {position} of param group {group_index}, shape {tuple(p.shape)}, {p.dtype}"
        where = f"parameter {names[position]!r} ({where})" if names else f"parameter {where}"
        kind = "sparse gradients" if p.grad.is_sparse else "complex parameters"
        raise RuntimeError(f"{type(self).__name__} does not support {kind}: {where}")

    def _init_state(self, p: torch.Tensor, state: dict) -> None:
        if self._uses_step:
            state["step"] = torch.tensor(0.0, dtype=torch.float32)
        dtype = self.state_dtype or p.dtype
        for s in self.compiled.state:
            if self.compiled.analysis.state_kinds[s] is Kind.TENSOR:
                state[self.state_keys[s]] = torch.zeros_like(p, dtype=dtype, memory_format=torch.preserve_format)
            else:
                state[self.state_keys[s]] = torch.zeros((), dtype=dtype, device=p.device)

    # --- checkpoints ---------------------------------------------------------------------------
    def __setstate__(self, state: dict) -> None:
        """Groups from a checkpoint written by another optimizer (lion-pytorch's has no
        ``maximize``) get this optimizer's defaults for the keys they lack."""
        super().__setstate__(state)
        for group in self.param_groups:
            for key, value in getattr(self, "defaults", {}).items():
                group.setdefault(key, value)

    def load_state_dict(self, state_dict: dict) -> None:
        """As torch's, except that with a ``state_dtype`` the buffers are restored in it from
        the checkpoint (torch casts them to the parameter's dtype first, which would round fp32
        state of bf16 parameters), and a missing ``step`` is set to 0."""
        super().load_state_dict(state_dict)
        saved_ids = chain.from_iterable(g["params"] for g in state_dict["param_groups"])
        params = chain.from_iterable(g["params"] for g in self.param_groups)
        for saved_id, p in zip(saved_ids, params):
            state = self.state.get(p)
            if not state:
                continue
            if self._uses_step:
                state.setdefault("step", torch.tensor(0.0, dtype=torch.float32))
            saved = state_dict["state"].get(saved_id, {})
            if self.state_dtype is not None:
                for key in self.state_keys.values():
                    if isinstance(saved.get(key), torch.Tensor):
                        state[key] = saved[key].to(dtype=self.state_dtype, device=p.device, copy=True)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.program_label}, backend={self.backend!r}, groups={len(self.param_groups)})"



def _increment(states: list[dict]) -> list[float]:
    """``state["step"] += 1`` for each state, and the new values as floats: one foreach call
    and one conversion for the lot when the counters are tensors (as ``_init_state`` makes
    them), else one at a time (a checkpoint may hold plain numbers)."""
    counters = [state["step"] for state in states]
    base = getattr(counters[0], "_base", None)
    if base is not None and base.numel() == len(counters) and _views_in_order(counters, base):
        base.add_(1)  # the counters of parameters that first stepped together (_share_counters)
        return base.tolist()
    try:
        torch._foreach_add_(counters, 1)
    except (TypeError, RuntimeError):  # not all tensors: nothing was added
        for state in states:
            state["step"] += 1
        return [float(state["step"]) for state in states]
    try:
        return torch.stack(counters).tolist()
    except RuntimeError:  # on several devices, or not all 0-d
        return [float(c) for c in counters]


def _share_counters(states: list[dict]) -> None:
    """Make the fresh step counters of ``states`` (0-d float32 tensors, all 0) views of one
    1-d tensor, in order, so that ``_increment`` adds 1 to them all with one op while they step
    together: a foreach add over 200 0-d tensors costs as much as the rest of the loop. Each is
    still a 0-d float32 tensor of its own in ``state_dict``; one replaced (a checkpoint loaded)
    simply takes the general path."""
    counters = [state.get("step") for state in states]
    if len(states) < 2 or not all(isinstance(c, torch.Tensor) and c.dim() == 0 and c.dtype == torch.float32
                                  and c.device.type == "cpu" for c in counters):
        return
    base = torch.stack(counters)
    for i, state in enumerate(states):
        state["step"] = base[i]


def _views_in_order(counters: list[torch.Tensor], base: torch.Tensor) -> bool:
    """Whether ``counters`` are ``base[0], base[1], ...`` (a 1-d tensor's 0-d views)."""
    return base.dim() == 1 and all(
        getattr(c, "_base", None) is base and c.storage_offset() == i and c.dim() == 0 for i, c in enumerate(counters)
    )
