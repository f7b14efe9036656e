"""The op table: every function a program may call, in one place.

One ``Op`` entry gives everything the rest of the library needs to know about a function:

* ``arity`` and ``math``: what it computes, exactly (the docstring of the op);
* ``rule``: its abstract rule, how the kind of its result follows from its arguments
  (see ``kinds.py``): elementwise ``MAP``, a per-tensor reduction, a group reduction;
* ``torch``: its torch implementation on one tensor, a Python expression template
  whose ``{0}``, ``{1}`` ... are the arguments (compiled code is generated from it);
  ``group`` instead for ops that reduce over the whole parameter group (the arguments
  are lists of tensors);
* ``host``: the same on host scalars (``numpy`` float64, so overflow and 0/0 give
  inf/nan as on a device, never a Python exception);
* ``foreach``: ``torch._foreach_*`` templates by argument signature (``L`` a list of
  tensors, ``S`` a scalar) for the multi-tensor backend; ops without one run per tensor;
* ``inplace`` / ``foreach_inplace``: the form that overwrites argument 0, which the
  compiler uses when that argument is a buffer nobody reads afterwards;
* ``overwrites``: the argument positions whose buffer the in-place form may take (1 only
  through ``mirror`` or ``commutative``); ``interp`` allows only 1, so that every backend
  computes it in the one rounding its entry states;
* ``mirror``: the same op with arguments 0 and 1 swapped, when one exists
  (``interp(x, y, a) == interp(y, x, 1 - a)``), so the in-place form can target either;
* ``sympy``: its symbolic form, for analysis, simplification and export;
* ``host_functions``: the numpy functions its ``host`` form calls, each with the torch
  function computing it on float64 0-d tensors (an exported optimizer has no numpy);
* ``signs`` / ``scales`` / ``apply``: what lowering needs to fold the update into the weight
  (``lowering.py``): the op is ``sum(signs[k] * arg k)`` (``+ - negative``), or a product
  whose scalar factor can become a coefficient (``*``), or torch has an in-place call that
  adds ``c * op(a, b)`` to a tensor in one pass (``w.addcdiv_(a, b, value=c)``);
* ``search``: whether it belongs to the paper's search space (paper-notes section 1).

Functions are safe by construction where the published search space is: ``log`` and
``sqrt`` take ``|x|`` first, ``log1p(x) = log|1 + x|``, and ``/`` adds ``DIV_GUARD`` (1e-8) to
the denominator. ``exact_div`` is the unguarded division, for programs that carry their
own epsilon (AdamW as torch computes it).

Adding an op is adding one entry to ``OPS``; nothing else in the code lists ops.
"""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np
import sympy as sp

DIV_GUARD = 1e-8
"""Added to every denominator of ``/`` (the published space's safe division)."""

DIV_GUARD_SYMBOL = sp.Symbol("epsilon_div", positive=True)
"""``DIV_GUARD`` in symbolic forms, so algebra can see it and proofs can take it to 0."""

CONSTANTS: Mapping[str, float] = {"pi": math.pi, "e": math.e, "eps": 1e-8}
"""Named constants a program may use as arguments (the published space's 0-ary functions)."""

SYMPY_CONSTANTS: Mapping[str, sp.Expr] = {"pi": sp.pi, "e": sp.E, "eps": sp.Float(1e-8)}


class Rule(enum.Enum):
    """How an op's result kind follows from its arguments' kinds."""

    MAP = "elementwise"  # result: the largest argument kind (broadcasting)
    TENSOR_REDUCE = "reduces each tensor to a scalar"  # per-parameter-tensor result
    GROUP_REDUCE = "reduces the whole parameter group to one scalar"
    GROUP_MAP = "elementwise, scaled by a reduction over the whole group"


