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


def _show(expr: sp.Expr) -> str:
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
    where = ", ".join(_show((c.lhs - c.rhs).xreplace(back)) + " = 0" for c in conditions)
    extra = f"; at {where}, where the unguarded form is 0/0, both are equal with the guard" if conditions else ""
    return Proof(
        "guard",
        f"sympy: equal up to the division guard (the 1e-8 added to denominators, taken to 0){extra}",
    )
