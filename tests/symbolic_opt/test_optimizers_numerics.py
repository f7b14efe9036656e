"""Every library program against a reference implementation.

* torch.optim (Adam, AdamW, SGD, RMSprop, Adagrad, Adamax, RAdam) and lion-pytorch (Lion, cautious
  Lion): 500 steps of training a small MLP, compiled program vs reference, max |param diff|.
  The programs are written in the references' rounding, so the bound (1e-6) is met with room:
  they agree bit for bit on this machine.
* A fixed sequence of random gradients (no feedback through a model, so rounding differences
  do not grow chaotically) for NAdam, against torch's own step (torch finishes its step sizes
  in float64 on the host, the program in float32 0-d tensors: 2.4e-7 apart after 100 steps),
  and for the optimizers without a torch implementation (AdaBelief, Adan, LAMB, signSGD,
  Signum, PowerSign, AddSign, the paper's two programs), against a short hand-written reference step.

Print the measured differences with ``pytest tests/symbolic_opt/test_optimizers_numerics.py -s -k report``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import lion_pytorch
import pytest
import torch
from lion_pytorch.cautious_lion import Lion as CautiousLion

import programs
from mlp_training import max_diff, train_mlp
from symbolic_opt import SymbolicOptimizer, compile_program, parse

pytestmark = pytest.mark.usefixtures("one_thread")
O = torch.optim
BACKENDS = ("eager", "foreach")
TOLERANCE = 1e-6


@dataclass(frozen=True)
class TorchCase:
    """A library program and the torch.optim configuration it reproduces."""

    program: str
    reference: type
    lr: float
    torch_kwargs: dict = field(default_factory=dict)
    hyperparams: dict = field(default_factory=dict)
    required: bool = True  # issue 2 requires these to 1e-6 against both torch paths

    @property
    def id(self) -> str:
        extra = ",".join(f"{k}={v}" for k, v in self.torch_kwargs.items())
        return f"{self.program}({extra})" if extra else self.program


TORCH_CASES = [
    TorchCase("adamw", O.AdamW, 1e-2),
    TorchCase("adam", O.Adam, 1e-2),
    TorchCase("adamw_amsgrad", O.AdamW, 1e-2, dict(amsgrad=True)),
    TorchCase("adam_amsgrad", O.Adam, 1e-2, dict(amsgrad=True)),
    TorchCase("sgd", O.SGD, 0.05),
    TorchCase("sgd", O.SGD, 0.05, dict(momentum=0.9), dict(momentum=0.9)),
    TorchCase("sgd", O.SGD, 0.05, dict(momentum=0.9, dampening=0.3), dict(momentum=0.9, dampening=0.3)),
    TorchCase("sgd", O.SGD, 0.05, dict(momentum=0.9, nesterov=True), dict(momentum=0.9, nesterov=1.0)),
    TorchCase("rmsprop", O.RMSprop, 1e-3),
    TorchCase("rmsprop_momentum", O.RMSprop, 1e-3, dict(momentum=0.8), dict(momentum=0.8)),
    TorchCase("rmsprop_centered", O.RMSprop, 1e-3, dict(centered=True)),
    TorchCase("rmsprop_centered_momentum", O.RMSprop, 1e-3, dict(centered=True, momentum=0.8), dict(momentum=0.8)),
    TorchCase("adagrad", O.Adagrad, 0.05),
    TorchCase("adagrad", O.Adagrad, 0.05, dict(lr_decay=0.01), dict(lr_decay=0.01)),
    TorchCase("adamax", O.Adamax, 1e-2, required=False),
    TorchCase("radam", O.RAdam, 1e-2, required=False),
]

_runs: dict[tuple, list[torch.Tensor]] = {}


def _cached(key: tuple, make_optimizer) -> list[torch.Tensor]:
    if key not in _runs:
        _runs[key] = train_mlp(make_optimizer)[0]
    return _runs[key]


def _torch_run(case: TorchCase, wd: float, foreach: bool) -> list[torch.Tensor]:
    return _cached(
        (case.id, wd, "torch", foreach),
        lambda p: case.reference(p, lr=case.lr, weight_decay=wd, foreach=foreach, **case.torch_kwargs),
    )


def _our_run(case: TorchCase, wd: float, backend: str) -> list[torch.Tensor]:
    return _cached(
        (case.id, wd, "ours", backend),
        lambda p: SymbolicOptimizer(p, case.program, lr=case.lr, wd=wd, backend=backend, **case.hyperparams),
    )


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("wd", [0.0, 0.1])
@pytest.mark.parametrize("case", TORCH_CASES, ids=lambda c: c.id)
def test_matches_torch_optim_after_500_steps(case, wd, backend):
    ours = _our_run(case, wd, backend)
    assert max_diff(ours, _torch_run(case, wd, foreach=False)) <= TOLERANCE
    # torch's multi-tensor path rounds differently for some optimizers (RAdam: 1.2e-6 from its own
    # single-tensor path here); the required ones meet 1e-6 against it too
    bound = TOLERANCE if case.required else 1e-5
    assert max_diff(ours, _torch_run(case, wd, foreach=True)) <= bound


# --- Lion and cautious Lion against lion-pytorch -----------------------------------------------

LION_LR = 3e-4


def _elements_apart(a: list[torch.Tensor], b: list[torch.Tensor], tol: float) -> int:
    return sum(int(((x - y).abs() > tol).sum()) for x, y in zip(a, b))


def _lion_run(wd: float, backend: str, cautious: float | None = None) -> list[torch.Tensor]:
    """Lion (``cautious=None``) or cautious Lion after 500 MLP steps: ours on ``backend``, or
    lion-pytorch's with ``backend="lion-pytorch"``."""
    if backend == "lion-pytorch" and cautious is None:
        make = lambda p: lion_pytorch.Lion(p, lr=LION_LR, weight_decay=wd)  # noqa: E731
    elif backend == "lion-pytorch":
        make = lambda p: CautiousLion(p, lr=LION_LR, weight_decay=wd, cautious_factor=cautious)  # noqa: E731
    else:
        name, extra = ("lion", {}) if cautious is None else ("lion_cautious", {"cautious": cautious})
        make = lambda p: SymbolicOptimizer(p, name, lr=LION_LR, wd=wd, backend=backend, **extra)  # noqa: E731
    return _cached(("lion", wd, cautious, backend), make)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cautious", [None, 0.0, 0.5])