@dataclass(frozen=True)
class Op:
    """One function of the program language. See the module docstring for each field."""

    name: str
    arity: int
    math: str
    sympy: Callable[..., sp.Expr]
    torch: str | None = None
    group: str | None = None
    host: str | None = None
    rule: Rule = Rule.MAP
    foreach: Mapping[str, str] = field(default_factory=dict)
    inplace: str | None = None
    foreach_inplace: Mapping[str, str] = field(default_factory=dict)
    mirror: str | None = None
    overwrites: tuple[int, ...] = (0, 1)
    commutative: bool = False
    infix: str | None = None
    tensor_args: tuple[int, ...] = ()
    host_functions: Mapping[str, str] = field(default_factory=dict)
    signs: tuple[int, ...] | None = None
    scales: bool = False
    apply: str | None = None
    search: bool = True

    def __post_init__(self) -> None:
        if (self.torch is None) == (self.group is None):
            raise ValueError(f"op {self.name!r} needs exactly one of a torch or a group template")
        if self.rule in (Rule.GROUP_REDUCE, Rule.GROUP_MAP) and self.group is None:
            raise ValueError(f"group op {self.name!r} needs a group template")
        undeclared = set(re.findall(r"\bnp\.(\w+)", self.host or "")) - set(self.host_functions)
        if undeclared:
            raise ValueError(f"op {self.name!r}: its host form calls np.{', np.'.join(sorted(undeclared))}, "
                             "which host_functions does not name")

    @property
    def out_template(self) -> str | None:
        """The torch template when it is one ``torch.*`` call, which then takes ``out=``
        (the compiler may write a state's next value straight into its buffer)."""
        template = self.torch
        if not template or not template.startswith("torch.") or not template.endswith(")"):
            return None
        depth = 0
        for k, ch in enumerate(template):
            depth += ch == "("
            depth -= ch == ")"
            if ch == ")" and depth == 0:
                return template if k == len(template) - 1 else None
        return None

    def fold(self, values: list[float]) -> float:
        """The op on constants, at compile time, with its own host template (float64, IEEE:
        inf and nan rather than exceptions): the number the compiled step would compute.

        The text evaluated is our own: this op's template filled with float literals.
        """
        text = self.host.format(*(f"np.float64({literal(v)})" for v in values))
        with np.errstate(all="ignore"):
            return float(eval(text, {"np": np, "float": float, "abs": abs}))  # noqa: S307 - our own template

    @property
    def reduces(self) -> bool:
        return self.rule is not Rule.MAP

    @property
    def needs_group(self) -> bool:
        """Whether computing it needs every tensor of the group at once."""
        return self.group is not None


def literal(value: float) -> str:
    """``value`` as Python source text (what templates are filled with)."""
    value = float(value)
    if math.isnan(value):
        return "float('nan')"
    if math.isinf(value):
        return "float('inf')" if value > 0 else "-float('inf')"
    return repr(value)


def _fn(name: str) -> Callable[..., sp.Expr]:
    """An uninterpreted sympy function, for reductions algebra cannot look inside."""
    return sp.Function(name)


def _unary(
    name: str,
    math_text: str,
    torch_fn: str,
    host: str,
    sympy_fn: Callable[[sp.Expr], sp.Expr],
    *,
    foreach: str | None = None,
    inplace: str | None = None,
    search: bool = True,
    host_functions: Mapping[str, str] | None = None,
) -> Op:
    """An elementwise unary op from its torch function name(s); a host form ``np.f(...)``
    computes what ``torch_fn`` does unless ``host_functions`` says otherwise."""
    plain = re.match(r"np\.(\w+)\(", host)
    return Op(
        name=name,
        arity=1,
        math=math_text,
        sympy=sympy_fn,
        torch=f"{torch_fn}({{0}})",
        host=host,
        foreach={"L": f"torch._foreach_{foreach}({{0}})"} if foreach else {},
        inplace=f"{{0}}.{inplace}_()" if inplace else None,
        foreach_inplace={"L": f"torch._foreach_{foreach}_({{0}})"} if foreach else {},
        search=search,
        host_functions=host_functions if host_functions is not None else ({plain[1]: torch_fn} if plain else {}),
    )


