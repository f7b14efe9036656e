"""Linear combinations: what a chain of ``interp``, ``+``, ``-``, ``negative`` and
multiplications by a scalar computes, as ``sum_i c_i * x_i``.

    v = interp(g, m, 1.109)     with     m = interp(g, v, 0.899)
      = (1 - 1.109) g + 1.109 ((1 - 0.899) g + 0.899 v)
      = 0.003009 g + 0.996991 v

The ``x_i`` (*atoms*) are the values the chain reads that are not themselves such a
step: inputs, state, the results of other ops. The ``c_i`` are sympy expressions of the
program's host scalars (constants exactly, hyperparameters, ``lr``, ``step``): a value
of kind ``SCALAR`` is a coefficient, never an atom. A linear recurrence is the case where
one atom is the incoming state: ``v' = (1 - c) x + c v`` is ``interp(x, v, c)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from .analysis import Analysis, Ref
from .kinds import Kind
from .symbolic import Expressions


@dataclass(frozen=True)
class Combination:
    """``value = sum(coefficients[atom] * atom)``, found by expanding ``steps`` linear statements."""

    coefficients: dict[Ref, sp.Expr]
    """Atom -> coefficient, in the order the atoms are first met (left to right); no zeros."""
    steps: int
    """How many linear statements the expansion went through (with repeats): the chain's length."""


class LinearView:
    """Linear combinations of the values of an analyzed program (module docstring).

    ``shared=True`` expands through every linear statement; ``shared=False`` only through
    those read once (a value read elsewhere too stays an atom): ``a = interp(d, a, b)`` is
    found where ``d = g - prev`` is also read by others, and ``v = interp(g, interp(g, v,
    a), b)`` where the inner value is.
    """

    def __init__(self, analysis: Analysis, *, shared: bool = True):
        self.a = analysis
        self.shared = shared
        self.scalars = Expressions(analysis, exact=True)
        self.memo: dict[Ref, Combination] = {}
        self.readers: dict[Ref, int] = {r: len(u) for r, u in analysis.uses.items()}
        for out in analysis.outputs:
            self.readers[out] = self.readers.get(out, 0) + 1

    def is_scalar(self, ref: Ref) -> bool:
        return self.a.kind(ref) is Kind.SCALAR

    def terms(self, i: int) -> list[tuple[Ref, sp.Expr]] | None:
        """Statement ``i`` as ``[(operand, coefficient)]`` if it is a linear step, else ``None``."""
        op = self.a.program.body[i].op
        refs = self.a.args[i]
        scalar = [self.is_scalar(r) for r in refs]
        coef = self.scalars
        if op == "interp" and scalar == [False, False, True]:
            c = coef(refs[2])
            return [(refs[0], 1 - c), (refs[1], c)]
        if op in ("add", "sub") and scalar == [False, False]:
            return [(refs[0], sp.Integer(1)), (refs[1], sp.Integer(1 if op == "add" else -1))]
        if op == "negative" and scalar == [False]:
            return [(refs[0], sp.Integer(-1))]
        if op == "mul" and sorted(scalar) == [False, True]:
            x, s = (refs[0], refs[1]) if scalar[1] else (refs[1], refs[0])
            return [(x, coef(s))]
        if op == "addcmul" and scalar[0] is False and sorted(scalar[1:]) == [False, True]:
            y, s = (refs[1], refs[2]) if scalar[2] else (refs[2], refs[1])
            return [(refs[0], sp.Integer(1)), (y, coef(s))]
        return None

    def combination(self, ref: Ref) -> Combination:
        """``ref``'s value as a combination of atoms (an atom is itself with coefficient 1).
        A linear statement is always expanded; below it, the operands as ``shared`` says."""
        terms = self.terms(ref.key) if ref.source == "stmt" else None
        if terms is None:
            return Combination({ref: sp.Integer(1)}, 0)
        found = self.memo.get(ref)
        if found is not None:
            return found
        total: dict[Ref, sp.Expr] = {}
        steps = 1
        for operand, c in terms:
            if self.shared or self.readers.get(operand, 0) <= 1:
                inner = self.combination(operand)
            else:
                inner = Combination({operand: sp.Integer(1)}, 0)
            steps += inner.steps
            for atom, d in inner.coefficients.items():
                total[atom] = sp.expand(total.get(atom, 0) + c * d)
        result = Combination({k: v for k, v in total.items() if v != 0}, steps)
        self.memo[ref] = result
        return result
