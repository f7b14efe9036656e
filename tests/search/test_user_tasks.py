"""A user's own torch.nn task in a search: named by import path in a config, checked before
anything starts, calibrated like the proxy tasks; broken tasks and baselines that cannot
learn stop the run with one line naming the task."""

from __future__ import annotations

import textwrap

import pytest
import ray
from typer.testing import CliRunner

from symbolic_opt.cli import app

TASKS = '''
from search.nn.example import Regression


class Unlearnable(Regression):
    """Targets that no weights predict better than the untrained model: nothing to learn."""

    name = "unlearnable"

    def loss(self, model, batch):
        x, _ = batch
        return (model(x) * 0.0).sum() + 1.0


class NoLoss(Regression):
    name = "no_loss"

    def evaluate(self, model, split):
        return {"accuracy": 1.0}
'''


@pytest.fixture
def user_tasks(tmp_path, monkeypatch):
    """A module ``user_tasks`` on the import path of this process and of the Ray workers it starts."""
    (tmp_path / "user_tasks.py").write_text(textwrap.dedent(TASKS))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    if ray.is_initialized():  # workers started before the env var would not see the module
        ray.shutdown()
    yield tmp_path


def search(tmp_path, task: str, *extra: str):
    config = tmp_path / "search.toml"
    config.write_text(f'population = 8\ntournament = 2\nmax_evals = 12\neval_timeout_s = 60\ntasks = ["{task}"]\n'
                      "[funnel]\nenabled = false\n")
    return CliRunner().invoke(app, ["search", "--config", str(config), "--out", str(tmp_path / "run"), "--no-live",
                                    "--workers", "2", *extra])


def test_a_users_task_by_import_path_is_calibrated_and_searched(user_tasks):
    from search.store import RunStore

    result = search(user_tasks, "user_tasks:Regression")
    assert result.exit_code == 0, result.output
    assert "calibrating 1 task(s)" in result.output and "user_tasks:Regression: warm start's best peak" in result.output
    with RunStore(user_tasks / "run") as store:
        records = list(store.evaluations())
        definition = store.fitness_record("definition")
    assert len(records) == 12 and any(r.error is None for r in records)
    assert definition["tasks"][0]["name"] == "user_tasks:Regression" and len(definition["tasks"][0]["data_hash"]) == 16


def test_a_broken_users_task_is_one_line_before_anything_starts(user_tasks):
    result = search(user_tasks, "user_tasks:NoLoss")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "user_tasks:NoLoss" in result.output and "loss" in result.output
    assert not (user_tasks / "run").exists()
    missing = search(user_tasks, "user_tasks:Nothing")
    assert missing.exit_code == 1 and "Nothing" in missing.output and "Traceback" not in missing.output


def test_a_baseline_that_learns_nothing_stops_the_run_naming_the_task(user_tasks):
    result = search(user_tasks, "user_tasks:Unlearnable")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "cannot calibrate the suite" in result.output and "does not learn user_tasks:Unlearnable" in result.output


def test_symopt_bench_takes_a_users_task_by_import_path(user_tasks):
    result = CliRunner().invoke(app, ["bench", "adamw", "lion", "--task", "user_tasks:Regression", "--seeds", "2",
                                      "--lr-grid", "0.003,0.01,0.03,0.1", "--wd-grid", "0"])
    assert result.exit_code == 0, result.output
    assert "user_tasks:Regression: Fit y = x w* + noise with one nn.Linear" in result.output
    assert result.output.count("user_tasks:Regression") >= 3  # its description and a row per program


def test_the_readmes_example_task_is_the_shipped_example_and_works():
    """The README's "Bring your own model" example is ``search/nn/example.py``, word for word,
    and it loads by import path and trains."""
    import re
    from pathlib import Path

    import search.nn.example
    from search.nn import check_task, load_task, train_rows
    from search.rows import Row

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    blocks = [b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "class Regression(Task)" in b]
    assert len(blocks) == 1 and Path(search.nn.example.__file__).read_text(encoding="utf-8").endswith(blocks[0])
    task = load_task("search.nn.example:Regression", scale=0.5)
    check_task(task, "search.nn.example:Regression")
    result = train_rows(task, "adamw", [Row(0, 0.05), Row(1, 0.05)])
    untrained = task.evaluate(task.model(0), "valid")["loss"]
    assert result.error is None and all(loss < untrained / 2 for loss in result.losses("valid"))
