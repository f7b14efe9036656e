"""Are two programs the same optimizer, and if not, where do they differ?

    verdict = compare(program_a, program_b)
    verdict.equivalent, verdict.how, verdict.differences

Two optimizers are the same when, from zero state, they give the same update for every
sequence of weights, gradients, learning rates and steps. ``compare`` tries, in order:

1. **canonical form** (``canonical.py``): the same dataflow, so the same numbers, bit for bit;
2. **sympy** (``proof.py``): a pairing of the carried state variables under which the
   update and every next state are equal as expressions: exactly, up to the float64
   rounding of constants, or up to the division guard. By induction over steps the
   updates are then equal forever. Hyperparameters are symbols when both programs have
   the same ones, else their default values;
3. **numbers**: both programs compiled (eager, float64) and run side by side on random
   inputs, several trials of several steps each, from zero state. Agreement is evidence,
   not proof (``rtol`` 1e-4 by default: the division guard alone moves ``m / |m|`` by
   ``1e-8 / |m|`` relative); a disagreement is a counterexample: the first trial and step where the
   update (or a paired state) differs, with that step's inputs.

The numeric check also pairs state variables whose values agree at every step; a state
of one program with no partner in the other is reported but is not a difference in
behaviour (one program may keep ``2 m`` where the other keeps ``m``).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from .analysis import analyze
from .canonical import canonical_hash
from .compiler import compile_program
from .ir import Program
from .proof import Proof, prove_equal, weakest
from .symbolic import symbol, symbolic, tree_size

SYMPY_MAX_TREE = 5_000
"""Programs whose expressions, written out, are larger go straight to the numeric check."""

SHAPES: tuple[tuple[int, ...], ...] = ((3,), (2, 2))
"""Parameter shapes of the numeric check: two tensors, so group reductions see a group."""


@dataclass(frozen=True)
class StepInput:
    """What a program reads at one step (besides its state)."""

    w: tuple[torch.Tensor, ...]
    g: tuple[torch.Tensor, ...]
    lr: float
    step: int


def random_inputs(seed: int = 0, steps: int = 6, shapes: Sequence[tuple[int, ...]] = SHAPES) -> list[StepInput]:
    """``steps`` steps of standard-normal weights and gradients, lr uniform in [0.05, 1]."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for k in range(steps):
        w = tuple(torch.randn(s, generator=gen, dtype=torch.float64) for s in shapes)
        g = tuple(torch.randn(s, generator=gen, dtype=torch.float64) for s in shapes)
        lr = 0.05 + 0.95 * torch.rand((), generator=gen, dtype=torch.float64).item()
        out.append(StepInput(w, g, lr, k + 1))
    return out


@dataclass
class Trace:
    """A program run on a sequence of inputs: per step, the update and each carried state
    before and after (lists of tensors, one per parameter)."""

    updates: list[list[torch.Tensor]] = field(default_factory=list)
    before: list[dict[str, list[torch.Tensor]]] = field(default_factory=list)
    after: list[dict[str, list[torch.Tensor]]] = field(default_factory=list)


def run(program: Program, inputs: Sequence[StepInput], **hyperparams: float) -> Trace:
    """Run ``program`` (compiled, eager, float64) from zero state on ``inputs``."""
    compiled = compile_program(program, "eager")
    states = compiled.init_state(list(inputs[0].w), dtype=torch.float64) if inputs else []
    trace = Trace()
    for x in inputs:
        w = [t.clone() for t in x.w]
        trace.before.append({s: [t.clone() for t in b] for s, b in zip(compiled.state, states)})
        with torch.no_grad():
            compiled(w, [t.clone() for t in x.g], states, lr=x.lr, step=float(x.step), **hyperparams)
        trace.updates.append([a - b for a, b in zip(x.w, w)])  # w <- w - update
        trace.after.append({s: [t.clone() for t in b] for s, b in zip(compiled.state, states)})
    return trace


def close(x: torch.Tensor, y: torch.Tensor, rtol: float = 1e-5, atol: float = 1e-8) -> torch.Tensor:
    """Elementwise agreement: within ``atol + rtol * max(|x|, |y|)``; nan matches nan, inf the same inf."""
    x, y = torch.broadcast_tensors(x.double(), y.double())
    same = (x == y) | (torch.isnan(x) & torch.isnan(y))
    return same | ((x - y).abs() <= atol + rtol * torch.maximum(x.abs(), y.abs()))


def _agree(xs: list[torch.Tensor], ys: list[torch.Tensor], rtol: float, atol: float) -> bool:
    return all(bool(close(x, y, rtol, atol).all()) for x, y in zip(xs, ys))


def _max_diff(xs: list[torch.Tensor], ys: list[torch.Tensor]) -> float:
    worst = 0.0
    for x, y in zip(xs, ys):
        x, y = torch.broadcast_tensors(x.double(), y.double())
        d = (x - y).abs()
        d = torch.where(close(x, y, 0.0, 0.0), torch.zeros_like(d), d.nan_to_num(nan=math.inf))
        worst = max(worst, d.max().item() if d.numel() else 0.0)
    return worst


@dataclass(frozen=True)
class Difference:
    """Where two programs disagree: an output at a step of a trial, with a counterexample."""

    output: str
    """``update``, or ``state m / v`` for A's m paired with B's v."""
    trial: int
    step: int
    max_abs: float
    counterexample: dict[str, Any]
    """That step's inputs and both programs' values (first parameter tensor)."""

    def __str__(self) -> str:
        where = f"at step {self.step} of trial {self.trial}"
        lines = [f"{self.output} differs {where} (max |difference| {self.max_abs:.3g})"]
        lines += [f"    {k:<10} {v}" for k, v in self.counterexample.items()]
        return "\n".join(lines)


