"""evaluate(): every candidate judged at its best learning rate against AdamW tuned on lr, beta1
and weight decay; the invariance that proves it; failures scored WORST with a reason; the
hurdle; held-out test scores read where validation chose; the ways a program meets the buffer."""

from __future__ import annotations

import dataclasses
import json
import math
import pickle

import pytest

import programs
from search import tasks as task_registry
from search.calibration import MULTIPLIERS, Calibration, calibration
from search.evaluate import WORST, Evaluation, TaskSpec, default_tasks, evaluate, evaluate_optimizer, suite
from search.fitness import CLIP, seed_scores, task_score
from search.rows import Row
from search.training import ProgramStep, step_mode, train
from symbolic_opt import compile_program, parse
from symbolic_opt.ir import Program, Statement, Var
from symbolic_opt.printer import print_program

QUICK = (TaskSpec("quadratic"), TaskSpec("teacher_student"))


def program(body: str, args: str = "w, g, lr", returns: str = "update") -> Program:
    lines = "".join(f"    {line.strip()}\n" for line in body.strip().splitlines())
    return parse(f"def train({args}):\n{lines}    return {returns}\n")


def warm_start_with_lr_scale(scale: str) -> Program:
    """The paper's AdamW warm start with its ``lr = lr * 0.001`` changed to ``lr * scale``."""
    text = print_program(programs.load("adamw_paper"))
    assert text.count("0.001") == 1
    return parse(text.replace("0.001", scale))


def lion(scale: float) -> Program:
    """Lion with its lr scaled like the warm start's ``lr = lr * 0.001``."""
    return program(
        f"""
        lr = lr * {scale}
        update = interp(g, m, 0.9)
        update = sign(update)
        m = interp(g, m, 0.99)
        update = update * lr
        """,
        args="w, g, m, lr",
        returns="update, m",
    )


@pytest.fixture(scope="module")
def warm():
    return evaluate(programs.load("adamw_paper"), default_tasks())


# --- the invariance that proves the grid takes the step size off the fitness -----------------------
@pytest.mark.parametrize("scale", ["0.004", "0.016", "0.00025", "0.0000625"])
def test_a_grid_step_change_of_the_lr_constant_scores_exactly_the_same(scale, warm):
    moved = evaluate(warm_start_with_lr_scale(scale), default_tasks())
    assert moved.error is None and warm.error is None
    assert moved.fitness == warm.fitness and moved.test_fitness == warm.test_fitness
    factor = float(scale) / 0.001
    for key, record in moved.per_task.items():
        assert record["multiplier"] * factor == pytest.approx(warm.per_task[key]["multiplier"])
        assert record["valid_losses"] == warm.per_task[key]["valid_losses"]


@pytest.mark.parametrize("scale", ["0.002", "0.0005", "0.003", "0.0007"])
def test_any_change_within_the_grid_scores_about_the_same(scale, warm):
    # measured: x2 (the farthest from a grid point) -0.0520 vs -0.0361; x3 -0.0405
    moved = evaluate(warm_start_with_lr_scale(scale), default_tasks())
    assert moved.error is None
    assert abs(moved.fitness - warm.fitness) < 0.025


def test_the_warm_start_is_judged_at_its_own_best_peak(warm):
    assert warm.error is None
    for key, record in warm.per_task.items():
        assert record["multiplier"] == 1.0 and record["lr_peak"] == record["center"]
        assert [m for m, _ in record["tuning"]] == list(MULTIPLIERS)
        losses = [loss for _, loss in record["tuning"] if loss is not None]
        assert record["valid_loss"] == min(losses)  # the chosen multiplier is validation's best
        assert len(record["valid_losses"]) == 3 and len(record["test_losses"]) == 3
    # tuned AdamW (bias correction, lr, beta1 and weight decay tuned) beats the untuned warm start
    assert -0.2 < warm.fitness < 0 and -0.2 < warm.test_fitness < 0.05


def test_tuned_adamw_as_a_candidate_scores_zero():
    """The baseline itself, written as a program whose grid point 1 is its tuned setting."""
    spec = TaskSpec("teacher_student")
    b = calibration(spec).baseline
    hyper = b.setting.hyperparams
    text = programs.source("adamw").replace("def train(w, g, m, v, lr, step, beta1=0.9, beta2=0.999, eps=1e-8, wd=0.01):",
                                            f"def train(w, g, m, v, lr, step, beta1={hyper['beta1']}, beta2=0.999, eps=1e-8, "
                                            f"wd={hyper['wd']}):\n    lr = lr * {b.setting.lr_peak / calibration(spec).center!r}")
    result = evaluate(parse(text), [spec])
    assert result.per_task["teacher_student"]["multiplier"] == 1.0
    assert result.fitness == pytest.approx(0.0, abs=2e-3) and result.test_fitness == pytest.approx(0.0, abs=2e-3)


