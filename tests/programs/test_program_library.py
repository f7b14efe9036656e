"""The program library: one program a file, parsed (never imported), each a valid program.

Numbers against reference implementations: tests/symbolic_opt/test_optimizers_numerics.py.
"""

from __future__ import annotations

import ast
import sys

import pytest

import programs
from symbolic_opt import Kind, ProgramError, analyze, compile_program, parse, print_program

NAMES = programs.names()
HYPERPARAMETER_NAMES = {
    "beta", "beta1", "beta2", "beta3", "eps", "wd", "momentum", "dampening", "nesterov", "alpha",
    "lr_decay", "momentum_decay", "cautious",
}
"""The vocabulary the library uses: short, familiar, and one name per idea (``wd`` everywhere)."""


def test_the_library_holds_the_expected_programs():
    expected = {
        "lion", "lion_cautious", "adamw_paper", "discovered", "adamw", "adam", "sgd", "rmsprop",
        "rmsprop_momentum", "rmsprop_centered", "rmsprop_centered_momentum", "adagrad", "signsgd",
        "signum", "adamax", "nadam", "radam", "adabelief", "adan", "lamb", "powersign", "addsign",
    }
    assert expected <= set(NAMES)
    assert NAMES == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_each_program_checks_compiles_and_round_trips(name):
    program = programs.load(name)
    analysis = analyze(program)
    doc = ast.get_docstring(ast.parse(programs.source(name)))  # a syntax tree only: nothing runs
    assert doc and len(doc.splitlines()) >= 2
    if name not in ("adamw_paper", "discovered"):  # those two are the paper's own text
        assert "<-" in doc, "the docstring gives the update's math"
    assert parse(print_program(program)) == program
    assert set(program.defaults) <= HYPERPARAMETER_NAMES
    if name != "discovered":  # the paper's found program keeps its dead statement on purpose
        assert analysis.dead_statements == () and analysis.dead_state == ()
    for backend in ("eager", "foreach"):
        compiled = compile_program(program, backend)
        assert compiled.state == analysis.carried
        assert "def " in compiled.source


def test_programs_are_parsed_not_imported():
    for name in NAMES:
        programs.load(name)
    assert not any(m.startswith("programs.") for m in sys.modules)


def test_load_by_path_equals_load_by_name(tmp_path):
    copy = tmp_path / "my_lion.py"
    copy.write_text(programs.source("lion"))
    assert programs.load(copy) == programs.load("lion")
    assert programs.load(str(programs.path("adam"))) == programs.load("adam")


def test_unknown_name_lists_the_library():
    with pytest.raises(KeyError, match="lion"):
        programs.load("no_such_optimizer")


def test_a_hostile_file_is_refused_without_running_it(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import os\ndef train(w, g, lr):\n    os.system('echo hi')\n    return g\n")
    with pytest.raises(ProgramError):
        programs.load(bad)


def test_state_kinds_follow_what_each_variable_holds():
    assert analyze(programs.load("nadam")).state_kinds["mu_product"] is Kind.TSCALAR
    assert analyze(programs.load("adan")).state_kinds["prev_g"] is Kind.TENSOR
    assert analyze(programs.load("discovered")).carried == ("v",)
    assert analyze(programs.load("signsgd")).carried == ()
