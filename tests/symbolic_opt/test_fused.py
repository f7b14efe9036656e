"""The fused backend (``torch.compile`` of the whole step) against the eager one.

It compiles once per program, parameter shapes and dtype, and never again for a new lr or
hyperparameter value: scalars reach the graph as 0-d tensors. It may round differently
(fused multiply-adds), so a single step is compared to 1e-6 with sign ties set apart, and
training by its loss curve.

Compiling takes seconds on a CPU, so every test reuses the same MLP shapes: one graph per
program and dtype for the whole file (lion, adamw, adamw in bf16).
"""

from __future__ import annotations

import pytest
import torch
from torch._dynamo.utils import counters

from mlp_training import make_mlp, max_diff, train_mlp
from symbolic_opt import SymbolicOptimizer, runtime

pytestmark = pytest.mark.usefixtures("one_thread")
TOLERANCE = 1e-6


def _graphs_compiled() -> int:
    return counters["stats"]["unique_graphs"]


def _random_state(seed: int, dtype=torch.float32):
    """MLP-shaped weights and gradients, and the optimizer that holds them."""
    model, _, _ = make_mlp(seed, dtype)
    gen = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        p.grad = torch.randn(p.shape, generator=gen).to(dtype)
    return list(model.parameters())


def _twin_steps(program: str, state_init, dtype=torch.float32, **hyper):
    """One eager and one fused step from identical weights, gradients and state: for each
    backend the parameters, the optimizer, and the state before that step."""
    results = {}
    for backend in ("eager", "fused"):
        params = _random_state(0, dtype)
        opt = SymbolicOptimizer(params, program, backend=backend, **hyper)
        opt.step()  # creates the state (and compiles, for fused)
        for i, p in enumerate(params):
            gen = torch.Generator().manual_seed(100 + i)
            with torch.no_grad():
                p.copy_(torch.randn(p.shape, generator=gen).to(dtype))
            state_init(opt.state[p], gen)
        before = [{k: v.clone() for k, v in opt.state[p].items()} for p in params]
        opt.step()
        results[backend] = (params, opt, before)
    return results


def test_no_recompile_when_lr_or_hyperparameters_change():
    model, x, y = make_mlp()
    opt = SymbolicOptimizer(model.parameters(), "lion", lr=1e-3, wd=0.1, backend="fused")
    scheduler = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0 / (1 + step))
    before = _graphs_compiled()

    def train(steps):
        for _ in range(steps):
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            opt.step()
            scheduler.step()

    train(1)
    compiled_first = _graphs_compiled() - before  # 1, or 0 if an earlier test compiled it
    assert compiled_first <= 1
    lrs = set()
    warm = _graphs_compiled()
    for beta1, wd in ((0.9, 0.1), (0.5, 0.0), (0.95, 0.3)):
        opt.param_groups[0].update(beta1=beta1, wd=wd)
        for _ in range(5):
            train(1)
            lrs.add(opt.param_groups[0]["lr"])
    assert len(lrs) == 15  # a new lr every step
    assert _graphs_compiled() == warm  # and not one new graph
    assert _graphs_compiled() >= 1  # the counter does count compiles


def test_one_fused_lion_step_matches_eager_up_to_sign_ties():
    beta1, lr = 0.9, 1e-3
    runs = _twin_steps("lion", lambda s, gen: s["m"].copy_(torch.randn(s["m"].shape, generator=gen) * 0.3),
                       lr=lr, beta1=beta1, wd=0.1)
    (eager, eager_opt, before), (fused, fused_opt, _) = runs["eager"], runs["fused"]
    apart, ties, total = 0, 0, 0
    for pe, pf, state in zip(eager, fused, before):
        # the sign argument c = beta1 * m + (1 - beta1) * g: a tie where it is within rounding of 0
        terms = beta1 * state["m"].double(), (1 - beta1) * pe.grad.double()
        near_zero = (terms[0] + terms[1]).abs() <= 4 * torch.finfo(torch.float32).eps * (terms[0].abs() + terms[1].abs())
        off = (pe.double() - pf.double()).abs() > TOLERANCE
        assert not (off & ~near_zero).any(), "an element off by more than 1e-6 that is not a sign tie"
        apart += int(off.sum())
        ties += int(near_zero.sum())
        total += pe.numel()
        assert max_diff([eager_opt.state[pe]["m"]], [fused_opt.state[pf]["m"]]) <= TOLERANCE
    assert ties <= 0.001 * total
    assert apart <= ties


