"""``programs/found/``: each program a search found loads by name, is the program its docstring
says it came from (the run's report lists its hash), and trains as the program it is."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import programs
from symbolic_opt import SymbolicOptimizer
from symbolic_opt.analysis import analyze

ROOT = Path(__file__).resolve().parents[2]


def test_the_found_programs_are_listed_apart_from_the_library():
    assert "found/adamw_short_memory" in programs.found()
    assert not any(name.startswith("found") for name in programs.names())


@pytest.mark.parametrize("name", programs.found())
def test_a_found_program_is_the_one_its_docstring_names(name):
    program = programs.load(name)
    run, program_hash = re.search(r"``(results/[\w.-]+)`` \(hash ``([0-9a-f]{16})``", programs.source(name)).groups()
    assert analyze(program).hash == program_hash  # the file is the run's program, not an edit of it
    assert f"`{program_hash}`" in (ROOT / run / "report.md").read_text()


def test_the_short_memory_program_steps_as_its_update_rule():
    """m = 0.3672 m + 0.6328 g; v = sinh(0.723 v + 0.277 g^2) stored, the update read before sinh;
    w -= 0.00122 lr (m / sqrt(v_new) + 0.326 w)."""
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(64))
    reference, m, v = w.detach().clone(), torch.zeros(64), torch.zeros(64)
    opt = SymbolicOptimizer([w], programs.load("found/adamw_short_memory"), lr=2.0)
    for _ in range(5):
        g = torch.randn(64)
        w.grad = g.clone()
        opt.step()
        m = 0.3672 * m + (1 - 0.3672) * g
        v_new = 0.723 * v + (1 - 0.723) * g * g
        reference = reference - 0.00122 * 2.0 * (m / torch.sqrt(v_new) + 0.326 * reference)
        v = torch.sinh(v_new)
    torch.testing.assert_close(w.detach(), reference, rtol=1e-5, atol=1e-6)
