"""Algebraic rewrites of an SSA program, one statement at a time (step 2 of ``simplify``).

Each rule looks at statement ``i`` and, where it applies, proposes a ``Rewrite``: new
statements computing the same value (the last one keeps the name), or an existing value
or a constant to read instead. Every rule is an identity of real arithmetic, and the
``reason`` says which; ``prove(program, rewrite)`` has sympy check each application: what
the statement computed against what replaces it, both as functions of the values the
replacement reads, a folded constant standing for the exact value it rounds.

* ``fold``: an op of constants is its value, computed in float64 with the op's host form,
  the very number the compiled step would compute;
* ``identity``: ``x * 1 = x``, ``x + 0 = x``, ``x - 0 = x``, ``interp(x, y, 0) = x``,
  ``interp(x, y, 1) = y``, ``interp(x, x, a) = x``, ``max(x, x) = x``, ``power(x, 1) = x``,
  ``-(-x) = x``, ``sign(sign(x)) = sign(x)``, ``|(|x|)| = |x|``;
* ``abs``: ``sqrt(x * x) = sqrt(square(x)) = |x|`` (``sqrt`` is ``sqrt|.|``);
* ``sign``: ``x / |x| = |x| / x = sign(x)`` up to the division guard, which makes both 0
  at ``x = 0`` as sign does (so ``m / sqrt(m * m)`` becomes ``sign(m)`` in two rewrites);
* ``linear``: a chain of ``interp`` / ``+`` / ``-`` / multiplications by a scalar is one
  linear combination of what it reads (``linear.py``), written with as few statements as
  possible: two terms whose coefficients sum to 1 are one ``interp``, with the incoming
  state second, so a linear recurrence in a state variable reads ``v = interp(x, v, c)``.
  Combined coefficients that are numbers are folded (exactly, in sympy, then rounded to
  the nearest float64 once).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator

import sympy as sp

from . import ops
from .analysis import Analysis, Ref, analyze
from .dataflow import base_name, fresh_name, names, replace_value, splice
from .ir import Arg, Const, Program, Statement, Var
from .kinds import Kind
from .linear import LinearView
from .proof import Proof, prove_equal
from .symbolic import Expressions, constant, symbol


@dataclass(frozen=True)
class Rewrite:
    """A proposed change to statement ``index`` of an SSA program."""

    rule: str
    index: int
    reason: str
    statements: tuple[Statement, ...] = ()
    """The statements that replace it (the last assigns its name); empty with ``alias``."""
    alias: Arg | None = None
    """What to read instead of the statement's value."""
    exact: dict[tuple[int, int], sp.Expr] = field(default_factory=dict)
    """(statement, argument) or (-1, 0) for ``alias`` -> the exact value a folded constant stands for."""
    guard: bool = False
    """Whether the identity holds only up to the division guard."""

    def apply(self, program: Program) -> Program:
        if self.alias is not None:
            return replace_value(program, program.body[self.index].target, self.alias)
        return splice(program, self.index, self.statements)


# --- checking a rewrite ------------------------------------------------------------------
def _name_refs(program: Program) -> dict[str, Ref]:
    refs = {p: Ref("input" if p in ("w", "g", "lr", "step") else "state", p) for p in program.params}
    refs.update({h: Ref("hyper", h) for h, _ in program.hyperparams})
    refs.update({s.target: Ref("stmt", i) for i, s in enumerate(program.body)})
    return refs