# --- what the fitness means -------------------------------------------------------------------------
def test_lion_with_an_lr_scale_is_judged_at_its_best_multiplier():
    result = evaluate(lion(0.001), [TaskSpec("digits_mlp")])  # measured: -0.241, at multiplier 1
    record = result.per_task["digits_mlp"]
    tried = {m: loss for m, loss in record["tuning"] if loss is not None}
    assert result.error is None and record["multiplier"] == min(tried, key=tried.get)
    assert len(tried) >= 3 and record["valid_loss"] == tried[record["multiplier"]]
    assert -0.5 < result.fitness < 0.1 and record["valid_accuracy"] > 0.9


def test_lion_untouched_is_off_every_grid_point():
    """The library's Lion carries no lr scale: at the warm start's peaks (x 1/16 .. 16) it takes
    steps ~1000x too large everywhere, and says so."""
    result = evaluate(programs.load("lion"), [TaskSpec("quadratic")])
    assert result.fitness == WORST and "at every lr multiplier" in result.error


def test_a_worse_optimizer_scores_below_zero():
    sgd = program("update = g * lr\nupdate = update * 0.001")
    result = evaluate(sgd, QUICK)
    assert result.error is None and WORST < result.fitness < 0


@pytest.mark.parametrize(
    "body, reason",
    [
        ("z = g - g\nupdate = log(z)\nupdate = update * lr", "nan loss"),  # log|0| = -inf -> w = inf
        ("update = exp(g)\nupdate = update * 1000.0", "diverged"),
    ],
)
def test_nan_and_divergence_at_every_multiplier_score_worst_with_the_reason(body, reason):
    result = evaluate(program(body), QUICK)
    assert result.fitness == WORST and result.test_fitness == WORST
    assert reason in result.error and "quadratic" in result.error and "at every lr multiplier" in result.error


def test_divergence_at_some_multipliers_is_only_a_worse_grid_point():
    result = evaluate(programs.load("adamw_paper"), [TaskSpec("digits_mlp")])
    tuning = dict(result.per_task["digits_mlp"]["tuning"])
    assert result.error is None and tuning[16.0] is None  # 16x the warm start's peak diverges on digits
    assert all(tuning[m] is not None for m in (1 / 16, 1 / 4, 1.0))


def test_an_exception_at_run_time_fails_its_row_and_scores_worst():
    # step ** 400 overflows to inf on the host, and torch refuses an infinite alpha (the eager,
    # host-scalar path of per-row programs; the batched tensor path computes inf and then nan)
    bad = program("s = power(step, 400.0)\nupdate = g * s\nupdate = update * lr", args="w, g, lr, step")
    per_row = ProgramStep(compile_program(bad, "eager"), "per_row")
    rows = train(task_registry.build("quadratic"), [Row(0, 1.0), Row(1, 1.0)], per_row)
    assert all(e.startswith("RuntimeError") and "step 2 of quadratic" in e for e in rows.errors)
    result = evaluate_optimizer(per_row, QUICK)
    assert result.fitness == WORST
    assert result.error.startswith("RuntimeError") and result.error.endswith("at every lr multiplier")


def test_a_program_that_does_not_check_scores_worst():
    unknown_op = Program(("w", "g", "lr"), (Statement("update", "frobnicate", (Var("g"),)),), ("update",))
    result = evaluate(unknown_op, QUICK)
    assert result.fitness == WORST and "frobnicate" in result.error


def test_running_past_the_deadline_scores_worst():
    result = evaluate(programs.load("adamw_paper"), QUICK, deadline_s=0.0)
    assert result.fitness == WORST and "deadline" in result.error
    assert result.cpu_seconds < 0.5


def test_the_hurdle_stops_a_hopeless_candidate_after_the_cheap_tasks():
    nothing = program("update = g * 0.0")  # learns nothing: -1 on every task
    result = evaluate(nothing, default_tasks(), hurdle=-0.5)
    assert result.error is None and result.stopped and "below the hurdle -0.5 after quadratic" in result.stopped
    assert list(result.per_task) == ["quadratic"] and result.fitness == pytest.approx(-1.0, abs=1e-5)
    assert math.isnan(result.test_fitness)
    full = evaluate(programs.load("adamw_paper"), default_tasks(), hurdle=-0.5)
    assert full.stopped is None and len(full.per_task) == 4


