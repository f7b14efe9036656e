"""Proofs that two sympy expressions are equal, and how exactly.

``prove_equal(lhs, rhs)`` returns a ``Proof`` or ``None`` (no proof found: not a claim that
they differ). Three grades:

* ``exact``: ``lhs - rhs`` simplifies to 0 over the reals;
* ``rounding``: ``lhs - rhs`` expands to terms whose coefficients are all below ``1e-12``
  times the largest coefficient of ``lhs``: the two differ only by the float64 rounding of
  constants (``0.996991`` against ``0.899 * 1.109`` computed exactly);
* ``guard``: equal once the division guard ``epsilon_div`` (``ops.DIV_GUARD_SYMBOL``, the
  1e-8 that ``/`` adds to its denominator) is taken to 0, and equal *with* the guard at
  the points where the unguarded form is 0/0 (``m / sqrt(m*m)`` and ``sign(m)`` differ by a
  factor ``|m| / (|m| + 1e-8)`` and are both 0 at ``m = 0``);
* nothing else: a caller falls back to a numeric check.

A ``guard`` proof names the guarded denominators in the difference (``Proof.guarded``):
where one of them is near 1e-8 or below, the two sides part by more than rounding.

Where no proof is found, ``boundary_points`` tells a numeric search where to look for a
counterexample: the zeros of every argument at which a piecewise op switches (``sign``,
``|.|``, ``max``, ``min``), solved for one unknown. Two programs that part only in a narrow
band of inputs part next to the band's edges, and the edges are such zeros.

Non-arithmetic subterms (``asin(...)``, ``Max``, a reduction...) that appear on both sides
are first replaced by real symbols, so sympy reasons about ``sqrt(x**2) = |x|`` without
wondering whether ``x`` is real. That is sound over the reals: an identity for every real
value of the symbol holds for the value the subterm takes.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from .ops import DIV_GUARD_SYMBOL

_ARITHMETIC = (sp.Add, sp.Mul, sp.Pow, sp.Abs, sp.sign)
_MAX_OPS = 400
"""Larger differences are not handed to ``simplify`` (it can take minutes)."""


@dataclass(frozen=True)
class Proof:
    """How an equality was established."""

    grade: str
    """``exact``, ``rounding``, ``guard`` (sympy proofs) or ``numeric`` (evidence)."""
    detail: str
    guarded: tuple[str, ...] = ()
    """For ``guard``: the denominators the guard is added to where the two sides differ."""

    @property
    def symbolic(self) -> bool:
        return self.grade != "numeric"

    def __str__(self) -> str:
        return self.detail


def atomize(exprs: list[sp.Expr]) -> tuple[list[sp.Expr], dict[sp.Expr, sp.Symbol]]:
    """``exprs`` with each outermost non-arithmetic subterm replaced by a real symbol
    (the same symbol for the same subterm everywhere)."""
    table: dict[sp.Expr, sp.Symbol] = {}

    def walk(e: sp.Expr) -> sp.Expr:
        if e.is_Atom:
            return e
        if isinstance(e, _ARITHMETIC):
            return e.func(*[walk(a) for a in e.args])
        if e not in table:
            table[e] = sp.Symbol(f"_a{len(table)}", real=True)
        return table[e]

    return [walk(e) for e in exprs], table


def _is_zero(expr: sp.Expr) -> bool:
    expr = sp.expand(expr)
    if expr == 0:
        return True
    if sp.count_ops(expr) > _MAX_OPS:
        return False
    return sp.simplify(expr) == 0


def _negligible(diff: sp.Expr, scale: sp.Expr, relative: float = 1e-12) -> bool:
    """Whether every coefficient of expanded ``diff`` is below ``relative`` times the largest
    of ``scale``'s: a difference made of rounded constants only."""
    diff = sp.expand(diff)
    if sp.count_ops(diff) > _MAX_OPS:
        return False
    coefficients = [c for c in sp.expand(scale).as_coefficients_dict().values() if c.is_number]
    if not coefficients:
        return False
    bound = relative * max(abs(c) for c in coefficients)
    return all(c.is_number and abs(c) <= bound for c in diff.as_coefficients_dict().values())


def _zero_except_points(expr: sp.Expr) -> tuple[bool, list]:
    """Whether ``expr`` is 0 except on conditions ``Eq(a, b)`` (returned), as sympy writes
    ``x/|x| - sign(x)``: ``Piecewise((nan, Eq(x, 0)), (0, True))``."""
    if sp.count_ops(expr) > _MAX_OPS:
        return False, []
    expr = sp.piecewise_fold(sp.simplify(expr))
    if expr == 0:
        return True, []
    if isinstance(expr, sp.Piecewise) and expr.args[-1].cond == sp.true and _is_zero(expr.args[-1].expr):
        conditions = [c.cond for c in expr.args[:-1]]
        if all(isinstance(c, sp.Eq) for c in conditions):
            return True, conditions
    return False, []


def _holds_at(diff: sp.Expr, condition: sp.Eq) -> bool:
    """Whether ``diff`` (guard kept) is 0 where ``condition`` holds, solving it for one symbol."""
    gap = condition.lhs - condition.rhs
    for s in sorted(gap.free_symbols, key=str):
        try:
            solutions = sp.solve(gap, s)
        except (NotImplementedError, ValueError):
            continue
        if len(solutions) == 1:
            return _is_zero(diff.subs(s, solutions[0]))
    return False


