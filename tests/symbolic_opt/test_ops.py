"""The op table: one entry per function, and every form of an op computes the same thing.

For each op the table gives a torch template (per tensor), a host template (numpy float64,
for scalars and constant folding), foreach templates, in-place forms and a sympy form. A
program computes the same numbers whichever form the compiler picks, so each is checked
against the torch template here, on ordinary and on special values (0, -0, nan, +-inf,
tiny, huge).
"""

from __future__ import annotations

import itertools
import math
import re

import numpy as np
import pytest
import sympy as sp
import torch

from symbolic_opt import ops, runtime
from symbolic_opt.ops import OPS, Rule

ELEMENTWISE = sorted(name for name, op in OPS.items() if op.rule is Rule.MAP)
SPECIAL = [float("nan"), float("inf"), -float("inf"), 0.0, -0.0, 1e-300, -2.5, 0.5, 1.0, -1.0, 3.0, 1e300]
ORDINARY = [-2.5, -0.7, -0.25, 0.3, 0.5, 0.9, 1.0, 1.7, 3.0]
NAMESPACE = {"torch": torch, "np": np, "_rt": runtime, "abs": abs, "float": float, "list": list}


def _torch(op: ops.Op, *args):
    names = [f"a{i}" for i in range(len(args))]
    return eval(op.torch.format(*names), {**NAMESPACE, **dict(zip(names, args))})  # noqa: S307 - the op table's own template


def _host(op: ops.Op, *values: float) -> float:
    names = [f"a{i}" for i in range(len(values))]
    with np.errstate(all="ignore"):
        scope = {**NAMESPACE, **{n: np.float64(v) for n, v in zip(names, values)}}
        return float(eval(op.host.format(*names), scope))  # noqa: S307


def _same(a: float, b: float, rtol=1e-9, atol=1e-15) -> bool:
    if not (math.isfinite(a) and math.isfinite(b)):
        return math.isfinite(a) == math.isfinite(b)  # inf and nan may trade places (lerp, FMA)
    return abs(a - b) <= atol + rtol * max(abs(a), abs(b))


# --- the table ------------------------------------------------------------------------------------

PAPER_FUNCTIONS = (
    "abs cos sin tan arcsin arccos arctan sinh cosh tanh arcsinh arccosh arctanh exp exp2 exp10 expm1 log log10 "
    "log2 log1p square sqrt cube cbrt sign reciprocal norm invert negative global_norm interp dot cosine_sim "
    "clip_by_global_norm power add sub mul div max min"
).split()


def test_the_paper_search_space_is_in_the_table():
    """paper-notes section 1: 45 functions (constants included), plus clip."""
    assert set(PAPER_FUNCTIONS) <= set(ops.SEARCH_OPS)
    assert "clip" in OPS and set(ops.CONSTANTS) == {"pi", "e", "eps"}
    assert len(PAPER_FUNCTIONS) + len(ops.CONSTANTS) == 45


@pytest.mark.parametrize("name", sorted(OPS))
def test_each_entry_is_consistent(name):
    op = OPS[name]
    assert op.name == name and op.math
    templates = [op.torch or op.group, op.host, op.inplace, op.mirror, *op.foreach.values(), *op.foreach_inplace.values()]
    for template in filter(None, templates):
        used = {int(i) for i in re.findall(r"\{(\d+)\}", template)}
        assert used <= set(range(op.arity)), template
    assert set(range(op.arity)) <= {int(i) for i in re.findall(r"\{(\d+)\}", op.torch or op.group)}
    for signature in [*op.foreach, *op.foreach_inplace]:
        assert len(signature) == op.arity and set(signature) <= {"L", "S"}
    assert all(0 <= p < op.arity for p in op.tensor_args) and set(op.overwrites) <= {0, 1}
    if op.rule is Rule.MAP:
        assert op.host is not None, "elementwise ops fold on the host"


# --- every form agrees with the torch template ------------------------------------------------------


@pytest.mark.parametrize("name", [n for n in ELEMENTWISE if OPS[n].host])
def test_host_form_matches_torch_on_special_values(name):
    op = OPS[name]
    grid = SPECIAL if op.arity < 3 else [float("nan"), float("inf"), 0.0, -1.0, 0.5, 1e300]
    for args in itertools.product(grid, repeat=op.arity):
        want = _torch(op, *(torch.tensor(a, dtype=torch.float64) for a in args)).item()
        got = _host(op, *args)
        assert _same(got, want), f"{name}{args}: host {got}, torch {want}"