def test_held_out_seeds_are_read_at_validations_choice_only():
    spec = TaskSpec("teacher_student")
    a = evaluate(lion(0.001), [spec])
    b = evaluate(lion(0.001), [dataclasses.replace(spec, test_seeds=(7, 8, 9))])
    assert a.per_task["teacher_student"]["multiplier"] == b.per_task["teacher_student"]["multiplier"]
    assert a.fitness == b.fitness and a.test_fitness != b.test_fitness


def test_held_out_seeds_in_the_validation_batch_give_the_same_numbers():
    """Small tasks train held-out seeds beside the validation batch; a row trains the same
    whatever it is batched with, so the test score is the one a separate run gives."""
    from search import trainer
    from search.tuning import held_out, validate

    cal = calibration(TaskSpec("quadratic"))
    assert trainer.small("quadratic")
    step = ProgramStep.of(lion(0.001))
    sweep = validate("quadratic", 1.0, step, cal.settings(), (0, 1, 2), test_seeds=(1000, 1001, 1002))
    alone = held_out("quadratic", 1.0, step, cal.settings()[sweep.best], (1000, 1001, 1002))
    assert sweep.held_out(sweep.best).losses == alone.losses


# --- how a program meets the buffer -----------------------------------------------------------------
def test_group_reductions_reduce_over_one_model_per_row():
    clipped = program(
        """
        m = interp(g, m, 0.9)
        update = clip_by_global_norm(m, 0.01)
        n = global_norm(g)
        update = update * n
        update = update * lr
        update = update * 0.1
        """,
        args="w, g, m, lr",
        returns="update, m",
    )
    step = ProgramStep.of(clipped)
    assert step.mode == "per_row"
    problem = task_registry.build("digits_mlp")
    together = train(problem, (3, 5), step).losses("valid")
    alone = [train(problem, (s,), step).losses("valid")[0] for s in (3, 5)]
    assert together == pytest.approx(alone, rel=1e-5)


def test_every_mode_gives_the_same_numbers_for_an_elementwise_program():
    adamw = programs.load("adamw")
    assert ProgramStep.of(adamw).mode == "batched"
    problem = task_registry.build("teacher_student")
    rows = [Row(0, 0.004, {"beta1": 0.8}), Row(1, 0.008, {"wd": 0.1})]
    eager = compile_program(adamw, "eager")
    runs = [train(problem, rows, step).losses("valid")
            for step in (ProgramStep.of(adamw), ProgramStep(eager, "per_row"), ProgramStep(eager, "per_tensor"))]
    assert runs[1] == runs[2]  # host scalars both
    assert runs[0] == pytest.approx(runs[1], rel=1e-5)  # float32 scalar tensors: rounding apart only


def test_rows_carry_their_own_learning_rate_and_hyperparameters():
    problem = task_registry.build("teacher_student")
    adamw = ProgramStep.of(programs.load("adamw"))
    grid = [Row(0, lr, {"beta1": b1}) for lr in (0.002, 0.008) for b1 in (0.5, 0.9)]
    together = train(problem, grid, adamw).losses("valid")
    alone = [train(problem, [row], adamw).losses("valid")[0] for row in grid]
    assert together == pytest.approx(alone, rel=1e-6) and len(set(together)) == 4
    with pytest.raises(ValueError, match="beta3: not a hyperparameter of train"):
        train(problem, [Row(0, 0.01, {"beta3": 0.5})], adamw)


@pytest.mark.parametrize("mode", ["batched", "per_row"])
def test_a_diverging_row_fails_alone_and_leaves_the_batch(mode):
    problem = task_registry.build("digits_mlp")
    warm = programs.load("adamw_paper")
    step = ProgramStep.of(warm) if mode == "batched" else ProgramStep(compile_program(warm, "eager"), "per_row")
    result = train(problem, [Row(0, 4.0), Row(1, 4000.0), Row(2, 4.0)], step, record_curves=True)
    assert result.errors[0] is None and result.errors[2] is None and result.error is None
    assert "diverged, seed 1" in result.errors[1]
    assert math.isfinite(result.losses("valid")[0]) and math.isnan(result.losses("valid")[1])
    died = int(result.errors[1].split("(step ")[1].split(" ")[0])
    assert all(math.isnan(x) for x in result.curves[1][died:])  # no more steps for it
    # the survivors train exactly as they would have without it, before and after it left
    without = train(problem, [Row(0, 4.0), Row(2, 4.0)], step, record_curves=True)
    assert [result.losses("valid")[i] for i in (0, 2)] == list(without.losses("valid"))
    assert (result.curves[0], result.curves[2]) == without.curves


