"""Generate a step function's Python source from a ``Plan`` (``lowering.py``).

The generated function updates parameters and state in place::

    def step(w_list, g_list, m_list, *, lr, beta1, beta2, wd): ...

and reads like hand-written torch code, so ``compiled.source`` is worth printing.
Everything is decided in the ``Plan`` (``lowering.py``: what runs on the host, which buffer
each statement overwrites, how the update is applied); an emitter only writes it, and each
declares the ``Target`` it plans for. A new backend is a new emitter in ``EMITTERS``:

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
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import ops
from .analysis import Analysis, Ref
from .kinds import Kind
from .lowering import OUT, W, Coef, Plan, Target, Term
from .ops import literal

_GLOBALS = frozenset({"torch", "np", "_rt", "math", "zip", "range", "list", "float", "abs", "len"})
"""Names generated code reads from its namespace or the builtins (the op table's templates
included). No local may take them: a hyperparameter called ``torch`` must not hide the module."""
_FIXED = frozenset({"w", "g", "w_list", "g_list", "lr", "step"})


@dataclass
class Generated:
    source: str
    function_name: str
    state: tuple[str, ...]
    scalars: tuple[str, ...]
    graph_function: str | None = None
    """The function ``torch.compile`` should compile (fused backend): ``function_name`` itself,
    or a function it calls after copying, outside the graph, the values it must keep."""


def target(backend: str) -> Target:
    """What ``backend``'s code can say, for ``lowering.plan``."""
    if backend not in EMITTERS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    return EMITTERS[backend].TARGET


def generate(plan: Plan, function_name: str = "step") -> Generated:
    """The source of the step ``plan`` describes, written by its target's emitter."""
    return EMITTERS[plan.target.name](plan, function_name).generate()


