"""Hypothesis strategies for programs: valid ``Program`` values, their text, and hostile text.

    from strategies import programs, program_texts, mutated_texts

    @given(programs())                          # any op of the table
    @given(programs(ops=("add", "sign", "interp"), max_statements=4))
    @given(program_texts())                     # print_program of a program above
    @given(mutated_texts())                     # valid text with tokens swapped, deleted, inserted

``programs()`` only generates programs that ``analyze`` accepts, by construction rather than
by filtering (so shrinking stays fast): it tracks, statement by statement, which values hold
one number per parameter (``Kind.per_parameter``) and hands reductions only those. That is
all validity needs: a state variable is per-parameter whatever it is later given (its kind
starts at ``TSCALAR``), so per-parameter-ness is known in one forward pass, without the
analysis's fixed point.

What it covers, so that a property over it means something: every op of the table (ops
added later included, read when the strategy is built); group reductions (``global_norm``,
``clip_by_global_norm``...) feeding later statements, hence several levels; per-tensor
reductions; state that holds one number (a reduction or a host scalar returned as state);
state returned unchanged, swapped (``return u, v, m``), or given ``w``, ``g``, ``lr``;
an update that is a host scalar; ``g`` and ``lr`` reassigned; dead statements; named
constants (``pi``, ``e``, ``eps``) and a variable spelled like one; names that mean something
in generated code (``torch``, ``np``, ``zip``, ``m_list``...), hyperparameters and ``step``.
"""

from __future__ import annotations

import io
import keyword
import tokenize
from dataclasses import replace
from typing import Iterable, Sequence

from hypothesis import strategies as st

from symbolic_opt import ops as op_table
from symbolic_opt.ir import INPUTS, Const, Program, Statement, Var
from symbolic_opt.ops import Rule
from symbolic_opt.printer import print_program

STATE_NAMES = ("m", "v", "s", "u", "acc", "m_list", "torch")
"""State variable names: the paper's, plus names that collide with generated code's own."""
TEMP_NAMES = ("t1", "t2", "t3", "update", "c", "x", "_t1", "np", "zip", "abs", "e", "w_list", "float")
"""Temporary names: ordinary ones, a parser temporary's spelling (``_t1``), a named constant
(``e``) and names generated code uses for modules, builtins and lists."""
HYPER_NAMES = ("beta1", "beta2", "wd", "eps", "np", "g_list")
NICE_CONSTANTS = (0.0, 1.0, -1.0, 0.5, 2.0, 0.9, 0.999, 1e-8, 3.0, 0.1)


def constants(named: bool = True) -> st.SearchStrategy[Const]:
    """A constant: a common one, a finite float of any size, or a named one (``pi``...)."""
    choices = [
        st.sampled_from(NICE_CONSTANTS).map(Const),
        st.floats(-4.0, 4.0, allow_nan=False).map(Const),
        st.floats(allow_nan=False, allow_infinity=False).map(Const),
    ]
    if named:
        choices.append(st.sampled_from(sorted(op_table.CONSTANTS)).map(lambda n: Const(op_table.CONSTANTS[n], n)))
    return st.one_of(*choices)


def _per_parameter(op: op_table.Op, arg_per_param: Sequence[bool]) -> bool:
    """Whether ``op``'s result holds a value per parameter, given whether its arguments do."""
    if op.rule is Rule.GROUP_REDUCE:
        return False
    if op.rule in (Rule.TENSOR_REDUCE, Rule.GROUP_MAP):
        return True
    return any(arg_per_param)


def _reduced_positions(op: op_table.Op) -> range:
    """Argument positions that must hold a value per parameter."""
    if op.rule is Rule.GROUP_MAP:
        return range(1)
    if op.reduces:
        return range(op.arity)
    return range(0)