def prove(program: Program, rewrite: Rewrite) -> Proof | None:
    """Sympy: the value of the rewritten statement equals what replaces it, both as
    functions of the values the replacement reads (real symbols)."""
    a = analyze(program)
    refs = _name_refs(program)
    defined = {s.target for s in rewrite.statements}
    reads = [x for s in rewrite.statements for x in s.args] + ([rewrite.alias] if rewrite.alias else [])
    atoms = {x.name for x in reads if isinstance(x, Var) and x.name not in defined}
    old = Expressions(a, exact=True, stop={refs[n]: symbol(n) for n in atoms})(Ref("stmt", rewrite.index))
    env: dict[str, object] = {}

    def value(x, position):
        if position in rewrite.exact:
            return rewrite.exact[position]
        if isinstance(x, Const):
            return constant(x.value, x.name, exact=True)
        return env.get(x.name, symbol(x.name))

    if rewrite.alias is not None:
        new = value(rewrite.alias, (-1, 0))
    else:
        for k, s in enumerate(rewrite.statements):
            env[s.target] = ops.OPS[s.op].sympy(*(value(x, (k, j)) for j, x in enumerate(s.args)))
        new = env[rewrite.statements[-1].target]
    return prove_equal(old, new, guard=rewrite.guard)



class _Context:
    """What the rules need to know about an SSA program."""

    def __init__(self, analysis: Analysis):
        self.a = analysis
        self.p = analysis.program
        self.defining = {s.target: i for i, s in enumerate(self.p.body)}
        self.linear = LinearView(analysis)
        self.local = LinearView(analysis, shared=False)
        self.taken = names(self.p)

    def stmt(self, arg: Arg) -> Statement | None:
        """The statement computing ``arg``, if it is a variable assigned in the body."""
        if isinstance(arg, Var) and arg.name in self.defining:
            return self.p.body[self.defining[arg.name]]
        return None

    def arg_of(self, ref: Ref) -> Arg:
        if ref.source == "stmt":
            return Var(self.p.body[ref.key].target)
        if ref.source == "const":
            return Const(float(ref.key))
        return Var(ref.key)

    def returned(self, i: int) -> bool:
        return self.p.body[i].target in self.p.returns


def _const(arg: Arg, value: float) -> bool:
    return isinstance(arg, Const) and arg.value == value


# --- fold -------------------------------------------------------------------------------
def fold(ctx: _Context, i: int) -> Rewrite | None:
    stmt = ctx.p.body[i]
    op = ops.OPS[stmt.op]
    if not stmt.args or not all(isinstance(a, Const) for a in stmt.args) or op.host is None or ctx.returned(i):
        return None
    value = op.fold([a.value for a in stmt.args])
    if value != value or value in (float("inf"), float("-inf")):
        return None
    exact = op.sympy(*(constant(a.value, a.name, exact=True) for a in stmt.args))
    return Rewrite("fold", i, f"constant folding: evaluated in float64 as the compiled step does, = {value!r}",
                   alias=Const(value), exact={(-1, 0): exact})


# --- identities -------------------------------------------------------------------------
def identity(ctx: _Context, i: int) -> Rewrite | None:
    stmt = ctx.p.body[i]
    args = stmt.args
    found: tuple[Arg, str] | None = None
    if stmt.op == "mul" and (_const(args[1], 1.0) or _const(args[0], 1.0)):
        found = (args[0] if _const(args[1], 1.0) else args[1], "x * 1 = x")
    elif stmt.op == "add" and (_const(args[1], 0.0) or _const(args[0], 0.0)):
        found = (args[0] if _const(args[1], 0.0) else args[1], "x + 0 = x")
    elif stmt.op == "sub" and _const(args[1], 0.0):
        found = (args[0], "x - 0 = x")
    elif stmt.op in ("power", "exact_div") and _const(args[1], 1.0):
        found = (args[0], f"{stmt.op}(x, 1) = x")
    elif stmt.op == "interp" and _const(args[2], 0.0):
        found = (args[0], "interp(x, y, 0) = x")
    elif stmt.op == "interp" and _const(args[2], 1.0):
        found = (args[1], "interp(x, y, 1) = y")
    elif stmt.op in ("interp", "max", "min") and args[0] == args[1]:
        found = (args[0], f"{stmt.op}(x, x{', a' if stmt.op == 'interp' else ''}) = x")
    else:
        inner = ctx.stmt(args[0]) if len(args) == 1 else None
        if inner is not None and stmt.op == inner.op == "negative":
            found = (inner.args[0], "-(-x) = x")
        elif inner is not None and stmt.op == inner.op and stmt.op in ("sign", "abs"):
            found = (args[0], f"{stmt.op}({stmt.op}(x)) = {stmt.op}(x)")
    if found is None or (isinstance(found[0], Const) and ctx.returned(i)):
        return None
    return Rewrite("identity", i, found[1], alias=found[0])


