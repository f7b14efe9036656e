"""Take a program away: a standalone torch optimizer, LaTeX, or sympy source.

    export(program, "torch", class_name="Discovered")   # one .py file, imports torch only
    export(program, "latex")                             # an aligned block: u = ..., v' = ...
    export(program, "sympy")                             # Python source building the expressions

The torch file is a ``torch.optim.Optimizer`` (param groups, per-parameter state, closure,
``maximize``, ``state_dict``) whose step runs the very code ``compile_program`` generates
for the eager and the foreach backends, so it gives the same numbers as ``SymbolicOptimizer``
(``foreach=True`` matches the default backend). What that code calls besides torch goes into
the file: the runtime helpers (``runtime.py``, pure torch) and, in place of numpy, a float64
host scalar that gives inf and nan instead of raising (``_F64``), as numpy's float64 does,
with the few host-side math functions it needs computed by torch in float64.
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap

import sympy as sp

from . import ops, runtime
from .analysis import analyze
from .compiler import compile_program
from .ir import Program
from .kinds import Kind
from .printer import print_program
from .symbolic import symbolic, tree_size

FORMATS = ("torch", "latex", "sympy")
MAX_TREE = 20_000
"""The most expression nodes a LaTeX or sympy export writes out."""

_HOST_FUNCTIONS = ops.HOST_FUNCTIONS
"""numpy functions the op table's host forms use -> the torch function computing them on
float64 0-d tensors (the exported file has no numpy): each op entry names its own."""


class ExportError(ValueError):
    """The program cannot be exported in the asked format."""


def export(program: Program, to: str, *, class_name: str | None = None) -> str:
    """``program`` as text in format ``to`` (``torch``, ``latex`` or ``sympy``)."""
    analyze(program)
    if to in ("latex", "sympy") and tree_size(program) > MAX_TREE:
        raise ExportError(f"the expressions have {tree_size(program)} terms written out: too large for {to}")
    if to == "torch":
        return export_torch(program, class_name or _class_name(program.name))
    if to == "latex":
        return symbolic(program).latex() + "\n"
    if to == "sympy":
        return export_sympy(program)
    raise ExportError(f"unknown export format {to!r}; choose one of {', '.join(FORMATS)}")


def _class_name(name: str) -> str:
    words = re.split(r"[^A-Za-z0-9]+", name)
    out = "".join(w[:1].upper() + w[1:] for w in words if w)
    return out if out.isidentifier() and out != "Train" else "ProgramOptimizer"


# --- torch ------------------------------------------------------------------------------------
def export_torch(program: Program, class_name: str = "ProgramOptimizer") -> str:
    """A standalone optimizer module (module docstring)."""
    if not class_name.isidentifier():
        raise ExportError(f"{class_name!r} is not a Python class name")
    eager = compile_program(program, "eager")
    foreach = compile_program(program, "foreach")
    sources = {"eager": eager.source, "foreach": foreach.source}
    used = set(re.findall(r"\bnp\.(\w+)", eager.source + foreach.source)) - {"float64", "errstate"}
    unknown = used - set(_HOST_FUNCTIONS)
    if unknown:
        raise ExportError(f"generated code uses numpy's {', '.join(sorted(unknown))}, which the export cannot replace")
    kinds = {s: ("tensor" if eager.analysis.state_kinds[s] is Kind.TENSOR else "scalar") for s in eager.state}
    header = _header(program, class_name)
    if re.search(r"\bmath\.", eager.source + foreach.source):
        header = header.replace("import contextlib\n", "import contextlib\nimport math\n")
    parts = [
        header,
        _HOST_SHIM,
        "".join(f"    {n} = staticmethod(_host({_HOST_FUNCTIONS[n]}))\n" for n in sorted(used)),
        "\n\n" + _runtime_source(),
        "\n\n# --- the step, as symbolic_opt's compiler generates it ---------------------------------\n\n",
        sources["eager"].replace(f"def {eager.fn.__name__}(", "def _step_eager(", 1),
        "\n\n",
        sources["foreach"].replace(f"def {foreach.fn.__name__}(", "def _step_foreach(", 1),
        _class_source(program, class_name, eager.state, kinds, eager.scalars, foreach.scalars),
    ]
    text = "".join(parts)
    ast.parse(text)  # our own output must be valid Python
    return text


def _header(program: Program, class_name: str) -> str:
    if tree_size(program) > MAX_TREE:
        math_lines = "    (too large to write out)"
    else:
        math_lines = "\n".join("    " + line for line in symbolic(program).text().splitlines())
    listing = textwrap.indent(print_program(program, doc=False), "    ")
    return f'''"""{class_name}: an optimizer exported by symbolic_opt. Depends on torch only.