class _Emitter:
    TARGET: Target

    def __init__(self, plan: Plan, function_name: str):
        if plan.target != self.TARGET:
            raise ValueError(f"a plan for {plan.target.name!r} given to the {self.TARGET.name!r} emitter")
        self.plan = plan
        self.a: Analysis = plan.analysis
        self.program = self.a.program
        self.backend = plan.target.name
        self.function_name = function_name
        self.lines: list[str] = []
        self.indent = 1
        self.used_names: set[str] = set(_GLOBALS | _FIXED)
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
        if ref in self.plan.folded:
            return literal(self.plan.folded[ref])
        return self.names[ref]

    def is_number(self, ref: Ref) -> bool:
        """Whether the value is a host number here (not a tensor)."""
        return self.plan.is_number(ref)

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
        """Scalar statements, once per step (constants were folded by the plan): on the host
        (eager, foreach; fused, before its graph) or as tensors (tensor). Then the decay factor
        and the hoisted coefficients (``Plan.hoisted``) where the plan puts them on the host."""
        pending = self.plan.host
        self.decay_name = None
        self.coef_names: dict[Coef, str] = {}
        host_decay = self.plan.host_decay
        if not pending and not host_decay and not self.plan.hoisted:
            return
        host_scalars = self.TARGET.host_scalars or self.TARGET.hoist
        if host_scalars:
            self.emit("with np.errstate(all='ignore'):  # scalars follow IEEE: inf and nan, never an exception")
            self.indent += 1
            for code in self.scalar_code.values():
                self.emit(f"{code} = np.float64({code})")
        for i in pending:
            refs = self.a.args[i]
            op = ops.OPS[self.program.body[i].op]
            args = [self.ref_text(r) for r in refs]
            name = self.fresh(self.target(i))
            if host_scalars:
                expr = op.host.format(*args)
            else:
                expr = self.torch_expr(op, args, list(refs), like="w_list[0]") if op.torch else op.host.format(*args)
            self.emit(f"{name} = {expr}  # {self.comment(i)}")
            self.names[Ref("stmt", i)] = name
        if host_decay:
            self.decay_name = self.fresh("decay")
            self.emit(f"{self.decay_name} = {self.decay_expr()}  # decoupled weight decay: w <- w * (1 - A)")
        for k in self.plan.hoisted:
            coef = self.plan.terms[k].coef
            if coef not in self.coef_names:
                name = self.fresh("coef")
                self.emit(f"{name} = {self.coef_text(coef)}  # a coefficient of the update, once")
                self.coef_names[coef] = name
        if host_scalars:
            self.indent -= 1

    # --- the update application and the write-back ----------------------------------------------
    def _emit_application(self) -> None:
        """``w <- w * (1 - A)``, then ``w <- w - c_i * X_i`` for each term, in the forms the plan
        chose (``lowering.Term``), through the emitter's ``update_w`` and ``scaled``."""
        if self.plan.decay:
            self.apply_decay()
        for term in self.plan.terms:
            method = "add" if term.coef.negate else "sub"
            if term.form in ("fused", "fused_scaled"):
                a, b = (self.ref_text(r) for r in term.operands)
                if term.form == "fused":
                    self.update_w(term.fused, [a, b], value=self.alpha(term))
                else:
                    # the coefficient is a 0-d tensor (fused backend), which `value=` does not take:
                    # fold it into the first operand, keeping eager's order (coef * a) then / b or * b
                    sign = "1.0" if term.coef.negate else "-1.0"
                    self.update_w(term.fused, [f"{a} * {self.coef_text(term.coef)}", b], value=sign)
            elif term.form == "alpha":
                self.update_w("add", [self.ref_text(term.value)], alpha=self.alpha(term))
            else:
                self.update_w(method, [self.scaled(term)], of=term.value)

    def apply_decay(self) -> None:
        if self.decay_name:
            self.emit(f"if {self.decay_name} != 1:")
            self.indent += 1
            self.update_w("mul", [self.decay_name])
            self.indent -= 1
        else:
            self.update_w("mul", [self.decay_expr()])

    def update_w(self, method: str, args: list[str], of: Ref | None = None, **keywords: str) -> None:
        """Write ``w.<method>_(*args, **keywords)`` in this backend's form (``of``: the value
        the arguments hold, when it matters how it is held)."""
        raise NotImplementedError

    def scaled(self, term: Term) -> str:
        """``term``'s value times its coefficient (the value alone when it has none)."""
        raise NotImplementedError

    def _emit_writeback(self) -> None:
        for s, out in self.plan.writeback:
            self.write_state(self.state_code[s], self.ref_text(out), out)

    def write_state(self, buffer: str, value: str, ref: Ref) -> None:
        """Write ``value`` (``ref``'s) into a state's buffer(s) ``buffer``."""
        raise NotImplementedError

    def coef_text(self, coef: Coef) -> str:
        if coef in self.coef_names:
            return self.coef_names[coef]
        return " * ".join(self.ref_text(f) for f in coef.factors) or "1.0"

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

    def _emit_free(self, names: list[str]) -> None:
        """``del`` a loop body's temporaries before the next iteration allocates its own: the
        allocator then hands the same memory back. Freed only after the next allocation, the
        top of glibc's heap is trimmed and regrown every time, each page a fault."""
        names = [n for n in dict.fromkeys(names) if n not in self.freed]
        if names:
            self.emit(f"del {', '.join(names)}  # free before the next piece allocates")

    def _free_dead(self, i: int) -> None:
        """After statement ``i``, ``del`` the loop temporaries it was the last to read (so
        that memory is free for the next allocation, as in ``_emit_free``)."""
        if not self.plan.tiled:
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
    """eager, fused and tensor: a loop over the tensors per level."""

    def generate(self) -> Generated:
        plan = self.plan
        self.bind_input_names()
        self.emit_host()
        self.list_names: dict[Ref, str] = {W: "w_list", Ref("input", "g"): "g_list"}
        for s in self.carried:
            self.list_names[Ref("state", s)] = f"{self.state_code[s]}_list"
        self.clone_lists: list[tuple[str, str]] = []  # (copy, original)
        for src in sorted(self.plan.clone_sources, key=str):
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

    def positional(self) -> list[str]:
        return ["w_list", "g_list"] + [f"{self.state_code[s]}_list" for s in self.carried]

    def docstring(self) -> str:
        return f'    """{self.backend} step of {self.program.name}: updates w_list and the state lists in place."""'

    def clones(self) -> list[str]:
        return [
            f"    {copy} = [t.clone() for t in {original}]  # read after it is overwritten"
            for copy, original in self.clone_lists
        ]

    def _source(self) -> str:
        body = self.clones() + self.bind_renamed_scalars() + self.lines or ["    pass"]
        return "\n".join([self.signature(self.positional()), self.docstring(), *body]) + "\n"

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
            if r.source == "stmt" and (r.key in plan.in_state or produced_in.get(r) == level):
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
        exported = [Ref("stmt", i) for i in body if i not in plan.in_state and self._read_outside(i, level)]
        list_inits = {}
        for ref in exported:
            name = self.fresh_pair(self.target(ref.key))
            self.names[ref] = name
            list_inits[ref] = f"{name}_list"
            self.emit(f"{name}_list = []")
        if plan.tiled:
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
        inplace, in_state = self.plan.inplace, self.plan.in_state
        if i in inplace and inplace[i][0] == OUT:
            code = self.state_code[in_state[i]]
            expr = self.torch_expr(op, args, refs, like="w")
            self.emit(f"{expr[:-1]}, out={code})  # {self.comment(i)}  (into {in_state[i]}'s buffer)")
            self.names[ref] = code
            self.list_names[ref] = f"{code}_list"
            return
        if i in inplace:
            pos, how = inplace[i]
            args, refs = self.reorder(op, pos, args, refs)
            if how == "state":
                args[0] = self.state_code[in_state[i]]
            target = args[0]
            expr = op.inplace.format(*self.wrap_numbers(op, args, refs, like=target, start=1, template=op.inplace))
            if how == "state":
                code = self.state_code[in_state[i]]
                self.emit(f"{expr}  # {self.comment(i)}  (in {in_state[i]}'s buffer)")
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

    def update_w(self, method: str, args: list[str], of: Ref | None = None, **keywords: str) -> None:
        extra = "".join(f", {k}={v}" for k, v in keywords.items())
        self.emit(f"w.{method}_({', '.join(args)}{extra})")

    def scaled(self, term: Term) -> str:
        value = self.ref_text(term.value)
        return f"{value} * {self.coef_text(term.coef)}" if term.coef.factors else value

    def write_state(self, buffer: str, value: str, ref: Ref) -> None:
        self.emit(f"{buffer}.{'fill_' if self.is_number(ref) else 'copy_'}({value})")