_IDIOMS: dict[str, tuple[str, ...]] = {
    "moving average": ("interp",),
    "moving average, torch's rounding": ("mul", "addcmul"),
    "decoupled weight decay": ("mul", "add"),
    "scaled by lr": ("mul",),
    "ratio": ("exact_div",),
    "guarded ratio": ("div",),
    "sign of momentum": ("interp", "sign"),
    "lion": ("interp", "sign"),
    "old state read twice": ("mul", "add"),
}
"""Statement patterns real optimizers are made of, each with the ops it needs. Random
statements alone seldom make them, and they are what the compiler treats specially:
in-place state chains (``m.lerp_``), decoupled weight decay, ``addcdiv``/``addcmul`` updates."""


_STATEFUL_IDIOMS = ("lion", "old state read twice")


def _idiom(name, draw, state, var, arg, target, emit) -> None:
    """Emit the statements of idiom ``name`` (see ``_IDIOMS``) through ``programs``' helpers."""
    if name == "moving average":
        s = target(prefer_state=True)
        emit(s, "interp", [var(prefer=("g",)), var(prefer=(s,)), arg()])
    elif name == "moving average, torch's rounding":
        s = target(prefer_state=True)
        emit(s, "mul", [var(prefer=(s,)), arg()])
        emit(s, "addcmul", [Var(s), var(prefer=("g",)), arg()])
    elif name == "decoupled weight decay":
        decay = target()
        emit(decay, "mul", [Var("w"), arg()])
        u = target()
        emit(u, "add", [var(True), Var(decay)])
    elif name == "scaled by lr":
        emit(target(), "mul", [var(True), Var("lr")])
    elif name in ("ratio", "guarded ratio"):
        emit(target(), "exact_div" if name == "ratio" else "div", [var(True), var(True)])
    elif name == "sign of momentum":
        c = target()
        emit(c, "interp", [var(prefer=("g",)), var(prefer=tuple(state)), arg()])
        emit(c, "sign", [Var(c)])
    elif name == "lion":
        # the update and the state's next value both read the old state, in either order:
        # updating the state in place first would be wrong
        s = draw(st.sampled_from(state))
        c = target()
        parts = [
            lambda: (emit(c, "interp", [Var("g"), Var(s), arg()]), emit(c, "sign", [Var(c)])),
            lambda: emit(s, "interp", [Var("g"), Var(s), arg()]),
        ]
        for part in parts if draw(st.booleans()) else parts[::-1]:
            part()
    elif name == "old state read twice":
        s = draw(st.sampled_from(state))
        t = target(prefer_state=True)
        emit(t, "mul", [Var(s), var(True)])
        emit(target(), "add", [Var(s), var()])