@pytest.mark.parametrize("name", [n for n in ELEMENTWISE if OPS[n].foreach])
def test_foreach_forms_match_torch(name):
    """Every foreach signature (L: a list of tensors, S: a number) against the torch template
    applied tensor by tensor."""
    op = OPS[name]
    gen = torch.Generator().manual_seed(0)
    shapes = [(3, 4), (5,)]
    for signature in op.foreach:
        lists = [[torch.rand(s, generator=gen, dtype=torch.float64) * 2 - 0.5 for s in shapes] for _ in signature]
        numbers = [0.3, 0.7, 1.5]
        args = [lists[k] if kind == "L" else numbers[k] for k, kind in enumerate(signature)]
        got = eval(op.foreach[signature].format(*[f"a{k}" for k in range(op.arity)]), {**NAMESPACE, **{f"a{k}": a for k, a in enumerate(args)}})
        for i in range(len(shapes)):
            per_tensor = [a[i] if kind == "L" else torch.tensor(a, dtype=torch.float64) for a, kind in zip(args, signature)]
            torch.testing.assert_close(got[i], _torch(op, *per_tensor), equal_nan=True, msg=f"{name} {signature}")


@pytest.mark.parametrize("name", [n for n in ELEMENTWISE if OPS[n].inplace])
def test_in_place_forms_match_out_of_place(name):
    """``inplace`` overwrites argument 0 (at every position the op allows, through the mirror
    or commutativity for position 1); ``foreach_inplace`` likewise on lists."""
    op = OPS[name]
    gen = torch.Generator().manual_seed(1)
    args = [torch.rand(4, 3, generator=gen, dtype=torch.float64) * 2 - 0.5 for _ in range(op.arity)]
    want = _torch(op, *args)
    for position in op.overwrites:
        names = [f"a{k}" for k in range(op.arity)]
        if position == 1:
            if op.commutative:
                names = [names[1], names[0], *names[2:]]
            elif op.mirror:
                names = [part.strip() for part in _split(op.mirror.format(*names))]
            else:
                continue
        buffers = [a.clone() for a in args]
        scope = {**NAMESPACE, **{f"a{k}": b for k, b in enumerate(buffers)}}
        exec(op.inplace.format(*names), scope)  # noqa: S102 - the op table's own template
        torch.testing.assert_close(buffers[position], want, equal_nan=True, msg=f"{name} in place at {position}")
        for signature, template in op.foreach_inplace.items() if position == 0 or op.mirror else ():
            if position == 1 and signature[2:].count("L"):
                continue  # the mirror's 1 - a is arithmetic on one value, not a list
            lists = [[b.clone()] if kind == "L" else 0.3 for b, kind in zip(args, signature)]
            wanted = _torch(op, *[b if kind == "L" else torch.tensor(0.3, dtype=torch.float64) for b, kind in zip(args, signature)])
            order = names
            scope = {**NAMESPACE, **{f"a{k}": v for k, v in enumerate(lists)}}
            exec(template.format(*order), scope)  # noqa: S102
            target = lists[position] if signature[position] == "L" else None
            if target is not None:
                torch.testing.assert_close(target[0], wanted, equal_nan=True, msg=f"{name} foreach {signature} at {position}")


