"""``search.nn``: torch.nn tasks, the user task interface, and training rows through
``SymbolicOptimizer`` with a torch LR scheduler."""

from __future__ import annotations

import math
import time

import pytest
import torch

from search import training
from search.nn import Task, TaskError, check_task, load_task, names, rng, train_rows
from search.rows import Row
from symbolic_opt import SymbolicOptimizer


# --- the example user task of the docs (search/nn/example.py) -------------------------------
from search.nn.example import Regression  # noqa: E402


def make_regression(scale):
    return Regression(scale)


REGRESSION = Regression()
ROWS = [Row(0, lr_peak=0.05), Row(1, lr_peak=0.1), Row(2, lr_peak=0.05, hyper={"wd": 0.1})]


class VectorizedRegression(Regression):
    vectorize = True


# --- broken tasks: one thing wrong each -------------------------------------------------------
class VectorLoss(Regression):
    def loss(self, model, batch):
        x, y = batch
        return (model(x) - y) ** 2


class NanLoss(Regression):
    def loss(self, model, batch):
        return super().loss(model, batch) * math.nan


class ConstantLoss(Regression):
    def loss(self, model, batch):
        return torch.tensor(1.0)


class NoLossMetric(Regression):
    def evaluate(self, model, split):
        return {"mse": 1.0}


class NanMetric(Regression):
    def evaluate(self, model, split):
        return {"loss": math.nan}


class NoParameters(Regression):
    def model(self, seed):
        return torch.nn.ReLU()


class NotAModule(Regression):
    def model(self, seed):
        return torch.zeros(3)


class LossRaises(Regression):
    def loss(self, model, batch):
        raise KeyError("targets")


class NoSteps(Regression):
    steps = 0


class Incomplete(Task):  # no evaluate
    name, steps = "incomplete", 10


def make_nothing(scale):
    return 3


def no_scale_factory():
    return Regression()


BROKEN = [
    ("no_such_module_xyz:Task", "cannot import module 'no_such_module_xyz' (ModuleNotFoundError"),
    (f"{__name__}:Missing", f"module '{__name__}' has no attribute 'Missing'"),
    ("math:pi", "is float 3.14159"),
    ("digits", "not a built-in task (digits_cnn, tiny_gpt) nor an import path"),
    (f"{__name__}:make_nothing", "the factory returned int 3, not a task (it lacks name, steps, model"),
    (f"{__name__}:Incomplete", "the factory raised TypeError: Can't instantiate abstract class Incomplete"),
    (f"{__name__}:VectorLoss", "loss must be a scalar float tensor, got a tensor of shape (32, 1)"),
    (f"{__name__}:NanLoss", "loss of the untrained model on the first batch is nan, not finite"),
    (f"{__name__}:ConstantLoss", "loss does not depend on the model's parameters"),
    (f"{__name__}:NoLossMetric", "evaluate(model, 'valid') must give a dict with 'loss', got keys ['mse']"),
    (f"{__name__}:NanMetric", "evaluate(model, 'valid') gave loss nan, not finite"),
    (f"{__name__}:NoParameters", "model(0) has no trainable parameters"),
    (f"{__name__}:NotAModule", "model(0) must return a torch.nn.Module, got a Tensor"),
    (f"{__name__}:LossRaises", "loss(Linear, tuple) raised KeyError: 'targets'"),
    (f"{__name__}:NoSteps", "steps must be a positive int, got 0"),
]


@pytest.mark.parametrize("spec, message", BROKEN, ids=[s for s, _ in BROKEN])
def test_a_broken_task_is_a_one_line_task_error(spec, message):
    with pytest.raises(TaskError) as caught:
        check_task(load_task(spec), spec)
    text = str(caught.value)
    assert text.startswith(f"task {spec!r}: ") and message in text, text
    assert "\n" not in text


def test_scale_errors_name_the_fix():
    with pytest.raises(TaskError, match="is a task instance at scale 1, so it cannot run at scale 2"):
        load_task(f"{__name__}:REGRESSION", scale=2)
    with pytest.raises(TaskError, match="its factory takes no scale"):
        load_task(f"{__name__}:no_scale_factory", scale=2)
    with pytest.raises(TaskError, match="scale must be a positive number"):
        load_task("digits_cnn", scale=0)