The program (paper syntax; w <- w - update each step, state starts at zero):

{listing}
As mathematics (primes are next values; epsilon_div is the 1e-8 guard of '/'):

{math_lines}

    from this_file import {class_name}
    opt = {class_name}(model.parameters(), lr=1e-3)
"""

from __future__ import annotations

import contextlib
import types
from typing import Sequence

import torch

'''


_HOST_SHIM = '''
# --- host scalars: float64 with IEEE results (inf, nan), never an exception -------------------


class _F64(float):
    """A host scalar that behaves like numpy's float64: 1/0 is inf, 0/0 and (-8)**0.5 are nan."""

    def __getitem__(self, key):  # numpy's x[()]
        return self


def _ieee(name, fallback):
    plain = getattr(float, name)

    def method(self, *other):
        try:
            out = plain(self, *other)
        except (ZeroDivisionError, OverflowError, ValueError):
            out = fallback(*(torch.tensor(float(x), dtype=torch.float64) for x in (self, *other))).item()
        if out is NotImplemented:
            return out
        return _F64(float("nan") if isinstance(out, complex) else out)

    return method


for _name, _fallback in {
    "__add__": torch.add, "__radd__": torch.add, "__sub__": torch.sub, "__rsub__": lambda a, b: b - a,
    "__mul__": torch.mul, "__rmul__": torch.mul, "__truediv__": torch.div, "__rtruediv__": lambda a, b: b / a,
    "__pow__": torch.pow, "__rpow__": lambda a, b: torch.pow(b, a), "__neg__": torch.neg, "__abs__": torch.abs,
}.items():
    setattr(_F64, _name, _ieee(_name, _fallback))


def _host(fn):
    """``fn`` (a torch function) on host numbers, in float64; a float64 result as _F64."""

    def call(*args):
        out = fn(*(torch.tensor(a) if isinstance(a, bool) else torch.tensor(float(a), dtype=torch.float64)
                   for a in args))
        return _F64(out.item()) if out.dtype.is_floating_point else out.item()

    return call


class np:  # noqa: N801 - the generated step calls numpy by this name; this file has no numpy
    float64 = _F64
    errstate = staticmethod(lambda **_: contextlib.nullcontext())
'''


def _runtime_source() -> str:
    """``runtime.py`` from its first definition on (no docstring, no imports), and ``_rt``,
    the namespace the generated step calls it through."""
    source = inspect.getsource(runtime)
    tree = ast.parse(source)
    body = [n for n in tree.body if not isinstance(n, (ast.Import, ast.ImportFrom))]
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    if any(isinstance(n, (ast.Import, ast.ImportFrom)) and n.lineno > body[0].lineno for n in tree.body):
        raise ExportError("runtime.py imports after its first definition; the export cannot inline it")
    kept = "\n".join(source.splitlines()[body[0].lineno - 1:])
    functions = [n.name for n in body if isinstance(n, ast.FunctionDef)]
    namespace = ", ".join(f"{n}={n}" for n in functions)
    return (
        "# --- runtime helpers (symbolic_opt/runtime.py) ---------------------------------------------\n\n"
        + kept + f"\n\n\n_rt = types.SimpleNamespace({namespace})\n"
    )


def _class_source(program: Program, class_name: str, state, kinds, eager_scalars, foreach_scalars) -> str:
    hyper = dict(program.defaults)
    return f'''

# --- the optimizer ------------------------------------------------------------------------------


