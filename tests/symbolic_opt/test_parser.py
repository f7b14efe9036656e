"""Program text -> ``Program``: the grammar, and every way text can fail to be a program.

Anything outside the grammar is a ``ProgramError`` with a line, a column and a reason a user
understands, and nothing in the text ever runs. Hypothesis throws random text, Python-like
token soup and mutated valid programs at the parser: nothing but ``ProgramError`` may escape.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import mutated_texts, program_texts, python_like_texts

from symbolic_opt import ProgramError, analyze, parse, parse_file, print_program
from symbolic_opt.ir import Const, Statement, Var

HEAD = "def train(w, g, m, lr, beta1=0.9):\n"
ANY = object()  # a column Python's own syntax errors give, which varies with its version


def body(*lines: str, returns: str = "return u, m") -> str:
    """A program whose body is ``lines`` (indented), ending in ``returns``."""
    return HEAD + "".join(f"    {line}\n" for line in lines) + f"    {returns}\n"


def error(text) -> ProgramError:
    with pytest.raises(ProgramError) as info:
        parse(text)
    return info.value


# --- the grammar --------------------------------------------------------------------------------


def test_a_program_parses_to_its_parts():
    p = parse(body("u = interp(g, m, beta1)", "u = sign(u)", "m = interp(g, m, 0.99)"))
    assert p.params == ("w", "g", "m", "lr") and p.state == ("m",) and p.inputs == ("w", "g", "lr")
    assert p.hyperparams == (("beta1", 0.9),)
    assert p.body[0] == Statement("u", "interp", (Var("g"), Var("m"), Var("beta1")))
    assert p.body[2].args[2] == Const(0.99)
    assert p.returns == ("u", "m") and p.update == "u"
    assert [s.line for s in p.body] == [2, 3, 4]


def test_nested_expressions_become_temporaries():
    """``u = u + w * wd`` is sugar for two single-op statements (the IR is one op each)."""
    p = parse(body("u = sign(m) + w * beta1 * lr"))
    assert [(s.op, s.target) for s in p.body] == [("sign", "_t1"), ("mul", "_t2"), ("mul", "_t3"), ("add", "u")]
    assert p.body[-1].args == (Var("_t1"), Var("_t3"))


def test_temporaries_never_take_a_name_the_program_uses():
    p = parse(HEAD + "    _t1 = sign(g)\n    u = _t1 + w * 2\n    return u, m\n")
    assert len({s.target for s in p.body}) == 3


def test_infix_operators_and_augmented_assignment():
    p = parse(body("u = g - m", "u /= lr", "u *= 2", "u += w", "u -= g", "u = u ** 2", "u = -u"))
    assert [s.op for s in p.body] == ["sub", "div", "mul", "add", "sub", "power", "negative"]


def test_named_constants_and_negative_numbers():
    p = parse(body("u = g * pi", "u = u + e", "u = u / eps", "u = u * -2.5", "u = u - -1"))
    assert p.body[0].args[1] == Const(math.pi, "pi")
    assert p.body[2].args[1] == Const(1e-8, "eps")
    assert p.body[3].args[1] == Const(-2.5) and p.body[4].args[1] == Const(-1.0)


def test_a_variable_may_shadow_a_named_constant():
    p = parse("def train(w, g, lr, eps=1e-3):\n    u = g * eps\n    return u\n")
    assert p.body[0].args[1] == Var("eps")


def test_inputs_g_and_lr_may_be_reassigned_and_step_is_an_input():
    p = parse("def train(w, g, lr, step):\n    g = clip(g, lr)\n    lr = lr * 0.001\n    u = g * lr\n    u = u * step\n    return u\n")
    assert p.uses_step and p.state == ()


def test_docstrings_are_kept_and_a_bom_is_skipped():
    p = parse('\ufeff"""module doc"""\ndef train(w, g, lr):\n    """The doc."""\n    u = sign(g)\n    return u\n')
    assert p.doc == "The doc."


def test_keyword_only_hyperparameters():
    p = parse("def train(w, g, lr, *, beta=0.5):\n    u = g * beta\n    return u\n")
    assert p.hyperparams == (("beta", 0.5),)


# --- errors: line, column and reason ---------------------------------------------------------------

ERRORS = [
    # (text, line, col, words the reason must contain)
    (body("u = sgn(m)"), 2, 9, "unknown function 'sgn'; did you mean sign"),
    (body("u = interp(g, m)"), 2, 9, "interp() takes 3 arguments, got 2"),
    (body("u = sign(g, m)"), 2, 9, "sign() takes 1 argument, got 2"),
    (body("u = sign(q)"), 2, 14, "undefined variable 'q'"),
    (body("u = sign(t)", "t = sign(g)"), 2, 14, "'t' is used before it is assigned"),
    (body("u = sign"), 2, 9, "only copies a value"),
    (body("u = m + sign"), 2, 13, "'sign' is an op: call it"),
    (body("u = sign(g)", "w = u * 2"), 3, 5, "cannot assign to input 'w'"),
    (body("u = sign(g)", "beta1 = u * 2"), 3, 5, "cannot assign to hyperparameter 'beta1'"),
    (HEAD + "    u = sign(g)\n", 2, 5, "missing return"),
    (body("u = sign(g)", returns="return u"), 3, 5, "return gives 1 value(s); expected the update and one per state"),
    (body("u = sign(g)", returns="return u, m, m"), 3, 5, "return gives 3 value(s)"),
    (body("u = sign(g)", returns="return u, 2 * m"), 3, 15, "return names variables"),
    (body("u = sign(g)", returns="return"), 3, 5, "'return' needs values"),
    (body("u = sign(g)", returns="return u, q"), 3, 15, "undefined variable 'q'"),
    (body("return u, m", "u = sign(g)"), 2, 5, "'return' must be the last statement"),
    (body("u = g * 'x'"), 2, 13, "constant must be a number, got str"),
    (body("u = g * True"), 2, 13, "constant must be a number, got bool"),
    (body("u = g * None"), 2, 13, "constant must be a number, got NoneType"),
    (body("u = g * 1j"), 2, 13, "constant must be a number, got complex"),
    (body("u = g * 1e999"), 2, 13, "is not a finite number"),
    (body("u = g * " + "1" + "0" * 400), 2, 13, "is not a finite number"),
    ("def train(w, g, lr, b='x'):\n    u = g * b\n    return u\n", 1, 23, "default of 'b' must be a number"),
    ("def train(w, g, lr, b=1e999):\n    u = g * b\n    return u\n", 1, 23, "is not a finite number"),
    ("def train(w, g, m):\n    u = sign(g)\n    return u, m\n", 1, 1, "missing input 'lr'"),
    ("def train(w, g, lr=0.1):\n    u = sign(g)\n    return u\n", 1, 17, "input 'lr' cannot have a default"),
    ("def train(w, g, lr, *, b):\n    u = sign(g)\n    return u\n", 1, 24, "needs a default value"),
    ("def train(w, g, lr, *rest):\n    u = sign(g)\n    return u\n", 1, 22, "*args and **kwargs are not allowed"),
    ("def train(w: int, g, lr):\n    u = sign(g)\n    return u\n", 1, 11, "annotations are not allowed"),
    ("def train(w, g, lr) -> int:\n    u = sign(g)\n    return u\n", 1, 24, "return annotations"),
    ("@jit\ndef train(w, g, lr):\n    u = sign(g)\n    return u\n", 1, 2, "decorators are not allowed"),
    ("def train(w, g, lr):\n    u = sign(g)\n    return u\ndef other(w, g, lr):\n    return g\n", 4, 1, "a second 'def'"),
    ("", None, None, "no program found"),
    ("x = 1\n", 1, 1, "only one 'def' may stand at the top level"),
    # unsupported syntax
    ("import os\ndef train(w, g, lr):\n    return g\n", 1, 1, "imports are not allowed"),
    ("from os import system\ndef train(w, g, lr):\n    return g\n", 1, 1, "imports are not allowed"),
    (body("import os"), 2, 5, "imports are not allowed"),
    (body("u = os.system(g)"), 2, 9, "attribute access is not allowed"),
    (body("u = g.sign()"), 2, 9, "attribute access is not allowed"),
    (body("u = sign(w.data)"), 2, 14, "attribute access is not allowed"),
    (body("u = g[0]"), 2, 9, "indexing is not allowed"),
    (body("u = (lambda x: x)(g)"), 2, 10, "lambdas are not allowed"),
    (body("u = sign(lambda: g)"), 2, 14, "lambdas are not allowed"),
    (body("u = sum([x for x in g])"), 2, 9, "unknown function 'sum'"),
    (body("u = sign([x for x in g])"), 2, 14, "comprehensions are not allowed"),
    (body("u = sign(x for x in g)"), 2, 13, "generator expressions are not allowed"),
    (body("u = __import__('os')"), 2, 9, "unknown function '__import__'"),
    (body("__import__('os')"), 2, 5, "a bare expression does nothing"),
    (body("u = eval('g')"), 2, 9, "unknown function 'eval'"),
    (body("for i in g:", "    u = sign(g)"), 2, 5, "loops are not allowed"),
    (body("while g:", "    u = sign(g)"), 2, 5, "loops are not allowed"),
    (body("if g:", "    u = sign(g)"), 2, 5, "conditionals are not allowed: use where"),
    (body("u = g if m else w"), 2, 9, "conditional expressions are not allowed"),
    (body("u = sign(g > m)"), 2, 14, "comparisons are not allowed"),
    (body("u = sign(g and m)"), 2, 14, "'and'/'or' are not allowed"),
    (body("u = sign(not g)"), 2, 14, "unary operator 'not' is not supported"),
    (body("with open('f') as f:", "    u = sign(g)"), 2, 5, "'with' is not allowed"),
    (body("try:", "    u = sign(g)", "except Exception:", "    u = g"), 2, 5, "'try' is not allowed"),
    (body("class A:", "    pass"), 2, 5, "classes are not allowed"),
    (body("def f(x):", "    return x"), 2, 5, "nested functions are not allowed"),
    (body("@dec", "def f(x):", "    return x"), 3, 5, "nested functions are not allowed"),
    (body("u = sign(f'{g}')"), 2, 14, "f-strings are not allowed"),
    (body("u = sign((v := g))"), 2, 15, "':=' is not allowed"),
    (body("u = sign(*g)"), 2, 14, "'*' unpacking is not allowed"),
    (body("u = sign([g])"), 2, 14, "lists are not allowed"),
    (body("u = sign({g: m})"), 2, 14, "dicts are not allowed"),
    (body("u = sign((g, m))"), 2, 14, "tuples are only allowed after 'return'"),
    (body("u = sign(g) % 2"), 2, 9, "operator % is not supported"),
    (body("u = g @ m"), 2, 9, "operator @ is not supported"),
    (body("u = sign(g)", "u //= 2"), 3, 5, "operator //= is not supported"),
    (body("u = v = sign(g)"), 2, 5, "assign one variable per statement"),
    (body("u, v = sign(g)"), 2, 5, "assign one variable per statement"),
    (body("u[0] = sign(g)"), 2, 5, "indexing is not allowed"),
    (body("u.x = sign(g)"), 2, 5, "attribute access is not allowed"),
    (body("u: float = sign(g)"), 2, 5, "annotated assignments are not allowed"),
    (body("del g"), 2, 5, "'del' is not allowed"),
    (body("global g"), 2, 5, "'global' is not allowed"),
    (body("pass"), 2, 5, "'pass' is not allowed"),
    (body("assert g"), 2, 5, "'assert' is not allowed"),
    (body("raise ValueError"), 2, 5, "'raise' is not allowed"),
    (body("match g:", "    case 1:", "        pass"), 2, 5, "'match' is not allowed"),
    (body("u = sign(g, k=1)"), 2, 17, "takes positional arguments only"),
    (body("u = sign((yield g))"), 2, 15, "'yield' is not allowed"),
    ("async def train(w, g, lr):\n    u = sign(g)\n    return u\n", 1, 1, "async functions are not allowed"),
    (body("u = sign(g"), 2, 13, "not valid syntax"),
    ("def train(w, g, lr):\n  u = sign(g)\n    return u\n", 3, ANY, "not valid syntax: unexpected indent"),
]


@pytest.mark.parametrize(("text", "line", "col", "reason"), ERRORS, ids=[e[3][:40] for e in ERRORS])
def test_errors_name_line_column_and_reason(text, line, col, reason):
    exc = error(text)
    assert reason in exc.reason, exc.reason
    assert exc.line == line, str(exc)
    assert col is ANY or exc.col == col, str(exc)


def test_the_message_shows_the_line_with_a_caret():
    exc = error(body("u = sgn(m)"))
    assert str(exc) == "line 2, col 9: unknown function 'sgn'; did you mean sign, sin?\n        u = sgn(m)\n            ^"


def test_columns_count_characters_not_bytes():
    """``ast`` gives UTF-8 byte offsets; after a non-ASCII name the caret must still land."""
    exc = error("def train(w, g, lr):\n    größe = sgn(g)\n    return größe\n")
    assert exc.col == 13 and str(exc).endswith("        größe = sgn(g)\n                ^")


def test_a_file_name_labels_the_error():
    with pytest.raises(ProgramError, match=r"^line 2, col 9: my.py: unknown function"):
        parse(body("u = sgn(m)"), name="my.py")


# --- hostile input ----------------------------------------------------------------------------


@pytest.mark.parametrize("value", [b"def train(w, g, lr): return g", None, 3, ["def"], Path("lion.py")])
def test_text_that_is_not_a_str_is_a_program_error(value):
    exc = error(value)
    assert f"got {type(value).__name__}" in exc.reason


@pytest.mark.parametrize(
    "text",
    [
        body("u = sign(g)\0"),
        "def train(w, g, lr):\n    u = " + "(" * 300 + "g" + ")" * 300 + "\n    return u\n",
        "def train(w, g, lr):\n    u = " + "sign(" * 2000 + "g" + ")" * 2000 + "\n    return u\n",
        "def train(w, g, lr):\n    u = " + "-" * 100_000 + "g\n    return u\n",
        "def train(w, g, lr):\n    u = g" + " + g" * 100_000 + "\n    return u\n",
        "def train(w, g, lr):\n    u = g * 1" + "0" * 5000 + "\n    return u\n",
        body("u = sign(g)  # \ud800"),
        "def train(w, g, lr):\n" + "    u = sign(g)\n" * 10 + "    return u\n" + "x" * 10**6,
    ],
    ids=["null byte", "300 parentheses", "2000 nested calls", "100k unary minus", "100k additions",
         "5000-digit int", "lone surrogate", "a megabyte of junk"],
)
def test_hostile_text_is_a_program_error(text):
    assert error(text).reason


def test_deeply_nested_but_legal_expressions_parse():
    p = parse("def train(w, g, lr):\n    u = " + "sign(" * 50 + "g" + ")" * 50 + "\n    return u\n")
    assert len(p.body) == 50


def test_nothing_in_the_text_runs(tmp_path):
    """Text that would write a file if executed is refused, and no file appears."""
    marker = tmp_path / "ran"
    attempts = [
        f"import os\nos.system('touch {marker}')\ndef train(w, g, lr):\n    return g\n",
        f"open({str(marker)!r}, 'w')\ndef train(w, g, lr):\n    return g\n",
        body(f"u = __import__('os').system('touch {marker}')"),
        f"def train(w, g, lr, b=open({str(marker)!r}, 'w')):\n    return g\n",
        f"@(lambda f: open({str(marker)!r}, 'w'))\ndef train(w, g, lr):\n    return g\n",
    ]
    for text in attempts:
        with pytest.raises(ProgramError):
            parse(text)
    assert not marker.exists()


def test_parse_file_errors_are_program_errors(tmp_path):
    with pytest.raises(ProgramError, match="no such program file"):
        parse_file(tmp_path / "missing.py")
    latin = tmp_path / "latin.py"
    latin.write_bytes("def train(w, g, lr):\n    u = sign(g)  # \xe9\n    return u\n".encode("latin-1"))
    with pytest.raises(ProgramError, match="cannot read program file"):
        parse_file(latin)
    bad = tmp_path / "bad.py"
    bad.write_text(body("u = sgn(g)"))
    with pytest.raises(ProgramError, match=r"line 2, col 9: .*bad\.py: unknown function"):
        parse_file(bad)
    with pytest.raises(ProgramError, match="cannot read program file"):
        parse_file(tmp_path)  # a directory


# --- properties ----------------------------------------------------------------------------------

ROBUST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _parse_or_program_error(text) -> None:
    """Parse ``text``; only a ProgramError may escape, and whatever parses must analyze
    (or fail as a ProgramError) and print back to text that parses to the same program."""
    try:
        program = parse(text)
    except ProgramError as exc:
        assert exc.reason
        return
    try:
        analyze(program)
    except ProgramError:
        return
    assert parse(print_program(program)) == program


@ROBUST
@given(st.text(max_size=200))
def test_random_text_raises_only_program_errors(text):
    _parse_or_program_error(text)


@ROBUST
@given(python_like_texts())
def test_python_like_token_soup_raises_only_program_errors(text):
    _parse_or_program_error(text)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_texts())
def test_mutated_programs_raise_only_program_errors(text):
    _parse_or_program_error(text)


@ROBUST
@given(program_texts(), st.data())
def test_every_error_in_a_broken_line_points_inside_the_text(text, data):
    """Truncating a valid program anywhere gives an error whose line exists in the text."""
    cut = data.draw(st.integers(0, len(text)))
    try:
        parse(text[:cut])
    except ProgramError as exc:
        if exc.line is not None:
            assert 1 <= exc.line <= max(1, text[:cut].count("\n") + 1)


def test_pythons_own_warnings_about_the_text_stay_quiet():
    """'1x' and '\\d' make ast.parse warn; a parser user sees a ProgramError or a program."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ProgramError, match="invalid decimal literal"):
            parse(body("u = g * 1x"))
        assert parse('def train(w, g, lr):\n    """a \\d"""\n    u = sign(g)\n    return u\n').doc == "a \\d"