# --- loading and training a user task -----------------------------------------------------------
@pytest.mark.parametrize("attribute", ["Regression", "make_regression", "REGRESSION"])
def test_a_user_task_loads_by_import_path_and_trains(attribute, one_thread):
    task = load_task(f"{__name__}:{attribute}")
    check_task(task)
    with torch.no_grad():
        untrained = REGRESSION.evaluate(REGRESSION.model(0), "valid")["loss"]
    result = train_rows(task, "adamw", ROWS)
    assert result.error is None and result.errors == (None,) * 3 and result.steps == 100
    assert set(result.metrics) == {"valid", "test"}
    for split in ("valid", "test"):
        assert all(loss < untrained / 10 for loss in result.losses(split)), (result.losses(split), untrained)


def test_factories_get_the_scale():
    assert load_task(f"{__name__}:Regression", scale=2).dim == 16
    assert load_task(f"{__name__}:make_regression", scale=0.5).dim == 4
    for name in names():
        task = load_task(name, scale=0.25)
        assert task.scale == 0.25 and task.steps < load_task(name).steps


def test_the_program_sees_the_scheduled_lr(monkeypatch, one_thread):
    seen: dict[float, list[float]] = {}  # initial lr -> the group's lr at each step: the program's lr input
    original = SymbolicOptimizer.step

    def spy(self, *args, **kwargs):
        group = self.param_groups[0]
        seen.setdefault(group["initial_lr"], []).append(group["lr"])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SymbolicOptimizer, "step", spy)
    task = Regression()
    task.steps = 37  # warmup ceil(3.7) = 4 steps
    factors = training.schedule(task.steps)
    for vectorize in (False, True):
        seen.clear()
        result = train_rows(task, "lion", [Row(0, lr_peak=3e-3), Row(1, lr_peak=1e-3)], vectorize=vectorize)
        assert result.errors == (None, None)
        for peak in (3e-3, 1e-3):
            assert seen[peak] == pytest.approx([peak * f for f in factors], rel=1e-12, abs=0)
        assert max(seen[3e-3]) == pytest.approx(3e-3) and seen[3e-3][3] == pytest.approx(3e-3)
        assert seen[3e-3][-1] == 0.0


def test_a_diverging_row_fails_alone_and_leaves_the_others_as_they_were(one_thread):
    task = VectorizedRegression()
    rows = [Row(0, lr_peak=0.05), Row(1, lr_peak=1e4), Row(2, lr_peak=0.05)]
    for vectorize in (False, True):
        result = train_rows(task, "adamw", rows, record_curves=True, vectorize=vectorize)
        assert result.error is None and result.errors[0] is None and result.errors[2] is None
        assert result.errors[1].startswith("diverged, seed 1, lr 1e+04: ")
        assert any(why in result.errors[1] for why in ("x its first value", "nan loss", "inf loss"))
        stopped = int(result.errors[1].split(" at step ")[1].split()[0])
        assert 1 < stopped < task.steps
        assert all(math.isfinite(x) for x in result.curves[1][: stopped - 1])
        assert all(math.isnan(x) for x in result.curves[1][stopped:])
        assert math.isnan(result.losses("valid")[1]) and math.isnan(result.losses("test")[1])
        # the others train as they would have without it (in a vectorized run: after it left the stack)
        alone = train_rows(task, "adamw", [rows[0], rows[2]], vectorize=vectorize)
        for mine, theirs in zip([result.losses("valid")[0], result.losses("valid")[2]], alone.losses("valid")):
            assert mine == pytest.approx(theirs, rel=1e-5)


def test_a_row_the_optimizer_rejects_fails_alone_and_a_bad_program_fails_every_row(one_thread):
    rows = [Row(0, lr_peak=0.05), Row(1, lr_peak=0.05, hyper={"momentum_typo": 0.9})]
    result = train_rows(REGRESSION, "sgd", rows)
    assert result.errors[0] is None and math.isfinite(result.losses("valid")[0])
    assert result.errors[1].startswith("TypeError: unknown hyperparameter(s) momentum_typo")
    result = train_rows(REGRESSION, "def train(w, g, lr):\n    update = nope(g)\n    return update\n", rows)
    assert result.error and result.error.startswith("ProgramError") and result.errors == (result.error,) * 2
    assert all(math.isnan(x) for x in result.losses("valid"))


