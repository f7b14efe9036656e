"""The behavioural fingerprint (the cache must never merge programs that train differently,
and should merge those that train alike) and the funnel's behaviour comparison."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import programs
import pytest

from search.behaviour import SAME_TOLERANCE, behaviour, behaviour_distance, same_behaviour
from search.fingerprint import fingerprint
from symbolic_opt import analyze, parse, print_program

ROOT = Path(__file__).resolve().parents[2]
ADAM = print_program(programs.load("adam"))
ADAMW = print_program(programs.load("adamw_paper"))


def variant(text: str, old: str, new: str):
    assert old in text
    return parse(text.replace(old, new, 1))


def assert_merged(a, b):
    assert analyze(a).hash != analyze(b).hash  # the hash alone would train both
    assert fingerprint(a) == fingerprint(b) is not None


def assert_apart(a, b):
    assert fingerprint(a) != fingerprint(b)
    assert fingerprint(a) is not None and fingerprint(b) is not None


# --- programs that train differently get different fingerprints ------------------------------
def test_a_program_that_stops_after_step_50_is_not_the_program():
    """Adam's update times exp(-max(step - 50, 0)): the same for the first 50 steps (the old
    fingerprint stopped at step 5 and merged them), nothing after."""
    late = variant(ADAM, "    update = update * step_size\n",
                   "    update = update * step_size\n    late = step - 50\n    late = max(late, 0)\n"
                   "    late = -late\n    late = exp(late)\n    update = update * late\n")
    assert_apart(programs.load("adam"), late)


def test_a_program_that_clips_lr_above_1_is_not_the_program():
    """The tasks hand programs learning rates up to a few hundred; the old probes stayed <= 1."""
    clipped = variant(ADAMW, "    g2 = square(g)\n", "    lr = min(lr, 1.0)\n    g2 = square(g)\n")
    assert_apart(programs.load("adamw_paper"), clipped)


def test_a_program_that_breaks_at_lr_0_is_not_the_program():
    """``update * (lr / lr)`` is exactly the update, but nan at the schedule's last step."""
    breaks = variant(ADAMW, "    update = update * lr\n", "    one = exact_div(lr, lr)\n    update = update * one\n"
                     "    update = update * lr\n")
    assert_apart(programs.load("adamw_paper"), breaks)


def test_state_clipped_after_its_use_shows_in_the_next_step():
    """``m`` clipped at 1e3 after the update read it: only the next step sees it, and only
    once ``m`` is large (the probes' state times 1e4)."""
    clipped = variant(ADAMW, "    update = m / sqrt_v\n", "    update = m / sqrt_v\n    m = clip(m, 1000.0)\n")
    assert_apart(programs.load("adamw_paper"), clipped)


def test_a_tiny_learning_rate_threshold_shows():
    """A floor on lr only matters in warmup and the cosine's tail."""
    floored = variant(ADAMW, "    lr = lr * 0.001\n", "    lr = max(lr, 0.0001)\n    lr = lr * 0.001\n")
    assert_apart(programs.load("adamw_paper"), floored)


# --- programs that train alike share one -------------------------------------------------------
def test_times_two_and_plus_itself_are_one_program():
    a = variant(ADAMW, "    update = update * lr\n", "    update = update * 2.0\n    update = update * lr\n")
    b = variant(ADAMW, "    update = update * lr\n", "    update = update + update\n    update = update * lr\n")
    assert_merged(a, b)


def test_sqrt_of_square_and_abs_are_one_program():
    """A bounded update ``m / (|m| + sqrt(v))``, with ``|m|`` written either way."""
    head = "    update = m / sqrt_v\n"
    a = variant(ADAMW, head, "    d = abs(m)\n    d = d + sqrt_v\n    update = m / d\n")
    b = variant(ADAMW, head, "    d = square(m)\n    d = sqrt(d)\n    d = d + sqrt_v\n    update = m / d\n")
    assert_merged(a, b)


def test_a_renamed_reordered_program_with_its_state_swapped_is_the_program():
    renamed = parse(
        "def train(w, g, second, first, lr):\n"
        "    decay = w * 0.01\n"
        "    first = interp(g, first, 0.9)\n"
        "    gg = square(g)\n"
        "    second = interp(gg, second, 0.999)\n"
        "    root = sqrt(second)\n"
        "    step_lr = lr * 0.001\n"
        "    u = first / root\n"
        "    u = u + decay\n"
        "    u = u * step_lr\n"
        "    return u, second, first\n")
    assert_merged(programs.load("adamw_paper"), renamed)


@pytest.mark.parametrize("disguise", [
    "    s = sqrt(m)\n    u = u + s\n",  # m nobody writes
    "    s = sqrt(m)\n    u = u + s\n    m = sign(m)\n",  # m written, but zero forever
    "    s = global_norm(m)\n    u = u + s\n",  # the same through a reduction
])
def test_reads_of_a_state_that_stays_zero_are_the_plain_program(disguise):
    sgd = parse("def train(w, g, m, lr):\n    u = g * lr\n    return u, m\n")
    disguised = parse(f"def train(w, g, m, lr):\n    u = g * lr\n{disguise}    return u, m\n")
    assert_merged(sgd, disguised)