@dataclass(frozen=True)
class Verdict:
    """The result of ``compare``."""

    equivalent: bool
    how: str
    """``canonical``, ``sympy`` or ``numeric``."""
    detail: str
    proof: Proof | None = None
    state_pairs: dict[str, str] = field(default_factory=dict)
    """A's carried state -> B's, where a pairing was found."""
    unpaired: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())
    differences: tuple[Difference, ...] = ()

    @property
    def exact(self) -> bool:
        return self.how in ("canonical", "sympy")


def compare(
    a: Program,
    b: Program,
    *,
    trials: int = 4,
    steps: int = 6,
    seed: int = 0,
    rtol: float = 1e-4,
    atol: float = 1e-9,
    use_sympy: bool = True,
) -> Verdict:
    """Whether ``a`` and ``b`` are the same optimizer (module docstring)."""
    ca, cb = analyze(a).carried, analyze(b).carried
    if canonical_hash(a) == canonical_hash(b):
        return Verdict(True, "canonical", "the same dataflow (equal canonical forms): the same numbers, bit for bit",
                       Proof("exact", "equal canonical forms"), dict(zip(ca, cb)))
    if use_sympy and len(ca) == len(cb) and max(tree_size(a), tree_size(b)) <= SYMPY_MAX_TREE:
        found = _sympy_pairing(a, b, ca, cb)
        if found is not None:
            pairs, proof, hyper = found
            return Verdict(True, "sympy", f"{proof.detail.removeprefix('sympy: ')} ({hyper})", proof, pairs)
    return _numeric(a, b, ca, cb, trials=trials, steps=steps, seed=seed, rtol=rtol, atol=atol)


def _sympy_pairing(a: Program, b: Program, ca, cb, max_pairings: int = 24):
    same_knobs = a.defaults == b.defaults
    mode = "symbols" if same_knobs else "values"
    hyper = "for all hyperparameter values" if same_knobs and a.defaults else (
        "at the default hyperparameters" if a.defaults or b.defaults else "no hyperparameters")
    fa = symbolic(a, exact=True, hyperparams=mode)
    fb = symbolic(b, exact=True, hyperparams=mode)
    orders = itertools.islice(itertools.permutations(cb), max_pairings)
    by_name = tuple(s for s in ca) if set(ca) == set(cb) else None
    for order in ([by_name] if by_name else []) + list(orders):
        rename = {symbol(t): symbol(s) for s, t in zip(ca, order)}
        proofs = [prove_equal(fa.update, fb.update.xreplace(rename))]
        labels = ["update"]
        for s, t in zip(ca, order):
            if proofs[-1] is None:
                break
            proofs.append(prove_equal(fa.state[s], fb.state[t].xreplace(rename)))
            labels.append(f"{s}'" if s == t else f"{s}' = {t}'")
        if all(p is not None for p in proofs):
            detail = "; ".join(f"{label}: {p.detail.removeprefix('sympy: ')}" for label, p in zip(labels, proofs))
            return dict(zip(ca, order)), Proof(weakest(proofs).grade, "sympy: " + detail), hyper
    return None


def _numeric(a, b, ca, cb, *, trials, steps, seed, rtol, atol) -> Verdict:
    runs = []
    for trial in range(trials):
        inputs = random_inputs(seed + trial, steps)
        runs.append((inputs, run(a, inputs), run(b, inputs)))
    pairs = {}
    for s in ca:
        for t in cb:
            if t not in pairs.values() and all(
                _agree(x[s], y[t], rtol, atol) for _, ta, tb in runs for x, y in zip(ta.after, tb.after)
            ):
                pairs[s] = t
                break
    differences: list[Difference] = []
    worst = 0.0
    outputs = [("update", None, None)] + [(f"state {s} / {t}", s, t) for s, t in zip(ca, cb) if s not in pairs]
    for label, s, t in outputs:
        for trial, (inputs, ta, tb) in enumerate(runs):
            found = None
            for k in range(len(inputs)):
                xs = ta.updates[k] if s is None else ta.after[k][s]
                ys = tb.updates[k] if t is None else tb.after[k][t]
                if s is None:
                    worst = max(worst, _max_diff(xs, ys))
                if found is None and not _agree(xs, ys, rtol, atol):
                    found = Difference(label, trial, k + 1, _max_diff(xs, ys),
                                       _counterexample(inputs[k], ta, tb, k, xs, ys))
            if found is not None:
                differences.append(found)
                break
    unpaired = (tuple(s for s in ca if s not in pairs), tuple(t for t in cb if t not in pairs.values()))
    n = f"{trials} trials x {steps} steps from zero state, rtol {rtol:g}"
    if any(d.output == "update" for d in differences):
        return Verdict(False, "numeric", f"the updates differ ({n})", None, pairs, unpaired, tuple(differences))
    detail = f"the updates agree numerically ({n}; max |difference| {worst:.3g}); not a proof"
    return Verdict(True, "numeric", detail, Proof("numeric", detail), pairs, unpaired, tuple(differences))


def _first(ts: list[torch.Tensor]) -> list[float]:
    return [round(v, 6) for v in ts[0].flatten().tolist()] if ts else []


def _counterexample(x: StepInput, ta: Trace, tb: Trace, k: int, xs, ys) -> dict[str, Any]:
    out: dict[str, Any] = {"w": _first(list(x.w)), "g": _first(list(x.g)), "lr": round(x.lr, 6), "step": x.step}
    out.update({f"A: {s} in": _first(v) for s, v in ta.before[k].items()})
    out.update({f"B: {s} in": _first(v) for s, v in tb.before[k].items()})
    out["A gives"] = _first(xs)
    out["B gives"] = _first(ys)
    return out
