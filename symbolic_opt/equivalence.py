"""Are two programs the same optimizer, and if not, where do they differ?

    verdict = compare(program_a, program_b)
    verdict.equivalent, verdict.how, verdict.up_to_guard, verdict.differences

Two optimizers are the same when, from zero state, they give the same update for every
sequence of weights, gradients, learning rates and steps. ``compare`` tries, in order (with a
quick look for a counterexample, one short run and one batch of drawn states, before sympy:
sympy can spend seconds failing to prove sign-heavy programs equal):

1. **canonical form** (``canonical.py``): the same dataflow, so the same numbers, bit for bit;
2. **sympy** (``proof.py``, the proofs ``simplify`` uses): a pairing of the carried state
   variables under which the update and every next state are equal as expressions: exactly,
   up to the float64 rounding of constants, or up to the division guard. By induction over
   steps the updates are then equal forever. Hyperparameters are symbols when both programs
   have the same ones, else their default values. Equal *up to the guard* is a verdict of its
   own (``up_to_guard``; ``guard`` says where it matters): ``m / sqrt(m * m)`` is
   ``m / (|m| + 1e-8)``, which parts from ``sign(m)`` only where ``|m|`` is near 1e-8 or below;
3. **a search for a counterexample**: both programs compiled (eager, float64) and run on
   * training-like runs (``training_inputs``): ``trials`` runs of ``steps`` steps from zero
     state whose gradients have a persistent direction under noise, a scale drifting over
     decades and signs that flip, so momentum is at times far below the gradient and at
     times comparable to it;
   * drawn states (``drawn_inputs``): ``draws`` batches of 512 elements, each set directly to
     a state of 0, 1e-9, ... 0.5, 0.55, 0.6, ... 1e6 times ``|g|`` (with the signs the runs
     gave that state), at learning rates 1e-4 to 1 and step counters 1 to 10^4, and run for
     two steps, so a next state that differs shows in the next update;
   * points sympy chooses, when nothing else found a difference and the expressions are
     small (``proof.boundary_points``): on both sides of every kink of either program (where
     a ``sign``, ``|.|``, ``max`` or ``min`` switches), solved for ``g`` or a state, and
     midway between two kinks in the same unknown. Programs that part only in a narrow band
     of inputs part next to its edges.
   Drawn states and sympy's points need the runs to pair every state of A with one of B's
   (their values agree at every step): a program keeping ``2 m`` where the other keeps ``m``
   cannot be given "the same" state.

   A disagreement (``rtol`` 1e-4, ``atol`` 1e-9) is a counterexample: the first step and the
   element where the update (or a paired state) differs, with that step's inputs. One that goes
   away when both programs' guard is taken to 1e-300 (``without_guard``) is the guard's doing:
   when every one does, the verdict is "equivalent up to the division guard" (numeric).
   Agreement everywhere is evidence, not proof.

A state of one program with no partner in the other is reported but is not a difference in
behaviour (one program may keep ``2 m`` where the other keeps ``m``).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import sympy as sp
import torch

from .analysis import analyze
from .canonical import canonical_hash
from .compiler import compile_program
from .dataflow import fresh_name, names
from .ir import Const, Program, Statement, Var
from .kinds import Kind
from .ops import DIV_GUARD, DIV_GUARD_SYMBOL
from .proof import Proof, boundary_points, guarded_denominators, prove_equal, show, weakest
from .symbolic import SymbolicForm, constant, symbol, symbolic, tree_size

SYMPY_MAX_TREE = 5_000
"""Programs whose expressions, written out, are larger go straight to the numeric check."""

TRIALS, STEPS, DRAWS = 4, 300, 6
"""The numeric check's defaults: training-like runs, steps per run, batches of drawn states."""

SHAPES: tuple[tuple[int, ...], ...] = ((3,), (2, 2))
"""Parameter shapes of ``random_inputs``: two tensors, so group reductions see a group."""