def _abs_then(name: str, math_text: str, fn: str, np_fn: str, sympy_fn, foreach: str | None) -> Op:
    """A unary op of ``|x|`` (safe for any input, as in the published space)."""
    return Op(
        name=name,
        arity=1,
        math=math_text,
        sympy=lambda x: sympy_fn(sp.Abs(x)),
        # |x| in a new tensor, then the function in place on it: one allocation, not two
        torch=f"torch.abs({{0}}).{fn.split('.')[-1]}_()",
        host=f"{np_fn}(np.abs({{0}}))",
        foreach={"L": f"_rt.then(torch._foreach_abs({{0}}), torch._foreach_{foreach}_)"} if foreach else {},
        foreach_inplace=(
            {"L": f"torch._foreach_abs_({{0}}); torch._foreach_{foreach}_({{0}})"} if foreach else {}
        ),
        inplace=f"{{0}}.abs_().{fn.split('.')[-1]}_()",
        host_functions={np_fn.split(".")[-1]: fn, "abs": "torch.abs"},
    )


def _binary_arith(name: str, symbol: str, method: str, sympy_fn, *, commutative: bool, **facts) -> Op:
    return Op(
        name=name,
        arity=2,
        math=f"x {symbol} y",
        sympy=sympy_fn,
        torch=f"({{0}} {symbol} {{1}})",
        host=f"({{0}} {symbol} {{1}})",
        foreach={"LL": f"torch._foreach_{method}({{0}}, {{1}})", "LS": f"torch._foreach_{method}({{0}}, {{1}})"},
        inplace=f"{{0}}.{method}_({{1}})",
        foreach_inplace={
            "LL": f"torch._foreach_{method}_({{0}}, {{1}})",
            "LS": f"torch._foreach_{method}_({{0}}, {{1}})",
        },
        commutative=commutative,
        infix=symbol,
        **facts,
    )


def _group_norm_sym(x):
    return _fn("global_norm")(x)


