"""``symopt bench`` / ``search.bench``: each program tuned on each task by the same protocol
(choose on validation, report held-out seeds on test), spreads and Welch p-values, failures
as rows, plots, and a Ctrl-C that keeps what finished."""

from __future__ import annotations

import csv
import io
import math

import pytest
from scipy import stats
from typer.testing import CliRunner

from search import bench
from search.compare import DECADES, parse_task
from symbolic_opt.cli import app

BLOWS_UP = "def train(w, g, lr):\n    update = exp(g)\n    update = update * 1000.0\n    return update\n"


@pytest.fixture(scope="module")
def quadratic():
    return bench(["adamw_paper", "lion", "adamw"], ["quadratic"], seeds=3)


def test_each_program_is_chosen_on_validation_and_reported_on_held_out_seeds(quadratic):
    for program in ("adamw_paper", "lion", "adamw"):
        c = quadratic.cell(program, "quadratic")
        assert c.ok and len(c.valid_losses) == len(c.test_losses) == 3
        finite = [(m, s) for s, m, _ in c.tried if math.isfinite(m)]
        assert min(finite, key=lambda t: t[0])[1] == c.chosen and c.valid_mean == min(m for m, _ in finite)
        assert c.test_losses != c.valid_losses and not c.on_edge
    # one default grid serves programs whatever their lr carries: the paper's lr * 0.001, and none
    assert quadratic.cell("adamw_paper", "quadratic").chosen.lr_peak > 1 > quadratic.cell("lion", "quadratic").chosen.lr_peak
    lion = quadratic.cell("lion", "quadratic")
    assert {s.hyperparams.get("wd") for s, _, _ in lion.tried} >= {0.0, 0.01, 0.1, 1.0}  # wd tuned where there is one
    assert not any("wd" in s.hyperparams for s, _, _ in quadratic.cell("adamw_paper", "quadratic").tried)


def test_p_values_are_welch_t_tests_of_the_test_losses(quadratic):
    ref = quadratic.cell("adamw_paper", "quadratic")
    assert ref.p_value is None and quadratic.reference == "adamw_paper"
    for program in ("lion", "adamw"):
        c = quadratic.cell(program, "quadratic")
        assert c.p_value == pytest.approx(stats.ttest_ind(c.test_losses, ref.test_losses, equal_var=False).pvalue)


def test_the_table_as_data_markdown_and_csv(quadratic, tmp_path):
    rows = quadratic.rows()
    assert [r["program"] for r in rows] == ["adamw_paper", "lion", "adamw"]
    assert rows[1]["test_mean"] == pytest.approx(quadratic.cell("lion", "quadratic").test_mean)
    assert "| quadratic | lion |" in quadratic.markdown() and " ± " in quadratic.markdown()
    parsed = list(csv.DictReader(io.StringIO(quadratic.csv())))
    assert float(parsed[2]["test_std"]) == pytest.approx(rows[2]["test_std"])
    written = quadratic.write(tmp_path)
    assert {p.name for p in written} == {"bench.md", "bench.csv", "tuning-quadratic.png", "training-quadratic.png"}
    assert all(p.stat().st_size > 1000 for p in written if p.suffix == ".png")


def test_a_program_that_fails_everywhere_is_a_row_and_the_rest_runs():
    result = bench(["adamw_paper", BLOWS_UP], ["quadratic", "no_such_task"], names=["adamw_paper", "blows_up"], seeds=2)
    assert result.cell("adamw_paper", "quadratic").ok
    failed = result.cell("blows_up", "quadratic")
    assert not failed.ok and failed.error.startswith("fails at every setting: diverged")
    assert len(failed.tried) == len(DECADES)
    unknown = result.cell("adamw_paper", "no_such_task")
    assert not unknown.ok and "no task 'no_such_task'" in unknown.error
    assert "failed:" in result.markdown()


def test_ctrl_c_keeps_what_finished():
    def interrupt(cell):
        raise KeyboardInterrupt

    result = bench(["adamw_paper", "lion"], ["quadratic"], seeds=2, on_cell=interrupt)
    assert not result.complete and list(result.cells) == [("adamw_paper", "quadratic")]
    assert "interrupted" in result.markdown()


def test_task_names_take_a_scale():
    assert parse_task("char_lm@10") == ("char_lm", 10.0) and parse_task("my.mod:task") == ("my.mod:task", 1.0)
    with pytest.raises(ValueError, match="must be a number"):
        parse_task("char_lm@ten")
    for bad in ("char_lm@0", "char_lm@-2", "char_lm@inf", "char_lm@nan"):
        with pytest.raises(ValueError, match="positive finite"):
            parse_task(bad)


def test_a_configs_task_refuses_a_bad_scale_as_a_table_or_a_string():
    from search.config import task_choice

    assert task_choice({"name": "quadratic", "scale": 3}).scale == task_choice("quadratic@3").scale == 3
    for bad in ({"name": "char_lm", "scale": 0}, {"name": "char_lm", "scale": -1.0}, "char_lm@0", "char_lm@inf"):
        with pytest.raises(ValueError, match="positive finite"):
            task_choice(bad)


def test_the_command_line_prints_the_table_says_what_it_dropped_and_writes_plots(tmp_path):
    result = CliRunner().invoke(app, ["bench", "adamw_paper", "no_such_program", "lion", "--task", "quadratic",
                                      "--seeds", "2", "--lr-grid", "0.003,-1,0.01,0.03,4,16", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "no_such_program" in result.output and "--lr-grid: -1 dropped" in result.output
    assert "quadratic" in result.output and "p vs adamw_paper" in result.output and "wall time" in result.output
    assert (tmp_path / "bench.md").is_file() and (tmp_path / "tuning-quadratic.png").is_file()
    cells = [r for r in (tmp_path / "bench.csv").read_text().splitlines()[1:]]
    assert len(cells) == 2  # the unknown program is a line, not a cell
    assert "bench: programs x tasks tuned: 1 of 2 done" in result.output  # a line per cell off a terminal
    assert "2 of 2 done" in result.output and "(tuned lion on quadratic)" in result.output
    assert CliRunner().invoke(app, ["bench", "lion", "--seeds", "1"]).exit_code == 1
    assert "symopt speed" in CliRunner().invoke(app, ["bench", "--help"]).output


def test_a_weight_decay_at_the_grids_top_is_flagged_and_zero_is_not_an_edge():
    lrs = [1e-4, 3e-4, 1e-3]
    top = bench(["lion"], ["quadratic"], seeds=2, lr_grid=lrs, wd_grid=[1.0, 2.0])
    pinned = top.cell("lion", "quadratic")
    assert pinned.chosen.hyperparams["wd"] in (1.0, 2.0) and pinned.wd_on_edge  # either choice is an end above 0
    # 1e6 * lr diverges, so the choice is 0 (no decay: nothing lies below it) or 1 (inside): never an edge
    open_grid = bench(["lion"], ["quadratic"], seeds=2, lr_grid=lrs, wd_grid=[0.0, 1.0, 1e6])
    cell = open_grid.cell("lion", "quadratic")
    assert cell.chosen.hyperparams["wd"] in (0.0, 1.0) and not cell.wd_on_edge
    assert "(edge)" not in open_grid.markdown().split("| lion |")[1].split("|")[3]  # the wd column
    assert f"| {pinned.chosen.hyperparams['wd']:g} (edge) |" in top.markdown()