@st.composite
def programs(
    draw,
    ops: Iterable[str] | None = None,
    *,
    min_statements: int = 0,
    max_statements: int = 8,
    max_state: int = 3,
    max_hyperparams: int = 2,
    const_prob: float = 0.25,
    step: bool | None = None,
    constant_values: st.SearchStrategy[Const] | None = None,
    hyper_values: st.SearchStrategy[float] | None = None,
    state_names: Sequence[str] = STATE_NAMES,
    temp_names: Sequence[str] = TEMP_NAMES,
    hyper_names: Sequence[str] = HYPER_NAMES,
) -> Program:
    """A valid program (``analyze`` accepts it) calling ops from ``ops`` (default: every op;
    an op named twice is drawn twice as often).

    ``constant_values`` and ``hyper_values`` bound the numbers (numeric tests want moderate
    ones); ``step`` forces the ``step`` input in or out; the name pools may be narrowed.
    """
    op_names = sorted(ops if ops is not None else op_table.OPS)  # repeats weigh an op up
    if not op_names:
        raise ValueError("programs() needs at least one op")
    unknown = [name for name in op_names if name not in op_table.OPS]
    if unknown:
        raise ValueError(f"unknown op(s): {unknown}")
    if constant_values is None:
        constant_values = constants()
    if hyper_values is None:
        hyper_values = st.floats(-2.0, 2.0, allow_nan=False)

    state = draw(st.lists(st.sampled_from(state_names), max_size=max_state, unique=True))
    uses_step = draw(st.booleans()) if step is None else step
    # the paper's order (w, g, state..., lr, step) most of the time; any order is valid
    params = ["w", "g", *state, "lr"] + (["step"] if uses_step else [])
    if draw(st.integers(0, 4)) == 0:
        params = list(draw(st.permutations(params)))
    hyper_pool = [h for h in hyper_names if h not in params and h not in INPUTS]
    hyper_names_drawn = draw(st.lists(st.sampled_from(hyper_pool), max_size=max_hyperparams, unique=True)) if hyper_pool else []
    hyperparams = tuple((h, draw(hyper_values)) for h in hyper_names_drawn)

    # name -> whether it holds a value per parameter (w, g, state) or one for the group
    per_param: dict[str, bool] = {p: p in ("w", "g") or p in state for p in params}
    per_param.update({h: False for h in hyper_names_drawn})
    assignable = [p for p in params if p not in ("w", "step")]
    temps = [t for t in temp_names if t not in per_param]

    body: list[Statement] = []
    recent: list[str] = []  # targets, newest last: statements mostly build on recent values

    def var(need_per_param: bool = False, prefer: Sequence[str] = ()) -> Var:
        bound = sorted(per_param)
        pool = [n for n in bound if per_param[n]] if need_per_param else bound
        preferred = [n for n in prefer if n in pool]
        recent_ok = [n for n in recent[-3:] if n in pool]
        choice = draw(st.integers(0, 9))
        if preferred and choice < 4:
            return Var(draw(st.sampled_from(preferred)))
        states = [n for n in state if n in pool]
        if states and choice == 4:
            return Var(draw(st.sampled_from(states)))
        if recent_ok and choice < 7:
            return Var(draw(st.sampled_from(recent_ok)))
        tensors = [n for n in pool if per_param[n]]
        if tensors and choice < 9:
            return Var(draw(st.sampled_from(tensors)))
        return Var(draw(st.sampled_from(pool)))

    def arg(need_per_param: bool = False, prefer: Sequence[str] = ()) -> Var | Const:
        if not need_per_param and draw(st.floats(0, 1)) < const_prob:
            return draw(constant_values)
        return var(need_per_param, prefer)

    def target(prefer_state: bool = False) -> str:
        fresh = [t for t in temps if t not in per_param]
        choice = draw(st.integers(0, 9))
        if state and (prefer_state or choice < 3):
            return draw(st.sampled_from(state))
        if fresh and choice < 7:
            name = fresh[0] if draw(st.integers(0, 3)) else draw(st.sampled_from(fresh))
            assignable.append(name)
            return name
        return draw(st.sampled_from(assignable))

    def emit(target_name: str, op_name: str, args: Sequence[Var | Const]) -> None:
        op = op_table.OPS[op_name]
        per_param[target_name] = _per_parameter(op, [isinstance(a, Var) and per_param[a.name] for a in args])
        body.append(Statement(target_name, op_name, tuple(args)))
        recent.append(target_name)

    idioms = [
        name for name, needs in _IDIOMS.items()
        if set(needs) <= set(op_names) and (state or name not in _STATEFUL_IDIOMS)
    ]
    n_statements = draw(st.integers(min_statements, max_statements))
    while len(body) < n_statements:
        if idioms and draw(st.integers(0, 3)) == 0:
            _idiom(draw(st.sampled_from(idioms)), draw, state, var, arg, target, emit)
            continue
        op = op_table.OPS[draw(st.sampled_from(op_names))]
        must_reduce = set(_reduced_positions(op))
        args = [arg(need_per_param=position in must_reduce) for position in range(op.arity)]
        emit(target(), op.name, args)

    bound = sorted(per_param)
    # the update: mostly the last value per parameter, sometimes anything (a scalar too)
    tensors_made = [t for t in recent if per_param[t]]
    choice = draw(st.integers(0, 9))
    if tensors_made and choice < 6:
        update = tensors_made[-1]
    elif body and choice < 8:
        update = body[-1].target
    else:
        update = draw(st.sampled_from(bound))
    # each state's next value: mostly its own variable (unchanged, or renewed by a statement),
    # else anything bound: another state (a swap), w, g, lr, a temporary, a hyperparameter
    returns = [update]
    for s in state:
        returns.append(s if draw(st.integers(0, 9)) < 6 else draw(st.sampled_from(bound)))

    declared = set(params) | set(hyper_names_drawn) | {s.target for s in body}
    # a named constant spelled like a variable of this program is printed as its number,
    # and so parses back as a plain number: generate it as one
    body = [
        s.with_args(tuple(Const(a.value) if isinstance(a, Const) and a.name in declared else a for a in s.args))
        for s in body
    ]
    return Program(params=tuple(params), body=tuple(body), returns=tuple(returns), hyperparams=hyperparams)