_OPS: list[Op] = [
    # --- arithmetic -----------------------------------------------------------------------
    _binary_arith("add", "+", "add", lambda x, y: x + y, commutative=True, signs=(1, 1)),
    _binary_arith("sub", "-", "sub", lambda x, y: x - y, commutative=False, signs=(1, -1)),
    _binary_arith("mul", "*", "mul", lambda x, y: x * y, commutative=True, scales=True, apply="addcmul"),
    Op(
        name="div",
        arity=2,
        math=f"x / (y + {DIV_GUARD:g})   (guarded: the published space's safe division)",
        sympy=lambda x, y: x / (y + DIV_GUARD_SYMBOL),
        torch=f"({{0}} / ({{1}} + {DIV_GUARD!r}))",
        host=f"({{0}} / ({{1}} + {DIV_GUARD!r}))",
        foreach={
            "LL": f"torch._foreach_div({{0}}, torch._foreach_add({{1}}, {DIV_GUARD!r}))",
            "LS": f"torch._foreach_div({{0}}, {{1}} + {DIV_GUARD!r})",
        },
        inplace=f"{{0}}.div_({{1}} + {DIV_GUARD!r})",
        foreach_inplace={
            "LL": f"torch._foreach_div_({{0}}, torch._foreach_add({{1}}, {DIV_GUARD!r}))",
            "LS": f"torch._foreach_div_({{0}}, {{1}} + {DIV_GUARD!r})",
        },
        infix="/",
    ),
    Op(
        name="exact_div",
        arity=2,
        math="x / y   (unguarded IEEE division: 0/0 is nan)",
        sympy=lambda x, y: x / y,
        torch="({0} / {1})",
        host="({0} / {1})",
        foreach={"LL": "torch._foreach_div({0}, {1})", "LS": "torch._foreach_div({0}, {1})"},
        inplace="{0}.div_({1})",
        foreach_inplace={"LL": "torch._foreach_div_({0}, {1})", "LS": "torch._foreach_div_({0}, {1})"},
        apply="addcdiv",
        search=False,
    ),
    Op(
        name="power",
        arity=2,
        math="x ** y   (nan for a negative base and a non-integer exponent)",
        sympy=lambda x, y: x**y,
        torch="torch.pow({0}, {1})",
        host="np.power({0}, {1})",
        foreach={"LL": "torch._foreach_pow({0}, {1})", "LS": "torch._foreach_pow({0}, {1})"},
        inplace="{0}.pow_({1})",
        foreach_inplace={"LL": "torch._foreach_pow_({0}, {1})", "LS": "torch._foreach_pow_({0}, {1})"},
        host_functions={"power": "torch.pow"},
    ),
    Op(
        name="max",
        arity=2,
        math="max(x, y), elementwise",
        sympy=lambda x, y: sp.Max(x, y),
        torch="torch.maximum({0}, {1})",
        host="np.maximum({0}, {1})",
        foreach={"LL": "torch._foreach_maximum({0}, {1})", "LS": "torch._foreach_clamp_min({0}, {1})"},
        inplace="{0}.clamp_(min={1})",
        foreach_inplace={"LL": "torch._foreach_maximum_({0}, {1})", "LS": "torch._foreach_clamp_min_({0}, {1})"},
        host_functions={"maximum": "torch.maximum"},
        commutative=True,
        tensor_args=(0, 1),
    ),
    Op(
        name="min",
        arity=2,
        math="min(x, y), elementwise",
        sympy=lambda x, y: sp.Min(x, y),
        torch="torch.minimum({0}, {1})",
        host="np.minimum({0}, {1})",
        foreach={"LL": "torch._foreach_minimum({0}, {1})", "LS": "torch._foreach_clamp_max({0}, {1})"},
        inplace="{0}.clamp_(max={1})",
        foreach_inplace={"LL": "torch._foreach_minimum_({0}, {1})", "LS": "torch._foreach_clamp_max_({0}, {1})"},
        host_functions={"minimum": "torch.minimum"},
        commutative=True,
        tensor_args=(0, 1),
    ),
    Op(
        name="interp",
        arity=3,
        math="(1 - a) * x + a * y   (computed as torch.lerp(y, x, 1 - a), the way lion-pytorch and "
        "torch.optim update a moving average m = interp(g, m, beta): m.lerp_(g, 1 - beta))",
        sympy=lambda x, y, a: (1 - a) * x + a * y,
        torch="torch.lerp({1}, {0}, 1 - {2})",
        # torch's lerp(start, end, t): start + t * (end - start) for |t| < 0.5, else
        # end - (end - start) * (1 - t); the host form computes the same, so a folded or host
        # interp equals the device's (one formula alone differs at large |x - y|)
        host="np.where(np.abs(1 - {2}) < 0.5, {1} + (1 - {2}) * ({0} - {1}), {0} - ({0} - {1}) * (1 - (1 - {2})))[()]",
        foreach={
            "LLS": "torch._foreach_lerp({1}, {0}, 1 - {2})",
            "LLL": "torch._foreach_lerp({1}, {0}, torch._foreach_add(torch._foreach_neg({2}), 1.0))",
        },
        inplace="{0}.lerp_({1}, {2})",  # reached through the mirror only: y.lerp_(x, 1 - a)
        foreach_inplace={"LLS": "torch._foreach_lerp_({0}, {1}, {2})"},
        host_functions={"where": "torch.where", "abs": "torch.abs"},
        mirror="{1}, {0}, (1 - {2})",
        overwrites=(1,),
        tensor_args=(0, 1),
    ),
    Op(
        name="clip",
        arity=2,
        math="min(max(x, -|c|), |c|)   (clamp to [-|c|, |c|])",
        sympy=lambda x, c: sp.Max(-sp.Abs(c), sp.Min(x, sp.Abs(c))),
        torch="torch.clamp({0}, -abs({1}), abs({1}))",
        host="np.clip({0}, -np.abs({1}), np.abs({1}))",
        inplace="{0}.clamp_(-abs({1}), abs({1}))",
        host_functions={"clip": "torch.clamp", "abs": "torch.abs"},
        tensor_args=(0,),
    ),
    Op(
        name="where",
        arity=3,
        math="x where c > 0, else y   (elementwise select)",
        sympy=lambda c, x, y: sp.Piecewise((x, c > 0), (y, True)),
        torch="torch.where({0} > 0, {1}, {2})",
        host="np.where({0} > 0, {1}, {2})[()]",
        host_functions={"where": "torch.where"},
        # x as a tensor: torch.where of two numbers is float32 whatever the parameters' dtype
        tensor_args=(0, 1),
        search=False,
    ),
    Op(
        name="addcmul",
        arity=3,
        math="x + y * z   (a fused multiply-add, one rounding where the hardware has FMA, as torch.optim's "
        "v.addcmul_(g, g) and g.add(w, alpha=wd) compute it; a host-number factor is passed as alpha)",
        sympy=lambda x, y, z: x + y * z,
        torch="_rt.addcmul({0}, {1}, {2})",
        host="({0} + {1} * {2})",
        foreach={
            "LLL": "torch._foreach_addcmul({0}, {1}, {2})",
            "LLS": "torch._foreach_add({0}, {1}, alpha=float({2}))",
            "LSL": "torch._foreach_add({0}, {2}, alpha=float({1}))",
        },
        inplace="_rt.addcmul_({0}, {1}, {2})",
        foreach_inplace={
            "LLL": "torch._foreach_addcmul_({0}, {1}, {2})",
            "LLS": "torch._foreach_add_({0}, {1}, alpha=float({2}))",
            "LSL": "torch._foreach_add_({0}, {2}, alpha=float({1}))",
        },
        tensor_args=(0,),
        search=False,
    ),
    # --- unary, elementwise -----------------------------------------------------------------
    _unary("abs", "|x|", "torch.abs", "np.abs({0})", sp.Abs, foreach="abs", inplace="abs"),
    _unary("cos", "cos(x)", "torch.cos", "np.cos({0})", sp.cos, foreach="cos", inplace="cos"),
    _unary("sin", "sin(x)", "torch.sin", "np.sin({0})", sp.sin, foreach="sin", inplace="sin"),
    _unary("tan", "tan(x)", "torch.tan", "np.tan({0})", sp.tan, foreach="tan", inplace="tan"),
    _unary("arcsin", "arcsin(x)   (nan outside [-1, 1])", "torch.asin", "np.arcsin({0})", sp.asin,
           foreach="asin", inplace="asin"),
    _unary("arccos", "arccos(x)   (nan outside [-1, 1])", "torch.acos", "np.arccos({0})", sp.acos,
           foreach="acos", inplace="acos"),
    _unary("arctan", "arctan(x)", "torch.atan", "np.arctan({0})", sp.atan, foreach="atan", inplace="atan"),
    _unary("sinh", "sinh(x)", "torch.sinh", "np.sinh({0})", sp.sinh, foreach="sinh", inplace="sinh"),
    _unary("cosh", "cosh(x)", "torch.cosh", "np.cosh({0})", sp.cosh, foreach="cosh", inplace="cosh"),
    _unary("tanh", "tanh(x)", "torch.tanh", "np.tanh({0})", sp.tanh, foreach="tanh", inplace="tanh"),
    _unary("arcsinh", "arcsinh(x)", "torch.asinh", "np.arcsinh({0})", sp.asinh, inplace="asinh"),
    _unary("arccosh", "arccosh(x)   (nan below 1)", "torch.acosh", "np.arccosh({0})", sp.acosh, inplace="acosh"),
    _unary("arctanh", "arctanh(x)   (nan outside [-1, 1])", "torch.atanh", "np.arctanh({0})", sp.atanh,
           inplace="atanh"),
    _unary("exp", "e ** x", "torch.exp", "np.exp({0})", sp.exp, foreach="exp", inplace="exp"),
    _unary("exp2", "2 ** x", "torch.exp2", "np.exp2({0})", lambda x: 2**x, inplace="exp2"),
    Op(
        name="exp10",
        arity=1,
        math="10 ** x",
        sympy=lambda x: 10**x,
        torch="torch.pow(10.0, {0})",
        host="np.power(10.0, {0})",
        host_functions={"power": "torch.pow"},
        foreach={"L": "torch._foreach_pow(10.0, {0})"},
    ),
    _unary("expm1", "e ** x - 1", "torch.expm1", "np.expm1({0})", lambda x: sp.exp(x) - 1,
           foreach="expm1", inplace="expm1"),
    _abs_then("log", "log|x|   (natural log of |x|; -inf at 0)", "torch.log", "np.log", sp.log, "log"),
    _abs_then("log10", "log10|x|", "torch.log10", "np.log10", lambda x: sp.log(x, 10), "log10"),
    _abs_then("log2", "log2|x|", "torch.log2", "np.log2", lambda x: sp.log(x, 2), "log2"),
    Op(
        name="log1p",
        arity=1,
        math="log|1 + x|",
        sympy=lambda x: sp.log(sp.Abs(1 + x)),
        torch="torch.log(torch.abs(1 + {0}))",
        host="np.log(np.abs(1 + {0}))",
        host_functions={"log": "torch.log", "abs": "torch.abs"},
        foreach={"L": "torch._foreach_log(torch._foreach_abs(torch._foreach_add({0}, 1.0)))"},
    ),
    Op(
        name="square",
        arity=1,
        math="x * x",
        sympy=lambda x: x**2,
        torch="torch.square({0})",
        host="({0} * {0})",
        foreach={"L": "torch._foreach_mul({0}, {0})"},
        inplace="{0}.square_()",
        foreach_inplace={"L": "torch._foreach_mul_({0}, {0})"},
    ),
    _abs_then("sqrt", "sqrt|x|", "torch.sqrt", "np.sqrt", sp.sqrt, "sqrt"),
    Op(
        name="cube",
        arity=1,
        math="x ** 3",
        sympy=lambda x: x**3,
        torch="torch.pow({0}, 3)",
        host="({0} * {0} * {0})",
        foreach={"L": "torch._foreach_pow({0}, 3.0)"},
        inplace="{0}.pow_(3)",
        foreach_inplace={"L": "torch._foreach_pow_({0}, 3.0)"},
    ),
    Op(
        name="cbrt",
        arity=1,
        math="sign(x) * |x| ** (1/3)   (the real cube root)",
        sympy=lambda x: sp.sign(x) * sp.Abs(x) ** sp.Rational(1, 3),
        torch="(torch.sign({0}) * torch.abs({0}).pow(1.0 / 3.0))",
        host="np.cbrt({0})",
        host_functions={"cbrt": "lambda x: torch.sign(x) * x.abs().pow(1.0 / 3.0)"},
    ),
    # torch.sign(nan) is 0 where np.sign(nan) is nan: the host form follows torch, so a sign
    # folded at compile time or taken of a host scalar equals the one taken on the device
    _unary("sign", "sign(x)   (-1, 0 or 1; sign(0) = sign(nan) = 0, as torch.sign)", "torch.sign",
           "np.sign(np.nan_to_num({0}))", sp.sign, foreach="sign", inplace="sign",
           host_functions={"sign": "torch.sign", "nan_to_num": "torch.nan_to_num"}),
    _unary("reciprocal", "1 / x   (unguarded, as published)", "torch.reciprocal", "(1.0 / {0})",
           lambda x: 1 / x, foreach="reciprocal", inplace="reciprocal"),
    Op(
        name="invert",
        arity=1,
        math="1 - x   (the published op is a bitwise NOT, undefined on floats; this is its float analogue)",
        sympy=lambda x: 1 - x,
        torch="(1 - {0})",
        host="(1 - {0})",
        foreach={"L": "torch._foreach_add(torch._foreach_neg({0}), 1.0)"},
        inplace="{0}.neg_().add_(1)",
        foreach_inplace={"L": "torch._foreach_neg_({0}); torch._foreach_add_({0}, 1.0)"},
    ),
    Op(
        name="negative",
        arity=1,
        math="-x",
        sympy=lambda x: -x,
        torch="(-{0})",
        host="(-{0})",
        foreach={"L": "torch._foreach_neg({0})"},
        inplace="{0}.neg_()",
        foreach_inplace={"L": "torch._foreach_neg_({0})"},
        signs=(-1,),
    ),
    # --- reductions over the whole parameter group (the paper's tree semantics) --------------
    Op(
        name="norm",
        arity=1,
        math="sqrt(sum over every tensor t of the group of sum(t ** 2))   (the L2 norm of the group; "
        "the published code maps it per tensor, which is tensor_norm here)",
        sympy=_group_norm_sym,
        group="_rt.global_norm({0})",
        rule=Rule.GROUP_REDUCE,
    ),
    Op(
        name="global_norm",
        arity=1,
        math="sqrt(sum over every tensor t of the group of sum(t ** 2))",
        sympy=_group_norm_sym,
        group="_rt.global_norm({0})",
        rule=Rule.GROUP_REDUCE,
    ),
    Op(
        name="dot",
        arity=2,
        math="sum over the group of sum(x * y)",
        sympy=lambda x, y: _fn("dot")(x, y),
        group="_rt.group_dot({0}, {1})",
        rule=Rule.GROUP_REDUCE,
        commutative=True,
    ),
    Op(
        name="cosine_sim",
        arity=2,
        math="dot(x, y) / (global_norm(x) * global_norm(y))   (unguarded, as published: nan if either is 0)",
        sympy=lambda x, y: _fn("dot")(x, y) / (_group_norm_sym(x) * _group_norm_sym(y)),
        group="_rt.cosine_sim({0}, {1})",
        rule=Rule.GROUP_REDUCE,
        commutative=True,
    ),
    Op(
        name="clip_by_global_norm",
        arity=2,
        math="x * min(1, c / global_norm(x))",
        sympy=lambda x, c: x * sp.Min(1, c / _group_norm_sym(x)),
        group="_rt.clip_by_global_norm({0}, {1})",
        rule=Rule.GROUP_MAP,
    ),
    # --- reductions over each tensor (LAMB-style per-layer statistics) ---------------------------
    Op(
        name="tensor_norm",
        arity=1,
        math="sqrt(sum(x ** 2)) over each parameter tensor",
        sympy=lambda x: _fn("tensor_norm")(x),
        torch="torch.linalg.vector_norm({0})",
        foreach={"L": "list(torch._foreach_norm({0}))"},
        rule=Rule.TENSOR_REDUCE,
        search=False,
    ),
    Op(
        name="tensor_mean",
        arity=1,
        math="mean(x) over each parameter tensor",
        sympy=lambda x: _fn("tensor_mean")(x),
        torch="torch.mean({0})",
        rule=Rule.TENSOR_REDUCE,
        search=False,
    ),
    Op(
        name="tensor_dot",
        arity=2,
        math="sum(x * y) over each parameter tensor",
        sympy=lambda x, y: _fn("tensor_dot")(x, y),
        torch="torch.sum({0} * {1})",
        rule=Rule.TENSOR_REDUCE,
        commutative=True,
        search=False,
    ),
]

OPS: Mapping[str, Op] = {op.name: op for op in _OPS}
"""Every op, by name. The single source of truth."""

HOST_FUNCTIONS: Mapping[str, str] = {name: fn for op in _OPS for name, fn in op.host_functions.items()}
"""Every numpy function the host forms call -> the torch function computing it (for export)."""
if any(HOST_FUNCTIONS[name] != fn for op in _OPS for name, fn in op.host_functions.items()):
    raise ValueError("two ops name different torch functions for one numpy function")

INFIX: Mapping[str, Op] = {op.infix: op for op in _OPS if op.infix}
"""The ops written as infix operators in program text (``+ - * /``)."""

SEARCH_OPS: tuple[str, ...] = tuple(op.name for op in _OPS if op.search)
"""The paper's function set: what the search draws from by default."""


def get(name: str) -> Op:
    """The op called ``name``; ``KeyError`` listing close names otherwise."""
    try:
        return OPS[name]
    except KeyError:
        raise KeyError(unknown_op_message(name)) from None


def unknown_op_message(name: str) -> str:
    import difflib

    close = difflib.get_close_matches(name, OPS, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return f"unknown function {name!r}{hint}"
