"""The compiler against a reference interpreter written here, independently of codegen.

``reference_step`` evaluates a program statement by statement, every value a list with one
tensor per parameter (a host scalar is a 0-d tensor repeated), each op a plain torch
function written out below, group reductions over the whole list. It knows nothing of
buffers, in-place forms, levels, decoupled weight decay or ``addcdiv``: exactly what the
compiled step must get right without changing the numbers.

The property tests run random valid programs (``strategies.programs``: group and per-tensor
reductions, scalar state, swaps, unchanged state, scalar updates, several levels) for a
few steps on parameters of different shapes, in float64, with the state carried, and
compare the eager and foreach backends with the reference after every step. Each backend
starts each step from the reference's weights and state: a rounding difference (the
compiler applies ``w * (1 - lr * wd) - lr * u`` where the program says
``w - (u + w * wd) * lr``) is then compared after one step, where it is 1e-16 relative,
instead of being amplified by a chaotic program over several. A buffer-reuse bug
(an overwritten value read later, a state written back from the wrong buffer) shows as an
O(1) difference. Constants are drawn away from zero (|c| >= 1e-3) so that ``1 - a`` and
friends do not sit on a rounding tie, where backends may legitimately disagree.

The fused backend (``torch.compile``, seconds per program) runs a handful of fixed programs.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import NICE_CONSTANTS, programs

import programs as library
from symbolic_opt import ProgramError, analyze, compile_program, parse
from symbolic_opt.ir import Const, Program, Var
from symbolic_opt.kinds import Kind

SHAPES = [(3, 4), (5,), (2, 1, 3)]
DTYPE = torch.float64


# --- the reference interpreter ------------------------------------------------------------------


# Reductions sum in the same order as torch's own reductions do in the runtime: the property is
# about buffers and schedules, and a one-ulp difference in a group norm, fed to arccos of a
# cosine similarity of 1, is nan on one side and 1e-8 on the other.
def _norm(xs):
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(x) for x in xs]))


def _dot(xs, ys):
    return torch.stack([torch.sum(x * y) for x, y in zip(xs, ys)]).sum()


def _lerp(start, end, weight):
    start, end = torch.broadcast_tensors(start, end)
    return torch.lerp(start, end, weight)


ELEMENTWISE = {
    "add": lambda x, y: x + y,
    "sub": lambda x, y: x - y,
    "mul": lambda x, y: x * y,
    "div": lambda x, y: x / (y + 1e-8),
    "exact_div": lambda x, y: x / y,
    "power": torch.pow,
    "max": torch.maximum,
    "min": torch.minimum,
    # the op table states interp's rounding: torch.lerp(y, x, 1 - a)
    "interp": lambda x, y, a: _lerp(y, x, 1 - a),
    "clip": lambda x, c: torch.minimum(torch.maximum(x, -torch.abs(c)), torch.abs(c)),
    "where": lambda c, x, y: torch.where(c > 0, x, y),
    # and addcmul's: one rounding
    "addcmul": lambda x, y, z: torch.addcmul(*torch.broadcast_tensors(x, y, z)),
    "abs": torch.abs,
    "cos": torch.cos,
    "sin": torch.sin,
    "tan": torch.tan,
    "arcsin": torch.asin,
    "arccos": torch.acos,
    "arctan": torch.atan,
    "sinh": torch.sinh,
    "cosh": torch.cosh,
    "tanh": torch.tanh,
    "arcsinh": torch.asinh,
    "arccosh": torch.acosh,
    "arctanh": torch.atanh,
    "exp": torch.exp,
    "exp2": lambda x: 2.0**x,
    "exp10": lambda x: 10.0**x,
    "expm1": torch.expm1,
    "log": lambda x: torch.log(torch.abs(x)),
    "log10": lambda x: torch.log10(torch.abs(x)),
    "log2": lambda x: torch.log2(torch.abs(x)),
    "log1p": lambda x: torch.log(torch.abs(1 + x)),
    "square": lambda x: x * x,
    "sqrt": lambda x: torch.sqrt(torch.abs(x)),
    "cube": lambda x: x * x * x,
    "cbrt": lambda x: torch.sign(x) * torch.abs(x) ** (1 / 3),
    "sign": torch.sign,
    "reciprocal": lambda x: 1 / x,
    "invert": lambda x: 1 - x,
    "negative": lambda x: -x,
}
PER_TENSOR = {
    "tensor_norm": lambda x: torch.linalg.vector_norm(x),
    "tensor_mean": lambda x: x.mean(),
    "tensor_dot": lambda x, y: (x * y).sum(),
}
GROUP = {  # lists in, lists out (a group scalar repeated per parameter)
    "norm": lambda xs: [_norm(xs)] * len(xs),
    "global_norm": lambda xs: [_norm(xs)] * len(xs),
    "dot": lambda xs, ys: [_dot(xs, ys)] * len(xs),
    "cosine_sim": lambda xs, ys: [_dot(xs, ys) / (_norm(xs) * _norm(ys))] * len(xs),
    "clip_by_global_norm": lambda xs, cs: [x * torch.clamp(c / _norm(xs), max=1.0) for x, c in zip(xs, cs)],
}
REFERENCE_OPS = sorted(set(ELEMENTWISE) | set(PER_TENSOR) | set(GROUP))


def reference_step(program: Program, params, grads, state: dict, scalars: dict):
    """One step of ``program``: the new weights ``w - update`` and every state variable's
    next value (lists, one tensor per parameter)."""
    n = len(params)

    def number(value):
        return [torch.tensor(float(value), dtype=DTYPE)] * n

    env = {"w": list(params), "g": list(grads)}
    env.update({name: number(value) for name, value in scalars.items()})
    env.update({name: list(values) for name, values in state.items()})
    for stmt in program.body:
        args = [env[a.name] if isinstance(a, Var) else number(a.value) for a in stmt.args]
        if stmt.op in GROUP:
            env[stmt.target] = GROUP[stmt.op](*args)
        else:
            fn = ELEMENTWISE.get(stmt.op) or PER_TENSOR[stmt.op]
            env[stmt.target] = [fn(*per_param) for per_param in zip(*args)]
    new_w = [w - u for w, u in zip(params, env[program.update])]
    return new_w, {s: env[r] for s, r in zip(program.state, program.returns[1:])}


# --- comparing --------------------------------------------------------------------------------


def assert_close(got: torch.Tensor, want: torch.Tensor, what: str, rtol=1e-7, atol=1e-9) -> None:
    """Equal up to rounding; a non-finite value must be non-finite on both sides (inf and
    nan may trade places: ``torch.lerp`` and ``(1 - a) * x + a * y`` disagree on infinities)."""
    want = want.to(got.dtype).expand_as(got)
    finite_got, finite_want = torch.isfinite(got), torch.isfinite(want)
    assert torch.equal(finite_got, finite_want), f"{what}: finite where the reference is not\n{got}\n{want}"
    assert torch.allclose(got[finite_got], want[finite_want], rtol=rtol, atol=atol), f"{what}:\n{got}\n{want}"


def initial_state(program: Program, gen: torch.Generator) -> dict:
    """Random state, shaped by kind: a tensor like w, or one number per tensor. Not zero, as
    an optimizer's state is at its start: zeros moved between buffers stay zeros, and would
    hide a write-back that reads a buffer already overwritten."""
    kinds = analyze(program).state_kinds
    return {
        s: [torch.randn(shape if kinds[s] is Kind.TENSOR else (), generator=gen, dtype=DTYPE) for shape in SHAPES]
        for s in program.state
    }


def check_against_reference(program: Program, backends, steps: int = 3, seed: int = 0, device_scalars=False, **tol):
    """Run ``steps`` steps of the reference and of each backend (each step from the
    reference's weights and state, module docstring) and compare weights and carried state.
    The gradients must come back untouched."""
    gen = torch.Generator().manual_seed(seed)
    weights = [torch.randn(shape, generator=gen, dtype=DTYPE) for shape in SHAPES]
    state = initial_state(program, gen)
    compiled = {b: compile_program(program, b) for b in backends}
    for step in range(1, steps + 1):
        grads = [torch.randn(shape, generator=gen, dtype=DTYPE) for shape in SHAPES]
        scalars = {"lr": 0.3 / step, **program.defaults}
        if program.uses_step:
            scalars["step"] = float(step)
        want_w, want_state = reference_step(program, weights, grads, state, scalars)
        for backend, c in compiled.items():
            w = [x.clone() for x in weights]
            g = [x.clone() for x in grads]
            buffers = [[x.clone() for x in state[s]] for s in c.state]
            given = {k: v for k, v in scalars.items() if k in ("lr", "step")}
            if device_scalars:
                given = {k: torch.tensor(float(v), dtype=DTYPE) for k, v in {**scalars}.items() if k in c.scalars}
            c(w, g, buffers, **given)
            for i, (got, want) in enumerate(zip(w, want_w)):
                assert_close(got, want, f"{backend}, step {step}, w[{i}]", **tol)
            for s, got_list in zip(c.state, buffers):
                for i, (got, want) in enumerate(zip(got_list, want_state[s])):
                    assert got.shape == torch.Size(SHAPES[i]) or got.dim() == 0
                    assert want.dim() <= got.dim(), f"state {s} holds a tensor but its buffer is per tensor"
                    assert_close(got, want, f"{backend}, step {step}, state {s}[{i}]", **tol)
            for got, want in zip(g, grads):
                assert torch.equal(got, want), f"{backend} wrote into the gradient"
        kinds = analyze(program).state_kinds
        weights = want_w
        state = {
            s: [v if kinds[s] is not Kind.TENSOR else v.expand(shape).clone() for v, shape in zip(want_state[s], SHAPES)]
            for s in program.state
        }


_MAGNITUDES = st.builds(lambda m, negative: -m if negative else m, st.floats(1e-3, 3.0), st.booleans())
_CONSTANTS = st.one_of(st.sampled_from(NICE_CONSTANTS).map(Const), _MAGNITUDES.map(Const))
# the reductions and the ops real optimizers use, drawn three times as often
_WEIGHTED_OPS = REFERENCE_OPS + ["global_norm", "clip_by_global_norm", "dot", "tensor_norm", "interp", "sign", "mul", "add"] * 2


def numeric_programs(**kwargs):
    return programs(
        ops=[op for op in _WEIGHTED_OPS if op in REFERENCE_OPS], max_statements=10,
        constant_values=_CONSTANTS, hyper_values=_MAGNITUDES, **kwargs,
    )


# --- properties -------------------------------------------------------------------------------


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(numeric_programs())
def test_eager_and_foreach_match_the_reference_on_random_programs(program):
    check_against_reference(program, ("eager", "foreach"))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(numeric_programs(min_statements=6, max_state=3))
def test_longer_programs_with_state_match_the_reference(program):
    check_against_reference(program, ("eager", "foreach"), steps=4, seed=1)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(numeric_programs())
def test_the_tensor_backend_matches_the_reference_on_random_programs(program):
    """The fused backend's code run as Python, every scalar a 0-d tensor."""
    check_against_reference(program, ("tensor",), device_scalars=True, rtol=1e-9, atol=1e-12)


def _elementwise(program: Program) -> bool:
    a = analyze(program)
    from symbolic_opt.ops import OPS

    live = [OPS[s.op] for s, alive in zip(program.body, a.live) if alive]
    return not any(op.reduces for op in live) and all(a.state_kinds[s] is Kind.TENSOR for s in a.carried)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(numeric_programs())
def test_per_row_scalars_step_stacked_rows_as_each_row_alone(program):
    """Three rows of one ``[3, N]`` tensor, each with its own lr and hyperparameters (``[3, 1]``
    tensors), step as each row does alone on the eager backend: how the search trains a
    learning-rate grid in one batch."""
    if not _elementwise(program):
        return
    gen = torch.Generator().manual_seed(0)
    rows, n = 3, 7
    w = torch.randn(rows, n, generator=gen, dtype=DTYPE)
    lrs = [0.5, 0.05, 0.005]
    hyper = {h: [v, v * 0.5, v * 2.0] for h, v in program.defaults.items()}
    tensor, eager = compile_program(program, "tensor"), compile_program(program, "eager")
    stacked, states = w.clone(), tensor.init_state([w])
    alone = [w[r].clone() for r in range(rows)]
    alone_states = [eager.init_state([x]) for x in alone]
    for step in (1, 2, 3):
        g = torch.randn(rows, n, generator=gen, dtype=DTYPE)
        scalars = {"lr": torch.tensor(lrs, dtype=DTYPE).view(-1, 1) / step,
                   **{h: torch.tensor(v, dtype=DTYPE).view(-1, 1) for h, v in hyper.items()}}
        if program.uses_step:
            scalars["step"] = torch.tensor(float(step), dtype=DTYPE)
        tensor([stacked], [g], states, **{k: v for k, v in scalars.items() if k in tensor.scalars})
        for r in range(rows):
            given = {"lr": lrs[r] / step, **{h: v[r] for h, v in hyper.items()}}
            if program.uses_step:
                given["step"] = step
            eager([alone[r]], [g[r].clone()], alone_states[r], **{k: v for k, v in given.items() if k in eager.scalars})
    for r in range(rows):
        assert_close(stacked[r], alone[r], f"row {r}", rtol=1e-9, atol=1e-12)


# --- fixed programs that exercise one thing each -------------------------------------------------

PAPER_LION = """
def train(w, g, m, lr, beta1=0.9, beta2=0.99, wd=0.1):
    update = interp(g, m, beta1)
    update = sign(update)
    m = interp(g, m, beta2)
    update = update + w * wd
    update = update * lr
    return update, m
"""

CASES = {
    "paper lion": PAPER_LION,
    "state swap": """
def train(w, g, m, v, u, lr):
    t = interp(g, m, 0.9)
    t = t * lr
    return t, u, m, v
""",
    "state unchanged and w as state": """
def train(w, g, m, v, lr):
    x = m + v
    u = x * lr + g * lr
    return u, m, w
""",
    "scalar state": """
def train(w, g, s, lr):
    s = interp(tensor_norm(g), s, 0.9)
    u = s * lr
    return u, s
""",
    "a host-scalar update": """
def train(w, g, m, lr):
    m = interp(g, m, 0.9)
    u = lr * 0.5
    return u, m
""",
    "clip by global norm, two levels": """
def train(w, g, m, lr):
    c = clip_by_global_norm(g, 0.5)
    m = interp(c, m, 0.9)
    n = global_norm(m)
    u = m / n
    u = u * lr
    return u, m
""",
    "clip by a per-tensor bound": """
def train(w, g, lr):
    c = clip_by_global_norm(g, tensor_norm(w))
    c = c * lr
    return c
""",
    "decay scaled by a group reduction": """
def train(w, g, lr):
    t = g * lr
    n = global_norm(t)
    u = t + w * n
    return u
""",
    "decay scaled by a per-tensor scalar": """
def train(w, g, u, lr, beta1=1.5):
    u = tensor_norm(g)
    d = u * w
    d = d + g * lr
    return d, u
""",
    "where of two numbers": """
def train(w, g, lr):
    u = where(w, 0.25, lr)
    return u
""",
    "interp with a per-element weight": """
def train(w, g, m, lr):
    m = exact_div(g, m)
    x = interp(g, m, m)
    x = sign(x) * lr
    return x, m
""",
    "names generated code uses": """
def train(w, g, m, m_list, torch, lr, step, np=0.5, g_list=0.25, zip=2.0):
    abs = interp(g, m, np)
    m_list = abs * g_list
    torch = torch + zip
    float = m_list * step
    float = float * lr
    return float, abs, m_list, torch
""",
    "adamw with bias correction": library.source("adamw"),
    "the discovered program": library.source("discovered"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_fixed_programs_match_the_reference(name):
    check_against_reference(parse(CASES[name]), ("eager", "foreach"), steps=4)


@pytest.mark.parametrize("name", library.names())
def test_library_programs_match_the_reference(name):
    program = library.load(name)
    if not {s.op for s in program.body} <= set(REFERENCE_OPS):
        pytest.skip("an op the reference does not know")
    check_against_reference(program, ("eager", "foreach"), steps=3)


FUSED_CASES = (
    "paper lion", "state swap", "state unchanged and w as state", "clip by global norm, two levels",
    "scalar state", "a host-scalar update",
)


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("name", FUSED_CASES)
def test_fused_matches_the_reference(name):
    """torch.compile may fuse multiply-adds: compared to 1e-6 relative (float64)."""
    check_against_reference(parse(CASES[name]), ("fused",), steps=2, device_scalars=True, rtol=1e-6, atol=1e-9)


# --- the code generated for Lion -----------------------------------------------------------------


def _calls(source: str, pattern: str) -> int:
    return len(re.findall(pattern, source))


def test_lion_eager_code_updates_in_place_with_decoupled_weight_decay():
    """The paper's Lion: m moves in its own buffer (``m.lerp_``), no copy back; weight decay
    is one ``w.mul_(1 - lr * wd)`` and the step one ``w.add_(update, alpha=-lr)``."""
    source = compile_program(parse(PAPER_LION), "eager").source
    assert _calls(source, r"\bm\.lerp_\(g, ") == 1
    assert ".copy_(" not in source and ".clone(" not in source
    assert _calls(source, r"\bw\.mul_\(") == 1 and _calls(source, r"\bw\.add_\(\w+, alpha=-lr\)") == 1
    assert _calls(source, r"\.sign_\(\)") == 1  # the update's buffer is reused, not a new tensor
    assert "1 - lr * wd" in source
    # one loop over the tensors: no group reduction, no second level
    assert _calls(source, r"\bfor\b") == 1


def test_lion_foreach_code_is_one_call_per_statement():
    source = compile_program(parse(PAPER_LION), "foreach").source
    assert _calls(source, r"torch\._foreach_lerp_\(m, g, ") == 1
    assert _calls(source, r"torch\._foreach_\w+\(") == 5  # lerp, sign_, lerp_, mul_ (decay), add_
    assert "_foreach_copy_" not in source
    assert _calls(source, r"\bfor\b") == 1 and "_rt.tiles(w, g, m)" in source  # one loop, over tiles


def test_library_lion_writes_state_and_weights_in_place():
    """lion-pytorch's rounding (mul + add): m is updated in its buffer and w in place, so the
    tensors the caller holds are the ones that change; one allocation (the update) per tensor."""
    compiled = compile_program(library.load("lion"), "eager")
    w, g = [torch.randn(4, 3)], [torch.randn(4, 3)]
    (m,) = compiled.init_state(w)
    m[0].normal_()
    pointers = (w[0].data_ptr(), m[0].data_ptr())
    expected_m = m[0] * 0.99 + g[0] * (1 - 0.99)
    compiled(w, g, [m], lr=0.1, wd=0.5)
    assert (w[0].data_ptr(), m[0].data_ptr()) == pointers
    torch.testing.assert_close(m[0], expected_m)
    assert _calls(compiled.source, r"torch\.\w+\(|\(\w+ \* \w+\)") == 1  # m * beta1, the only new tensor


def test_compiling_is_cached_and_bad_backends_refused():
    program = parse(PAPER_LION)
    assert compile_program(program, "eager") is compile_program(parse(PAPER_LION), "eager")
    with pytest.raises(ValueError, match="unknown backend"):
        compile_program(program, "cuda")
    with pytest.raises(ProgramError):
        compile_program(parse("def train(w, g, lr):\n    x = global_norm(lr)\n    return x\n"), "eager")


def test_generated_source_is_valid_python_for_every_library_program_and_backend():
    for name in library.names():
        for backend in ("eager", "foreach", "fused"):
            source = compile_program(library.load(name), backend).source
            compile(source, name, "exec")  # raises SyntaxError if not


def test_scalars_arrive_by_their_program_names_even_when_generated_code_uses_them():
    """A hyperparameter called ``torch`` or ``g_list`` is still passed as ``torch=...``."""
    program = parse(CASES["names generated code uses"])
    for backend in ("eager", "foreach"):
        compiled = compile_program(program, backend)
        assert compiled.scalars == ("lr", "step", "np", "g_list", "zip")
        w, g = [torch.ones(2, dtype=DTYPE)], [torch.ones(2, dtype=DTYPE)]
        states = compiled.init_state(w)
        compiled.fn(w, g, *states, lr=1.0, step=1.0, np=0.0, g_list=1.0, zip=0.0)  # the raw function too
        # np=0: abs = g; m_list = g; float = g * step = 1; update = 1 * lr
        torch.testing.assert_close(w[0], torch.zeros(2, dtype=DTYPE))


def test_where_keeps_the_parameters_dtype():
    compiled = compile_program(parse(CASES["where of two numbers"]), "eager")
    w = [torch.tensor([1.0, -1.0], dtype=DTYPE)]
    compiled(w, [torch.zeros(2, dtype=DTYPE)], [], lr=1 / 3)
    assert w[0].dtype == DTYPE
    assert w[0][1].item() == -1.0 - 1 / 3  # exact in float64; float32 would round 1/3


def test_nan_or_inf_never_raises_at_step_time():
    """Scalars follow IEEE (inf, nan) on the host as on the device: a step never raises."""
    program = parse("def train(w, g, lr):\n    a = lr / 0.0\n    b = log(a - a)\n    u = g * b\n    return u\n")
    for backend in ("eager", "foreach"):
        w = [torch.ones(3)]
        compile_program(program, backend)(w, [torch.ones(3)], [], lr=0.0)
        assert not torch.isfinite(w[0]).any()


def test_math_of_the_reference_matches_the_op_table_docs():
    """The reference is independent of the templates; spot-check it against the stated math."""
    x, y = torch.tensor(2.0, dtype=DTYPE), torch.tensor(-3.0, dtype=DTYPE)
    assert ELEMENTWISE["interp"](x, y, torch.tensor(0.25, dtype=DTYPE)).item() == pytest.approx(0.75 * 2 - 0.25 * 3)
    assert ELEMENTWISE["log"](y).item() == pytest.approx(math.log(3))
    assert ELEMENTWISE["clip"](y, x).item() == -2.0
    assert GROUP["global_norm"]([x, y])[0].item() == pytest.approx(math.sqrt(13))


@pytest.mark.usefixtures("one_thread")
def test_fused_writes_zero_dimensional_float64_parameters_and_state():
    """torch.compile (2.13, CPU) drops writes to 0-d float64 inputs; the fused step passes
    them as views, so a scalar parameter and per-tensor state still change."""
    program = parse(CASES["scalar state"])
    for backend in ("eager", "fused"):
        compiled = compile_program(program, backend)
        w = [torch.tensor(1.0, dtype=DTYPE), torch.ones(3, dtype=DTYPE)]
        g = [torch.tensor(2.0, dtype=DTYPE), torch.ones(3, dtype=DTYPE)]
        (s,) = compiled.init_state(w)
        compiled(w, g, [s], lr=torch.tensor(0.5, dtype=DTYPE))
        assert w[0].item() == pytest.approx(0.9), backend  # 1 - lr * s = 1 - 0.5 * 0.1 * |2|
        assert s[0].item() == pytest.approx(0.2) and s[1].item() == pytest.approx(0.1 * math.sqrt(3)), backend


# --- pieces and tiles ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["lion", "adamw", "rmsprop_centered_momentum", "adan"])
def test_steps_in_pieces_equal_whole_steps_bit_for_bit(name, monkeypatch):
    """Elementwise steps run on pieces of large tensors (``_rt.chunks``, ``_rt.tiles``): the
    same numbers, bit for bit, as on whole tensors; non-contiguous tensors go whole."""
    from symbolic_opt import runtime

    program = library.load(name)
    shapes = [(1000, 70), (33,), (64, 64)]
    results = {}
    for piece in (1 << 30, 4096):
        monkeypatch.setattr(runtime, "CHUNK", piece)
        monkeypatch.setattr(runtime, "TILE", piece)
        for backend in ("eager", "foreach"):
            compiled = compile_program(program, backend)
            assert ("_rt.chunks" if backend == "eager" else "_rt.tiles") in compiled.source
            gen = torch.Generator().manual_seed(0)
            w = [torch.randn(s, generator=gen) for s in shapes]
            w[2] = w[2].t()  # not contiguous: goes whole
            states = [[torch.randn(s, generator=gen).abs() for s in shapes] for _ in compiled.state]
            for step in range(1, 4):
                g = [torch.randn(s, generator=gen) for s in shapes]
                g[2] = g[2].t()
                scalars = {"lr": 1e-2, "step": float(step)} if program.uses_step else {"lr": 1e-2}
                compiled(w, g, states, **scalars)
            results[piece, backend] = [t.clone() for t in w] + [t.clone() for s in states for t in s]
    for backend in ("eager", "foreach"):
        for whole, pieces in zip(results[1 << 30, backend], results[4096, backend]):
            assert torch.equal(whole, pieces), (name, backend)


def test_chunks_and_tiles_cover_every_element_once():
    from symbolic_opt import runtime

    a = [torch.zeros(10_000), torch.zeros(7), torch.zeros(3, 5).t()]
    b = [torch.ones(10_000), torch.ones(7), torch.ones(3, 5).t()]
    pieces = list(runtime.chunks(a, b, size=1024))
    assert len(pieces) == 10 + 1 + 1 and all(x.shape == y.shape for x, y in pieces)
    for x, y in pieces:
        x.add_(y)  # views: writes land in the tensors
    assert all(torch.equal(t, torch.ones_like(t)) for t in a)
    small = [torch.zeros(100) for _ in range(10)] + [torch.zeros(5000)]
    tiles = list(runtime.tiles(small, small, size=450))
    assert [len(tile[0]) for tile in tiles] == [4, 4, 2, 1]  # 400, 400, 200, then the big one alone
    assert sum(t.numel() for tile in tiles for t in tile[0]) == 6000


def test_state_written_with_out_instead_of_a_copy():
    """The discovered program's v: its next value goes straight into its buffer."""
    source = compile_program(library.load("discovered"), "eager").source
    assert "out=v)" in source and ".copy_(" not in source


# --- the benchmark's own pieces (no timing asserted) ----------------------------------------------


def test_symopt_bench_refuses_an_unknown_suite_and_measures_compile_time():
    from typer.testing import CliRunner

    from symbolic_opt.cli import app
    from symbolic_opt.cli.bench import SCRIPT

    result = CliRunner().invoke(app, ["speed", "--suite", "z"])
    assert result.exit_code == 2 and "unknown suite" in result.output
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("optimizer_step_for_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    stages = module.compile_times(repeats=2)  # asserts the program has 20 statements
    assert set(stages) >= {"parse", "analyze", "generate (eager)", "load"}
    assert module.state_bytes_per_element() == {"symbolic_opt Lion": 4.0, "torch AdamW": 8.0, "symbolic_opt AdamW": 8.0}


@pytest.mark.parametrize("name, one_pass, reread, tensors", [
    ("adamw", 28, 0, set()),  # reads w, g, m, v; writes w, m, v; no reduction
    ("lion", 20, 0, set()),
    ("lamb", 28, 16, {"w", "g", "m", "v"}),  # ||w|| and ||r||, r from g, m, v, w
    ("lion_cautious", 20, 8, {"g", "m"}),  # mean of the mask of sign(interp(g, m)) * g
])
def test_the_step_floor_counts_a_second_read_of_what_a_reduction_reads(name, one_pass, reread, tensors):
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    import step_floor

    assert step_floor.step_bytes(name) == (one_pass, reread)
    assert {r.key for r in step_floor.reduction_inputs(analyze(library.load(name)))} == tensors
    floor = step_floor.floor(name, elements=1 << 20, rmw_bandwidth=1e10, repeats=2)
    assert floor.memory_s == pytest.approx((one_pass + reread) * (1 << 20) / 1e10)
    assert floor.seconds >= floor.memory_s and floor.arithmetic_s > 0 and floor.costliest_op


def test_the_plan_decides_for_its_target_and_only_its_emitter_writes_it():
    """Buffers, out= writes and pieces are the plan's (lowering.py); the emitter takes the plan
    of its own target only."""
    from symbolic_opt.codegen import EMITTERS, generate, target
    from symbolic_opt.lowering import OUT, plan

    analysis = analyze(library.load("discovered"))
    eager, foreach, fused = (plan(analysis, target(b)) for b in ("eager", "foreach", "fused"))
    assert OUT in {pos for pos, _ in eager.inplace.values()}  # v's next value written with out=
    assert OUT not in {pos for pos, _ in foreach.inplace.values()}
    assert eager.tiled and foreach.tiled and not fused.tiled
    assert generate(eager, "train_eager").source == compile_program(library.load("discovered"), "eager").source
    with pytest.raises(ValueError, match="plan for 'eager'"):
        EMITTERS["foreach"](eager, "step")
    with pytest.raises(ValueError, match="unknown backend"):
        target("jax")


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("name", ["adamw", "nadam", "radam", "lamb"])
def test_fused_step_using_library_programs_match_the_reference(name):
    """Their host statements (bias corrections, NAdam's mu product, RAdam's rectification)
    run before the graph, in float64 as eager's do; torch.compile may fuse multiply-adds."""
    program = library.load(name)
    if not {s.op for s in program.body} <= set(REFERENCE_OPS):
        pytest.skip("an op the reference does not know")
    check_against_reference(program, ("fused",), steps=3, device_scalars=True, rtol=1e-6, atol=1e-9)


def test_fused_computes_host_values_once_outside_the_graph():
    """AdamW's 1 - beta1 ** step and friends: numpy in the wrapper, one 0-d tensor each in the
    graph, which computes nothing of them per element."""
    compiled = compile_program(library.load("adamw"), "fused")
    graph, wrapper = compiled.source.split("\n\n\n")
    assert "pow" not in graph and "np." not in graph
    assert "np.power(beta1, step)" in wrapper and "decay = 1 - lr * wd" in wrapper
    assert re.search(r"def \w+_graph\(.*\bstep_size\b.*\bdecay\b", graph)
    assert "w.mul_(decay)" in graph and "_rt.device_scalars(w_list[0]" in wrapper
    # Lion's coefficient lr * wd stays in the decay; a two-factor coefficient is hoisted whole
    program = parse("def train(w, g, lr, beta=0.5):\n    u = sign(g)\n    u = u * beta\n    u = u * lr\n    return u\n")
    graph, wrapper = compile_program(program, "fused").source.split("\n\n\n")
    assert re.search(r"coef = \w+ \* \w+", wrapper) and re.search(r"w\.sub_\(\w+ \* coef\)", graph)
    check_against_reference(program, ("fused",), steps=2, device_scalars=True, rtol=1e-6, atol=1e-9)


def test_symopt_show_says_which_statements_run_on_the_host():
    from typer.testing import CliRunner

    from symbolic_opt.cli import app

    result = CliRunner().invoke(app, ["show", "adamw", "--backend", "fused"])
    assert result.exit_code == 0, result.output
    host = result.output.split("on the host, once per step (fused)")[1].split("mathematics")[0]
    assert "bias1 = 1.0 - _t2   (host, float64)" in host and "step_size = exact_div(lr, bias1)" in host
    assert "decay = 1 - lr * wd" in host and "interp" not in host
    result = CliRunner().invoke(app, ["show", "signsgd", "--backend", "eager"])
    assert "nothing: every statement runs on the parameters" in result.output or "decay" in result.output