def guarded_denominators(expr: sp.Expr) -> list[sp.Expr]:
    """Each ``y`` that ``expr`` divides by as ``y + epsilon_div`` (the guarded ``/``), once."""
    found: list[sp.Expr] = []
    for p in sp.preorder_traversal(expr):
        if isinstance(p, sp.Pow) and p.exp.is_negative and isinstance(p.base, sp.Add) \
                and DIV_GUARD_SYMBOL in p.base.args:
            y = p.base - DIV_GUARD_SYMBOL
            if y not in found:
                found.append(y)
    return found


def show(expr: sp.Expr) -> str:
    """``expr`` for reading: numbers to 4 significant digits."""
    expr = expr.xreplace({r: sp.Float(r, 6) for r in expr.atoms(sp.Rational) if not r.is_Integer})
    expr = sp.N(expr, 6)
    return sp.sstr(expr.xreplace({f: sp.Float(f, 4) for f in expr.atoms(sp.Float)}), full_prec=False)


def weakest(proofs: list[Proof]) -> Proof:
    """The proof of a conjunction is as good as its weakest part."""
    order = ("exact", "rounding", "guard", "numeric")
    return max(proofs, key=lambda p: order.index(p.grade))


def prove_equal(lhs: sp.Expr, rhs: sp.Expr, *, guard: bool = True) -> Proof | None:
    """A sympy proof that ``lhs == rhs`` (module docstring), or ``None``.

    ``guard=False`` refuses the ``guard`` grade. sympy failing (it can raise on odd input)
    is no proof, not an error.
    """
    try:
        return _prove(lhs, rhs, guard)
    except (ArithmeticError, TypeError, ValueError, NotImplementedError, RecursionError, AttributeError):
        return None


def _prove(lhs: sp.Expr, rhs: sp.Expr, guard: bool) -> Proof | None:
    (lhs, rhs), table = atomize([sp.sympify(lhs), sp.sympify(rhs)])
    diff = lhs - rhs
    if _is_zero(diff):
        return Proof("exact", "sympy: the difference simplifies to 0")
    if _negligible(diff, lhs):
        return Proof("rounding", "sympy: equal up to the float64 rounding of constants (relative 1e-12)")
    if not guard or DIV_GUARD_SYMBOL not in diff.free_symbols:
        return None
    zero, conditions = _zero_except_points(diff.subs(DIV_GUARD_SYMBOL, 0))
    if not zero or not all(_holds_at(diff, c) for c in conditions):
        return None
    back = {s: e for e, s in table.items()}
    guarded = tuple(show(y.xreplace(back)) for y in guarded_denominators(diff))
    where = ", ".join(show((c.lhs - c.rhs).xreplace(back)) + " = 0" for c in conditions)
    extra = f"; at {where}, where the unguarded form is 0/0, both are equal with the guard" if conditions else ""
    return Proof(
        "guard",
        f"sympy: equal up to the division guard (the 1e-8 added to denominators, taken to 0){extra}",
        guarded,
    )


# --- where to look for a counterexample -------------------------------------------------------
_KINK_MAX_OPS = 30
"""Larger switching arguments are not handed to ``solve``."""


def kinks(exprs: list[sp.Expr]) -> list[sp.Expr]:
    """The arguments at whose zeros a piecewise op in ``exprs`` switches, each once:
    ``a`` for ``sign(a)`` and ``|a|``, ``x - y`` for ``max(x, y)`` and ``min(x, y)``.
    Arguments that hold a reduction (an uninterpreted function) are left out."""
    found: list[sp.Expr] = []
    for e in exprs:
        for p in sp.preorder_traversal(sp.sympify(e)):
            if isinstance(p, (sp.sign, sp.Abs)):
                args = [p.args[0]]
            elif isinstance(p, (sp.Max, sp.Min)):
                args = [x - y for x, y in zip(p.args, p.args[1:])]
            elif isinstance(p, sp.Piecewise):
                args = [c.lhs - c.rhs for _, c in p.args if isinstance(c, sp.core.relational.Relational)]
            else:
                continue
            for a in args:
                if a.free_symbols and not a.atoms(sp.core.function.AppliedUndef) and a not in found:
                    found.append(a)
    return found


def boundary_points(
    exprs: list[sp.Expr], unknowns: list[sp.Symbol], limit: int = 32
) -> list[tuple[sp.Symbol, sp.Expr, sp.Expr]]:
    """``(x, root, kink)``: ``kink = 0`` solved for the unknown ``x`` (a function of the other
    symbols), for each kink of ``exprs`` and each unknown it holds, at most ``limit``. A kink
    sympy cannot solve, or that is too large to try, gives nothing."""
    out: list[tuple[sp.Symbol, sp.Expr, sp.Expr]] = []
    for kink in kinks(exprs):
        if sp.count_ops(kink) > _KINK_MAX_OPS:
            continue
        for x in unknowns:
            if x not in kink.free_symbols:
                continue
            try:
                roots = sp.solve(kink, x)
            except (NotImplementedError, ValueError, TypeError, ArithmeticError, RecursionError, AttributeError):
                continue
            for root in roots:
                if isinstance(root, sp.Piecewise):  # |x| = c solved for x: c's branch where it holds
                    root = root.args[0].expr
                if isinstance(root, sp.Expr) and not root.has(sp.nan, sp.zoo, sp.I):
                    out.append((x, root, kink))
                    if len(out) >= limit:
                        return out
    return out
