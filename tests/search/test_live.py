"""The live view: a panel on a terminal, status lines in a log or with --no-live."""

from __future__ import annotations

import dataclasses
import io
import math

from rich.console import Console

from search.live import LiveView, Stats, render

STATS = Stats(elapsed_s=20.0, evaluations=300, session_evaluations=200, children=400, cache_hit_rate=0.25,
              valid_child_rate=1.0, in_flight=3, epoch=1, failures=7, best_fitness=0.0125, best_test_fitness=0.004,
              best_text="def train(w, g, m, lr):\n    update = sign(g) * lr\n    return update, m\n",
              initial_fitness=0.0, initial_test_fitness=0.0)


def test_off_a_terminal_or_disabled_it_prints_a_status_line_every_few_seconds():
    for enabled, terminal in ((False, True), (True, False)):
        out = io.StringIO()
        with LiveView(Console(file=out, force_terminal=terminal, width=200), enabled=enabled, every_s=60) as view:
            view.update(STATS)
            view.update(STATS)  # within every_s: no second line
        lines = out.getvalue().splitlines()
        assert len(lines) == 1, lines
        assert "evals 300 (10.0/s)" in lines[0] and "cache hits 25%" in lines[0] and "best 0.0125" in lines[0]


def test_a_status_line_is_one_line_and_says_dash_before_any_fitness():
    out = io.StringIO()
    with LiveView(Console(file=out, width=40), enabled=False) as view:
        view.update(dataclasses.replace(STATS, best_fitness=math.nan, initial_fitness=math.nan))
    assert out.getvalue().count("\n") == 1 and "best - (start -)" in out.getvalue()


def test_the_panel_shows_rates_and_the_best_program():
    out = io.StringIO()
    Console(file=out, width=120).print(render(STATS))
    text = out.getvalue()
    assert "update = sign(g) * lr" in text and "0.0125" in text