@pytest.mark.parametrize("wd", [0.0, 0.1])
def test_lion_and_cautious_lion_match_lion_pytorch(wd, cautious, backend):
    ours, ref = _lion_run(wd, backend, cautious), _lion_run(wd, "lion-pytorch", cautious)
    assert max_diff(ours, ref) <= TOLERANCE
    assert _elements_apart(ours, ref, TOLERANCE) == 0


def test_cautious_lion_differs_from_lion():
    """The mask does something: the two optimizers part ways on the same run."""
    assert max_diff(_lion_run(0.0, "lion-pytorch"), _lion_run(0.0, "eager", cautious=0.0)) > 100 * LION_LR


# --- hand-written references on a fixed gradient sequence ---------------------------------------

SHAPES = [(16, 8), (16,), (1, 16), (3,)]
STEPS = 100


def _gradients(seed: int = 1) -> list[list[torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    # a drifting mean so momentum-like state matters, and exact zeros to exercise sign(0)
    drift = [torch.randn(s, generator=gen) for s in SHAPES]
    out = []
    for t in range(STEPS):
        grads = [0.5 * d + torch.randn(s, generator=gen) * (1 + t % 3) for d, s in zip(drift, SHAPES)]
        grads[-1][0] = 0.0
        out.append(grads)
    return out


def _start() -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(2)
    return [torch.randn(s, generator=gen) for s in SHAPES]


def _run_ours(program: str, backend: str, lr: float, **hyper) -> list[torch.Tensor]:
    params = [torch.nn.Parameter(w) for w in _start()]
    opt = SymbolicOptimizer(params, program, lr=lr, backend=backend, **hyper)
    for grads in _gradients():
        for p, g in zip(params, grads):
            p.grad = g.clone()
        opt.step()
    return [p.detach() for p in params]


def _run_reference(step_fn, lr: float, **hyper) -> list[torch.Tensor]:
    """``step_fn(p, g, state, step, lr, **hyper)`` applied per tensor, torch.optim style."""
    params = _start()
    states: list[dict] = [{} for _ in params]
    for t, grads in enumerate(_gradients(), start=1):
        for p, g, state in zip(params, grads, states):
            step_fn(p, g.clone(), state, t, lr, **hyper)
    return params


def _zeros(state: dict, like: torch.Tensor, *names: str) -> list[torch.Tensor]:
    for n in names:
        state.setdefault(n, torch.zeros_like(like))
    return [state[n] for n in names]


def adabelief_step(p, g, state, t, lr, beta1=0.9, beta2=0.999, eps=1e-16, wd=0.0):
    """adabelief-pytorch 0.2 (weight_decouple=True, rectify=False, amsgrad=False)."""
    m, s = _zeros(state, p, "exp_avg", "exp_avg_var")
    p.mul_(1 - lr * wd)
    m.mul_(beta1).add_(g, alpha=1 - beta1)
    residual = g - m
    s.mul_(beta2).addcmul_(residual, residual, value=1 - beta2)
    denom = (s.add_(eps).sqrt() / math.sqrt(1 - beta2**t)).add_(eps)
    p.addcdiv_(m, denom, value=-lr / (1 - beta1**t))


def adan_step(p, g, state, t, lr, beta1=0.98, beta2=0.92, beta3=0.99, eps=1e-8, wd=0.0):
    """sail-sg/Adan's single-tensor step (proximal weight decay)."""
    m, a, n = _zeros(state, p, "exp_avg", "exp_avg_diff", "exp_avg_sq")
    if t == 1:
        state["neg_pre_grad"] = -g
    neg_pre = state["neg_pre_grad"]
    neg_pre.add_(g)
    m.mul_(beta1).add_(g, alpha=1 - beta1)
    a.mul_(beta2).add_(neg_pre, alpha=1 - beta2)
    neg_pre.mul_(beta2).add_(g)
    n.mul_(beta3).addcmul_(neg_pre, neg_pre, value=1 - beta3)
    denom = (n.sqrt() / math.sqrt(1 - beta3**t)).add_(eps)
    p.addcdiv_(m, denom, value=-lr / (1 - beta1**t))
    p.addcdiv_(a, denom, value=-lr * beta2 / (1 - beta2**t))
    p.div_(1 + lr * wd)
    neg_pre.zero_().add_(g, alpha=-1.0)


def lamb_step(p, g, state, t, lr, beta1=0.9, beta2=0.999, eps=1e-6, wd=0.0):
    """You et al. 2020, algorithm 2, with bias correction; trust ratio 1 where a norm is 0."""
    m, v = _zeros(state, p, "exp_avg", "exp_avg_sq")
    m.lerp_(g, 1 - beta1)
    v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
    r = (m / (1 - beta1**t)) / ((v / (1 - beta2**t)).sqrt() + eps)
    r.add_(p, alpha=wd)
    w_norm, r_norm = p.norm(), r.norm()
    trust = (w_norm / r_norm).item() if w_norm > 0 and r_norm > 0 else 1.0
    p.sub_(r * lr * trust)


def signsgd_step(p, g, state, t, lr, wd=0.0):
    p.mul_(1 - lr * wd)
    p.add_(g.sign(), alpha=-lr)


def signum_step(p, g, state, t, lr, beta=0.9, wd=0.0):
    (m,) = _zeros(state, p, "m")
    m.lerp_(g, 1 - beta)
    p.mul_(1 - lr * wd)
    p.add_(m.sign(), alpha=-lr)


def powersign_step(p, g, state, t, lr, beta=0.9, wd=0.0):
    """tf.raw_ops.ApplyPowerSign (logbase 1, sign_decay 1): the sign is read from the new m."""
    (m,) = _zeros(state, p, "m")
    m.lerp_(g, 1 - beta)
    p.mul_(1 - lr * wd)
    p.addcmul_(torch.exp(g.sign() * m.sign()), g, value=-lr)


def addsign_step(p, g, state, t, lr, beta=0.9, wd=0.0):
    """tf.raw_ops.ApplyAddSign (alpha 1, sign_decay 1): the sign is read from the new m."""
    (m,) = _zeros(state, p, "m")
    m.lerp_(g, 1 - beta)
    p.mul_(1 - lr * wd)
    p.addcmul_(1 + g.sign() * m.sign(), g, value=-lr)


def adamw_paper_step(p, g, state, t, lr):
    """paper-notes section 2: AdamW without bias correction or epsilon, lr scaled by 0.001."""
    m, v = _zeros(state, p, "m", "v")
    m.lerp_(g, 0.1)
    v.lerp_(g * g, 0.001)
    # the compiler applies ``update = X + w * c`` as decoupled weight decay: w *= 1 - c * lr first
    p.mul_(1 - 0.01 * (lr * 0.001))
    p.add_(m / (v.sqrt() + 1e-8), alpha=-(lr * 0.001))


def discovered_step(p, g, state, t, lr):
    """paper-notes section 2: the program the search found, statement by statement (only v carries)."""
    (v,) = _zeros(state, p, "v")
    g = torch.arcsin(g.clamp(-abs(lr), abs(lr)))
    m = (1 - 0.899) * g + 0.899 * v
    v.copy_((1 - 1.109) * g + 1.109 * m)
    p.mul_(1 - 0.4602 * (lr * 0.0002))
    p.add_(m / (torch.sqrt(m * m) + 1e-8), alpha=-(lr * 0.0002))


def nadam_step(p, g, state, t, lr, **hyper):
    """torch.optim.NAdam's own single-tensor step, one tensor at a time."""
    opt = state.setdefault("opt", None)
    if opt is None:
        state["param"] = torch.nn.Parameter(p)  # shares p's storage
        state["opt"] = opt = O.NAdam([state["param"]], lr=lr, weight_decay=hyper.get("wd", 0.0), foreach=False)
    state["param"].grad = g
    opt.step()


@dataclass(frozen=True)
class HandCase:
    program: str
    step: object
    lr: float
    hyperparams: dict = field(default_factory=dict)
    tolerance: float = TOLERANCE

    @property
    def id(self) -> str:
        extra = ",".join(f"{k}={v}" for k, v in self.hyperparams.items())
        return f"{self.program}({extra})" if extra else self.program


HAND_CASES = [
    HandCase("nadam", nadam_step, 1e-2),
    HandCase("nadam", nadam_step, 1e-2, dict(wd=0.1)),
    HandCase("adabelief", adabelief_step, 1e-2),
    HandCase("adabelief", adabelief_step, 1e-2, dict(wd=0.1)),
    HandCase("adan", adan_step, 1e-2),
    HandCase("adan", adan_step, 1e-2, dict(wd=0.1)),
    HandCase("lamb", lamb_step, 1e-2),
    HandCase("lamb", lamb_step, 1e-2, dict(wd=0.1)),
    HandCase("signsgd", signsgd_step, 1e-3),
    HandCase("signsgd", signsgd_step, 1e-3, dict(wd=0.1)),
    HandCase("signum", signum_step, 1e-3),
    HandCase("signum", signum_step, 1e-3, dict(wd=0.1)),
    HandCase("powersign", powersign_step, 1e-3),
    HandCase("powersign", powersign_step, 1e-3, dict(wd=0.1)),
    HandCase("addsign", addsign_step, 1e-3),
    HandCase("addsign", addsign_step, 1e-3, dict(wd=0.1)),
    HandCase("adamw_paper", adamw_paper_step, 1.0),
    HandCase("discovered", discovered_step, 1.0),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", HAND_CASES, ids=lambda c: c.id)
def test_matches_hand_written_reference(case, backend):
    ours = _run_ours(case.program, backend, case.lr, **case.hyperparams)
    reference = _run_reference(case.step, case.lr, **case.hyperparams)
    assert max_diff(ours, reference) <= case.tolerance
    assert max_diff(ours, _start()) > 10 * case.tolerance  # the weights did move


def test_every_library_program_has_a_reference():
    covered = {c.program for c in TORCH_CASES} | {c.program for c in HAND_CASES} | {"lion", "lion_cautious"}
    assert set(programs.names()) <= covered, f"no reference test for {set(programs.names()) - covered}"


@dataclass(frozen=True)
class Row:
    """One line of the report: a case and its max |param diff| per backend and reference path."""

    section: str
    program: str
    case: str
    diffs: tuple[float, ...]

    def __str__(self) -> str:
        return f"  {self.case:60s} " + " ".join(f"{d:.2e}" for d in self.diffs)


def report() -> list[Row]:
    """Every difference this file measures: against torch.optim's loop and foreach paths
    (eager, foreach backend each), lion-pytorch, and the hand-written references."""
    rows = []
    for case in TORCH_CASES:
        for wd in (0.0, 0.1):
            refs = (_torch_run(case, wd, False), _torch_run(case, wd, True))
            diffs = tuple(max_diff(_our_run(case, wd, b), r) for r in refs for b in BACKENDS)
            rows.append(Row("torch.optim", case.program, f"{case.id} wd={wd}", diffs))
    for cautious in (None, 0.0, 0.5):
        for wd in (0.0, 0.1):
            ref = _lion_run(wd, "lion-pytorch", cautious)
            program = "lion" if cautious is None else "lion_cautious"
            case = program if cautious is None else f"{program}(cautious={cautious})"
            diffs = tuple(max_diff(_lion_run(wd, b, cautious), ref) for b in BACKENDS)
            rows.append(Row("lion-pytorch", program, f"{case} wd={wd}", diffs))
    for case in HAND_CASES:
        reference = _run_reference(case.step, case.lr, **case.hyperparams)
        diffs = tuple(max_diff(_run_ours(case.program, b, case.lr, **case.hyperparams), reference) for b in BACKENDS)
        rows.append(Row("hand-written", case.program, case.id, diffs))
    return rows


INEXACT = {"radam": 1.2e-6, "nadam": 2.4e-7}
"""The README's figures ("Same numbers as the references"): the only programs not bit for bit
equal to their reference, and how far apart. RAdam only on torch's foreach path (0.0 against
its loop); NAdam because torch finishes its step sizes in float64 on the host."""


def test_report_backs_the_readme():
    """The README's paragraph on the references, measured (``-s`` prints the table): exactly
    zero but for ``INEXACT``, each within its figure."""
    rows = report()
    print("\nmax |param diff|: eager, foreach backend (torch.optim: vs its loop, then vs its foreach path)")
    for section in dict.fromkeys(r.section for r in rows):
        print(f"vs {section}:\n" + "\n".join(str(r) for r in rows if r.section == section))
    assert {r.program for r in rows if max(r.diffs) > 0} == set(INEXACT)
    for r in rows:
        assert max(r.diffs) <= INEXACT.get(r.program, 0.0), r
    radam = [r for r in rows if r.program == "radam"]
    assert all(d == 0.0 for r in radam for d in r.diffs[:2])  # against torch's own loop: bit for bit


# --- compiler regressions found while writing the library ---------------------------------------


def _step_once(text: str, backend: str, shapes=((4, 3), (3,))) -> list[torch.Tensor]:
    program = parse(text)
    compiled = compile_program(program, backend)
    gen = torch.Generator().manual_seed(0)
    params = [torch.randn(s, generator=gen) for s in shapes]
    grads = [torch.randn(s, generator=gen) for s in shapes]
    states = compiled.init_state(params)
    compiled(params, grads, states, lr=0.1)
    return params


@pytest.mark.parametrize("backend", BACKENDS)
def test_in_place_ops_take_host_numbers(backend):
    """An op overwriting a temporary in place may get a number where torch wants a tensor
    (``x.addcmul_(g, 0.5)``, ``x.lerp_(0.5, ...)``): it is wrapped as for the out-of-place form."""
    text = """
def train(w, g, lr):
    x = g * 2.0
    x = addcmul(x, g, 0.5)
    y = g * 3.0
    y = interp(y, 0.5, 0.25)
    update = x + y
    update = update * lr
    return update
"""
    out = _step_once(text, backend)
    gen = torch.Generator().manual_seed(0)
    w = [torch.randn(s, generator=gen) for s in ((4, 3), (3,))]
    g = [torch.randn(s, generator=gen) for s in ((4, 3), (3,))]
    expected = [wi - 0.1 * ((gi * 2 + gi * 0.5) + (0.75 * gi * 3 + 0.25 * 0.5)) for wi, gi in zip(w, g)]
    assert max_diff(out, expected) < 1e-6


@pytest.mark.parametrize("backend", BACKENDS)
def test_update_scaled_by_a_per_tensor_scalar(backend):
    """``update = g * tensor_norm(w) * lr``: the foreach backend multiplies by a list of 0-d tensors."""
    text = """
def train(w, g, lr):
    n = tensor_norm(w)
    update = g * n
    update = update * lr
    return update
"""
    out = _step_once(text, backend)
    gen = torch.Generator().manual_seed(0)
    w = [torch.randn(s, generator=gen) for s in ((4, 3), (3,))]
    g = [torch.randn(s, generator=gen) for s in ((4, 3), (3,))]
    assert max_diff(out, [wi - 0.1 * gi * wi.norm() for wi, gi in zip(w, g)]) < 1e-6
