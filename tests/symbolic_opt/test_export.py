"""export: the standalone torch file trains exactly like SymbolicOptimizer and needs only
torch; LaTeX and sympy exports say what the program computes."""

from __future__ import annotations

import ast
import copy
import importlib.util

import pytest
import sympy as sp
import torch

import programs
from mlp_training import make_mlp, max_diff, train_mlp
from symbolic_opt import SymbolicOptimizer, parse
from symbolic_opt.export import ExportError, export
from symbolic_opt.simplify import simplify
from symbolic_opt.symbolic import symbolic

ALLOWED_IMPORTS = {"__future__", "contextlib", "types", "typing", "torch"}


def _load(tmp_path, program, name: str, class_name: str = "Exported"):
    path = tmp_path / f"{name}.py"
    path.write_text(export(program, "torch", class_name=class_name))
    spec = importlib.util.spec_from_file_location(f"exported_{name}_{id(tmp_path)}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, path


PROGRAMS = {
    "lion": (programs.load("lion"), dict(lr=3e-4, wd=0.1)),
    "adamw": (programs.load("adamw"), dict(lr=1e-3)),
    "discovered_simplified": (simplify(programs.load("discovered")).program, dict(lr=3.0)),
}


@pytest.mark.parametrize("name", sorted(PROGRAMS))
@pytest.mark.parametrize("backend", ["foreach", "eager"])
def test_exported_optimizer_trains_like_the_compiled_one(tmp_path, name, backend, one_thread):
    program, kwargs = PROGRAMS[name]
    module, _ = _load(tmp_path, program, name)
    ours, losses = train_mlp(lambda ps: module.Exported(ps, foreach=backend == "foreach", **kwargs), steps=150)
    theirs, _ = train_mlp(lambda ps: SymbolicOptimizer(ps, program, backend=backend, **kwargs), steps=150)
    assert max_diff(ours, theirs) <= 1e-6
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_the_file_imports_torch_and_the_standard_library_only(tmp_path, name):
    _, path = _load(tmp_path, PROGRAMS[name][0], name)
    tree = ast.parse(path.read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imported <= ALLOWED_IMPORTS, imported
    assert "symbolic_opt" not in {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}


def test_param_groups_state_dict_and_maximize(tmp_path, one_thread):
    program = programs.load("adamw")
    module, _ = _load(tmp_path, program, "adamw_groups")

    def groups(model):
        ps = list(model.parameters())
        return [{"params": ps[:2], "lr": 1e-3, "beta1": 0.8}, {"params": ps[2:], "lr": 3e-4, "wd": 0.1}]

    model_a, x, y = make_mlp(1)
    model_b = copy.deepcopy(model_a)
    opt_a = module.Exported(groups(model_a), lr=1e-3, maximize=False)
    opt_b = SymbolicOptimizer(groups(model_b), program, lr=1e-3)
    for step in range(30):
        for model, opt in ((model_a, opt_a), (model_b, opt_b)):
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            opt.step()
        if step == 14:  # a checkpoint round trip halfway
            saved = copy.deepcopy(opt_a.state_dict())
            opt_a = module.Exported(groups(model_a), lr=1e-3)
            opt_a.load_state_dict(saved)
    assert max_diff(list(model_a.parameters()), list(model_b.parameters())) <= 1e-6
    assert float(opt_a.state[next(iter(model_a.parameters()))]["step"]) == 30
    with pytest.raises(TypeError, match="unknown hyperparameter"):
        module.Exported(model_a.parameters(), beta3=0.1)


def test_maximize_and_closure(tmp_path):
    module, _ = _load(tmp_path, programs.load("lion"), "lion_max")
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = module.Exported([p], lr=0.1, maximize=True)

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    assert float(opt.step(closure).detach()) == 5.0
    assert torch.equal(p.detach(), torch.tensor([1.1, -2.1]))


def test_host_scalars_follow_ieee_without_numpy(tmp_path):
    module, _ = _load(tmp_path, programs.load("adamw"), "adamw_ieee")
    f = module.np.float64
    assert f(1.0) / f(0.0) == float("inf")
    assert (f(0.0) / f(0.0)) != (f(0.0) / f(0.0))  # nan
    assert f(-8.0) ** f(0.5) != f(-8.0) ** f(0.5)
    assert f(10.0) ** f(400.0) == float("inf")
    assert module.np.power(f(0.9), f(2.0)) == pytest.approx(0.81)


def test_latex_and_sympy_exports(tmp_path):
    lion = programs.load("lion")
    tex = export(lion, "latex")
    assert "\\begin{aligned}" in tex and "\\operatorname{sign}" in tex
    text = export(programs.load("discovered"), "sympy")
    namespace: dict = {}
    exec(compile(text, "exported_sympy", "exec"), namespace)  # noqa: S102 - our own output, in a test
    form = symbolic(programs.load("discovered"))
    assert sp.simplify(namespace["update"] - form.update) == 0
    assert sp.simplify(namespace["state"]["v"] - form.state["v"]) == 0


def test_group_reductions_export(tmp_path, one_thread):
    program = parse("def train(w, g, m, lr):\n    n = global_norm(g)\n    m = interp(g, m, 0.9)\n    u = m / n\n    u = u * lr\n    return u, m\n")
    module, _ = _load(tmp_path, program, "normed")
    ours, _ = train_mlp(lambda ps: module.Exported(ps, lr=1e-2), steps=40)
    theirs, _ = train_mlp(lambda ps: SymbolicOptimizer(ps, program, lr=1e-2), steps=40)
    assert max_diff(ours, theirs) <= 1e-6


def test_bad_format_and_class_name():
    with pytest.raises(ExportError, match="unknown export format"):
        export(programs.load("lion"), "onnx")
    with pytest.raises(ExportError, match="class name"):
        export(programs.load("lion"), "torch", class_name="not a name")
    assert "class Discovered(torch.optim.Optimizer)" in export(programs.load("discovered"), "torch", class_name="Discovered")