def test_a_task_that_is_not_vmap_safe_trains_sequentially(one_thread):
    class ItemLoss(VectorizedRegression):
        def loss(self, model, batch):
            loss = super().loss(model, batch)
            return loss if loss.item() < 1e9 else loss * 0  # .item() cannot run under vmap

    task = ItemLoss()
    task.steps = 20
    assert train_rows(task, "adamw", ROWS).metrics == train_rows(task, "adamw", ROWS, vectorize=False).metrics


def test_the_deadline_fails_the_run(one_thread):
    for vectorize in (False, True):
        result = train_rows(REGRESSION, "adamw", ROWS, deadline=time.process_time(), vectorize=vectorize)
        assert result.error and result.error.startswith("past the deadline at step 1 of regression")
        assert result.errors == (result.error,) * 3
        assert all(math.isnan(x) for x in result.losses("valid") + result.losses("test"))


# --- the built-in tasks -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small():
    """The built-in tasks at a quarter scale (150 and 250 steps): each check_task'ed."""
    tasks = {name: load_task(name, scale=0.25) for name in names()}
    for task in tasks.values():
        check_task(task)
    return tasks


def test_same_seed_same_numbers_different_seeds_differ(small, one_thread):
    for name, lr in (("tiny_gpt", 3e-3), ("digits_cnn", 1e-2)):
        rows = [Row(0, lr), Row(1, lr)]
        first = train_rows(small[name], "lion", rows, record_curves=True)
        again = train_rows(small[name], "lion", rows, record_curves=True)
        assert first.errors == (None, None)
        assert first.metrics == again.metrics and first.curves == again.curves
        assert first.curves[0] != first.curves[1] and first.losses("valid")[0] != first.losses("valid")[1]
        assert small[name].model(0).state_dict().keys() == small[name].model(1).state_dict().keys()


def torch_adamw_valid_loss(task, row: Row) -> float:
    """The reference: the same task trained with torch.optim.AdamW and the same LambdaLR."""
    factors = training.schedule(task.steps)
    with training.cpu_settings(), torch.random.fork_rng(devices=[]):
        model = task.model(row.seed)
        optimizer = torch.optim.AdamW(model.parameters(), lr=row.lr_peak, weight_decay=0.01)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: factors[min(i, task.steps - 1)])
        for step in range(task.steps):
            optimizer.zero_grad()
            task.loss(model, task.batch(row.seed, step)).backward()
            optimizer.step()
            scheduler.step()
        model.eval()
        with torch.no_grad():
            return task.evaluate(model, "valid")["loss"]


@pytest.mark.parametrize("name, lrs", [("digits_cnn", (1e-2, 3e-3)), ("tiny_gpt", (3e-3,))])
def test_adamw_program_matches_torch_adamw(small, name, lrs, one_thread):
    task = small[name]
    rows = [Row(seed, lr) for seed, lr in enumerate(lrs)]  # digits_cnn: two rows, vectorized
    result = train_rows(task, "adamw", rows)
    for row, loss in zip(rows, result.losses("valid")):
        assert loss == pytest.approx(torch_adamw_valid_loss(task, row), abs=1e-6, rel=0)
    assert result.losses("valid")[0] < 0.8 * math.log(10 if name == "digits_cnn" else 97)
    if name == "digits_cnn":
        assert result.metrics["valid"]["accuracy"][0] > 0.85


def test_train_rows_raises_for_a_broken_task(one_thread):
    with pytest.raises(TaskError, match="task 'regression': steps must be a positive int, got 0"):
        train_rows(NoSteps(), "adamw", ROWS)

    class VectorizedLossRaises(LossRaises):
        vectorize = True

    for task in (LossRaises(), VectorizedLossRaises()):
        with pytest.raises(TaskError, match=r"loss raised KeyError: 'targets' \(seed 0, lr 0.05, step 1 of "):
            train_rows(task, "adamw", ROWS)
