"""symopt show / simplify / diff / export through typer's CliRunner: what they print, their
exit status, and bad input as a message without a traceback."""

from __future__ import annotations

import importlib.util

import pytest
from typer.testing import CliRunner

import programs
from symbolic_opt import analyze, parse
from symbolic_opt.canonical import canonical_hash
from symbolic_opt.cli import app

from example_programs import LION_GUARDED

runner = CliRunner()


def invoke(*args: str):
    result = runner.invoke(app, list(args))
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def test_show_prints_program_live_part_state_math_and_code():
    result = invoke("show", "discovered")
    assert result.exit_code == 0
    out = result.stdout
    for section in ("program discovered", "live part", "state", "mathematics", "generated torch code"):
        assert section in out
    assert "dead: m = cosh(update)" in out
    assert "m: dead (written before it is read" in out and "v: carried" in out
    assert "v' = 0.996991*v" in out
    assert "def train_foreach(" in out
    assert f"canonical hash  {canonical_hash(programs.load('discovered'))}" in out


def test_show_takes_a_file_program_text_and_latex(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text(programs.source("lion"))
    assert invoke("show", str(path), "--backend", "eager").exit_code == 0
    text = "def train(w, g, lr):\n    u = sign(g)\n    u = u * lr\n    return u\n"
    result = invoke("show", text, "--latex")
    assert result.exit_code == 0 and "\\operatorname{sign}" in result.stdout
    assert "every statement and state variable is live" in result.stdout


def test_show_a_hash_from_a_run(tmp_path):
    pytest.importorskip("search.store")
    from search.evolution import Candidate
    from search.store import RunStore

    program = programs.load("lion")
    h = analyze(program).hash
    with RunStore(tmp_path / "run", create=True) as store:
        store.add_pending(Candidate(program, h, None, None, "seed", 0))
    result = invoke("show", h[:6], "--run", str(tmp_path / "run"))
    assert result.exit_code == 0 and "addcmul" in result.stdout
    missing = invoke("show", "ffffffff", "--run", str(tmp_path / "run"))
    assert missing.exit_code == 1 and "no program with hash" in missing.stderr
    no_run = invoke("show", "abc123", "--run", str(tmp_path / "nowhere"))
    assert no_run.exit_code == 1 and "no search run" in no_run.stderr


def test_simplify_discovered_prints_each_step_and_lions_form():
    result = invoke("simplify", "discovered")
    assert result.exit_code == 0
    out = result.stdout
    assert "[1] remove dead code and dead state" in out and "- state m" in out
    assert "+ v = interp(g, v, 0.996991)" in out
    assert "+ update = sign(m)" in out and "division guard" in out
    assert "result: 9 statements; state v" in out
    quiet = invoke("simplify", "discovered", "--quiet")
    assert analyze(parse(quiet.stdout)).carried == ("v",)


def test_simplify_with_a_task():
    pytest.importorskip("search.evaluate")
    result = invoke("simplify", "discovered", "--task", "quadratic", "--task", "teacher_student")
    assert result.exit_code == 0
    assert "[3] drop g = clip(g, lr)" in result.stdout and "[3] drop g = arcsin(g)" in result.stdout
    progress = [line for line in result.stdout.splitlines() if line.strip().startswith("stage 3:")]
    assert progress[0].strip().startswith("stage 3: the program on entering stage 3 scored")
    assert len(progress) >= 3 and "variant 2 scored" in progress[2]  # a line per program trained
    bad = invoke("simplify", "discovered", "--task", "imagenet")
    assert bad.exit_code == 1 and "unknown task imagenet" in bad.stderr


def test_diff_exit_status_and_counterexample():
    same = invoke("diff", "discovered", "def train(w, g, v, lr):\n    g = clip(g, lr)\n    g = arcsin(g)\n"
                  "    m = interp(g, v, 0.899)\n    v = interp(g, v, 0.996991)\n    u = sign(m)\n"
                  "    u = u + w * 0.4602\n    lr = lr * 0.0002\n    u = u * lr\n    return u, v\n")
    assert same.exit_code == 0 and "equivalent up to the 1e-8 division guard (sympy)" in same.stdout
    different = invoke("diff", "lion", "signum")
    assert different.exit_code == 1
    assert "different (numeric)" in different.stdout and "update differs at step" in different.stdout
    assert "A gives" in different.stdout
    assert invoke("diff", "lion", "nope").exit_code == 2
    exact = invoke("diff", "lion", programs.source("lion").replace("update", "u"))
    assert exact.exit_code == 0 and "equivalent (canonical)" in exact.stdout and "where it matters" not in exact.stdout


def test_diff_says_equal_up_to_the_division_guard_as_simplify_does():
    """simplify rewrites c / sqrt(c * c) into sign(c) up to the guard; diff agrees, exit 0."""
    simplified = invoke("simplify", LION_GUARDED)
    assert "x / |x| is sign(x)" in simplified.stdout and "division guard" in simplified.stdout
    result = invoke("diff", "lion", LION_GUARDED)
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    k = next(i for i, line in enumerate(lines) if line.startswith("equivalent"))
    assert lines[k].startswith("equivalent up to the 1e-8 division guard (sympy): update: equal up to the division guard")
    assert lines[k + 1].startswith("where it matters: they differ only where Abs(beta1*m - g*(beta1 - 1)) is small")
    assert "by more than rtol 1e-4 only where it is below ~1e-4" in lines[k + 1]
    assert "differs" not in result.stdout


def test_diff_tells_a_narrow_band_apart_with_a_counterexample():
    """Doubling sign(m)'s step where 0.5 |g| < |m| < 0.6 |g| (m a slow average): different."""
    a = "def train(w, g, m, lr):\n    m = interp(g, m, 0.999)\n    u = sign(m)\n    u = u * lr\n    return u, m\n"
    b = a.replace("    u = sign(m)\n", "    a = abs(m)\n    b = abs(g)\n    lo = b * 0.5\n    hi = b * 0.6\n"
                  "    s1 = a - lo\n    s1 = sign(s1)\n    s2 = hi - a\n    s2 = sign(s2)\n    k = s1 + s2\n"
                  "    k = k * 0.5\n    k = k + 1.0\n    u = sign(m)\n    u = u * k\n")
    result = invoke("diff", a, b)
    assert result.exit_code == 1 and "different (numeric)" in result.stdout
    values = {}
    for line in result.stdout.splitlines():
        key, _, value = line.strip().rpartition(" ")
        values[key.strip()] = value
    m = 0.999 * float(values["A: m in"]) + 0.001 * float(values["g"])
    assert 0.5 < abs(m) / abs(float(values["g"])) < 0.6
    assert float(values["B gives"]) == pytest.approx(2 * float(values["A gives"]))
    # 3 steps from zero state never reach the band and no state is drawn: sympy's kinks find it
    small = invoke("diff", a, b, "--trials", "1", "--steps", "3", "--draws", "0")
    assert small.exit_code == 1 and "(1 runs x 3 steps from zero state, " in small.stdout
    assert "update differs at step 1 from a point sympy chose" in small.stdout


def test_export_to_a_file_and_to_stdout(tmp_path):
    out = tmp_path / "discovered_opt.py"
    result = invoke("export", "discovered", "--to", "torch", "-o", str(out))
    assert result.exit_code == 0 and out.is_file()
    spec = importlib.util.spec_from_file_location("cli_exported", out)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert issubclass(module.Discovered, __import__("torch").optim.Optimizer)
    latex = invoke("export", "lion", "--to", "latex")
    assert latex.exit_code == 0 and latex.stdout.startswith("\\begin{aligned}")
    sym = invoke("export", "lion", "--to", "sympy")
    assert "update = " in sym.stdout
    assert invoke("export", "lion", "--to", "onnx").exit_code == 2  # typer: not a choice


@pytest.mark.parametrize("command", ["show", "simplify", "export"])
@pytest.mark.parametrize("bad, message", [
    ("no_such_program", "neither a program"),
    ("missing/file.py", "no such program file"),
    ("def train(w, g, lr):\n    u = sgn(g)\n    return u\n", "unknown function 'sgn'"),
    ("def train(w, g, lr):\n    import os\n    return g\n", "imports are not allowed"),
    ("def train(w, g, lr):\n    u = global_norm(lr)\n    return u\n", "must hold a value per parameter"),
    ("3fa2c1", "--run RUN_DIR"),
])
def test_bad_input_is_a_message_and_a_nonzero_exit(command, bad, message):
    extra = ["--to", "torch"] if command == "export" else []
    result = invoke(command, bad, *extra)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and message in result.stderr


def test_huge_expressions_are_not_written_out():
    """t = sin(t * t) + g, 25 times: about 2**27 terms written out; the tools stay quick."""
    text = "def train(w, g, lr):\n    t = g * 2.0\n" + "    t = t * t\n    t = sin(t)\n    t = t + g\n" * 25 + "    return t\n"
    shown = invoke("show", text)
    assert shown.exit_code == 0 and "too large to print" in shown.stdout
    assert invoke("export", text, "--to", "latex").exit_code == 1
    assert invoke("export", text, "--to", "torch").exit_code == 0
    assert invoke("diff", text, text.replace("2.0", "3.0")).exit_code == 1


def test_ops_lists_the_op_table_and_one_entry():
    from symbolic_opt.ops import OPS, SEARCH_OPS

    wide = CliRunner(env={"COLUMNS": "250"})
    everything = wide.invoke(app, ["ops"]).stdout
    searched = wide.invoke(app, ["ops", "--search"]).stdout
    assert all(f"│ {name} " in everything for name in OPS)
    assert "│ exact_div " in everything and "│ exact_div " not in searched
    assert all(f"│ {name} " in searched for name in SEARCH_OPS)
    one = invoke("ops", "interp")
    assert one.exit_code == 0 and "(1 - a) * x + a * y" in one.stdout and "torch.lerp" in one.stdout
    bad = invoke("ops", "interpp")
    assert bad.exit_code == 1 and "unknown function 'interpp'; did you mean interp" in bad.output