class _EagerEmitter(_LoopEmitter):
    """Per tensor, scalars on the host; a state's next value may go into its buffer with ``out=``."""

    TARGET = Target("eager", host_scalars=True, out=True, pieces=True)


class _TensorEmitter(_LoopEmitter):
    """The per-tensor loop with every scalar a tensor of any shape broadcasting against w."""

    TARGET = Target("tensor", host_scalars=False)


class _FusedEmitter(_LoopEmitter):
    """The per-tensor loop for ``torch.compile``, inside a plain function that computes the
    host values first (``Target.hoist``) and hands every scalar to the graph as a 0-d tensor."""

    TARGET = Target("fused", host_scalars=False, hoist=True)

    def emit_host(self) -> None:
        # into the wrapper, not the graph
        graph, self.lines = self.lines, []
        super().emit_host()
        self.host_lines, self.lines = self.lines, graph
        self.host_values = [self.names[Ref("stmt", i)] for i in self.plan.host]
        self.host_values += [self.decay_name] if self.decay_name else []
        self.host_values += list(dict.fromkeys(self.coef_names.values()))

    def apply_decay(self) -> None:
        if self.decay_name:  # a 0-d tensor: multiplied, even by 1 (the graph cannot branch on it)
            self.update_w("mul", [self.decay_name])
        else:
            super().apply_decay()

    def _emit_free(self, names: list[str]) -> None:
        pass  # a compiled graph plans its own memory

    def _source(self) -> str:
        positional, doc, clones = self.positional(), self.docstring(), self.clones()
        # The fused step is a plain function around the graph torch.compile compiles. It runs
        # the host statements (numpy float64, as eager does) and passes every scalar the graph
        # reads as a 0-d tensor. It also does there what torch.compile (2.13, CPU) gets wrong:
        # it drops a clone of an input that the graph writes afterwards and reads the new value
        # instead (pytorch/pytorch#197829, #198131), and it drops writes to a 0-d float64 input
        # (the buffers are passed as 1-element views instead).
        outer = self.function_name
        self.graph_function = f"{outer}_graph"
        body = self.lines or ["    pass"]
        code = "\n".join(line.split("  # ")[0] for line in body)
        scalars = [c for c in [*self.scalar_code.values(), *self.host_values] if re.search(rf"\b{c}\b", code)]
        graph_args = positional + [c for c, _ in self.clone_lists]
        head = f"def {self.graph_function}({', '.join(graph_args + scalars)}):"
        inner = "\n".join([head, doc, *body])
        written = [p for p in positional if p != "g_list"]
        prepare = ["    if not w_list:", "        return"] + [f"    {p} = _rt.writable({p})" for p in written]
        passed = graph_args + ([f"*_rt.device_scalars(w_list[0], {', '.join(scalars)})"] if scalars else [])
        call = f"    {self.graph_function}({', '.join(passed)})"
        outer_doc = (f'    """fused step of {self.program.name}: the host values once, then the compiled graph, '
                     'every scalar a 0-d tensor."""')
        wrapper = [self.signature(positional), outer_doc, *self.bind_renamed_scalars(), *prepare, *clones,
                   *self.host_lines, call]
        return inner + "\n\n\n" + "\n".join(wrapper) + "\n"


