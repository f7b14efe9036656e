"""Familiar optimizers as thin classes over their library programs.

``Lion`` takes lion-pytorch's arguments and defaults and gives its numbers; ``AdamW``,
``Adam``, ``SGD``, ``RMSprop`` and ``Adagrad`` take torch.optim's and give its numbers (the
programs are written in torch's rounding; ``tests/symbolic_opt/test_optimizers_numerics.py``).
Their param groups hold the familiar keys (``betas``, ``weight_decay``, ``momentum``...), so
code that edits ``group["betas"]`` keeps working, and their state buffers the familiar names
(``exp_avg``, ``exp_avg_sq``, ``momentum_buffer``...), so checkpoints interchange.

The backend follows torch's flags: ``foreach=False`` runs the per-tensor ``eager`` backend,
``fused=True`` the ``torch.compile`` one; ``backend=`` names one directly.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import torch
from torch.optim import Optimizer

from .optimizer import SymbolicOptimizer


def _backend(backend: str | None, foreach: bool | None = None, fused: bool | None = None) -> str:
    if backend is not None:
        return backend
    if fused:
        return "fused"
    return "eager" if foreach is False else "foreach"


def _refuse(cls: str, **flags: Any) -> None:
    on = [name for name, value in flags.items() if value]
    if on:
        raise ValueError(f"{cls} does not support {', '.join(on)}=True")


class _Familiar(SymbolicOptimizer):
    """A library program behind familiar constructor arguments and group keys."""

    program_name: str
    state_names: Mapping[str, str] = {}
    count_steps = True  # torch.optim keeps state["step"]; so do we, for checkpoints

    def __init__(
        self,
        params: Iterable,
        lr: float,
        group_defaults: dict[str, Any],
        *,
        backend: str,
        maximize: bool = False,
        state_dtype: torch.dtype | None = None,
        program_name: str | None = None,
    ):
        import programs

        if not 0.0 <= lr:
            raise ValueError(f"invalid learning rate: {lr}")
        name = program_name or self.program_name
        self._setup(programs.load(name), backend, state_dtype, self.state_names)
        self.program_label = name
        Optimizer.__init__(self, params, {"lr": lr, **group_defaults, "maximize": maximize})

    def hyperparameters(self, group: Mapping[str, Any]) -> dict[str, float]:
        raise NotImplementedError


class Lion(_Familiar):
    """Lion, a drop-in for ``lion_pytorch.Lion``: same arguments, defaults, state and numbers.

    ``w <- w * (1 - lr * wd);  w <- w - lr * sign(beta1 * m + (1 - beta1) * g);
    m <- beta2 * m + (1 - beta2) * g``. ``decoupled_weight_decay=True`` divides the weight
    decay by the initial lr, as lion-pytorch does. ``use_triton=True`` selects the fused
    (``torch.compile``) backend, which generates Triton kernels on GPUs.
    """

    program_name = "lion"
    state_names = {"m": "exp_avg"}
    count_steps = False  # lion-pytorch keeps only exp_avg

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-4,
        betas: tuple[float, float] = (0.9, 0.99),
        weight_decay: float = 0.0,
        use_triton: bool = False,
        decoupled_weight_decay: bool = False,
        *,
        backend: str | None = None,
        maximize: bool = False,
        state_dtype: torch.dtype | None = None,
    ):
        if not lr > 0.0:
            raise ValueError(f"Lion needs lr > 0, got {lr}")
        if not all(0.0 <= b <= 1.0 for b in betas):
            raise ValueError(f"Lion needs betas in [0, 1], got {betas}")
        self._init_lr = lr
        self.decoupled_wd = decoupled_weight_decay
        super().__init__(
            params, lr, {"betas": tuple(betas), "weight_decay": weight_decay},
            backend=_backend(backend, fused=use_triton), maximize=maximize, state_dtype=state_dtype,
        )

    def hyperparameters(self, group):
        beta1, beta2 = group["betas"]
        wd = group["weight_decay"]
        if self.decoupled_wd:
            wd /= self._init_lr
        return {"beta1": beta1, "beta2": beta2, "wd": wd}


class Adam(_Familiar):
    """Adam with torch.optim.Adam's arguments, defaults, state and numbers (coupled weight
    decay ``g <- g + wd * w``; ``decoupled_weight_decay=True`` is AdamW; ``amsgrad=True``
    runs the ``_amsgrad`` program, with torch's ``max_exp_avg_sq`` buffer)."""

    program_name = "adam"
    state_names = {"m": "exp_avg", "v": "exp_avg_sq", "vmax": "max_exp_avg_sq"}

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        decoupled_weight_decay: bool = False,
        backend: str | None = None,
        state_dtype: torch.dtype | None = None,
    ):
        _refuse(type(self).__name__, capturable=capturable, differentiable=differentiable)
        if not all(0.0 <= b < 1.0 for b in betas) or eps < 0 or weight_decay < 0:
            raise ValueError(f"invalid betas {betas}, eps {eps} or weight_decay {weight_decay}")
        super().__init__(
            params, lr, {"betas": tuple(betas), "eps": eps, "weight_decay": weight_decay, "amsgrad": bool(amsgrad)},
            backend=_backend(backend, foreach, fused), maximize=maximize, state_dtype=state_dtype,
            program_name=("adamw" if decoupled_weight_decay else self.program_name) + ("_amsgrad" if amsgrad else ""),
        )

    def hyperparameters(self, group):
        beta1, beta2 = group["betas"]
        return {"beta1": beta1, "beta2": beta2, "eps": group["eps"], "wd": group["weight_decay"]}


