"""Familiar optimizers as thin classes over their library programs.

``Lion`` takes lion-pytorch's arguments and defaults and gives its numbers; ``AdamW`` and
``Adam`` take torch.optim's. Their param groups use the familiar keys (``betas``,
``weight_decay``), so code that edits ``group["betas"]`` keeps working, and their state
buffers the familiar names (``exp_avg``, ``exp_avg_sq``), so checkpoints interchange.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from .optimizer import SymbolicOptimizer


class _Familiar(SymbolicOptimizer):
    """A library program behind familiar constructor arguments."""

    program_name: str
    state_names: Mapping[str, str] = {}

    def __init__(self, params: Iterable, lr: float, *, backend: str, group_defaults: dict[str, Any], **options):
        import programs

        program = programs.load(self.program_name)
        super().__init__(params, program, lr=lr, backend=backend, state_keys=self.state_names, **options)
        for group in self.param_groups:
            for key, value in group_defaults.items():
                group.setdefault(key, value)
        self.defaults.update(group_defaults)

    def add_param_group(self, param_group: dict) -> None:
        for key, value in getattr(self, "defaults", {}).items():
            param_group.setdefault(key, value)
        super().add_param_group(param_group)


class Lion(_Familiar):
    """Lion, a drop-in for ``lion_pytorch.Lion``: same arguments, defaults and numbers.

    ``w <- w * (1 - lr * wd);  w <- w - lr * sign(beta1 * m + (1 - beta1) * g);
    m <- beta2 * m + (1 - beta2) * g``. ``decoupled_weight_decay=True`` divides the weight
    decay by the initial lr, as lion-pytorch does. ``use_triton=True`` selects the fused
    (``torch.compile``) backend, which generates Triton kernels on GPUs.
    """

    program_name = "lion"
    state_names = {"m": "exp_avg"}

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
        **options,
    ):
        if not lr > 0.0:
            raise ValueError(f"Lion needs lr > 0, got {lr}")
        if not all(0.0 <= b <= 1.0 for b in betas):
            raise ValueError(f"Lion needs betas in [0, 1], got {betas}")
        self._init_lr = lr
        self.decoupled_wd = decoupled_weight_decay
        backend = backend or ("fused" if use_triton else "foreach")
        super().__init__(
            params, lr, backend=backend,
            group_defaults={"betas": tuple(betas), "weight_decay": weight_decay}, **options,
        )

    def hyperparameters(self, group):
        beta1, beta2 = group["betas"]
        wd = group["weight_decay"]
        if self.decoupled_wd:
            wd /= self._init_lr
        return {"beta1": beta1, "beta2": beta2, "wd": wd}


class AdamW(_Familiar):
    """AdamW with torch.optim.AdamW's arguments, defaults and numbers (amsgrad aside)."""

    program_name = "adamw"
    state_names = {"m": "exp_avg", "v": "exp_avg_sq"}

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        *,
        maximize: bool = False,
        backend: str = "foreach",
        **options,
    ):
        super().__init__(
            params, lr, backend=backend, maximize=maximize,
            group_defaults={"betas": tuple(betas), "eps": eps, "weight_decay": weight_decay}, **options,
        )

    def hyperparameters(self, group):
        beta1, beta2 = group["betas"]
        return {"beta1": beta1, "beta2": beta2, "eps": group["eps"], "wd": group["weight_decay"]}