class {class_name}(torch.optim.Optimizer):
    """The program above as a torch optimizer.

    Args:
        params: parameters or param groups.
        lr: the learning rate the program receives as ``lr``.
        foreach: one multi-tensor call per statement (default), else a loop over tensors.
        maximize: ascend instead of descend.
        **hyperparams: the program's hyperparameters ({", ".join(f"{k}={v!r}" for k, v in hyper.items()) or "none"}).
    """

    STATE = {tuple(state)!r}
    STATE_KINDS = {kinds!r}
    HYPERPARAMETERS = {hyper!r}
    USES_STEP = {program.uses_step!r}
    _SCALARS = {{"eager": {tuple(eager_scalars)!r}, "foreach": {tuple(foreach_scalars)!r}}}

    def __init__(self, params, lr: float = 1e-3, *, foreach: bool = True, maximize: bool = False, **hyperparams):
        unknown = set(hyperparams) - set(self.HYPERPARAMETERS)
        if unknown:
            raise TypeError(f"unknown hyperparameter(s) {{sorted(unknown)}}; known: {{sorted(self.HYPERPARAMETERS)}}")
        if not 0.0 <= lr:
            raise ValueError(f"invalid learning rate: {{lr}}")
        defaults = dict(lr=lr, foreach=foreach, maximize=maximize, **{{**self.HYPERPARAMETERS, **hyperparams}})
        super().__init__(params, defaults)

    def _init_state(self, p: torch.Tensor, state: dict) -> None:
        if self.USES_STEP:
            state["step"] = torch.tensor(0.0, dtype=torch.float32)
        for name in self.STATE:
            if self.STATE_KINDS[name] == "tensor":
                state[name] = torch.zeros_like(p, memory_format=torch.preserve_format)
            else:
                state[name] = torch.zeros((), dtype=p.dtype, device=p.device)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            buckets: dict[tuple, list[torch.Tensor]] = {{}}
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("{class_name} does not support sparse gradients")
                state = self.state[p]
                if not state:
                    self._init_state(p, state)
                step = None
                if self.USES_STEP:
                    state["step"] += 1
                    step = float(state["step"])
                buckets.setdefault((step, p.device, p.dtype), []).append(p)
            backend = "foreach" if group["foreach"] else "eager"
            fn = _step_foreach if group["foreach"] else _step_eager
            for (step, _device, _dtype), params in buckets.items():
                grads = [p.grad for p in params]
                if group["maximize"]:
                    grads = torch._foreach_neg(grads)
                states = [[self.state[p][name] for p in params] for name in self.STATE]
                scalars = {{"lr": group["lr"], "step": step, **{{h: group[h] for h in self.HYPERPARAMETERS}}}}
                fn(params, grads, *states, **{{k: scalars[k] for k in self._SCALARS[backend]}})
        return loss
'''


# --- sympy ------------------------------------------------------------------------------------
class _ExactFloats(sp.printing.str.StrPrinter):
    """sympy's str printer, with each Float as the shortest text of its float64 value."""

    def _print_Float(self, expr):
        return repr(float(expr))


def export_sympy(program: Program) -> str:
    """Python source defining the program's sympy expressions: ``update`` and ``state``."""
    form = symbolic(program)
    exprs = [form.update, *form.state.values()]
    symbols = sorted(set().union(*(e.free_symbols for e in exprs)), key=str)
    functions = sorted({f.func.__name__ for e in exprs for f in e.atoms(sp.core.function.AppliedUndef)})
    printer = _ExactFloats()
    lines = [
        f'"""{program.name} as sympy expressions (exported by symbolic_opt): the update and each state\'s next',
        'value, in terms of the inputs, hyperparameters and the incoming state; epsilon_div is the',
        '1e-8 that guarded division adds to its denominator."""',
        "",
        "from sympy import *  # noqa: F401,F403",
        "",
    ]
    for s in symbols:
        assumption = "positive=True" if s.is_positive else "real=True"
        lines.append(f"{s.name} = Symbol({s.name!r}, {assumption})")
    for f in functions:
        lines.append(f"{f} = Function({f!r})")
    lines += ["", f"update = {printer.doprint(form.update)}", "state = {"]
    lines += [f"    {name!r}: {printer.doprint(e)}," for name, e in form.state.items()]
    lines.append("}")
    return "\n".join(lines) + "\n"