RUN_SHAPES: tuple[tuple[int, ...], ...] = ((16,), (4, 4))
DRAW_SHAPES: tuple[tuple[int, ...], ...] = ((256,), (16, 16))

RATIOS = (0.0, 1e-9, 1e-6, 1e-3, 0.01, 0.1, 0.3, 0.5, 0.55, 0.6, 0.8, 1.0, 1.25, 2.0, 5.0, 10.0, 100.0, 1e3, 1e6)
"""Drawn states, as multiples of ``|g|`` (every other element; the rest log-uniform, 1e-9 to 1e6)."""

SETTINGS = ((1e-3, 1), (0.1, 2), (1e-2, 10), (1.0, 100), (1e-4, 1000), (0.3, 10_000))
"""(lr, step counter) of drawn batch k (cycled) and of sympy's points."""

NO_GUARD = 1e-300
"""The guard of ``without_guard``: 0/0 still 0, every other quotient as if unguarded."""

SYMPY_BASES = 16
"""Random points per boundary sympy finds (each then moved to both sides of it)."""


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


def training_inputs(
    seed: int = 0, steps: int = STEPS, shapes: Sequence[tuple[int, ...]] = RUN_SHAPES
) -> list[StepInput]:
    """The inputs of a long training run: each gradient element is a persistent direction
    (its strength set by the seed: none, weak, strong) plus standard-normal noise, times a
    per-element scale (1e-2 to 10) and a global scale that drifts as a random walk between
    1e-5 and 100; each direction flips sign with probability 0.02 a step. Weights drift
    slowly; lr follows a cosine from 1e-4..1 down to a tenth of it."""
    gen = torch.Generator().manual_seed(seed)

    def randn(shape=()):
        return torch.randn(shape, generator=gen, dtype=torch.float64)

    def rand(shape=()):
        return torch.rand(shape, generator=gen, dtype=torch.float64)

    strength = (1.0, 3.0, 0.3, 0.0)[seed % 4]
    spread = [10 ** (3 * rand(s) - 2) for s in shapes]
    direction = [randn(s) for s in shapes]
    w = [randn(s) for s in shapes]
    log_scale = float(-2 + 2 * rand())
    lr0 = 10 ** float(-4 + 4 * rand())
    out = []
    for k in range(steps):
        log_scale = min(2.0, max(-5.0, log_scale + 0.25 * float(randn())))
        direction = [torch.where(rand(s) < 0.02, -d, d) for s, d in zip(shapes, direction)]
        g = tuple(10**log_scale * a * (strength * d + randn(s)) for s, a, d in zip(shapes, spread, direction))
        w = [x + 0.01 * randn(s) for s, x in zip(shapes, w)]
        lr = lr0 * (0.1 + 0.45 * (1 + math.cos(math.pi * k / max(steps - 1, 1))))
        out.append(StepInput(tuple(w), g, lr, k + 1))
    return out