# --- |x| and sign(x) ------------------------------------------------------------------------
def _square_of(ctx: _Context, arg: Arg) -> Arg | None:
    """``x`` if ``arg`` is ``x * x`` or ``square(x)``."""
    inner = ctx.stmt(arg)
    if inner is not None and inner.op == "mul" and inner.args[0] == inner.args[1]:
        return inner.args[0]
    if inner is not None and inner.op == "square":
        return inner.args[0]
    return None


def absolute(ctx: _Context, i: int) -> Rewrite | None:
    stmt = ctx.p.body[i]
    x = _square_of(ctx, stmt.args[0]) if stmt.op == "sqrt" else None
    if x is None or not isinstance(x, Var):
        return None
    return Rewrite("abs", i, "sqrt|x * x| = |x| for real x", (Statement(stmt.target, "abs", (x,)),))


def sign(ctx: _Context, i: int) -> Rewrite | None:
    stmt = ctx.p.body[i]
    if stmt.op != "div":
        return None
    num, den = stmt.args
    den_stmt, num_stmt = ctx.stmt(den), ctx.stmt(num)
    if den_stmt is not None and den_stmt.op == "abs" and den_stmt.args[0] == num and isinstance(num, Var):
        x, text = num, "x / |x| = sign(x) for x != 0"
    elif num_stmt is not None and num_stmt.op == "abs" and num_stmt.args[0] == den and isinstance(den, Var):
        x, text = den, "|x| / x = sign(x) for x != 0"
    else:
        return None
    text += "; at x = 0 the guarded division gives 0 / (0 + 1e-8) = 0 = sign(0)"
    return Rewrite("sign", i, text, (Statement(stmt.target, "sign", (x,)),), guard=True)


# --- linear combinations --------------------------------------------------------------------
def _coefficient(ctx: _Context, i: int, c: sp.Expr) -> tuple[Arg, sp.Expr | None] | None:
    """An argument holding scalar ``c`` before statement ``i``: a constant (with its exact
    value when it had to be rounded), a scalar input or hyperparameter, or a scalar value
    the program already computes. ``None`` when there is none."""
    if c.is_number:
        value = float(c)
        return Const(value), (None if sp.Rational(value) == c else c)
    if isinstance(c, sp.Symbol) and (c.name in ctx.p.params or c.name in ctx.p.defaults):
        return Var(c.name), None
    for j in range(i):
        if ctx.a.kinds[j] is Kind.SCALAR and sp.expand(ctx.linear.scalars(Ref("stmt", j)) - c) == 0:
            return Var(ctx.p.body[j].target), None
    return None


def linear(ctx: _Context, i: int, view: LinearView | None = None) -> Rewrite | None:
    """Statement ``i``'s linear chain, expanded through every linear statement it reads."""
    view = view or ctx.linear
    if view.terms(i) is None:
        return None
    combo = view.combination(Ref("stmt", i))
    terms = list(combo.coefficients.items())
    if combo.steps < 2 or not terms:
        return None
    target = ctx.p.body[i].target
    plan = _emit(ctx, i, target, terms)
    if plan is None:
        return None
    statements, alias, exact = plan
    shown = sum((c * _symbol_of(ctx.arg_of(r)) for r, c in terms), sp.Integer(0))
    reason = f"a linear chain of {combo.steps} statements computes {sp.sstr(_short(shown), full_prec=False)}"
    if statements and statements[-1].op == "interp":
        reason += "; the coefficients sum to 1: one interp"
    state = any(r.source == "state" for r, _ in terms)
    return Rewrite("linear recurrence" if state else "linear chain", i, reason, tuple(statements), alias, exact)