def test_one_fused_adamw_step_matches_eager():
    def init(state, gen):
        state["m"].copy_(torch.randn(state["m"].shape, generator=gen) * 0.1)
        state["v"].copy_(torch.rand(state["v"].shape, generator=gen) * 0.01)
        state["step"].fill_(4)

    runs = _twin_steps("adamw", init, lr=1e-3, wd=0.1)
    (eager, eager_opt, _), (fused, fused_opt, _) = runs["eager"], runs["fused"]
    assert max_diff(eager, fused) <= TOLERANCE
    for key in ("m", "v"):
        assert max_diff([eager_opt.state[p][key] for p in eager], [fused_opt.state[p][key] for p in fused]) <= TOLERANCE
    assert max_diff(eager, _random_state(0)) > 100 * TOLERANCE  # the step did move the weights


@pytest.mark.parametrize("program, lr", [("lion", 3e-4), ("adamw", 1e-2)])
def test_500_step_loss_curve_within_1_percent_of_eager(program, lr):
    _, eager = train_mlp(lambda p: SymbolicOptimizer(p, program, lr=lr, wd=0.1, backend="eager"))
    _, fused = train_mlp(lambda p: SymbolicOptimizer(p, program, lr=lr, wd=0.1, backend="fused"))
    assert len(fused) == 500
    assert all(abs(f - e) <= 0.01 * e for f, e in zip(fused, eager))
    assert eager[-1] < 0.2 * eager[0]


def test_bf16_parameters_with_lerp_compile_and_track_eager(monkeypatch):
    """AdamW's interp is ``lerp`` with a float32 0-d weight on bf16 tensors; scalars stay float32
    (bf16 would turn beta2 = 0.999 into 1.0), so the fused step tracks the eager one."""
    _, eager = train_mlp(lambda p: SymbolicOptimizer(p, "adamw", lr=1e-2, backend="eager"), steps=50, dtype=torch.bfloat16)
    used, scalars = [], []

    def device_scalars(like, *values):
        out = real_device_scalars(like, *values)
        scalars.extend(out)
        return out

    real_device_scalars = runtime.device_scalars
    monkeypatch.setattr(runtime, "device_scalars", device_scalars)
    _, fused = train_mlp(lambda p: SymbolicOptimizer(p, "adamw", lr=1e-2, backend="fused"), steps=50,
                         dtype=torch.bfloat16, on_step=used.append)
    assert all(abs(f - e) <= 0.03 * e for f, e in zip(fused, eager))
    assert fused[-1] < 0.5 * fused[0]
    assert scalars and all(t.dtype == torch.float32 and t.dim() == 0 for t in scalars)
    assert all(t.dtype == torch.bfloat16 for p in used[-1].state.values() for k, t in p.items() if k != "step")


def test_no_recompile_when_step_lr_or_hyperparameters_change_in_a_step_using_program():
    """AdamW reads step (bias corrections): a new step, lr, beta or weight decay every call is
    new data for the same graph."""
    model, x, y = make_mlp()
    opt = SymbolicOptimizer(model.parameters(), "adamw", lr=1e-3, wd=0.1, backend="fused")
    scheduler = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0 / (1 + step))

    def train(steps):
        for _ in range(steps):
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            opt.step()
            scheduler.step()

    before = _graphs_compiled()
    train(1)
    assert _graphs_compiled() - before <= 1
    warm = _graphs_compiled()
    steps = set()
    for beta1, beta2, wd in ((0.9, 0.999, 0.1), (0.5, 0.99, 0.0), (0.95, 0.9, 0.3)):
        opt.param_groups[0].update(beta1=beta1, beta2=beta2, wd=wd)
        for _ in range(4):
            train(1)
            steps.add(float(next(iter(opt.state.values()))["step"]))
    assert len(steps) == 12  # a new step every call
    assert _graphs_compiled() == warm


def _largest_allocation(step) -> int:
    """The bytes of the largest allocation ``step()`` makes (the profiler's memory events)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    return max((e.nbytes() for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"), default=0)


@pytest.mark.parametrize("program", ["lamb", "lion_cautious"])
def test_a_per_tensor_reduction_allocates_no_temporary_the_size_of_the_parameter(program):
    """LAMB's trust ratio and cautious Lion's mean read a value the update reads again. The
    fused graph recomputes it in the update pass (compiler.FUSED_OPTIONS) rather than storing
    it in a fresh tensor as large as the parameter every step, whose page faults made both
    5x slower than their floor. The eager backend, which does store it, shows the probe sees
    such a temporary."""
    sizes = {}
    for backend in ("eager", "fused"):
        p = torch.nn.Parameter(torch.randn(1 << 16, generator=torch.Generator().manual_seed(0)))
        p.grad = torch.randn(p.shape, generator=torch.Generator().manual_seed(1))
        opt = SymbolicOptimizer([p], program, lr=1e-3, backend=backend)
        opt.step()  # state, and the compile
        sizes[backend] = _largest_allocation(opt.step)
    assert sizes["eager"] >= p.nbytes
    assert sizes["fused"] < p.nbytes // 16, f"the fused {program} step allocated {sizes['fused']} bytes"

