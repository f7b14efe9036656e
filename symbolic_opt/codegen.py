"""Generate a step function's Python source from a ``Plan`` (``lowering.py``).

The generated function updates parameters and state in place::

    def step(w_list, g_list, m_list, *, lr, beta1, beta2, wd): ...

and reads like hand-written torch code, so ``compiled.source`` is worth printing.
Three emitters share the planning below and differ in how one statement is written:

* ``eager``: a loop over the parameter tensors, one torch call per statement per tensor,
  scalars of the group on the host (Python floats, no device work);
* ``foreach``: one ``torch._foreach_*`` call per statement for the whole group (ops without
  a foreach form fall back to a comprehension);
* ``fused``: the eager form with every scalar a 0-d tensor, for ``torch.compile``: a new
  learning rate is new data, not a new program, so it never recompiles;
* ``tensor``: the same code run as plain Python, with every scalar a tensor that may have
  any shape broadcasting against the parameters: ``lr`` of shape ``[R, 1]`` steps ``R``
  models stacked as rows of one ``[R, N]`` tensor, each at its own learning rate (the
  search trains a learning-rate grid that way). Scalars are then computed in the
  parameters' dtype, not in float64 on the host.

**Buffers.** Every statement writes a fresh tensor unless it can overwrite one nobody reads
afterwards (in execution order, the update application included):

* a temporary at its last read (``update = sign(update)`` becomes ``update.sign_()``);
* a state variable's buffer: the chain of statements that ends in the variable's next value
  is computed in its buffer when the chain starts by reading the old value in place and the
  old value is not read afterwards (``m = interp(g, m, b2)`` becomes ``m.lerp_(g, 1 - b2)``).
Otherwise the next value is copied into the buffer at the end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import ops
from .analysis import Analysis, Ref
from .kinds import Kind
from .lowering import W, Coef, Plan, Term
from .ops import Rule

BACKENDS = ("eager", "foreach", "fused", "tensor")
TENSOR_SCALARS = frozenset({"fused", "tensor"})
"""Backends whose scalars are tensors (so they are computed on the device, not the host)."""
_GLOBALS = frozenset({"torch", "np", "_rt", "math", "zip", "range", "list", "float", "abs", "len"})
"""Names generated code reads from its namespace or the builtins (the op table's templates
included). No local may take them: a hyperparameter called ``torch`` must not hide the module."""
_FIXED = frozenset({"w", "g", "w_list", "g_list", "lr", "step"})


def literal(value: float) -> str:
    value = float(value)
    if math.isnan(value):
        return "float('nan')"
    if math.isinf(value):
        return "float('inf')" if value > 0 else "-float('inf')"
    return repr(value)


def fold_constant(op: ops.Op, values: list[float]) -> float:
    """Evaluate an op on constants at compile time, with the op's own host template.

    The text evaluated is our own: an op table template filled with float literals.
    """
    text = op.host.format(*(f"np.float64({literal(v)})" for v in values))
    with np.errstate(all="ignore"):
        return float(eval(text, {"np": np, "float": float, "abs": abs}))  # noqa: S307 - our own template


@dataclass
class Generated:
    source: str
    function_name: str
    state: tuple[str, ...]
    scalars: tuple[str, ...]
    graph_function: str | None = None
    """The function ``torch.compile`` should compile (fused backend): ``function_name`` itself,
    or a function it calls after copying, outside the graph, the values it must keep."""


def generate(plan: Plan, backend: str, function_name: str = "step") -> Generated:
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    emitter = (_ForeachEmitter if backend == "foreach" else _LoopEmitter)(plan, backend, function_name)
    return emitter.generate()


class _Emitter:
    def __init__(self, plan: Plan, backend: str, function_name: str):
        self.plan = plan
        self.a: Analysis = plan.analysis
        self.program = self.a.program
        self.backend = backend
        self.function_name = function_name
        self.host_scalars = backend not in TENSOR_SCALARS
        self.lines: list[str] = []
        self.indent = 1
        self.used_names: set[str] = set(_GLOBALS | _FIXED)
        self.folded: dict[Ref, float] = {}
        self.names: dict[Ref, str] = {}
        self.carried = self.a.carried
        self.scalars = ("lr",) + (("step",) if self.program.uses_step else ()) + tuple(
            h for h, _ in self.program.hyperparams
        )
        self._name_program_variables()

    # --- names ----------------------------------------------------------------------------
    def _name_program_variables(self) -> None:
        """Identifiers for the program's own names in generated code.

        Program names are any identifiers, generated code has names of its own (``torch``,
        ``w_list``, a state's ``m_list``...), and Python scopes are flat: a state variable
        ``m_list`` beside a state ``m`` would overwrite ``m``'s list in a loop. So every
        program name gets an identifier no other name has: its own where free, else a fresh
        one. Scalars are keyword arguments named as in the program (callers pass
        ``beta1=...``); one whose name is taken (a hyperparameter ``torch`` or ``g_list``)
        arrives through ``**kwargs`` and is bound to a fresh local first thing.
        """
        self.scalar_code: dict[str, str] = {}
        taken = [name for name in self.scalars if name not in ("lr", "step") and name in self.used_names]
        for name in self.scalars:
            if name not in taken:
                self.used_names.add(name)
                self.scalar_code[name] = name
        for name in taken:
            self.scalar_code[name] = self.fresh(f"{name}_")
        self.kwargs_name = self.fresh("_kwargs") if taken else None
        self.state_code: dict[str, str] = {s: self.fresh_pair(s) for s in self.carried}

    def signature(self, positional: list[str]) -> str:
        """``def step(w_list, g_list, m_list, *, lr, beta1, ...):`` (module docstring)."""
        keyword = [s for s in self.scalars if self.scalar_code[s] == s]
        if self.kwargs_name:
            # positional-only, so that a scalar called `g_list` lands in **kwargs
            return f"def {self.function_name}({', '.join(positional)}, /, *, {', '.join(keyword)}, **{self.kwargs_name}):"
        return f"def {self.function_name}({', '.join(positional)}, *, {', '.join(keyword)}):"

    def bind_renamed_scalars(self) -> list[str]:
        """The first lines of the body: scalars that arrived through ``**kwargs``."""
        return [
            f"    {code} = {self.kwargs_name}[{name!r}]"
            for name, code in self.scalar_code.items()
            if code != name
        ]

    def bind_input_names(self) -> None:
        for name, code in self.scalar_code.items():
            self.names[Ref("input" if name in ("lr", "step") else "hyper", name)] = code
        self.names[W] = "w"
        self.names[Ref("input", "g")] = "g"
        for s in self.carried:
            self.names[Ref("state", s)] = self.state_code[s]

    def fresh_pair(self, base: str) -> str:
        """A fresh name ``x`` whose ``x_list`` is free too (a loop variable and its list)."""
        base = base if base.isidentifier() else "v"
        name, k = base, 0
        while name in self.used_names or f"{name}_list" in self.used_names:
            k += 1
            name = f"{base}_{k}"
        self.used_names.update((name, f"{name}_list"))
        return name

    def fresh(self, base: str) -> str:
        base = base if base.isidentifier() else "v"
        name, k = base, 0
        while name in self.used_names:
            k += 1
            name = f"{base}_{k}"
        self.used_names.add(name)
        return name

    def target(self, i: int) -> str:
        return self.program.body[i].target.lstrip("_") or "t"

    def ref_text(self, ref: Ref) -> str:
        """The expression for a value in the current context."""
        if ref.source == "const":
            return literal(ref.key)
        if ref in self.folded:
            return literal(self.folded[ref])
        return self.names[ref]

    def is_number(self, ref: Ref) -> bool:
        """Whether the value is a host number here (not a tensor)."""
        if ref.source == "const" or ref in self.folded:
            return True
        return self.host_scalars and self.a.kind(ref) is Kind.SCALAR

    # --- emitting -----------------------------------------------------------------------
    def emit(self, line: str) -> None:
        self.lines.append("    " * self.indent + line)

    def comment(self, i: int) -> str:
        from .printer import format_statement

        return format_statement(self.program.body[i])

    def torch_expr(self, op: ops.Op, args: list[str], refs: list[Ref], like: str | None) -> str:
        """``op``'s torch template, wrapping numbers where torch insists on tensors."""
        return op.torch.format(*self.wrap_numbers(op, args, refs, like))

    def wrap_numbers(
        self, op: ops.Op, args: list[str], refs: list[Ref], like: str | None, start: int = 0, template: str = ""
    ) -> list[str]:
        """``args`` with the numbers at ``op.tensor_args`` positions (from ``start``) as 0-d tensors.
        In-place forms pass ``start=1`` (argument 0 is the buffer overwritten) and their template:
        an argument it passes by keyword (``clamp_(min={1})``) takes numbers as they are."""
        args = list(args)
        for pos in op.tensor_args:
            if pos >= start and self.is_number(refs[pos]) and f"={{{pos}}}" not in template:
                anchor = like or next(a for a, r in zip(args, refs) if not self.is_number(r))
                args[pos] = f"_rt.scalar_like({args[pos]}, {anchor})"
        return args

    # --- host scalars -----------------------------------------------------------------------
    def emit_host(self) -> None:
        """Scalar statements, once per step: constants folded, the rest on the host
        (eager, foreach) or as 0-d tensors (fused)."""
        pending = []
        for i in self.plan.host:
            refs = self.a.args[i]
            op = ops.OPS[self.program.body[i].op]
            if all(r.source == "const" or r in self.folded for r in refs):
                self.folded[Ref("stmt", i)] = fold_constant(op, [self._const_value(r) for r in refs])
            else:
                pending.append(i)
        self.decay_name = None
        host_decay = bool(self.plan.decay) and all(self.coef_host(c) for c in self.plan.decay)
        if not pending and not host_decay:
            return
        if self.host_scalars:
            self.emit("with np.errstate(all='ignore'):  # scalars follow IEEE: inf and nan, never an exception")
            self.indent += 1
            for code in self.scalar_code.values():
                self.emit(f"{code} = np.float64({code})")
        for i in pending:
            refs = self.a.args[i]
            op = ops.OPS[self.program.body[i].op]
            args = [self.ref_text(r) for r in refs]
            name = self.fresh(self.target(i))
            if self.host_scalars:
                expr = op.host.format(*args)
            else:
                expr = self.torch_expr(op, args, list(refs), like="w_list[0]") if op.torch else op.host.format(*args)
            self.emit(f"{name} = {expr}  # {self.comment(i)}")
            self.names[Ref("stmt", i)] = name
        if host_decay:
            self.decay_name = self.fresh("decay")
            self.emit(f"{self.decay_name} = {self.decay_expr()}  # decoupled weight decay: w <- w * (1 - A)")
        if self.host_scalars:
            self.indent -= 1

    def _const_value(self, ref: Ref) -> float:
        return float(ref.key) if ref.source == "const" else self.folded[ref]

    # --- the update application ---------------------------------------------------------------
    def coef_host(self, coef: Coef) -> bool:
        return all(self.is_number(f) for f in coef.factors)

    def coef_text(self, coef: Coef) -> str:
        text = " * ".join(self.ref_text(f) for f in coef.factors) or "1.0"
        return text

    def decay_expr(self) -> str:
        parts = []
        for c in self.plan.decay:
            text = self.coef_text(c)
            parts.append(("+ " if c.negate else "- ") + (text if len(c.factors) <= 1 or not c.negate else f"({text})"))
        return "1 " + " ".join(parts)

    def alpha(self, term: Term) -> str:
        """The ``alpha`` / ``value`` of ``w <- w + alpha * X`` for a host coefficient."""
        text = self.coef_text(term.coef)
        if term.coef.negate:
            return text
        return f"-{text}" if len(term.coef.factors) <= 1 else f"-({text})"

    # --- buffers ------------------------------------------------------------------------------
    def plan_buffers(self) -> None:
        """Decide which statements overwrite a buffer in place (module docstring)."""
        self.inplace: dict[int, tuple[int, str]] = {}  # statement -> (position, kind of reuse)
        self.in_state: dict[int, str] = {}  # statement -> state whose buffer holds its result
        claimed: set[int] = set()
        for s in self.carried:
            chain = self._state_chain(s, claimed)
            if chain:
                for i, pos in chain:
                    self.inplace[i] = (pos, "state")
                    self.in_state[i] = s
                    claimed.add(i)
        for i in self.plan.device:
            if i in self.inplace or i in self.plan.at_barrier or self.a.kinds[i] is not Kind.TENSOR:
                continue
            for pos in self.inplace_positions(i):
                v = self.a.args[i][pos]
                if self._reusable_temp(v, i):
                    self.inplace[i] = (pos, "temp")
                    break

    def _state_chain(self, s: str, claimed: set[int]) -> list[tuple[int, int]] | None:
        out = self.a.state_out[s]
        old = Ref("state", s)
        if out.source != "stmt" or self.a.state_kinds[s] is not Kind.TENSOR:
            return None
        chain: list[tuple[int, int]] = []
        cur = out
        while True:
            i = cur.key
            if i in claimed or i not in self.plan.position or self.a.kinds[i] is not Kind.TENSOR:
                return None
            if i in self.plan.at_barrier:
                return None
            positions = self.inplace_positions(i)
            step = next(((pos, None) for pos in positions if self.a.args[i][pos] == old), None)
            for pos in positions if step is None else ():
                v = self.a.args[i][pos]
                if (
                    v.source == "stmt"
                    and v.key in self.plan.position
                    and self.plan.reads.get(v, []) == [self.plan.position[i]]
                    and self.a.kinds[v.key] is Kind.TENSOR
                    and v not in self.clone_sources
                ):
                    step = (pos, v)
                    break
            if step is None and self._writes_out(i, s):
                step = (OUT, None)
            if step is None:
                return None
            chain.append((i, step[0]))
            if step[1] is None:
                start = self.plan.position[i]
                later = [p for p in self.plan.reads.get(old, []) if p > start]
                if later:
                    return None
                return chain
            cur = step[1]

    def _writes_out(self, i: int, s: str) -> bool:
        """Whether statement ``i`` may write state ``s``'s next value straight into its buffer
        with ``out=`` (eager backend), saving the copy at the end: its template is one torch
        call, and nothing but the write-back reads the value (so no later statement sees it
        in the buffer's dtype rather than its own). Old values of ``s`` read after ``i`` are
        checked by the caller."""
        ref = Ref("stmt", i)
        return (
            self.backend == "eager"
            and _out_template(ops.OPS[self.program.body[i].op]) is not None
            and self.plan.reads.get(ref, []) == [self.plan.end]
            and all(t.value != ref and ref not in t.operands and ref not in t.coef.factors for t in self.plan.terms)
            and not any(ref in c.factors for c in self.plan.decay)
            and list(self.a.state_out.values()).count(ref) == 1
        )

    def _reusable_temp(self, v: Ref, i: int) -> bool:
        if v.source != "stmt" or v.key not in self.plan.position or v.key in self.in_state:
            return False
        if self.a.kinds[v.key] is not Kind.TENSOR or v in self.clone_sources:
            return False
        return self.plan.last_read(v) == self.plan.position[i]

    def inplace_positions(self, i: int) -> list[int]:
        """Argument positions whose buffer statement ``i`` can overwrite in this backend."""
        op = ops.OPS[self.program.body[i].op]
        refs = self.a.args[i]
        positions = []
        for pos in op.overwrites:
            if pos >= len(refs) or self.a.kind(refs[pos]) is not Kind.TENSOR:
                continue
            if pos == 1 and not (op.commutative or (op.mirror and self.can_mirror(refs))):
                continue
            if self.inplace_template(op, self.reorder(op, pos, [str(p) for p in range(len(refs))], refs)[1]):
                positions.append(pos)
        return positions

    def tiled(self) -> bool:
        """Whether the step may run on pieces of the tensors (``_rt.chunks`` / ``_rt.tiles``):
        when every device statement is elementwise on tensors shaped like w, so that a piece of
        each input gives the same piece of each result. Then temporaries are a piece's size,
        allocated from memory the allocator already holds (a whole 16M-element temporary is
        fresh pages every step: page faults cost more than the arithmetic; ``runtime.CHUNK``
        says why pieces are few and large). Not with tensor scalars (torch.compile makes one pass
        anyway; an ``[R, 1]`` scalar does not cut into pieces of a row), nor for
        group or per-tensor reductions, per-tensor state, or write-backs that need copies."""
        if not self.host_scalars or self.plan.at_barrier or self.plan.end_level != 0 or self.clone_sources:
            return False
        if any(self.a.state_kinds[s] is not Kind.TENSOR for s in self.carried):
            return False
        for i in self.plan.device:
            if ops.OPS[self.program.body[i].op].rule is not Rule.MAP or self.a.kinds[i] is not Kind.TENSOR:
                return False
        refs = [r for i in self.plan.device for r in self.a.args[i]] + list(self.plan.end_reads)
        return all(self.a.kind(r) in (Kind.SCALAR, Kind.TENSOR) for r in refs)

    def _emit_free(self, names: list[str]) -> None:
        """``del`` a loop body's temporaries before the next iteration allocates its own: the
        allocator then hands the same memory back. Freed only after the next allocation, the
        top of glibc's heap is trimmed and regrown every time, each page a fault."""
        names = [n for n in dict.fromkeys(names) if n not in self.freed]
        if names and self.backend != "fused":  # a compiled graph plans its own memory
            self.emit(f"del {', '.join(names)}  # free before the next piece allocates")

    def _free_dead(self, i: int) -> None:
        """After statement ``i``, ``del`` the loop temporaries it was the last to read (so
        that memory is free for the next allocation, as in ``_emit_free``)."""
        if not self.tiled():
            return
        result = self.names.get(Ref("stmt", i))
        for ref in dict.fromkeys(self.a.args[i]):
            name = self.names.get(ref)
            if (
                ref.source == "stmt"
                and name in self.loop_temps
                and name != result
                and name not in self.freed
                and self.plan.last_read(ref) == self.plan.position[i]
            ):
                self.emit(f"del {name}")
                self.freed.add(name)

    def can_mirror(self, refs: tuple[Ref, ...]) -> bool:
        """Whether the op table's mirror text (``1 - {2}``) can be written for these arguments:
        it is arithmetic on one value, so on a number, a 0-d tensor or a tensor, not a list."""
        return True

    def reorder(self, op: ops.Op, pos: int, args: list[str], refs: list[Ref]) -> tuple[list[str], list[Ref]]:
        """Arguments reordered so that position ``pos`` comes first (swap or mirror)."""
        if pos == 0:
            return args, refs
        if op.commutative:
            return [args[1], args[0], *args[2:]], [refs[1], refs[0], *refs[2:]]
        if op.mirror:
            mirrored = [part.strip() for part in _split_args(op.mirror.format(*args))]
            return mirrored, [refs[1], refs[0], *refs[2:]]
        return args, refs

    # --- state written back ---------------------------------------------------------------------
    @property
    def clone_sources(self) -> set[Ref]:
        """Old values read by the write-back that something overwrites first: copied up front."""
        if not hasattr(self, "_clone_sources"):
            out = set()
            for s in self.carried:
                r = self.a.state_out[s]
                if r == W or (r.source == "state" and r.key != s and self.a.state_out[r.key] != r):
                    out.add(r)
            self._clone_sources = out
        return self._clone_sources


OUT = -1
"""In ``_Emitter.inplace``, the position of a statement that writes a state's buffer with ``out=``."""


def _out_template(op: ops.Op) -> str | None:
    """``op``'s torch template when it is one ``torch.*`` call, which then takes ``out=``."""
    template = op.torch
    if not template or not template.startswith("torch.") or not template.endswith(")"):
        return None
    depth = 0
    for k, ch in enumerate(template):
        depth += ch == "("
        depth -= ch == ")"
        if ch == ")" and depth == 0:
            return template if k == len(template) - 1 else None
    return None


def _split_args(text: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += ch in "([{"
        depth -= ch in ")]}"
        cur += ch
    parts.append(cur)
    return parts


class _LoopEmitter(_Emitter):
    """eager and fused: a loop over the tensors per level."""

    def inplace_template(self, op: ops.Op, refs: list[Ref]) -> str | None:
        return op.inplace

    def generate(self) -> Generated:
        plan = self.plan
        self.bind_input_names()
        self.plan_buffers()
        self.emit_host()
        self.list_names: dict[Ref, str] = {W: "w_list", Ref("input", "g"): "g_list"}
        for s in self.carried:
            self.list_names[Ref("state", s)] = f"{self.state_code[s]}_list"
        self.clone_lists: list[tuple[str, str]] = []  # (copy, original)
        for src in sorted(self.clone_sources, key=str):
            base = self.state_code[src.key] if src.source == "state" else "w"
            name = self.fresh_pair(f"{base}_old")
            self.clone_lists.append((f"{name}_list", self.list_names[src]))
            self.list_names[src] = f"{name}_list"
        produced_in: dict[Ref, int] = {}
        for level in plan.levels():
            self._emit_barrier(level)
            self._emit_loop(level, produced_in)
        self.graph_function = None
        source = self._source()
        return Generated(source, self.function_name, self.carried, self.scalars, self.graph_function)

    def _source(self) -> str:
        positional = ["w_list", "g_list"] + [f"{self.state_code[s]}_list" for s in self.carried]
        doc = f'    """{self.backend} step of {self.program.name}: updates w_list and the state lists in place."""'
        clones = [
            f"    {copy} = [t.clone() for t in {original}]  # read after it is overwritten"
            for copy, original in self.clone_lists
        ]
        if self.backend != "fused":
            body = clones + self.bind_renamed_scalars() + self.lines or ["    pass"]
            return "\n".join([self.signature(positional), doc, *body]) + "\n"
        # The fused step is a plain function around the graph torch.compile compiles, doing
        # there what torch.compile (2.13, CPU) gets wrong: it drops a clone of an input that the
        # graph writes afterwards and reads the new value instead (pytorch/pytorch#197829,
        # #198131), and it drops writes to a 0-d float64 input (the buffers are passed as
        # 1-element views instead).
        outer = self.function_name
        self.function_name = self.graph_function = f"{outer}_graph"
        graph_args = positional + [c for c, _ in self.clone_lists]
        inner = "\n".join([self.signature(graph_args), doc, *self.bind_renamed_scalars(), *(self.lines or ["    pass"])])
        self.function_name = outer
        written = [p for p in positional if p != "g_list"]
        prepare = [f"    {p} = _rt.writable({p})" for p in written]
        passed = [f"{s}={s}" for s in self.scalars if self.scalar_code[s] == s]
        passed += [f"**{self.kwargs_name}"] if self.kwargs_name else []
        call = f"    {self.graph_function}({', '.join(graph_args + passed)})"
        outer_doc = f'    """fused step of {self.program.name}: prepares the buffers, then runs the compiled graph."""'
        return inner + "\n\n\n" + "\n".join([self.signature(positional), outer_doc, *prepare, *clones, call]) + "\n"

    def _emit_barrier(self, level: int) -> None:
        for i in self.plan.device:
            if i not in self.plan.at_barrier or self.plan.level[i] != level:
                continue
            op = ops.OPS[self.program.body[i].op]
            refs = list(self.a.args[i])
            per_parameter = self.a.kinds[i].per_parameter
            name = (self.fresh_pair if per_parameter else self.fresh)(self.target(i))
            ref = Ref("stmt", i)
            if op.group:
                args = [self.list_names[r] if self.a.kind(r).per_parameter else self.ref_text(r) for r in refs]
                expr = op.group.format(*args)
            else:
                expr = self.torch_expr(op, [self.ref_text(r) for r in refs], refs, like=None)
            if per_parameter:
                self.emit(f"{name}_list = {expr}  # {self.comment(i)}")
                self.list_names[ref] = f"{name}_list"
                self.names[ref] = name
            else:
                self.emit(f"{name} = {expr}  # {self.comment(i)}")
                self.names[ref] = name

    def _emit_loop(self, level: int, produced_in: dict[Ref, int]) -> None:
        plan, a = self.plan, self.a
        body = [i for i in plan.device if i not in plan.at_barrier and plan.level[i] == level]
        is_end = level == plan.end_level
        if not body and not is_end:
            return
        # values this loop reads that come from outside it, as lists
        reads: list[Ref] = []
        for i in body:
            reads += [r for r in a.args[i] if a.kind(r).per_parameter]
        if is_end:
            reads += [r for r in plan.end_reads if a.kind(r).per_parameter]
        zipped: dict[str, str] = {"w": "w_list", "g": "g_list"}
        for s in self.carried:
            zipped[self.state_code[s]] = f"{self.state_code[s]}_list"
        for r in reads:
            if r.source == "stmt" and (r.key in self.in_state or produced_in.get(r) == level):
                continue
            if r.source == "stmt" and r.key in body:
                continue
            list_name = self.list_names[r]
            if list_name in zipped.values():
                loop_name = next(k for k, v in zipped.items() if v == list_name)
            else:
                loop_name = list_name[: -len("_list")]
                zipped[loop_name] = list_name
            self.names[r] = loop_name
        exported = [Ref("stmt", i) for i in body if i not in self.in_state and self._read_outside(i, level)]
        list_inits = {}
        for ref in exported:
            name = self.fresh_pair(self.target(ref.key))
            self.names[ref] = name
            list_inits[ref] = f"{name}_list"
            self.emit(f"{name}_list = []")
        if self.tiled():
            self.emit(f"for {', '.join(zipped)} in _rt.chunks({', '.join(zipped.values())}):  # large tensors in pieces")
        else:
            self.emit(f"for {', '.join(zipped)} in zip({', '.join(zipped.values())}):")
        self.indent += 1
        self.loop_temps: list[str] = []
        self.freed: set[str] = set()
        for i in body:
            self._emit_statement(i, exported)
            self._free_dead(i)
            produced_in[Ref("stmt", i)] = level
            ref = Ref("stmt", i)
            if ref in list_inits:
                self.emit(f"{list_inits[ref]}.append({self.names[ref]})")
                self.list_names[ref] = list_inits[ref]
        if is_end:
            self._emit_application()
            self._emit_writeback()
        self._emit_free(self.loop_temps)
        self.indent -= 1

    def _read_outside(self, i: int, level: int) -> bool:
        """Whether statement ``i``'s value (made in loop ``level``) is read outside that loop."""
        plan = self.plan
        for p in plan.reads.get(Ref("stmt", i), []):
            if p == plan.end:
                if level != plan.end_level:
                    return True
            elif plan.device[p] in plan.at_barrier or plan.level[plan.device[p]] > level:
                return True
        return False

    def _emit_statement(self, i: int, exported: list[Ref]) -> None:
        op = ops.OPS[self.program.body[i].op]
        refs = list(self.a.args[i])
        args = [self.ref_text(r) for r in refs]
        ref = Ref("stmt", i)
        if i in self.inplace and self.inplace[i][0] == OUT:
            code = self.state_code[self.in_state[i]]
            expr = self.torch_expr(op, args, refs, like="w")
            self.emit(f"{expr[:-1]}, out={code})  # {self.comment(i)}  (into {self.in_state[i]}'s buffer)")
            self.names[ref] = code
            self.list_names[ref] = f"{code}_list"
            return
        if i in self.inplace:
            pos, how = self.inplace[i]
            args, refs = self.reorder(op, pos, args, refs)
            if how == "state":
                args[0] = self.state_code[self.in_state[i]]
            target = args[0]
            expr = op.inplace.format(*self.wrap_numbers(op, args, refs, like=target, start=1, template=op.inplace))
            if how == "state":
                code = self.state_code[self.in_state[i]]
                self.emit(f"{expr}  # {self.comment(i)}  (in {self.in_state[i]}'s buffer)")
                self.names[ref] = code
                self.list_names[ref] = f"{code}_list"
            else:
                name = self.names.get(ref) if ref in exported else None
                if name is None:
                    name = target
                    self.emit(f"{expr}  # {self.comment(i)}")
                else:
                    self.emit(f"{name} = {expr}  # {self.comment(i)}")
                self.names[ref] = name
            return
        name = self.names[ref] if ref in exported else self.fresh(self.target(i))
        self.loop_temps.append(name)
        expr = self.torch_expr(op, args, refs, like="w")
        self.emit(f"{name} = {expr}  # {self.comment(i)}")
        self.names[ref] = name

    def _emit_application(self) -> None:
        plan = self.plan
        if plan.decay:
            if self.decay_name:
                self.emit(f"if {self.decay_name} != 1:")
                self.emit(f"    w.mul_({self.decay_name})")
            else:
                self.emit(f"w.mul_({self.decay_expr()})")
        for term in plan.terms:
            host = self.coef_host(term.coef)
            if term.fused and host:
                a, b = (self.ref_text(r) for r in term.operands)
                self.emit(f"w.{term.fused}_({a}, {b}, value={self.alpha(term)})")
                continue
            if term.fused:
                # the coefficient is a 0-d tensor (fused backend), which `value=` does not take:
                # fold it into the first operand, keeping eager's order (coef * a) then / b or * b
                a, b = (self.ref_text(r) for r in term.operands)
                sign = "1.0" if term.coef.negate else "-1.0"
                self.emit(f"w.{term.fused}_({a} * {self.coef_text(term.coef)}, {b}, value={sign})")
                continue
            value = self.ref_text(term.value)
            tensor = self.a.kind(term.value) is Kind.TENSOR
            if not term.coef.factors:
                self.emit(f"w.{'add_' if term.coef.negate else 'sub_'}({value})")
            elif host and tensor:
                self.emit(f"w.add_({value}, alpha={self.alpha(term)})")
            else:
                method = "add_" if term.coef.negate else "sub_"
                self.emit(f"w.{method}({value} * {self.coef_text(term.coef)})")

    def _emit_writeback(self) -> None:
        for s in self.carried:
            out = self.a.state_out[s]
            if out == Ref("state", s) or (out.source == "stmt" and self.in_state.get(out.key) == s):
                continue
            value = self.ref_text(out)
            buffer = self.state_code[s]
            if self.is_number(out):
                self.emit(f"{buffer}.fill_({value})")
            else:
                self.emit(f"{buffer}.copy_({value})")


class _ForeachEmitter(_Emitter):
    """One ``torch._foreach_*`` call per statement for the whole group."""

    def sig(self, refs: list[Ref]) -> str:
        return "".join("L" if self.a.kind(r).per_parameter else "S" for r in refs)

    def inplace_template(self, op: ops.Op, refs: list[Ref]) -> str | None:
        return op.foreach_inplace.get(self.sig(refs))

    def can_mirror(self, refs: tuple[Ref, ...]) -> bool:
        # interp(x, y, a) -> y.lerp_(x, 1 - a) needs `1 - a` of a list when a is per tensor
        return not any(self.a.kind(r).per_parameter for r in refs[2:])

    def generate(self) -> Generated:
        self.bind_input_names()
        self.plan_buffers()
        self.emit_host()
        for src in sorted(self.clone_sources, key=str):
            name = self.fresh(f"{self.names[src]}_old")
            self.emit(f"{name} = [t.clone() for t in {self.names[src]}]  # read after it is overwritten")
            self.names[src] = name
        tiled = self.tiled()
        if tiled:
            lists = ", ".join(["w", "g"] + [self.state_code[s] for s in self.carried])
            self.emit(f"for {lists} in _rt.tiles({lists}):  # a few MB at a time")
            self.indent += 1
        self.loop_temps = []
        self.freed = set()
        for i in self.plan.device:
            self._emit_statement(i)
            self._free_dead(i)
        self._emit_application()
        self._emit_writeback()
        if tiled:
            self._emit_free(self.loop_temps)
        head = self.signature(["w", "g"] + [self.state_code[s] for s in self.carried])
        doc = f'    """foreach step of {self.program.name}: w, g and the state are lists of tensors; updates them in place."""'
        body = self.bind_renamed_scalars() + self.lines
        return Generated("\n".join([head, doc, *body]) + "\n", self.function_name, self.carried, self.scalars)

    def _emit_statement(self, i: int) -> None:
        op = ops.OPS[self.program.body[i].op]
        refs = list(self.a.args[i])
        args = [self.ref_text(r) for r in refs]
        ref = Ref("stmt", i)
        if i in self.inplace:
            pos, how = self.inplace[i]
            args, refs = self.reorder(op, pos, args, refs)
            if how == "state":
                args[0] = self.state_code[self.in_state[i]]
            template = self.inplace_template(op, refs)
            self.emit(f"{template.format(*args)}  # {self.comment(i)}")
            self.names[ref] = args[0]
            return
        name = self.fresh(self.target(i))
        self.emit(f"{name} = {self.expr(op, args, refs)}  # {self.comment(i)}")
        self.names[ref] = name
        self.loop_temps.append(name)

    def expr(self, op: ops.Op, args: list[str], refs: list[Ref]) -> str:
        if op.group:
            return op.group.format(*args)
        if not any(self.a.kind(r).per_parameter for r in refs):
            return self.torch_expr(op, args, refs, like=None)
        sig = self.sig(refs)
        if sig in op.foreach:
            return op.foreach[sig].format(*args)
        if op.commutative and sig[::-1] in op.foreach and len(args) == 2:
            return op.foreach[sig[::-1]].format(args[1], args[0])
        loop_vars, iters, inner = [], [], []
        for k, (text, r) in enumerate(zip(args, refs)):
            if self.a.kind(r).per_parameter:
                var = self.fresh(f"_x{k}")
                loop_vars.append(var)
                iters.append(text)
                inner.append(var)
            else:
                inner.append(text)
        body = self.torch_expr(op, inner, refs, like=loop_vars[0])
        if len(iters) == 1:
            return f"[{body} for {loop_vars[0]} in {iters[0]}]"
        return f"[{body} for {', '.join(loop_vars)} in zip({', '.join(iters)})]"

    def _emit_application(self) -> None:
        plan = self.plan
        per_tensor = [f for c in plan.decay for f in c.factors if self.a.kind(f).per_parameter]
        if per_tensor:
            # a factor is a scalar per tensor (u * w with u a tensor_norm): 1 - A per tensor
            lists = {f: self.names[f] for f in per_tensor}
            loop = {f: self.fresh("_a") for f in lists}
            w_ = self.fresh("_w")
            self.names.update(loop)
            expr = self.decay_expr()
            self.names.update(lists)
            self.emit(f"for {w_}, {', '.join(loop.values())} in zip(w, {', '.join(lists.values())}):")
            self.emit(f"    {w_}.mul_({expr})")
        elif plan.decay:
            if self.decay_name:
                self.emit(f"if {self.decay_name} != 1:")
                self.emit(f"    torch._foreach_mul_(w, {self.decay_name})")
            else:
                self.emit(f"torch._foreach_mul_(w, {self.decay_expr()})")
        for term in plan.terms:
            host = self.coef_host(term.coef)
            if term.fused and host:
                a, b = (self.ref_text(r) for r in term.operands)
                self.emit(f"torch._foreach_{term.fused}_(w, {a}, {b}, value={self.alpha(term)})")
                continue
            value = self.ref_text(term.value)
            per_param = self.a.kind(term.value).per_parameter
            tensor = self.a.kind(term.value) is Kind.TENSOR
            if not term.coef.factors:
                scaled = value
            elif host and tensor:
                self.emit(f"torch._foreach_add_(w, {value}, alpha={self.alpha(term)})")
                continue
            elif per_param and any(self.a.kind(f).per_parameter for f in term.coef.factors):
                # a factor is a list (a scalar per tensor): multiply by each factor in turn
                scaled = value
                for f in term.coef.factors:
                    scaled = f"torch._foreach_mul({scaled}, {self.ref_text(f)})"
            elif per_param:
                coef = self.coef_text(term.coef)
                scaled = f"torch._foreach_mul({value}, {coef})"
            else:
                scaled = f"({value} * {self.coef_text(term.coef)})"
            method = "add_" if term.coef.negate else "sub_"
            if per_param and not tensor:
                w_, u_ = self.fresh("_w"), self.fresh("_u")
                self.emit(f"for {w_}, {u_} in zip(w, {scaled}):")
                self.emit(f"    {w_}.{method}({u_})")
            else:
                self.emit(f"torch._foreach_{method}(w, {scaled})")

    def _emit_writeback(self) -> None:
        for s in self.carried:
            out = self.a.state_out[s]
            if out == Ref("state", s) or (out.source == "stmt" and self.in_state.get(out.key) == s):
                continue
            value = self.ref_text(out)
            buffers = self.state_code[s]
            # loop variables are fresh: `value` may be a program variable called `_s`
            s_, v_ = self.fresh("_s"), self.fresh("_v")
            if self.is_number(out):
                self.emit(f"for {s_} in {buffers}:")
                self.emit(f"    {s_}.fill_({value})")
            elif self.a.kind(out) is Kind.TENSOR:
                self.emit(f"torch._foreach_copy_({buffers}, {value})")
            elif self.a.kind(out).per_parameter:
                self.emit(f"for {s_}, {v_} in zip({buffers}, {value}):")
                self.emit(f"    {s_}.copy_({v_})")
            else:
                self.emit(f"for {s_} in {buffers}:")
                self.emit(f"    {s_}.copy_({value})")
