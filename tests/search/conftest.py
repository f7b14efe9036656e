"""Fakes for the search tests: cheap evaluators that train a tiny quadratic, or raise, return
nan, hang, or kill their worker, chosen by the ``FakeTask`` they are handed.

Ray workers cannot import this file (it is not in a package), so it registers itself to be
pickled by value: the functions travel to the workers with their code.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import ray.cloudpickle

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

TESTS_DIR = Path(__file__).parent


@dataclass(frozen=True)
class FakeTask:
    """What a fake evaluation does. ``mode``: ``ok`` (train the quadratic), ``raise``, ``nan``,
    ``hang`` (ignores its deadline), ``die_once`` (kills its worker the first time, for each
    program), ``die`` (kills its worker every time), ``die_while`` (``die`` while the file
    ``marks/DIE`` exists, else ``ok``), ``die_some`` (``die_while`` for one program in
    four), ``chaos`` (ok, or raise, nan or ``die_while`` for
    about one program in six). ``log``: a file that gets one line per completed evaluation
    (the program's hash). ``noise``: the spread over seeds of the per-seed scores it reports."""

    name: str = "fake"
    scale: float = 1.0
    mode: str = "ok"
    delay_s: float = 0.0
    log: str | None = None
    marks: str | None = None
    seeds: tuple[int, ...] = field(default=(0,))
    jitter_s: float = 0.0
    """Sleep a truly random time up to this long, so evaluations finish in a random order."""
    noise: float = 0.01
    offset: float = 0.0
    """Subtracted from the fitness, so a test can put candidates on either side of the baseline's 0."""
    funnel_delay_s: float = 0.0
    """Sleep this long at scales above 1: a slow funnel after a quick search."""


def fake_evaluate(program, tasks, *, deadline_s=None):
    """The fake evaluator (module docstring); a ``search.evaluate.Evaluation``."""
    from symbolic_opt.analysis import analyze
    from search.evaluate import WORST, Evaluation

    task = tasks[0]
    start = time.perf_counter()
    program_hash = analyze(program).hash
    mode = task.mode
    if mode == "chaos":
        mode = {0: "raise", 1: "nan", 2: "die_while"}.get(int(program_hash, 16) % 18, "ok")
    if mode == "die_some":  # one program in four (not the warm start) dies while `marks/DIE` exists
        mode = "die_while" if int(program_hash, 16) % 4 == 2 else "ok"
    if mode == "die_while":  # the worker dies while the file `marks/DIE` exists (a test removes it)
        mode = "die" if task.marks and (Path(task.marks) / "DIE").exists() else "ok"
    if mode == "raise":
        raise ValueError("this candidate raises")
    if mode == "hang":
        time.sleep(3600)
    if mode == "die_once":
        mark = Path(task.marks) / program_hash
        if not mark.exists():
            mark.write_text("died once")
            os._exit(1)  # the worker process dies: the pool retries the job on another
    if mode == "die":
        os._exit(1)
    fitness = math.nan if mode == "nan" else quadratic_fitness(program) - task.offset
    if task.delay_s:
        time.sleep(task.delay_s)
    if task.funnel_delay_s and task.scale > 1:
        time.sleep(task.funnel_delay_s)
    if task.jitter_s:
        time.sleep(task.jitter_s * int.from_bytes(os.urandom(2), "big") / 65535)
    if task.log:
        with open(task.log, "a") as f:
            f.write(program_hash + "\n")
    if not math.isfinite(fitness):
        return Evaluation(fitness, fitness, {"fake": fitness}, time.perf_counter() - start, None)
    node = ray.get_runtime_context().get_node_id() if ray.is_initialized() else None
    record = {"valid": fitness, "test": fitness * 0.9, "node": node, "scale": task.scale,
              **seed_losses(fitness, program_hash, task.seeds, task.noise)}
    return Evaluation(fitness, fitness * 0.9, {"fake": record}, time.perf_counter() - start, None)


def seed_losses(fitness: float, program_hash: str, seeds, noise: float) -> dict:
    """Per-seed losses shaped like ``evaluate``'s records, for the funnel's significance test:
    untrained loss 10 and baseline loss about 1, so a task score of ``s`` is a loss of
    ``10 ** -s``; every seed's score is ``fitness`` plus N(0, noise) (the baseline's: 0 plus
    N(0, noise)), drawn from the program's hash and the seed."""
    import random

    def draw(*key):
        return random.Random(":".join(map(str, key))).gauss(0.0, noise)

    out = {"initial_valid_loss": 10.0, "initial_test_loss": 10.0}
    for split in ("valid", "test"):
        base = [10 ** -draw("baseline", split, s) for s in seeds]
        out[f"baseline_{split}_losses"] = base
        out[f"baseline_{split}_loss"] = sum(base) / len(base)
        out[f"{split}_losses"] = [10 ** -(fitness + draw(program_hash, split, s)) for s in seeds]
    return out


def quadratic_fitness(program, steps: int = 30) -> float:
    """log10 of how much the program shrinks an ill-conditioned quadratic in ``steps`` steps
    at lr 1 (clipped to [-20, 20]); nan if it blows up."""
    import torch

    from symbolic_opt import compile_program

    compiled = compile_program(program, "eager")
    gen = torch.Generator().manual_seed(0)
    curvature = torch.logspace(-1, 1, 16, dtype=torch.float64)
    x = [0.05 * torch.randn(16, generator=gen, dtype=torch.float64)]
    state = compiled.init_state(x)
    loss0 = float((curvature * x[0] ** 2).sum())
    for step in range(steps):
        grad = [2 * curvature * x[0] + 0.01 * torch.randn(16, generator=gen, dtype=torch.float64)]
        scalars = {"lr": 1.0, "step": step + 1} if "step" in compiled.scalars else {"lr": 1.0}
        compiled(x, grad, state, **scalars)
    loss = float((curvature * x[0] ** 2).sum())
    if not math.isfinite(loss):
        return math.nan
    return max(-20.0, min(20.0, math.log10(loss0 / max(loss, 1e-300))))


def fake_config(run_dir: Path, **changes):
    """A small search config for the fakes: 2 workers, no live view, no funnel."""
    from search.config import FunnelConfig, SearchConfig

    base = dict(population=16, tournament=4, max_evals=60, workers=2, out=str(run_dir), live=False,
                eval_timeout_s=5.0, funnel=FunnelConfig(enabled=False))
    base.update(changes)
    return SearchConfig(**base)


@pytest.fixture(scope="module")
def local_ray():
    """One embedded 2-CPU Ray for a test module (searches reuse it: starting Ray takes seconds)."""
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="error", log_to_driver=False,
             object_store_memory=128 * 1024**2)
    try:
        yield
    finally:
        ray.shutdown()


SCRIPT_HEADER = f"""
import importlib.util, sys
spec = importlib.util.spec_from_file_location("search_test_fakes", {str(Path(__file__))!r})
fakes = importlib.util.module_from_spec(spec)
sys.modules["search_test_fakes"] = fakes
spec.loader.exec_module(fakes)
"""
"""The start of a script that runs a search in a subprocess: it loads this file as ``fakes``."""


@dataclass(frozen=True)
class Fakes:
    """What the ``fakes`` fixture hands a test."""

    evaluate: object = fake_evaluate
    Task: type = FakeTask
    config: object = fake_config
    quadratic_fitness: object = quadratic_fitness
    seed_losses: object = seed_losses
    script_header: str = SCRIPT_HEADER


@pytest.fixture(scope="session")
def fakes() -> Fakes:
    return Fakes()
