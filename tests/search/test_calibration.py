"""Calibration: the warm start's best peak centres the grid; AdamW is tuned on lr, beta1 and
weight decay on validation only; a baseline that cannot learn a task stops it with its name."""

from __future__ import annotations

import dataclasses

import pytest

import programs
from search import trainer
from search.calibration import CENTER_PEAKS, BaselineError, BaselineGrid, calibrate, calibration, tune_baseline
from search.evaluate import TaskSpec
from search.tuning import Setting, validate
from symbolic_opt.printer import print_program

SPEC = TaskSpec("teacher_student")


def mean_valid(program: str, settings, spec=SPEC) -> list[float]:
    sweep = validate(spec.name, spec.scale, trainer.optimizer_for(spec.name, programs.load(program)), settings, spec.seeds)
    return [sweep.mean(i) for i in range(len(settings))]


def test_the_center_is_the_warm_starts_best_peak():
    cal = calibration(SPEC)
    assert cal.center in CENTER_PEAKS
    here, lower, higher = mean_valid("adamw_paper", [Setting(cal.center), Setting(cal.center / 2), Setting(cal.center * 2)])
    assert here <= lower and here <= higher
    assert [s.lr_peak for s in cal.settings()] == [cal.center * m for m in cal.multipliers]


def test_the_baseline_is_torch_adamw_tuned_on_lr_beta1_and_weight_decay():
    cal = calibration(SPEC)
    b = cal.baseline
    assert b.program == "adamw" and set(b.setting.hyperparams) == {"beta1", "wd"}
    assert b.tried >= 13 + 3 * 5 * 3
    here = b.setting
    neighbours = [dataclasses.replace(here, lr_peak=here.lr_peak * f) for f in (0.5, 2.0)]
    neighbours += [Setting(here.lr_peak, {**here.hyperparams, "beta1": b1}) for b1 in (0.6, 0.9) if b1 != here.hyperparams["beta1"]]
    losses = mean_valid("adamw", [here, *neighbours])
    assert losses[0] == pytest.approx(b.valid_loss) and all(losses[0] <= x for x in losses[1:])
    assert b.valid_loss < cal.initial["valid"] and b.test_loss < cal.initial["test"]
    # tuned AdamW beats the paper's untuned warm start at its own best peak
    assert b.valid_loss < mean_valid("adamw_paper", [Setting(cal.center)])[0]


def test_only_validation_chooses_the_baseline():
    other_test_seeds = dataclasses.replace(SPEC, test_seeds=(7, 8, 9))
    a, b = tune_baseline(SPEC), tune_baseline(other_test_seeds)
    assert a.setting == b.setting and a.valid_losses == b.valid_losses and a.test_losses != b.test_losses


def test_a_baseline_at_the_end_of_its_sweep_extends_it():
    narrow = BaselineGrid(lrs=(1e-4, 2e-4, 4e-4))  # far too small for the quadratic: its best is the largest
    b = tune_baseline(TaskSpec("quadratic"), narrow)
    assert b.setting.lr_peak > 4e-4 * 2 and b.tried > 3 + 45


def test_a_baseline_that_learns_nothing_stops_with_the_tasks_name():
    nothing = "def train(w, g, lr):\n    update = g * 0.0\n    return update\n"
    with pytest.raises(BaselineError, match=r"does not learn quadratic"):
        calibrate(TaskSpec("quadratic"), grid=BaselineGrid(program=nothing, beta1=(), wd=(), first=()))


def test_a_baseline_that_fails_everywhere_stops_with_the_tasks_name():
    blows_up = "def train(w, g, lr):\n    update = exp(g)\n    update = update * 1000.0\n    return update\n"
    with pytest.raises(BaselineError, match=r"fails on quadratic at every learning rate: diverged"):
        tune_baseline(TaskSpec("quadratic"), BaselineGrid(program=blows_up, beta1=(), wd=(), first=()))


def test_the_grid_definition_is_written_down():
    grid = BaselineGrid()
    data = grid.to_dict()
    assert data["program"] == "adamw" and data["beta1"] == list(grid.beta1) and len(data["lrs"]) == 13
    assert "exact_div" in print_program(programs.load("adamw"))  # bias correction, as torch computes it