def test_per_tensor_reductions_see_each_parameter_tensor():
    lamb_like = program(
        """
        n = tensor_norm(w)
        update = g * n
        update = update * lr
        update = update * 0.01
        """
    )
    assert ProgramStep.of(lamb_like).mode == "per_tensor"
    assert evaluate(lamb_like, [TaskSpec("teacher_student")]).error is None


# --- scores -----------------------------------------------------------------------------------------
def test_scores_are_log_ratios_in_units_of_the_baselines_gain():
    # baseline went from 4.0 to 1.0 (log gain log 4); half the loss again is half that gain
    assert task_score(1.0, baseline=1.0, initial=4.0) == 0.0
    assert task_score(0.5, baseline=1.0, initial=4.0) == pytest.approx(0.5)
    assert task_score(4.0, baseline=1.0, initial=4.0) == pytest.approx(-1.0)  # learned nothing
    assert task_score(1e-300, 0.5, 1.0) == CLIP and task_score(1e300, 0.5, 1.0) == -CLIP
    with pytest.raises(ValueError, match="did not learn"):
        task_score(1.0, baseline=2.0, initial=1.0)
    assert WORST < -CLIP


def test_seed_scores_average_to_about_the_fitness(warm):
    per_seed = seed_scores(warm.per_task, "valid")
    assert len(per_seed) == 3 and sum(per_seed) / 3 == pytest.approx(warm.fitness, abs=0.02)
    baseline = seed_scores(warm.per_task, "valid", baseline=True)
    assert sum(baseline) / 3 == pytest.approx(0.0, abs=0.02)


def test_untrained_models_score_about_minus_one():
    nothing = program("update = g * 0.0")
    result = evaluate(nothing, QUICK)
    for record in result.per_task.values():
        assert record["valid_loss"] == pytest.approx(record["initial_valid_loss"], rel=1e-6)
        assert record["valid"] == pytest.approx(-1.0, abs=1e-5)


# --- specs, calibrations and results travel --------------------------------------------------------
def test_specs_calibrations_and_results_are_frozen_picklable_and_json():
    spec = TaskSpec("digits_mlp", 10, seeds=[4, 5])
    assert spec.seeds == (4, 5) and spec.scale == 10.0 and spec.key == "digits_mlp@10"
    assert pickle.loads(pickle.dumps(spec)) == spec
    assert dataclasses.replace(spec, scale=1).key == "digits_mlp"
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.scale = 2.0
    with pytest.raises(ValueError):
        TaskSpec("digits_mlp", seeds=(1000,))
    cal = calibration(TaskSpec("quadratic"))
    assert Calibration.from_dict(json.loads(json.dumps(cal.to_dict()))) == cal
    assert pickle.loads(pickle.dumps(cal)) == cal
    result = evaluate(programs.load("adamw_paper"), [cal])
    assert isinstance(result, Evaluation) and pickle.loads(pickle.dumps(result)) == result
    assert [t.scale for t in suite(10)] == [10.0] * len(default_tasks())
    assert [len(t.seeds) for t in suite(10, seeds=5)] == [5] * len(default_tasks())


def test_unknown_task_is_a_configuration_error():
    with pytest.raises(KeyError):
        evaluate(programs.load("adamw_paper"), [TaskSpec("no_such_task")])


def test_a_setting_with_a_failed_seed_stops_its_other_seeds():
    from search.pruning import Groups

    problem = task_registry.build("digits_mlp")
    rows = [Row(0, 4.0), Row(1, 4.0), Row(0, 4000.0), Row(1, 4.0 * 1.0001)]
    groups = Groups((0, 0, 1, 1))  # the last row shares a setting with the diverging one
    result = train(problem, rows, ProgramStep.of(programs.load("adamw_paper")), groups=groups)
    assert result.errors[0] is None and result.errors[1] is None
    assert "diverged, seed 0" in result.errors[2]
    assert result.errors[3].startswith("out with its setting: diverged, seed 0")


def test_a_failed_held_out_seed_stops_alone_and_decides_nothing():
    """Small tasks train held-out seeds in the validation batch: one that diverges must not rule
    its setting out (the test split decides nothing)."""
    from search.pruning import Groups

    problem = task_registry.build("digits_mlp")
    rows = [Row(0, 4.0), Row(1, 4.0), Row(1000, 4000.0)]  # the held-out row diverges
    groups = Groups((0, 0, 0), (True, True, False))
    result = train(problem, rows, ProgramStep.of(programs.load("adamw_paper")), groups=groups)
    assert result.errors[0] is None and result.errors[1] is None and "diverged, seed 1000" in result.errors[2]
