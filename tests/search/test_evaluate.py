"""evaluate(): normalization against the AdamW warm start, failures scored WORST with a
reason, held-out test scores, and the ways a program is applied to the flat buffer."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

import programs
from search import tasks as task_registry
from search.evaluate import WORST, Evaluation, TaskSpec, default_tasks, evaluate, suite
from search.fitness import CLIP, task_score
from search.training import ProgramStep, step_mode, train
from symbolic_opt import compile_program, parse
from symbolic_opt.ir import Program, Statement, Var

QUICK = (TaskSpec("quadratic"), TaskSpec("teacher_student"))


def program(body: str, args: str = "w, g, lr", returns: str = "update") -> Program:
    lines = "".join(f"    {line.strip()}\n" for line in body.strip().splitlines())
    return parse(f"def train({args}):\n{lines}    return {returns}\n")


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


def test_the_warm_start_scores_exactly_zero_on_the_default_suite():
    result = evaluate(programs.load("adamw_paper"), default_tasks())
    assert result.error is None
    assert result.fitness == 0.0 and result.test_fitness == 0.0
    assert set(result.per_task) == {t.key for t in default_tasks()}
    for record in result.per_task.values():
        assert record["valid_loss"] == record["baseline_valid_loss"]
        assert record["valid_loss"] != record["test_loss"]  # another split, other seeds
        assert len(record["valid_losses"]) == 3
    assert 0 < result.seconds < 5


def test_lion_with_a_sensible_lr_nears_tuned_adamw_on_digits():
    result = evaluate(lion(0.001), [TaskSpec("digits_mlp")])  # measured: -0.175 (0.3x or 3x this lr: -0.47, -0.60)
    assert result.error is None
    assert -0.3 < result.fitness < 0.1, result.per_task
    assert result.per_task["digits_mlp"]["valid_accuracy"] > 0.9


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
def test_nan_and_divergence_score_worst_with_the_reason(body, reason):
    result = evaluate(program(body), QUICK)
    assert result.fitness == WORST and result.test_fitness == WORST
    assert reason in result.error and "quadratic" in result.error and "seed 0" in result.error


def test_an_exception_at_run_time_scores_worst():
    # step ** 400 overflows to inf on the host; torch refuses to multiply by it
    bad = program("s = power(step, 400.0)\nupdate = g * s\nupdate = update * lr", args="w, g, lr, step")
    result = evaluate(bad, QUICK)
    assert result.fitness == WORST
    assert result.error.startswith("RuntimeError") and "step 2 of quadratic" in result.error


def test_a_program_that_does_not_check_scores_worst():
    unknown_op = Program(("w", "g", "lr"), (Statement("update", "frobnicate", (Var("g"),)),), ("update",))
    result = evaluate(unknown_op, QUICK)
    assert result.fitness == WORST and "frobnicate" in result.error


def test_running_past_the_deadline_scores_worst():
    result = evaluate(programs.load("adamw_paper"), QUICK, deadline_s=0.0)
    assert result.fitness == WORST and "deadline" in result.error
    assert result.seconds < 0.5


def test_group_reductions_reduce_over_one_model_per_seed():
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
    assert step.mode == "per_seed"
    problem = task_registry.build("digits_mlp")
    together = train(problem, (3, 5), step).metrics["valid"]["loss"]
    alone = [train(problem, (s,), step).metrics["valid"]["loss"][0] for s in (3, 5)]
    assert together == pytest.approx(alone, rel=1e-5)


def test_every_mode_gives_the_same_numbers_for_an_elementwise_program():
    compiled = compile_program(programs.load("adamw_paper"), "eager")
    assert step_mode(compiled) == "batched"
    problem = task_registry.build("teacher_student")
    runs = [train(problem, (0, 1), ProgramStep(compiled, mode)).metrics for mode in ("batched", "per_seed", "per_tensor")]
    assert runs[0] == runs[1] == runs[2]


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


def test_scores_are_log_ratios_in_units_of_the_baselines_gain():
    # baseline went from 4.0 to 1.0 (log gain log 4); half the loss again is half that gain
    assert task_score(1.0, baseline=1.0, initial=4.0) == 0.0
    assert task_score(0.5, baseline=1.0, initial=4.0) == pytest.approx(0.5)
    assert task_score(4.0, baseline=1.0, initial=4.0) == pytest.approx(-1.0)  # learned nothing
    assert task_score(1e-300, 0.5, 1.0) == CLIP and task_score(1e300, 0.5, 1.0) == -CLIP
    with pytest.raises(ValueError, match="did not learn"):
        task_score(1.0, baseline=2.0, initial=1.0)
    assert WORST < -CLIP


def test_untrained_models_score_about_minus_one():
    nothing = program("update = g * 0.0")
    result = evaluate(nothing, QUICK)
    for record in result.per_task.values():
        assert record["valid_loss"] == pytest.approx(record["initial_valid_loss"], rel=1e-6)
        assert record["valid"] == pytest.approx(-1.0, abs=1e-5)


def test_specs_and_results_are_frozen_and_picklable():
    spec = TaskSpec("digits_mlp", 10, seeds=[4, 5])
    assert spec.seeds == (4, 5) and spec.scale == 10.0 and spec.key == "digits_mlp@10"
    assert pickle.loads(pickle.dumps(spec)) == spec
    assert dataclasses.replace(spec, scale=1).key == "digits_mlp"
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.scale = 2.0
    with pytest.raises(ValueError):
        TaskSpec("digits_mlp", seeds=(1000,))
    result = evaluate(programs.load("adamw_paper"), [TaskSpec("quadratic")])
    assert isinstance(result, Evaluation) and pickle.loads(pickle.dumps(result)) == result
    assert [t.scale for t in suite(10)] == [10.0] * len(default_tasks())


def test_unknown_task_is_a_configuration_error():
    with pytest.raises(KeyError):
        evaluate(programs.load("adamw_paper"), [TaskSpec("no_such_task")])


@pytest.mark.parametrize("name", ["digits_mlp", "quadratic"])
def test_the_lr_peak_is_where_the_baseline_does_best_on_validation_only(name):
    from search.evaluate import baseline, run

    spec = TaskSpec(name)
    base = baseline(spec)
    warm = ProgramStep.of(programs.load("adamw_paper"))
    mean = lambda r: sum(r.metrics["valid"]["loss"]) / len(r.metrics["valid"]["loss"])  # noqa: E731
    for neighbour in (base.lr_peak * 2, base.lr_peak / 2):
        other = run(spec, warm, lr_peak=neighbour)
        assert other.error is not None or mean(other) >= mean(base.result), neighbour
    assert base.lr_peak != 1.0  # the AdamW program's own lr is not the best on these proxies
    assert baseline(TaskSpec(name, test_seeds=(7, 8, 9))).lr_peak == base.lr_peak  # the test split has no say
    assert evaluate(programs.load("adamw_paper"), [spec]).per_task[name]["lr_peak"] == base.lr_peak