def program_texts(**kwargs) -> st.SearchStrategy[str]:
    """The text of a program from ``programs(**kwargs)``."""
    return programs(**kwargs).map(print_program)



_BAD_NAMES = ("nope", "w", "step", "lr", "g", "lambda", "None", "1x", "", "x y", "beta1", "m", "t1")
_BAD_CONSTANTS = (float("nan"), float("inf"), -float("inf"), 0.0, 1e308)


@st.composite
def broken_programs(draw, base: st.SearchStrategy[Program] | None = None, max_edits: int = 3) -> Program:
    """A program of ``programs()`` after one to ``max_edits`` random edits of its IR that may
    break it (the kind of program a buggy mutation or a hand-built ``Program`` gives):
    delete or swap statements; an argument made an unknown, unbound or read-only name or a
    non-finite constant; an unknown op or a wrong arity; a target that is read-only or not a
    name; returns dropped, added or renamed; inputs dropped or duplicated; a hyperparameter
    with a non-finite default or a taken name. Some edits leave it valid."""
    p = draw(base if base is not None else programs(max_statements=6))
    for _ in range(draw(st.integers(1, max_edits))):
        body = list(p.body)
        edit = draw(st.sampled_from(("delete", "swap", "arg", "op", "arity", "target", "returns", "params", "hyper")))
        if edit in ("delete", "swap", "arg", "op", "arity", "target") and not body:
            edit = "returns"
        if edit == "delete":
            del body[draw(st.integers(0, len(body) - 1))]
        elif edit == "swap":
            i, j = draw(st.integers(0, len(body) - 1)), draw(st.integers(0, len(body) - 1))
            body[i], body[j] = body[j], body[i]
        elif edit in ("arg", "arity", "op", "target"):
            i = draw(st.integers(0, len(body) - 1))
            stmt = body[i]
            if edit == "arg" and stmt.args:
                k = draw(st.integers(0, len(stmt.args) - 1))
                new = (
                    Var(draw(st.sampled_from(_BAD_NAMES)))
                    if draw(st.booleans())
                    else Const(draw(st.sampled_from(_BAD_CONSTANTS)))
                )
                body[i] = stmt.with_args(stmt.args[:k] + (new,) + stmt.args[k + 1:])
            elif edit == "arity":
                args = stmt.args[:-1] if stmt.args and draw(st.booleans()) else stmt.args + (Var("g"),)
                body[i] = stmt.with_args(args)
            elif edit == "op":
                name = draw(st.sampled_from(sorted(op_table.OPS) + ["nope", "Sign", "", "__import__"]))
                body[i] = replace(stmt, op=name)
            else:
                body[i] = replace(stmt, target=draw(st.sampled_from(_BAD_NAMES)))
        p = p.with_body(body)
        if edit == "returns":
            returns = list(p.returns)
            how = draw(st.sampled_from(("drop", "add", "rename")))
            if how == "drop" and returns:
                returns.pop()
            elif how == "add":
                returns.append(draw(st.sampled_from(_BAD_NAMES)))
            elif returns:
                returns[draw(st.integers(0, len(returns) - 1))] = draw(st.sampled_from(_BAD_NAMES))
            p = replace(p, returns=tuple(returns))
        elif edit == "params":
            params = list(p.params)
            if draw(st.booleans()):
                del params[draw(st.integers(0, len(params) - 1))]
            else:
                params.append(draw(st.sampled_from(_BAD_NAMES)))
            p = replace(p, params=tuple(params))
        elif edit == "hyper":
            name = draw(st.sampled_from(_BAD_NAMES))
            value = draw(st.sampled_from(_BAD_CONSTANTS))
            p = replace(p, hyperparams=p.hyperparams + ((name, value),))
    return p

