"""A program as mathematics: sympy expressions for the update and each new state value.

    form = symbolic(programs.load("lion"))
    form.update        # lr*(w*wd + sign(beta1*m + g*(1 - beta1)))
    form.state["m"]    # beta2*m + g*(1 - beta2)
    print(form.latex())

Every expression is a function of the inputs ``w``, ``g``, ``lr``, ``step``, the
hyperparameters and the *incoming* state (the symbol ``m`` is m's value from the last
step; ``form.state["m"]`` its next value). Each op contributes its ``sympy`` form from the
op table, so the guarded division ``x / y`` is ``x / (y + epsilon_div)`` (``ops.DIV_GUARD_SYMBOL``);
``guard=False`` takes the guard to 0. All symbols are real.

Constants are ``sympy.Float`` for reading, or, with ``exact=True``, the exact rational
value of the binary float (what proofs need: ``0.1`` is 3602879701896397/2**55, not 1/10).
Only carried state appears (``analysis.carried``): the rest carries nothing between steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import sympy as sp

from . import ops
from .analysis import Analysis, Ref, analyze
from .ir import Const, Program


def symbol(name: str) -> sp.Symbol:
    """The real symbol for a program variable."""
    return sp.Symbol(name, real=True)


def constant(value: float, name: str | None = None, *, exact: bool = False) -> sp.Expr:
    """A program constant as sympy: a named one (``pi``) symbolically, else exact or Float."""
    if name in ops.SYMPY_CONSTANTS and name != "eps":
        return ops.SYMPY_CONSTANTS[name]
    if float(value).is_integer() and abs(value) < 2**53:
        return sp.Integer(int(value))
    return sp.Rational(value) if exact else sp.Float(value)


def rounded(expr: sp.Expr, digits: int = 6) -> sp.Expr:
    """``expr`` with every Float shown to ``digits`` significant digits (for reading only)."""
    return expr.xreplace({f: sp.Float(f, digits) for f in expr.atoms(sp.Float)})


class Expressions:
    """The sympy value of every ``Ref`` of an analyzed program, computed on demand.

    ``stop`` maps values to symbols that stand for them (a proof about one statement treats
    what it reads as opaque); ``hyperparams="values"`` puts the defaults in for the symbols.
    """

    def __init__(
        self,
        analysis: Analysis,
        *,
        exact: bool = False,
        hyperparams: str = "symbols",
        guard: bool = True,
        stop: Mapping[Ref, sp.Expr] | None = None,
    ):
        if hyperparams not in ("symbols", "values"):
            raise ValueError("hyperparams is 'symbols' or 'values'")
        self.analysis = analysis
        self.program = analysis.program
        self.exact = exact
        self.hyperparams = hyperparams
        self.guard = guard
        self.memo: dict[Ref, sp.Expr] = dict(stop or {})

    def __call__(self, ref: Ref) -> sp.Expr:
        found = self.memo.get(ref)
        if found is not None:
            return found
        # iterative post-order: programs can be long chains, recursion would overflow
        stack = [ref]
        while stack:
            top = stack[-1]
            if top in self.memo:
                stack.pop()
                continue
            if top.source == "stmt":
                missing = [r for r in self.analysis.args[top.key] if r not in self.memo]
                if missing:
                    stack.extend(missing)
                    continue
            self.memo[top] = self._value(top)
            stack.pop()
        return self.memo[ref]

    def _value(self, ref: Ref) -> sp.Expr:
        if ref.source in ("input", "state"):
            return symbol(ref.key)
        if ref.source == "hyper":
            if self.hyperparams == "values":
                return constant(self.program.defaults[ref.key], exact=self.exact)
            return symbol(ref.key)
        if ref.source == "const":
            return constant(ref.key, exact=self.exact)
        stmt = self.program.body[ref.key]
        args = [
            constant(a.value, a.name, exact=self.exact) if isinstance(a, Const) else self.memo[r]
            for a, r in zip(stmt.args, self.analysis.args[ref.key])
        ]
        value = ops.OPS[stmt.op].sympy(*args)
        if not self.guard:
            value = value.subs(ops.DIV_GUARD_SYMBOL, 0)
        return value


@dataclass(frozen=True)
class SymbolicForm:
    """``symbolic(program)``: the update and each carried state's next value."""

    program: Program
    update: sp.Expr
    state: dict[str, sp.Expr]
    """Carried state variable -> its next value (the incoming value is the symbol of that name)."""

    def outputs(self) -> dict[str, sp.Expr]:
        """``{"update": ..., "m'": ...}``: every output, labelled."""
        return {"update": self.update, **{f"{s}'": e for s, e in self.state.items()}}

    def text(self, digits: int = 6) -> str:
        """One line per output in sympy's notation, constants to ``digits`` digits."""
        return "\n".join(
            f"{k} = {sp.sstr(rounded(e, digits), full_prec=False)}" for k, e in self.outputs().items()
        )

    def latex(self, digits: int = 6) -> str:
        """An ``aligned`` LaTeX block: ``u`` the update, ``m'`` the next m."""

        def tex(e: sp.Expr) -> str:
            return sp.latex(rounded(e, digits), full_prec=False)

        rows = [rf"u &= {tex(self.update)}"]
        rows += [rf"{sp.latex(symbol(s))}' &= {tex(e)}" for s, e in self.state.items()]
        return "\\begin{aligned}\n" + " \\\\\n".join(rows) + "\n\\end{aligned}"


def tree_size(program: Program) -> int:
    """How many nodes the update's and the next state's expression trees have, written out
    without sharing (what printing them costs: ``x = x * x + x`` thirty times is 2**31)."""
    a = analyze(program)
    size: dict[Ref, int] = {}
    for i in range(len(program.body)):
        size[Ref("stmt", i)] = 1 + sum(size.get(r, 1) for r in a.args[i])
    return sum(size.get(r, 1) for r in (a.update, *(a.state_out[s] for s in a.carried)))


def symbolic(
    program: Program, *, exact: bool = False, hyperparams: str = "symbols", guard: bool = True
) -> SymbolicForm:
    """The program's update and next state as sympy expressions (see the module docstring)."""
    a = analyze(program)
    expr = Expressions(a, exact=exact, hyperparams=hyperparams, guard=guard)
    return SymbolicForm(program, expr(a.update), {s: expr(a.state_out[s]) for s in a.carried})


def latex(program: Program, **kwargs) -> str:
    """``symbolic(program).latex()``."""
    return symbolic(program, **kwargs).latex()