# --- determinism and failures -------------------------------------------------------------------
def test_the_fingerprint_is_the_same_in_another_process():
    mine = [fingerprint(programs.load(name)) for name in ("adamw_paper", "lion", "adam")]
    assert mine == [fingerprint(programs.load(name)) for name in ("adamw_paper", "lion", "adam")]
    code = ("import programs; from search.fingerprint import fingerprint; "
            "print(*[fingerprint(programs.load(n)) for n in ('adamw_paper', 'lion', 'adam')])")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == mine


def test_no_fingerprint_for_a_nan_program_or_for_zero_steps():
    blows_up = variant(ADAMW, "    wd = w * 0.01\n", "    wd = exp(w)\n" + "    wd = exp(wd)\n" * 3)
    assert fingerprint(blows_up) is None
    assert fingerprint(parse("def train(w, g, lr):\n    u = exact_div(g, 0.0)\n    return u\n")) is None
    assert fingerprint(programs.load("adamw_paper"), 0) is None


# --- behaviour, for the funnel -------------------------------------------------------------------
BETA_355 = ADAMW.replace("m = interp(g, m, 0.9)", "m = interp(g, m, 0.355)")
SMALL_C = (0.01, 0.02, 0.05, 0.1, 0.2)


def plus_v_times(c: float):
    """What a search sent to the funnel five times: AdamW with beta1 0.355, plus ``v * c``."""
    return variant(BETA_355, "    update = m / sqrt_v\n",
                   f"    update = m / sqrt_v\n    vc = v * {c}\n    update = update + vc\n")


SAME = {
    **{f"beta1 0.355 + v*{a} vs + v*{b}": (plus_v_times(a), plus_v_times(b)) for a, b in zip(SMALL_C, SMALL_C[1:])},
    "v*0.01 vs v*0.2": (plus_v_times(0.01), plus_v_times(0.2)),
    "lr * 0.001 vs lr * 0.004": (programs.load("adamw_paper"), variant(ADAMW, "lr * 0.001", "lr * 0.004")),
}
DIFFERENT = {
    "AdamW vs Lion": (programs.load("adamw_paper"), programs.load("lion")),
    "AdamW beta1 0.9 vs 0.355": (programs.load("adamw_paper"), parse(BETA_355)),
    "adam vs adamw": (programs.load("adam"), programs.load("adamw")),
}
CLOSE_BUT_DIFFERENT = {
    "adam vs amsgrad": (programs.load("adam"), programs.load("adam_amsgrad")),
    "weight decay 0.01 vs 0": (programs.load("adamw_paper"), variant(ADAMW, "w * 0.01", "w * 0.0")),
}


@pytest.mark.parametrize("name", SAME)
def test_programs_that_differ_by_a_scale_or_a_negligible_term_behave_the_same(name):
    a, b = SAME[name]
    assert analyze(a).hash != analyze(b).hash
    assert same_behaviour(a, b) and same_behaviour(b, a)


@pytest.mark.parametrize("name", {**DIFFERENT, **CLOSE_BUT_DIFFERENT})
def test_different_optimizers_behave_differently(name):
    a, b = {**DIFFERENT, **CLOSE_BUT_DIFFERENT}[name]
    assert not same_behaviour(a, b) and not same_behaviour(b, a)


def test_the_tolerance_sits_in_the_gap():
    """The evidence for ``SAME_TOLERANCE``: ten times the largest distance between programs
    that are one program stays below it, and the nearest different optimizers (Adam and
    AMSGrad, AdamW with and without its weight decay) are twice as far or more; the pairs the
    funnel must tell apart are ten times as far."""
    same = max(behaviour_distance(a, b) for a, b in SAME.values())
    close = min(behaviour_distance(a, b) for a, b in CLOSE_BUT_DIFFERENT.values())
    different = min(behaviour_distance(a, b) for a, b in DIFFERENT.values())
    assert same * 10 <= SAME_TOLERANCE <= close / 2 and SAME_TOLERANCE <= different / 10, (same, close, different)


def test_behaviour_is_fixed_inputs_and_the_edge_cases_of_the_distance():
    adamw = programs.load("adamw_paper")
    a = behaviour(adamw)
    assert a is not None and (a == behaviour(adamw)).all()
    assert behaviour_distance(a, 4 * a) < 1e-12 and behaviour_distance(a, -a) == 1.0
    assert behaviour(parse("def train(w, g, lr):\n    u = exact_div(g, 0.0)\n    return u\n")) is None
    assert not same_behaviour(None, a) and not same_behaviour(None, None)
    still = parse("def train(w, g, lr):\n    u = g * 0.0\n    return u\n")
    assert same_behaviour(still, still) and not same_behaviour(still, adamw)
