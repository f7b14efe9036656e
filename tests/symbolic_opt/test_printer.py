"""``Program`` -> text: ``parse(print_program(p)) == p`` and printing is stable."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from strategies import programs

import programs as library
from symbolic_opt import ProgramError, parse, print_program
from symbolic_opt.ir import Const, Program, Statement, Var
from symbolic_opt.printer import format_statement


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_parse_of_print_is_the_program_and_printing_is_stable(program):
    text = print_program(program)
    again = parse(text)
    assert again == program
    assert print_program(again) == text
    assert hash(again) == hash(program)  # programs are cache keys


@pytest.mark.parametrize("name", library.names())
def test_library_programs_round_trip(name):
    program = library.load(name)
    text = print_program(program)
    assert parse(text) == program and print_program(parse(text)) == text
    assert parse(text).doc == program.doc


def test_the_paper_syntax():
    program = Program(
        params=("w", "g", "m", "lr"),
        body=(
            Statement("u", "interp", (Var("g"), Var("m"), Var("beta1"))),
            Statement("u", "sign", (Var("u"),)),
            Statement("d", "mul", (Var("w"), Const(0.01))),
            Statement("u", "add", (Var("u"), Var("d"))),
            Statement("u", "div", (Var("u"), Const(math.pi, "pi"))),
            Statement("m", "interp", (Var("g"), Var("m"), Const(-0.99))),
        ),
        returns=("u", "m"),
        hyperparams=(("beta1", 0.9),),
    )
    assert print_program(program) == (
        "def train(w, g, m, lr, beta1=0.9):\n"
        "    u = interp(g, m, beta1)\n"
        "    u = sign(u)\n"
        "    d = w * 0.01\n"
        "    u = u + d\n"
        "    u = u / pi\n"
        "    m = interp(g, m, -0.99)\n"
        "    return u, m\n"
    )


def test_numbers_print_as_the_shortest_text_that_reads_back_exactly():
    values = [0.1, 1 / 3, 1e-8, 1e300, -2.5e-310, 0.899, 1.0, -0.0, 123456789012345678.0]
    program = Program(("w", "g", "lr"), tuple(Statement("u", "mul", (Var("g"), Const(v))) for v in values), ("u",))
    again = parse(print_program(program))
    assert [s.args[1].value for s in again.body] == values
    assert math.copysign(1.0, again.body[7].args[1].value) == -1.0  # -0.0 keeps its sign


def test_a_named_constant_shadowed_by_a_variable_prints_as_its_number():
    program = Program(
        ("w", "g", "lr"),
        (Statement("e", "mul", (Var("g"), Const(math.pi))), Statement("u", "add", (Var("e"), Const(math.e)))),
        ("u",),
    )
    assert "e = g * 3.141592653589793" in print_program(program)
    assert "u = e + 2.718281828459045" in print_program(program)
    assert parse(print_program(program)) == program


def test_docstrings_with_quotes_and_backslashes_round_trip():
    for doc in ['plain', 'has """ quotes', "back\\slash", 'ends with "', "two\nlines"]:
        program = Program(("w", "g", "lr"), (Statement("u", "sign", (Var("g"),)),), ("u",), doc=doc)
        assert parse(print_program(program)).doc == doc
    assert '"""' not in print_program(program, doc=False)


def test_non_finite_numbers_are_refused():
    bad_const = Program(("w", "g", "lr"), (Statement("u", "mul", (Var("g"), Const(float("nan")))),), ("u",))
    with pytest.raises(ProgramError, match="statement 1 .*not a finite number"):
        print_program(bad_const)
    bad_default = Program(("w", "g", "lr"), (), ("g",), hyperparams=(("b", float("inf")),))
    with pytest.raises(ProgramError, match="hyperparameter 'b'.*not a finite number"):
        print_program(bad_default)


def test_format_statement_prints_statements_that_do_not_check():
    """Error messages show the offending statement, whatever is wrong with it."""
    assert format_statement(Statement("u", "sgn", (Var("g"),))) == "u = sgn(g)"
    assert format_statement(Statement("u", "add", (Var("g"),))) == "u = add(g)"
    assert format_statement(Statement("u", "mul", (Var("g"), Const(float("inf"))))) == "u = g * inf"


def test_new_hyperparameter_defaults_print_and_round_trip():
    lion = library.load("lion")
    tuned = lion.with_hyperparams(beta1=0.95, wd=0.1)
    assert tuned.defaults == {**lion.defaults, "beta1": 0.95, "wd": 0.1} and tuned.body == lion.body
    assert "beta1=0.95" in print_program(tuned) and parse(print_program(tuned)) == tuned
    with pytest.raises(KeyError, match="unknown hyperparameter.*'beta3'"):
        lion.with_hyperparams(beta3=0.5)