def linear_local(ctx: _Context, i: int) -> Rewrite | None:
    """The same, expanded only through statements nothing else reads (when the full
    expansion has too many terms to be simpler)."""
    return linear(ctx, i, ctx.local)


def _symbol_of(arg: Arg) -> sp.Expr:
    return symbol(base_name(arg.name)) if isinstance(arg, Var) else constant(arg.value)


def _short(expr: sp.Expr) -> sp.Expr:
    """``expr`` with non-integer rationals as 6-digit floats (for reading)."""
    return expr.xreplace({r: sp.Float(r, 6) for r in expr.atoms(sp.Rational) if not r.is_Integer})


def _emit(ctx: _Context, i: int, target: str, terms: list[tuple[Ref, sp.Expr]]):
    """The fewest statements computing ``sum c * x`` into ``target``, or an alias."""
    exact: dict[tuple[int, int], sp.Expr] = {}
    out: list[Statement] = []

    def coef(c: sp.Expr, position: tuple[int, int]) -> Arg | None:
        found = _coefficient(ctx, i, c)
        if found is None:
            return None
        if found[1] is not None:
            exact[position] = found[1]
        return found[0]

    if len(terms) == 1:
        (x, c), = terms
        if c == 1:
            return ([], ctx.arg_of(x), {}) if not (x.source == "const" and ctx.returned(i)) else None
        if c == -1:
            return [Statement(target, "negative", (ctx.arg_of(x),))], None, {}
        a = coef(c, (0, 1))
        return ([Statement(target, "mul", (ctx.arg_of(x), a))], None, exact) if a is not None else None
    if len(terms) == 2:
        (x, cx), (y, cy) = terms
        if sp.expand(cx + cy - 1) == 0:
            if x.source == "state" and y.source != "state" or (
                _coefficient(ctx, i, cy) is None and _coefficient(ctx, i, cx) is not None
            ):
                (x, cx), (y, cy) = (y, cy), (x, cx)
            a = coef(cy, (0, 2))
            if a is None:
                return None
            return [Statement(target, "interp", (ctx.arg_of(x), ctx.arg_of(y), a))], None, exact
        if {cx, cy} <= {sp.Integer(1), sp.Integer(-1)} and (cx, cy) != (-1, -1):
            if cx == -1:
                (x, cx), (y, cy) = (y, cy), (x, cx)
            return [Statement(target, "add" if cy == 1 else "sub", (ctx.arg_of(x), ctx.arg_of(y)))], None, {}
    # the general case, two terms or more: x1 * c1 + x2 * c2 + ... (subtracting where c = -1)
    taken = set(ctx.taken)

    def fresh() -> str:
        name = fresh_name(base_name(target), taken)
        taken.add(name)
        return name

    acc: Arg | None = None
    for k, (x, c) in enumerate(terms):
        term, op = ctx.arg_of(x), "add"
        if acc is not None and c == -1:
            op = "sub"
        elif c != 1:
            a = coef(c, (len(out), 1))
            if a is None:
                return None
            out.append(Statement(fresh(), "mul", (term, a)))
            term = Var(out[-1].target)
        if acc is None:
            acc = term
            continue
        out.append(Statement(target if k == len(terms) - 1 else fresh(), op, (acc, term)))
        acc = Var(out[-1].target)
    return out, None, exact


RULES: tuple[Callable[[_Context, int], Rewrite | None], ...] = (fold, identity, absolute, sign, linear, linear_local)
"""In the order they are tried at each statement."""


def candidates(analysis: Analysis) -> Iterator[Rewrite]:
    """Every rewrite the rules propose for an analyzed SSA program, statement by statement."""
    ctx = _Context(analysis)
    for i, alive in enumerate(analysis.live):
        if not alive:
            continue
        for rule in RULES:
            found = rule(ctx, i)
            if found is not None:
                yield found