# --- hostile text --------------------------------------------------------------------------------

_SNIPPETS = (
    "import os", "__import__('os')", "lambda x: x", "[x for x in g]", "os.system('x')", "w.data", "g[0]",
    "for i in range(3):", "while True:", "if g:", "else:", "with open('f') as f:", "try:", "except:",
    "class A:", "@dec", "f'{g}'", "(x := g)", "yield g", "await g", "del g", "global g", "pass",
    "return", "def f():", "*g", "**g", "{}", "[]", "()", "1j", "'text'", "b'x'", "True", "None", "...",
    "1e999", "10**400", "0x10", "1_000", "sign", "interp", "global_norm", "exec('x')", "\0", "\\", "#",
    "\t", "\n", "    ", ";", ":", "=", "==", "+=", "//", "%", "@", "->", "~", "not", "and", "or", "is",
    "-", "+", "*", "/", ",", "(", ")", "nan", "inf", "pi", "e", "eps", "step", "lr", "w", "g", "m",
    "9" * 5000, "(" * 200, "-" * 300 + "1", "not " * 300 + "g",
)


def _tokens(text: str) -> list[str]:
    """The text split into tokens (with the whitespace between them kept on the token), or
    into words when the tokenizer gives up."""
    try:
        toks = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError):
        return text.split(" ")
    lines = text.splitlines(True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    pieces, last = [], 0
    for tok in toks:
        if tok.type == tokenize.ENDMARKER:
            break
        row, col = tok.end
        end = offsets[row - 1] + col if row - 1 < len(offsets) else len(text)
        if end > last:
            pieces.append(text[last:end])
            last = end
    if last < len(text):
        pieces.append(text[last:])
    return pieces


@st.composite
def mutated_texts(draw, base: st.SearchStrategy[str] | None = None, max_edits: int = 4) -> str:
    """Valid program text broken by a few random token edits: delete, duplicate, swap two,
    replace by or insert a hostile snippet (``import os``, ``lambda``, ``(((``, ``1e999``...),
    or cut the text short."""
    text = draw(base or program_texts(max_statements=5))
    tokens = _tokens(text)
    for _ in range(draw(st.integers(1, max_edits))):
        if not tokens:
            tokens = [""]
        i = draw(st.integers(0, len(tokens) - 1))
        edit = draw(st.sampled_from(("delete", "duplicate", "swap", "replace", "insert", "truncate", "chars")))
        snippet = draw(st.sampled_from(_SNIPPETS))
        if edit == "delete":
            del tokens[i]
        elif edit == "duplicate":
            tokens.insert(i, tokens[i])
        elif edit == "swap":
            j = draw(st.integers(0, len(tokens) - 1))
            tokens[i], tokens[j] = tokens[j], tokens[i]
        elif edit == "replace":
            tokens[i] = " " + snippet if draw(st.booleans()) else snippet
        elif edit == "insert":
            tokens.insert(i, snippet + draw(st.sampled_from(("", " ", "\n    ", "\n"))))
        elif edit == "truncate":
            tokens = tokens[:i]
        else:
            tokens[i] = draw(st.text(max_size=6))
    return "".join(tokens)


def python_like_texts() -> st.SearchStrategy[str]:
    """Random text made of Python-ish pieces (keywords, ops, names, snippets), so random
    text gets past the tokenizer often enough to reach the parser's checks."""
    words = list(_SNIPPETS) + keyword.kwlist + sorted(op_table.OPS)[:20]
    piece = st.one_of(st.sampled_from(words), st.text(max_size=3))
    return st.lists(piece, max_size=30).map(" ".join).map(lambda t: "def train(w, g, lr):\n    " + t)


__all__ = ["broken_programs", "constants", "mutated_texts", "program_texts", "programs", "python_like_texts"]