def drawn_inputs(
    seed: int,
    draw: int,
    states: dict[str, tuple[Kind, int]],
    shapes: Sequence[tuple[int, ...]] = DRAW_SHAPES,
) -> tuple[list[StepInput], dict[str, list[torch.Tensor]]]:
    """Two steps from states set directly (module docstring): the inputs, and each state's
    start value. ``states`` maps a state to its kind and sign (1: never negative in the runs,
    -1: never positive, 0: either). Gradients are of either sign, 1e-6 to 1e3 in size."""
    gen = torch.Generator().manual_seed(1_000_003 * (seed + 1) + draw)
    lr, step = SETTINGS[draw % len(SETTINGS)]

    def rand(shape):
        return torch.rand(shape, generator=gen, dtype=torch.float64)

    def signs(shape):
        return torch.where(rand(shape) < 0.5, -1.0, 1.0).double()

    def gradient(shape):
        return signs(shape) * 10 ** (9 * rand(shape) - 6)

    w = tuple(torch.randn(s, generator=gen, dtype=torch.float64) * 10 ** (2 * rand(s) - 1) for s in shapes)
    g1, g2 = tuple(gradient(s) for s in shapes), tuple(gradient(s) for s in shapes)
    fixed = torch.tensor(RATIOS, dtype=torch.float64)
    start: dict[str, list[torch.Tensor]] = {}
    for k, (name, (kind, sign)) in enumerate(states.items()):
        values = []
        for s, g in zip(shapes, g1):
            n = g.numel()
            index = (torch.arange(n) // 2 + 7 * k + draw) % len(RATIOS)
            ratio = torch.where(torch.arange(n) % 2 == 0, fixed[index], 10 ** (15 * rand((n,)) - 9))
            ratio = (ratio * 10 ** (0.1 * rand((n,)) - 0.05)).reshape(s)
            value = ratio * g.abs() * (signs(s) if sign == 0 else float(sign))
            values.append(value if kind is Kind.TENSOR else value.abs().mean() * (float(sign) or 1.0))
        start[name] = values
    return [StepInput(w, g1, lr, step), StepInput(w, g2, lr, step + 1)], start


@dataclass
class Trace:
    """A program run on a sequence of inputs: per step, the update and each carried state
    before and after (lists of tensors, one per parameter)."""

    updates: list[list[torch.Tensor]] = field(default_factory=list)
    before: list[dict[str, list[torch.Tensor]]] = field(default_factory=list)
    after: list[dict[str, list[torch.Tensor]]] = field(default_factory=list)


def run(
    program: Program,
    inputs: Sequence[StepInput],
    state: dict[str, list[torch.Tensor]] | None = None,
    **hyperparams: float,
) -> Trace:
    """Run ``program`` (compiled, eager, float64) on ``inputs``, from zero state or from
    ``state`` (carried state variable -> one tensor per parameter; missing ones are zero)."""
    compiled = compile_program(program, "eager")
    states = compiled.init_state(list(inputs[0].w), dtype=torch.float64) if inputs else []
    for i, s in enumerate(compiled.state):
        if state and s in state:
            states[i] = [t.clone() for t in state[s]]
    trace = Trace()
    for x in inputs:
        w = [t.clone() for t in x.w]
        trace.before.append({s: [t.clone() for t in b] for s, b in zip(compiled.state, states)})
        with torch.no_grad():
            compiled(w, [t.clone() for t in x.g], states, lr=x.lr, step=float(x.step), **hyperparams)
        trace.updates.append([a - b for a, b in zip(x.w, w)])  # w <- w - update
        trace.after.append({s: [t.clone() for t in b] for s, b in zip(compiled.state, states)})
    return trace


def without_guard(program: Program) -> Program:
    """``program`` with each guarded ``x / y`` computed as ``x / (y + 1e-300)``: the guard
    taken (all but) to 0, while 0/0 stays 0."""
    taken = names(program)
    body: list[Statement] = []
    for s in program.body:
        if s.op != "div":
            body.append(s)
            continue
        den = fresh_name("den", taken)
        taken.add(den)
        body += [Statement(den, "add", (s.args[1], Const(NO_GUARD)), s.line),
                 Statement(s.target, "exact_div", (s.args[0], Var(den)), s.line)]
    return program.with_body(body)


def close(x: torch.Tensor, y: torch.Tensor, rtol: float = 1e-5, atol: float = 1e-8) -> torch.Tensor:
    """Elementwise agreement: within ``atol + rtol * max(|x|, |y|)``; nan matches nan, inf the same inf."""
    x, y = torch.broadcast_tensors(x.double(), y.double())
    same = (x == y) | (torch.isnan(x) & torch.isnan(y))
    return same | ((x - y).abs() <= atol + rtol * torch.maximum(x.abs(), y.abs()))


def _agree(xs: list[torch.Tensor], ys: list[torch.Tensor], rtol: float, atol: float) -> bool:
    return all(bool(close(x, y, rtol, atol).all()) for x, y in zip(xs, ys))


def _gap(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """|x - y|, 0 where equal (inf = inf, nan = nan), inf where only one is nan."""
    d = (x - y).abs()
    return torch.where(close(x, y, 0.0, 0.0), torch.zeros_like(d), d.nan_to_num(nan=math.inf))


def _num(v: float) -> float:
    """10 significant digits: enough to place a point sympy chose 1e-7 beside a kink."""
    return float(f"{v:.10g}")


@dataclass(frozen=True)
class Difference:
    """Where two programs disagree: an output at a step of a probe, with a counterexample."""

    output: str
    """``update``, or ``state m / v`` for A's m paired with B's v."""
    trial: int
    """The index of the training-like run, drawn batch or batch of sympy's points."""
    step: int
    """The step of that probe (1 = its first)."""
    max_abs: float
    counterexample: dict[str, Any]
    """That step's inputs and both programs' values, at the element that differs most."""
    source: str = "trajectory"
    """``trajectory`` (a training-like run from zero state), ``drawn`` or ``sympy``."""

    def __str__(self) -> str:
        where = {
            "trajectory": f"at step {self.step} of trial {self.trial}",
            "drawn": f"at step {self.step} from drawn state batch {self.trial}",
            "sympy": f"at step {self.step} from a point sympy chose (batch {self.trial})",
        }[self.source]
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
    guard: str = ""
    """Where the two differ, when they are equivalent only up to the division guard."""

    @property
    def exact(self) -> bool:
        return self.how in ("canonical", "sympy")

    @property
    def up_to_guard(self) -> bool:
        """Equivalent, but only up to the 1e-8 division guard (``guard`` says where it matters)."""
        return self.equivalent and bool(self.guard)


def compare(
    a: Program,
    b: Program,
    *,
    trials: int = TRIALS,
    steps: int = STEPS,
    draws: int = DRAWS,
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
    options = dict(seed=seed, rtol=rtol, atol=atol)
    forms = None
    if use_sympy and max(tree_size(a), tree_size(b)) <= SYMPY_MAX_TREE:
        # a quick look for a counterexample first: where there is one, sympy's attempts
        # (seconds, for sign-heavy programs) are wasted
        quick = _numeric(a, b, ca, cb, trials=1, steps=min(steps, 50), draws=min(draws, 1), forms=None, **options)
        if not quick.equivalent:
            return _numeric(a, b, ca, cb, trials=trials, steps=steps, draws=draws, forms=None, **options)
        same_knobs = a.defaults == b.defaults
        mode = "symbols" if same_knobs else "values"
        hyper = "for all hyperparameter values" if same_knobs and a.defaults else (
            "at the default hyperparameters" if a.defaults or b.defaults else "no hyperparameters")
        forms = symbolic(a, exact=True, hyperparams=mode), symbolic(b, exact=True, hyperparams=mode)
        found = _sympy_pairing(*forms, ca, cb) if len(ca) == len(cb) else None
        if found is not None:
            pairs, proof = found
            guard = _where_guard_matters(proof.guarded, rtol) if proof.grade == "guard" else ""
            return Verdict(True, "sympy", f"{proof.detail.removeprefix('sympy: ')} ({hyper})", proof, pairs,
                           guard=guard)
        if mode == "symbols":  # the numbers run at the defaults: so do sympy's points
            forms = tuple(_at_defaults(f) for f in forms)
    return _numeric(a, b, ca, cb, trials=trials, steps=steps, draws=draws, forms=forms, **options)


def _sympy_pairing(fa: SymbolicForm, fb: SymbolicForm, ca, cb, max_pairings: int = 24):
    orders = itertools.islice(itertools.permutations(cb), max_pairings)
    by_name = tuple(s for s in ca) if set(ca) == set(cb) else None
    for order in dict.fromkeys(([by_name] if by_name else []) + list(orders)):
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
            guarded = tuple(dict.fromkeys(y for p in proofs if p.grade == "guard" for y in p.guarded))
            return dict(zip(ca, order)), Proof(weakest(proofs).grade, "sympy: " + detail, guarded)
    return None


def _at_defaults(form: SymbolicForm) -> SymbolicForm:
    values = {symbol(h): constant(v, exact=True) for h, v in form.program.defaults.items()}
    return SymbolicForm(form.program, form.update.xreplace(values),
                        {s: e.xreplace(values) for s, e in form.state.items()})


def _e(x: float) -> str:
    """A tolerance for reading: ``1e-4``, ``2.5e-9``, ``0.001``."""
    if x == 0 or x >= 1e-3:
        return f"{x:g}"
    mantissa, exponent = f"{x:.3e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def _where_guard_matters(denominators: Sequence[str], rtol: float) -> str:
    """Where two programs equal up to the guard differ: where a guarded denominator is small."""
    ys = " or ".join(denominators) if denominators else "a guarded denominator"
    return (f"they differ only where {ys} is small: the guard moves a quotient x / y by a relative "
            f"{_e(DIV_GUARD)} / |y + {_e(DIV_GUARD)}|, so by more than rtol {_e(rtol)} only where it is below "
            f"~{_e(DIV_GUARD / rtol)}, and by half or more only where it is below ~{_e(DIV_GUARD)}")


# --- the numeric search -------------------------------------------------------------------------
@dataclass(frozen=True)
class Probe:
    """Inputs both programs run on, from zero state or from given states (A's and B's names)."""

    source: str
    index: int
    inputs: tuple[StepInput, ...]
    start_a: dict[str, list[torch.Tensor]] | None = None
    start_b: dict[str, list[torch.Tensor]] | None = None
    labels: tuple[str, ...] = ()
    """Per element of the first parameter: what sympy aimed at (sympy's points only)."""


class _Runs:
    """Both programs on every probe; their guard-free variants too, once asked for."""

    def __init__(self, a: Program, b: Program):
        self.programs = (a, b)
        guarded = any(s.op == "div" for p in (a, b) for s in p.body)
        self.free_programs = (without_guard(a), without_guard(b)) if guarded else None
        self.probes: list[Probe] = []
        self.traces: list[tuple[Trace, Trace]] = []
        self.free: list[tuple[Trace, Trace]] | None = None

    def _run(self, programs, probe: Probe) -> tuple[Trace, Trace]:
        a, b = programs
        return run(a, probe.inputs, probe.start_a), run(b, probe.inputs, probe.start_b)

    def add(self, probes: Sequence[Probe]) -> None:
        for probe in probes:
            self.probes.append(probe)
            self.traces.append(self._run(self.programs, probe))
            if self.free is not None:
                self.free.append(self._run(self.free_programs, probe))

    def without_guard(self) -> bool:
        """Run the guard-free variants on every probe; False when neither program divides."""
        if self.free_programs is None:
            return False
        if self.free is None:
            self.free = [self._run(self.free_programs, p) for p in self.probes]
        return True


def _stack(steps: list[list[torch.Tensor]]) -> list[torch.Tensor]:
    """Per parameter, the values of every step: (steps, elements)."""
    return [torch.stack([s[p] for s in steps]).reshape(len(steps), -1) for p in range(len(steps[0]))]


def _values(ta: Trace, tb: Trace, s: str | None, t: str | None) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    if s is None:
        return _stack(ta.updates), _stack(tb.updates)
    return _stack([x[s] for x in ta.after]), _stack([y[t] for y in tb.after])


def _mismatch(xs, ys, rtol: float, atol: float) -> list[torch.Tensor]:
    return [~close(x, y, rtol, atol) for x, y in zip(xs, ys)]


def _numeric(a, b, ca, cb, *, trials, steps, draws, seed, rtol, atol, forms) -> Verdict:
    """The search for a counterexample (module docstring, step 3); ``forms``: both programs'
    symbolic forms at the defaults, for sympy's points (None: none)."""
    runs = _Runs(a, b)
    runs.add([Probe("trajectory", t, tuple(training_inputs(seed + t, steps))) for t in range(trials)])
    pairs = {}
    for s in ca:
        for t in cb:
            if t not in pairs.values() and all(
                _agree(x[s], y[t], rtol, atol) for ta, tb in runs.traces for x, y in zip(ta.after, tb.after)
            ):
                pairs[s] = t
                break
    unpaired = (tuple(s for s in ca if s not in pairs), tuple(t for t in cb if t not in pairs.values()))
    outputs = [("update", None, None)] + [(f"state {s} / {t}", s, t) for s, t in pairs.items()]
    outputs += [(f"state {s} / {t}", s, t) for s, t in zip(*unpaired)]
    searched = [f"{trials} runs x {steps} steps from zero state"]
    complete = not unpaired[0] and not unpaired[1]
    signs = _signs(runs, ca) if complete else {}
    if complete and draws:
        kinds = analyze(a).state_kinds
        drawn = []
        for k in range(draws):
            inputs, start = drawn_inputs(seed, k, {s: (kinds[s], signs[s]) for s in ca})
            drawn.append(Probe("drawn", k, tuple(inputs), start, {pairs[s]: v for s, v in start.items()}))
        runs.add(drawn)
        searched.append(f"{draws} x {sum(math.prod(s) for s in DRAW_SHAPES)} drawn states")
    elif draws:
        searched.append("no drawn states (not every state has a partner)")

    def masks(traces):
        return [[_mismatch(*_values(ta, tb, s, t), rtol, atol) for _, s, t in outputs] for ta, tb in traces]

    def search():
        """Where the programs part with the guard; without it (None: not run); both."""
        raw = masks(runs.traces)
        free = masks(runs.free) if _any(raw) and runs.without_guard() else None
        both = raw if free is None else [[[x & y for x, y in zip(mo, fo)] for mo, fo in zip(mp, fp)]
                                         for mp, fp in zip(raw, free)]
        return raw, free, both

    raw, free, both = search()
    if not _any(both, 0) and complete and forms is not None:
        points = _sympy_probes(forms, ca, pairs, signs, seed)
        if points:
            runs.add(points)
            searched.append(f"{sum(p.inputs[0].g[0].numel() for p in points)} points sympy chose at kinks")
            raw, free, both = search()
    n = ", ".join(searched) + f", rtol {_e(rtol)}"
    differences = tuple(
        d for k, (label, s, t) in enumerate(outputs) if (d := _first_difference(runs, both, k, label, s, t))
    )
    if _any(both, 0) or (_any(raw, 0) and _any(free, 0)):
        # where they part only with the guard and only without it at different points, they differ too
        if not _any(both, 0):
            differences = (_first_difference(runs, raw, 0, "update", None, None), *differences)
        return Verdict(False, "numeric", f"the updates differ ({n})", None, pairs, unpaired, differences)
    if _any(raw, 0):
        parted = sum(int(m.sum()) for probe in raw for m in probe[0])
        total = sum(int(m.numel()) for probe in raw for m in probe[0])
        worst = max(_relative(runs, k) for k in range(len(runs.probes)))
        detail = (f"the updates agree numerically once the division guard is taken to {_e(NO_GUARD)} ({n}); "
                  f"with it they part at {parted} of {total} points checked, by at most {worst:.3g} relative; "
                  "not a proof")
        example = _first_difference(runs, raw, 0, "update", None, None)
        guard = _where_guard_matters(_denominators(forms), rtol) + (
            "; for example, " + str(example).replace("\n", "\n  "))
        return Verdict(True, "numeric", detail, Proof("numeric", detail), pairs, unpaired, differences, guard)
    worst = max((float(g.max()) for ta, tb in runs.traces for g in map(_gap, *_values(ta, tb, None, None))),
                default=0.0)
    detail = f"the updates agree numerically ({n}; max |difference| {worst:.3g}); not a proof"
    return Verdict(True, "numeric", detail, Proof("numeric", detail), pairs, unpaired, differences)


def _any(found, output: int | None = None) -> bool:
    """Whether ``found`` marks anything (for ``output``, else for any output)."""
    if found is None:
        return False
    return any(bool(m.any()) for probe in found for k, masks in enumerate(probe) if output in (None, k)
               for m in masks)


def _relative(runs: _Runs, k: int) -> float:
    xs, ys = _values(*runs.traces[k], None, None)
    scale = [torch.maximum(x.abs(), y.abs()) for x, y in zip(xs, ys)]
    gaps = [_gap(x, y) / s.clamp_min(1e-300) for x, y, s in zip(xs, ys, scale)]
    return max(float(g.max()) for g in gaps)


def _signs(runs: _Runs, ca) -> dict[str, int]:
    """Each state's sign along the runs: 1 never negative, -1 never positive, 0 either."""
    out = {}
    for s in ca:
        values = [t for ta, _ in runs.traces for x in ta.after for t in x[s]]
        negative = any(bool((t < 0).any()) for t in values)
        positive = any(bool((t > 0).any()) for t in values)
        out[s] = 0 if negative == positive else (1 if positive else -1)
    return out


def _denominators(forms) -> list[str]:
    """The guarded denominators of the two updates, those of one program first (where they
    differ), else all."""
    if forms is None:
        return []
    fa, fb = forms
    ya, yb = guarded_denominators(fa.update), guarded_denominators(fb.update)
    own = [y for y in ya if y not in yb] + [y for y in yb if y not in ya]
    return [show(y) for y in (own or ya + yb)]


def _first_difference(runs: _Runs, found, output: int, label: str, s, t) -> Difference | None:
    """The first probe and step where ``found`` marks ``output``, at its largest gap."""
    for k, probe in enumerate(runs.probes):
        mask = found[k][output]
        if not any(bool(m.any()) for m in mask):
            continue
        ta, tb = runs.traces[k]
        xs, ys = _values(ta, tb, s, t)
        gaps = [torch.where(m, _gap(x, y), torch.full_like(x, -1.0)) for m, x, y in zip(mask, xs, ys)]
        step = min(int(m.any(dim=1).nonzero()[0]) for m in mask if m.any())
        p = max(range(len(gaps)), key=lambda q: float(gaps[q][step].max()))
        e = int(gaps[p][step].argmax())
        max_abs = max(float(g.max()) for g in gaps)
        return Difference(label, probe.index, step + 1, max_abs,
                          _counterexample(probe, ta, tb, step, p, e, xs, ys), probe.source)
    return None


def _counterexample(probe: Probe, ta: Trace, tb: Trace, k: int, p: int, e: int, xs, ys) -> dict[str, Any]:
    x = probe.inputs[k]

    def at(t: torch.Tensor) -> float:
        flat = t.reshape(-1)
        return _num(float(flat[e] if flat.numel() > 1 else flat[0]))

    out: dict[str, Any] = {"element": f"{e} of parameter {p}" if len(x.w) > 1 else str(e)}
    if probe.labels:
        out["aimed at"] = probe.labels[e]
    out.update({"w": at(x.w[p]), "g": at(x.g[p]), "lr": _num(x.lr), "step": x.step})
    out.update({f"A: {s} in": at(v[p]) for s, v in ta.before[k].items()})
    out.update({f"B: {s} in": at(v[p]) for s, v in tb.before[k].items()})
    out["A gives"] = _num(float(xs[p][k][e]))
    out["B gives"] = _num(float(ys[p][k][e]))
    return out


def _sympy_probes(forms, ca, pairs: dict[str, str], signs: dict[str, int], seed: int) -> list[Probe]:
    """Batches of points on both sides of each kink of either program, and between two kinks
    of one unknown (module docstring). The states take A's names; B's are renamed to them."""
    fa, fb = forms
    rename = {symbol(t): symbol(s) for s, t in pairs.items()}
    guard = {DIV_GUARD_SYMBOL: sp.Float(DIV_GUARD)}
    exprs = [fa.update, fb.update.xreplace(rename)]
    exprs += [fa.state[s] for s in ca] + [fb.state[pairs[s]].xreplace(rename) for s in ca]
    exprs = [e.xreplace(guard) for e in exprs]
    tensors = [s for s in ca if analyze(fa.program).state_kinds[s] is Kind.TENSOR]
    unknowns = [symbol(x) for x in (*tensors, "g", "w")]
    arguments = ["w", "g", "lr", "step", *ca]
    roots = []
    for x, root, kink in boundary_points(exprs, unknowns):
        try:
            fn = sp.lambdify([symbol(n) for n in arguments], root, modules="numpy")
        except Exception:  # a root numpy cannot evaluate gives no points
            continue
        text = f"{show(kink)} = 0, {x} = {show(root)}"
        roots.append((str(x), fn, text))
    if not roots:
        return []
    rng = np.random.default_rng(seed + 7)
    out = []
    for batch, (lr, step) in enumerate(SETTINGS[:3]):
        base = {
            "w": rng.standard_normal(SYMPY_BASES),
            "g": rng.choice([-1.0, 1.0], SYMPY_BASES) * 10 ** rng.uniform(-4, 2, SYMPY_BASES),
        }
        for s in ca:
            sign = signs[s] or rng.choice([-1.0, 1.0], SYMPY_BASES)
            base[s] = sign * np.abs(base["g"]) * 10 ** rng.uniform(-3, 3, SYMPY_BASES)
        scalars = {"lr": lr, "step": float(step)}
        columns: dict[str, list[np.ndarray]] = {x: [] for x in ("w", "g", *ca)}
        labels: list[str] = []
        at: dict[str, list[tuple[np.ndarray, str]]] = {}
        for x, fn, text in roots:
            try:
                with np.errstate(all="ignore"):
                    value = fn(*[base[n] if n in base else scalars[n] for n in arguments])
                value = np.broadcast_to(np.asarray(value, dtype=float), (SYMPY_BASES,))
            except Exception:  # complex, or a function numpy lacks: no points from it
                continue
            at.setdefault(x, []).append((value, text))
            scale = np.abs(value) + 1e-3 * np.abs(base["g"])
            for delta in (1e-7, 1e-4, 1e-2, 0.2):
                for side in (-1.0, 1.0):
                    _add_points(columns, labels, base, x, value + side * delta * scale, signs,
                                f"{'above' if side > 0 else 'below'} {text} (by {delta:g})")
        for x, values in at.items():
            for (r1, t1), (r2, t2) in itertools.islice(itertools.combinations(values, 2), 16):
                # kinks a rounding apart (interp(g, m, 0.9) against 0.9 m + 0.1 g) are one kink
                apart = np.abs(r1 - r2) > 1e-10 * (np.abs(r1) + np.abs(r2) + 1e-3 * np.abs(base["g"]))
                _add_points(columns, labels, base, x, np.where(apart, (r1 + r2) / 2, np.nan), signs,
                            f"between {t1} and {t2}")
        if not labels:
            return []
        w, g = (torch.tensor(np.concatenate(columns[x])) for x in ("w", "g"))
        g2 = torch.tensor(rng.choice([-1.0, 1.0], g.numel()) * 10 ** rng.uniform(-4, 2, g.numel()))
        start = {s: [torch.tensor(np.concatenate(columns[s]))] if s in tensors
                 else [torch.tensor(float(np.median(base[s])), dtype=torch.float64)] for s in ca}
        inputs = (StepInput((w,), (g,), lr, step), StepInput((w,), (g2,), lr, step + 1))
        out.append(Probe("sympy", batch, inputs, start, {pairs[s]: v for s, v in start.items()}, tuple(labels)))
    return out


def _add_points(columns, labels, base, x: str, value: np.ndarray, signs, label: str) -> None:
    """One point per base point, with ``x`` set to ``value`` where that is finite and of the
    sign the runs allow (else left at the base value)."""
    value = np.where(np.isfinite(value), value, base[x])
    if x in signs and signs[x]:
        value = np.where(value * signs[x] >= 0, value, base[x])
    for name, column in columns.items():
        column.append(value if name == x else base[name])
    labels.extend([label] * len(value))