def _split(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        depth += ch in "(["
        depth -= ch in ")]"
        current += ch
    return parts + [current]


@pytest.mark.parametrize("name", [n for n in ELEMENTWISE if n not in ("where",)])
def test_sympy_form_matches_the_numbers(name):
    """The symbolic form (for simplification and export) says what the torch template computes."""
    op = OPS[name]
    symbols = sp.symbols(f"x0:{op.arity}")
    expr = op.sympy(*symbols).subs(ops.DIV_GUARD_SYMBOL, ops.DIV_GUARD)
    checked = 0
    for args in itertools.product(ORDINARY, repeat=op.arity):
        value = complex(expr.subs(dict(zip(symbols, args))).evalf())
        want = _torch(op, *(torch.tensor(a, dtype=torch.float64) for a in args)).item()
        if abs(value.imag) > 1e-12 or not math.isfinite(want):
            continue  # outside the real domain (arcsin 3): torch says nan
        assert value.real == pytest.approx(want, rel=1e-9, abs=1e-12), f"{name}{args}"
        checked += 1
    assert checked


# --- safe by construction -------------------------------------------------------------------------


def test_the_published_space_is_safe_by_construction():
    x = torch.tensor([-4.0, 0.0, 4.0], dtype=torch.float64)
    torch.testing.assert_close(_torch(OPS["sqrt"], x), torch.tensor([2.0, 0.0, 2.0], dtype=torch.float64))
    torch.testing.assert_close(_torch(OPS["log"], x)[[0, 2]], torch.log(torch.tensor([4.0, 4.0], dtype=torch.float64)))
    assert _torch(OPS["log1p"], torch.tensor(-3.0)).item() == pytest.approx(math.log(2))
    assert _torch(OPS["div"], torch.tensor(1.0, dtype=torch.float64), torch.tensor(0.0, dtype=torch.float64)).item() == 1e8
    assert math.isnan(_torch(OPS["exact_div"], torch.tensor(0.0), torch.tensor(0.0)).item())
    assert _torch(OPS["clip"], torch.tensor(5.0), torch.tensor(-2.0)).item() == 2.0  # clamps to [-|c|, |c|]
    assert _torch(OPS["sign"], torch.tensor(float("nan"))).item() == 0.0 == _host(OPS["sign"], float("nan"))
    assert _torch(OPS["interp"], torch.tensor(2.0), torch.tensor(10.0), torch.tensor(0.25)).item() == 4.0


def test_where_selects_where_the_condition_is_positive():
    c = torch.tensor([1.0, 0.0, -1.0, float("nan")])
    assert _torch(OPS["where"], c, torch.tensor(5.0), torch.zeros(4)).tolist() == [5.0, 0.0, 0.0, 0.0]


# --- reductions ---------------------------------------------------------------------------------------


def test_group_reductions_reduce_over_every_tensor():
    xs = [torch.tensor([3.0, 0.0]), torch.tensor([[4.0]])]
    ys = [torch.tensor([1.0, 2.0]), torch.tensor([[0.5]])]
    assert runtime.global_norm(xs).item() == 5.0
    assert runtime.group_dot(xs, ys).item() == 5.0
    assert runtime.cosine_sim(xs, xs).item() == pytest.approx(1.0)
    clipped = runtime.clip_by_global_norm(xs, 2.5)
    assert [t.tolist() for t in clipped] == [[1.5, 0.0], [[2.0]]]
    assert [t.tolist() for t in runtime.clip_by_global_norm(xs, torch.tensor(10.0))] == [[3.0, 0.0], [[4.0]]]
    per_tensor = runtime.clip_by_global_norm(xs, [torch.tensor(10.0), torch.tensor(1.0)])  # a bound per tensor
    assert per_tensor[0].tolist() == [3.0, 0.0] and per_tensor[1].item() == pytest.approx(0.8)


def test_group_reductions_mix_dtypes_and_accumulate_in_float32():
    xs = [torch.full((1000,), 1e-3, dtype=torch.bfloat16), torch.ones(3, dtype=torch.float32)]
    norm = runtime.global_norm(xs)
    assert norm.dtype == torch.float32
    assert norm.item() == pytest.approx(math.sqrt(1000 * float(torch.tensor(1e-3, dtype=torch.bfloat16)) ** 2 + 3), rel=1e-4)


def test_per_tensor_reductions():
    x = torch.tensor([[3.0, 4.0]])
    assert _torch(OPS["tensor_norm"], x).item() == 5.0
    assert _torch(OPS["tensor_mean"], x).item() == 3.5
    assert _torch(OPS["tensor_dot"], x, x).item() == 25.0
    assert [t.item() for t in eval(OPS["tensor_norm"].foreach["L"].format("xs"), {**NAMESPACE, "xs": [x, 2 * x]})] == [5.0, 10.0]


def test_runtime_helpers():
    like = torch.zeros(2, dtype=torch.bfloat16)
    assert runtime.scalar_like(0.5, like).dtype == torch.bfloat16 and runtime.scalar_like(0.5, like).dim() == 0
    assert runtime.scalar_like(torch.tensor(0.5, dtype=torch.float64), like).dtype == torch.bfloat16
    x = torch.zeros(3)
    assert runtime.addcmul(x, torch.ones(3), 0.5).tolist() == [0.5] * 3  # a number goes in as alpha
    assert runtime.addcmul(x, 2.0, torch.ones(3)).tolist() == [2.0] * 3
    scalars = [torch.tensor(1.0, dtype=torch.float64), torch.ones(2, dtype=torch.float64)]
    views = runtime.writable(scalars)
    assert views[0].shape == (1,) and views[0].data_ptr() == scalars[0].data_ptr() and views[1] is scalars[1]
    plain = [torch.tensor(1.0)]
    assert runtime.writable(plain) is plain


def test_each_op_names_the_torch_function_for_every_numpy_function_its_host_form_calls():
    """The exported optimizer replaces numpy with torch using these entries (``export.py``)."""
    for op in OPS.values():
        called = set(re.findall(r"\bnp\.(\w+)", op.host or ""))
        assert called == set(op.host_functions), op.name
        for name, fn in op.host_functions.items():
            assert ops.HOST_FUNCTIONS[name] == fn
    with pytest.raises(ValueError, match="np.hypot"):
        ops.Op(name="bad", arity=2, math="", sympy=lambda x, y: x, torch="torch.hypot({0}, {1})", host="np.hypot({0}, {1})")


def test_fold_evaluates_the_host_form_in_float64_with_ieee_results():
    assert OPS["power"].fold([0.9, 3.0]) == np.power(np.float64(0.9), 3.0)
    assert OPS["exact_div"].fold([1.0, 0.0]) == math.inf
    assert math.isnan(OPS["exact_div"].fold([0.0, 0.0]))
    assert OPS["sign"].fold([math.nan]) == 0.0  # as torch.sign, not np.sign


def test_the_facts_lowering_reads_from_the_op_table():
    assert OPS["add"].signs == (1, 1) and OPS["sub"].signs == (1, -1) and OPS["negative"].signs == (-1,)
    assert OPS["mul"].scales and not OPS["add"].scales
    assert OPS["exact_div"].apply == "addcdiv" and OPS["mul"].apply == "addcmul" and OPS["div"].apply is None
    assert OPS["exp"].out_template == "torch.exp({0})"
    assert OPS["sqrt"].out_template is None  # torch.abs(x).sqrt_(): two calls