class _ForeachEmitter(_Emitter):
    """One ``torch._foreach_*`` call per statement for the whole group."""

    TARGET = Target("foreach", host_scalars=True, lists=True, pieces=True)

    def sig(self, refs: list[Ref]) -> str:
        return "".join("L" if self.a.kind(r).per_parameter else "S" for r in refs)

    def generate(self) -> Generated:
        self.bind_input_names()
        self.emit_host()
        for src in sorted(self.plan.clone_sources, key=str):
            name = self.fresh(f"{self.names[src]}_old")
            self.emit(f"{name} = [t.clone() for t in {self.names[src]}]  # read after it is overwritten")
            self.names[src] = name
        tiled = self.plan.tiled
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
        if i in self.plan.inplace:
            pos, how = self.plan.inplace[i]
            args, refs = self.reorder(op, pos, args, refs)
            if how == "state":
                args[0] = self.state_code[self.plan.in_state[i]]
            template = self.plan.inplace_template(op, refs)
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

    def apply_decay(self) -> None:
        per_tensor = [f for c in self.plan.decay for f in c.factors if self.a.kind(f).per_parameter]
        if not per_tensor:
            return super().apply_decay()
        # a factor is a scalar per tensor (u * w with u a tensor_norm): 1 - A per tensor
        lists = {f: self.names[f] for f in per_tensor}
        loop = {f: self.fresh("_a") for f in lists}
        w_ = self.fresh("_w")
        self.names.update(loop)
        expr = self.decay_expr()
        self.names.update(lists)
        self.emit(f"for {w_}, {', '.join(loop.values())} in zip(w, {', '.join(lists.values())}):")
        self.emit(f"    {w_}.mul_({expr})")

    def update_w(self, method: str, args: list[str], of: Ref | None = None, **keywords: str) -> None:
        if of is not None and self.a.kind(of).per_parameter and self.a.kind(of) is not Kind.TENSOR:
            # a list of per-tensor scalars: one call per tensor
            w_, u_ = self.fresh("_w"), self.fresh("_u")
            self.emit(f"for {w_}, {u_} in zip(w, {args[0]}):")
            self.emit(f"    {w_}.{method}_({u_})")
            return
        extra = "".join(f", {k}={v}" for k, v in keywords.items())
        self.emit(f"torch._foreach_{method}_(w, {', '.join(args)}{extra})")

    def scaled(self, term: Term) -> str:
        value = self.ref_text(term.value)
        if not term.coef.factors:
            return value
        if not self.a.kind(term.value).per_parameter:
            return f"({value} * {self.coef_text(term.coef)})"
        if any(self.a.kind(f).per_parameter for f in term.coef.factors):
            # a factor is a list (a scalar per tensor): multiply by each factor in turn
            for f in term.coef.factors:
                value = f"torch._foreach_mul({value}, {self.ref_text(f)})"
            return value
        return f"torch._foreach_mul({value}, {self.coef_text(term.coef)})"

    def write_state(self, buffers: str, value: str, ref: Ref) -> None:
        # loop variables are fresh: `value` may be a program variable called `_s`
        s_, v_ = self.fresh("_s"), self.fresh("_v")
        if self.is_number(ref):
            self.emit(f"for {s_} in {buffers}:")
            self.emit(f"    {s_}.fill_({value})")
        elif self.a.kind(ref) is Kind.TENSOR:
            self.emit(f"torch._foreach_copy_({buffers}, {value})")
        elif self.a.kind(ref).per_parameter:
            self.emit(f"for {s_}, {v_} in zip({buffers}, {value}):")
            self.emit(f"    {s_}.copy_({v_})")
        else:
            self.emit(f"for {s_} in {buffers}:")
            self.emit(f"    {s_}.copy_({value})")


EMITTERS: dict[str, type[_Emitter]] = {
    e.TARGET.name: e for e in (_EagerEmitter, _ForeachEmitter, _FusedEmitter, _TensorEmitter)
}
"""Backend name -> its emitter."""
BACKENDS = tuple(EMITTERS)
TENSOR_SCALARS = frozenset(name for name, e in EMITTERS.items() if not e.TARGET.host_scalars and not e.TARGET.hoist)
"""Backends that take their scalars as tensors (so they are computed on the device, not the
host). The fused step takes host numbers: its wrapper computes on the host and hands the graph
0-d tensors itself (a 0-d tensor passed in would only be read back with ``.item()``)."""