class AdamW(Adam):
    """AdamW with torch.optim.AdamW's arguments, defaults, state and numbers, amsgrad included."""

    program_name = "adamw"

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        backend: str | None = None,
        state_dtype: torch.dtype | None = None,
    ):
        super().__init__(
            params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach, maximize=maximize,
            capturable=capturable, differentiable=differentiable, fused=fused, decoupled_weight_decay=True,
            backend=backend, state_dtype=state_dtype,
        )


class SGD(_Familiar):
    """SGD with torch.optim.SGD's arguments, defaults, state and numbers: momentum (the
    buffer starts at the first gradient), dampening, Nesterov, coupled weight decay.

    The program always keeps a momentum buffer, so unlike torch it costs one buffer per
    parameter even with ``momentum=0``.
    """

    program_name = "sgd"
    state_names = {"buf": "momentum_buffer"}

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        differentiable: bool = False,
        fused: bool | None = None,
        backend: str | None = None,
        state_dtype: torch.dtype | None = None,
    ):
        _refuse(type(self).__name__, differentiable=differentiable)
        if momentum < 0.0 or weight_decay < 0.0:
            raise ValueError(f"invalid momentum {momentum} or weight_decay {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(
            params, lr,
            {"momentum": momentum, "dampening": dampening, "weight_decay": weight_decay, "nesterov": nesterov},
            backend=_backend(backend, foreach, fused), maximize=maximize, state_dtype=state_dtype,
        )

    def hyperparameters(self, group):
        return {
            "momentum": group["momentum"],
            "dampening": group["dampening"],
            "wd": group["weight_decay"],
            "nesterov": float(bool(group["nesterov"])),
        }

    def load_state_dict(self, state_dict: dict) -> None:
        """Also reads torch.optim.SGD checkpoints, which keep no step and, without momentum,
        no buffer: a buffer present means the first step (buffer <- g) is past."""
        super().load_state_dict(state_dict)
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state.get(p)
                if not state:
                    continue
                if state.get("momentum_buffer") is None:
                    state["momentum_buffer"] = torch.zeros_like(p, dtype=self.state_dtype or p.dtype)
                elif float(state["step"]) == 0:
                    state["step"] = torch.tensor(1.0, dtype=torch.float32)


class RMSprop(_Familiar):
    """RMSprop with torch.optim.RMSprop's arguments, defaults, state and numbers. The program
    follows ``momentum > 0`` and ``centered`` (``rmsprop``, ``rmsprop_momentum``,
    ``rmsprop_centered``, ``rmsprop_centered_momentum``), as torch's buffers do."""

    state_names = {"v": "square_avg", "buf": "momentum_buffer", "avg": "grad_avg"}

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
        capturable: bool = False,
        foreach: bool | None = None,
        maximize: bool = False,
        differentiable: bool = False,
        *,
        backend: str | None = None,
        state_dtype: torch.dtype | None = None,
    ):
        _refuse(type(self).__name__, capturable=capturable, differentiable=differentiable)
        if not 0.0 <= alpha or eps < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(f"invalid alpha {alpha}, eps {eps}, momentum {momentum} or weight_decay {weight_decay}")
        name = "rmsprop" + ("_centered" if centered else "") + ("_momentum" if momentum > 0 else "")
        super().__init__(
            params, lr,
            {"alpha": alpha, "eps": eps, "weight_decay": weight_decay, "momentum": momentum, "centered": centered},
            backend=_backend(backend, foreach), maximize=maximize, state_dtype=state_dtype, program_name=name,
        )

    def hyperparameters(self, group):
        has_momentum = "momentum" in self.program.defaults
        if bool(group["centered"]) != ("avg" in self.program.state) or (group["momentum"] > 0) != has_momentum:
            raise ValueError(
                f"this RMSprop runs program {self.program_label!r}: a param group cannot switch centered or "
                "momentum on or off (construct it with the setting you need)"
            )
        values = {"alpha": group["alpha"], "eps": group["eps"], "wd": group["weight_decay"]}
        return {**values, "momentum": group["momentum"]} if has_momentum else values


class Adagrad(_Familiar):
    """Adagrad with torch.optim.Adagrad's arguments, defaults, state and numbers
    (``initial_accumulator_value`` 0 only: program state starts at zero)."""

    program_name = "adagrad"
    state_names = {"s": "sum"}

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        backend: str | None = None,
        state_dtype: torch.dtype | None = None,
    ):
        _refuse(type(self).__name__, differentiable=differentiable)
        if initial_accumulator_value != 0:
            raise ValueError("Adagrad here starts its accumulator at 0 (initial_accumulator_value=0)")
        if lr_decay < 0 or weight_decay < 0 or eps < 0:
            raise ValueError(f"invalid lr_decay {lr_decay}, weight_decay {weight_decay} or eps {eps}")
        super().__init__(
            params, lr,
            {"lr_decay": lr_decay, "weight_decay": weight_decay, "eps": eps,
             "initial_accumulator_value": initial_accumulator_value},
            backend=_backend(backend, foreach, fused), maximize=maximize, state_dtype=state_dtype,
        )

    def hyperparameters(self, group):
        return {"lr_decay": group["lr_decay"], "eps": group["eps"], "wd": group["weight_decay"]}
