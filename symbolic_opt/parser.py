"""Program text -> ``Program``, by reading Python's syntax tree. Nothing is ever run.

The text is handed to ``ast.parse``, which only builds a syntax tree; the tree is then
walked and anything outside the grammar is a ``ProgramError`` naming the line, the
column and the reason. The grammar::

    program   := [docstring] 'def' NAME '(' params ')' ':' [docstring] stmt* return
    params    := NAME (',' NAME)* (',' NAME '=' number)*      # w, g, lr, [step], state..., hyper=default...
    stmt      := NAME '=' expr | NAME ('+=' | '-=' | '*=' | '/=') expr
    expr      := op '(' expr (',' expr)* ')' | expr ('+'|'-'|'*'|'/'|'**') expr | '-' expr
               | NAME | number | 'pi' | 'e' | 'eps'
    return    := 'return' NAME (',' NAME)*                     # update, then each state's next value

Nested expressions are sugar: ``u = u + w * wd`` becomes ``_t1 = w * wd; u = u + _t1``,
so the IR stays one op per statement (paper-notes section 1).
"""

from __future__ import annotations

import ast
import warnings
from pathlib import Path

from . import ops
from .errors import ProgramError
from .ir import INPUTS, READ_ONLY_INPUTS, REQUIRED_INPUTS, Arg, Const, Program, Statement, Var, format_number

_BINOPS = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "div", ast.Pow: "power"}
_AUGOPS = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "div"}
_OPERATOR_TEXT = {
    ast.FloorDiv: "//", ast.Mod: "%", ast.MatMult: "@", ast.LShift: "<<", ast.RShift: ">>",
    ast.BitOr: "|", ast.BitXor: "^", ast.BitAnd: "&", ast.Pow: "**",
}

_UNSUPPORTED = {
    ast.Import: "imports are not allowed in a program",
    ast.ImportFrom: "imports are not allowed in a program",
    ast.For: "loops are not allowed: a program is a straight line of assignments",
    ast.AsyncFor: "loops are not allowed: a program is a straight line of assignments",
    ast.While: "loops are not allowed: a program is a straight line of assignments",
    ast.If: "conditionals are not allowed: use where(c, x, y) for an elementwise choice",
    ast.With: "'with' is not allowed in a program",
    ast.Try: "'try' is not allowed in a program",
    ast.ClassDef: "classes are not allowed in a program",
    ast.FunctionDef: "nested functions are not allowed: a program is one function",
    ast.AsyncFunctionDef: "async functions are not allowed",
    ast.Lambda: "lambdas are not allowed in a program",
    ast.Attribute: "attribute access is not allowed: call the op by its bare name, like sign(x)",
    ast.Subscript: "indexing is not allowed: ops act on whole tensors",
    ast.ListComp: "comprehensions are not allowed in a program",
    ast.SetComp: "comprehensions are not allowed in a program",
    ast.DictComp: "comprehensions are not allowed in a program",
    ast.GeneratorExp: "generator expressions are not allowed in a program",
    ast.IfExp: "conditional expressions are not allowed: use where(c, x, y)",
    ast.Compare: "comparisons are not allowed: use where(c, x, y), which selects where c > 0",
    ast.BoolOp: "'and'/'or' are not allowed in a program",
    ast.Global: "'global' is not allowed in a program",
    ast.Nonlocal: "'nonlocal' is not allowed in a program",
    ast.Delete: "'del' is not allowed in a program",
    ast.Raise: "'raise' is not allowed in a program",
    ast.Assert: "'assert' is not allowed in a program",
    ast.Pass: "'pass' is not allowed: a statement must compute something",
    ast.Await: "'await' is not allowed in a program",
    ast.Yield: "'yield' is not allowed in a program",
    ast.YieldFrom: "'yield' is not allowed in a program",
    ast.NamedExpr: "':=' is not allowed: assign on a line of its own",
    ast.Starred: "'*' unpacking is not allowed in a program",
    ast.List: "lists are not allowed in a program",
    ast.Tuple: "tuples are only allowed after 'return'",
    ast.Dict: "dicts are not allowed in a program",
    ast.Set: "sets are not allowed in a program",
    ast.JoinedStr: "f-strings are not allowed in a program",
    ast.Match: "'match' is not allowed: use where(c, x, y) for an elementwise choice",
    ast.TryStar: "'try' is not allowed in a program",
    ast.AsyncWith: "'with' is not allowed in a program",
}
if hasattr(ast, "TypeAlias"):  # Python 3.12
    _UNSUPPORTED[ast.TypeAlias] = "'type' aliases are not allowed in a program"


def parse(text: str, *, name: str | None = None) -> Program:
    """Parse program text into a ``Program``; a ``ProgramError`` if it is not a program.

    ``name`` (a file name, say) only labels error messages.
    """
    return _Parser(text, name).program()


def parse_file(path: str | Path) -> Program:
    """Parse the program in the file at ``path``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProgramError(f"no such program file: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProgramError(f"cannot read program file {path}: {exc}") from None
    return parse(text, name=str(path))


class _Parser:
    def __init__(self, text: str, label: str | None):
        self.given = text
        self.text = text.removeprefix("\ufeff") if isinstance(text, str) else None  # a BOM is not content
        self.label = label
        self.body: list[Statement] = []
        self.bound: set[str] = set()
        self.temp_counter = 0
        self.all_names: set[str] = set()

    # --- errors -------------------------------------------------------------------------
    def error(self, reason: str, node: ast.AST | None = None) -> ProgramError:
        line = getattr(node, "lineno", None)
        col = getattr(node, "col_offset", None)
        prefix = f"{self.label}: " if self.label else ""
        return ProgramError(prefix + reason, line, self._column(line, col), self.text)

    def _column(self, line: int | None, byte_offset: int | None) -> int | None:
        """The 1-based column, in characters, of ``ast``'s 0-based UTF-8 byte offset."""
        if line is None or byte_offset is None:
            return None
        lines = self.text.splitlines()
        if not 0 < line <= len(lines):
            return byte_offset + 1
        head = lines[line - 1].encode("utf-8", "surrogatepass")[:byte_offset]
        return len(head.decode("utf-8", "replace")) + 1

    # --- top level ----------------------------------------------------------------------
    def program(self) -> Program:
        if not isinstance(self.text, str):
            raise ProgramError(f"a program is text (str), got {type(self.given).__name__}")
        try:
            with warnings.catch_warnings():
                # Python's own warnings about the text ('1x' is an invalid decimal literal,
                # '\d' an invalid escape) are not the user's business: errors follow, or not
                warnings.simplefilter("ignore", SyntaxWarning)
                warnings.simplefilter("ignore", DeprecationWarning)
                tree = ast.parse(self.text, mode="exec")
        except SyntaxError as exc:
            # SyntaxError's offset is 1-based, in characters; 0 or None when it has none
            col = exc.offset if exc.offset and exc.offset > 0 else None
            label = f"{self.label}: " if self.label else ""
            raise ProgramError(f"{label}not valid syntax: {exc.msg}", exc.lineno, col, self.text) from None
        except (RecursionError, MemoryError):
            raise ProgramError("the program is nested too deeply to read") from None
        except ValueError as exc:  # null bytes (before Python 3.12), unencodable surrogates
            raise ProgramError(f"cannot read the program text: {exc}") from None
        try:
            return self._module(tree)
        except RecursionError:
            raise ProgramError("expression nested too deeply") from None

    def _module(self, tree: ast.Module) -> Program:
        statements = list(tree.body)
        if statements and _is_docstring(statements[0]):
            statements = statements[1:]
        functions = [s for s in statements if isinstance(s, ast.FunctionDef)]
        for s in statements:
            if not isinstance(s, ast.FunctionDef):
                raise self.error(_unsupported_reason(s, "only one 'def' may stand at the top level"), s)
        if not functions:
            raise self.error("no program found: expected 'def train(w, g, ..., lr): ... return update, ...'")
        if len(functions) > 1:
            raise self.error("a file holds one program, found a second 'def'", functions[1])
        self.all_names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | {
            a.arg for a in ast.walk(tree) if isinstance(a, ast.arg)
        }
        return self._function(functions[0])

    def _function(self, fn: ast.FunctionDef) -> Program:
        if fn.decorator_list:
            raise self.error("decorators are not allowed on a program", fn.decorator_list[0])
        if fn.returns is not None:
            raise self.error("return annotations are not allowed on a program", fn.returns)
        if getattr(fn, "type_params", None):
            raise self.error("type parameters are not allowed on a program", fn)
        params, hyperparams = self._signature(fn)
        self.bound = set(params) | {h for h, _ in hyperparams}
        self.read_only = set(READ_ONLY_INPUTS) | {h for h, _ in hyperparams}
        self.declared = self.bound | {
            t.id for n in ast.walk(fn) if isinstance(n, (ast.Assign, ast.AugAssign))
            for t in (n.targets if isinstance(n, ast.Assign) else [n.target]) if isinstance(t, ast.Name)
        }
        body = list(fn.body)
        doc = None
        if body and _is_docstring(body[0]):
            doc = body.pop(0).value.value
        if not body or not isinstance(body[-1], ast.Return):
            raise self.error(
                "missing return: a program ends with 'return update' followed by each state variable's next value",
                body[-1] if body else fn,
            )
        for stmt in body[:-1]:
            self._statement(stmt)
        returns = self._return(body[-1], params)
        return Program(
            params=tuple(params),
            body=tuple(self.body),
            returns=returns,
            hyperparams=tuple(hyperparams),
            name=fn.name,
            doc=doc,
        )

    def _signature(self, fn: ast.FunctionDef) -> tuple[list[str], list[tuple[str, float]]]:
        a = fn.args
        if a.vararg or a.kwarg:
            raise self.error("*args and **kwargs are not allowed in a program's signature", a.vararg or a.kwarg)
        if a.posonlyargs:
            raise self.error("'/' is not allowed in a program's signature", fn)
        for arg in a.args + a.kwonlyargs:
            if arg.annotation is not None:
                raise self.error(f"annotations are not allowed (argument {arg.arg!r})", arg)
        n_plain = len(a.args) - len(a.defaults)
        params = [arg.arg for arg in a.args[:n_plain]]
        hyper_nodes = list(zip(a.args[n_plain:], a.defaults))
        hyper_nodes += [(arg, d) for arg, d in zip(a.kwonlyargs, a.kw_defaults)]
        for arg, default in zip(a.kwonlyargs, a.kw_defaults):
            if default is None:
                raise self.error(f"keyword-only argument {arg.arg!r} needs a default value", arg)
        for arg, _ in hyper_nodes:
            if arg.arg in INPUTS:
                raise self.error(f"input {arg.arg!r} cannot have a default value", arg)
        for required in REQUIRED_INPUTS:
            if required not in params:
                raise self.error(
                    f"missing input {required!r}: a program's positional arguments are w, g, lr, "
                    "optionally step, and its state variables",
                    fn,
                )
        hyperparams = []
        for arg, default in hyper_nodes:
            if arg.arg in INPUTS:
                raise self.error(f"input {arg.arg!r} cannot have a default value", arg)
            hyperparams.append((arg.arg, self._number(default, f"default of {arg.arg!r}")))
        return params, hyperparams

    # --- statements ---------------------------------------------------------------------
    def _statement(self, stmt: ast.stmt) -> None:
        if isinstance(stmt, ast.Assign):
            if len(stmt.targets) != 1:
                raise self.error("assign one variable per statement (no 'a = b = ...')", stmt)
            target = stmt.targets[0]
            self._check_target(target)
            self._assign(target.id, stmt.value, stmt)
        elif isinstance(stmt, ast.AugAssign):
            self._check_target(stmt.target)
            op = _AUGOPS.get(type(stmt.op))
            if op is None:
                raise self.error(f"operator {_OPERATOR_TEXT.get(type(stmt.op), '?')}= is not supported", stmt)
            if stmt.target.id not in self.bound:
                raise self.error(self._unbound_reason(stmt.target.id), stmt.target)
            rhs = self._arg(stmt.value)
            self._emit(stmt.target.id, op, (Var(stmt.target.id), rhs), stmt)
        elif isinstance(stmt, ast.AnnAssign):
            raise self.error("annotated assignments are not allowed; write 'name = ...'", stmt)
        elif isinstance(stmt, ast.Return):
            raise self.error("'return' must be the last statement", stmt)
        elif isinstance(stmt, ast.Expr):
            raise self.error("a bare expression does nothing: assign its value to a variable", stmt)
        else:
            raise self.error(_unsupported_reason(stmt, "unsupported statement"), stmt)

    def _check_target(self, target: ast.expr) -> None:
        if isinstance(target, (ast.Tuple, ast.List)):
            raise self.error("assign one variable per statement (no 'a, b = ...')", target)
        if not isinstance(target, ast.Name):
            raise self.error(_unsupported_reason(target, "the left side of '=' must be one variable name"), target)
        if target.id in self.read_only:
            what = "hyperparameter" if target.id not in READ_ONLY_INPUTS else "input"
            raise self.error(f"cannot assign to {what} {target.id!r}: it is read-only; use a new name", target)

    def _assign(self, target: str, value: ast.expr, stmt: ast.stmt) -> None:
        if isinstance(value, (ast.Name, ast.Constant)) or (
            isinstance(value, ast.UnaryOp) and isinstance(value.op, ast.UAdd)
        ):
            raise self.error(
                f"'{target} = {ast.unparse(value)}' only copies a value; each statement calls one op "
                "(use the value directly where it is needed)",
                value,
            )
        if isinstance(value, ast.UnaryOp) and isinstance(value.op, ast.USub) and _is_number(value.operand):
            raise self.error(f"'{target} = {ast.unparse(value)}' only copies a constant; use the number directly", value)
        op, args = self._call(value)
        self._emit(target, op, args, stmt)

    def _emit(self, target: str, op: str, args: tuple[Arg, ...], node: ast.AST) -> None:
        self.body.append(Statement(target, op, tuple(args), line=getattr(node, "lineno", None)))
        self.bound.add(target)

    def _return(self, ret: ast.Return, params: list[str]) -> tuple[str, ...]:
        state = [p for p in params if p not in INPUTS]
        expected = "'return update" + "".join(f", {s}" for s in state) + "'"
        if ret.value is None:
            raise self.error(f"'return' needs values: expected {expected}", ret)
        values = ret.value.elts if isinstance(ret.value, ast.Tuple) else [ret.value]
        if len(values) != 1 + len(state):
            raise self.error(
                f"return gives {len(values)} value(s); expected the update and one per state variable: {expected}",
                ret,
            )
        names = []
        for v in values:
            if not isinstance(v, ast.Name):
                raise self.error(f"return names variables; assign {ast.unparse(v)!r} to a variable first", v)
            if v.id not in self.bound:
                raise self.error(self._unbound_reason(v.id), v)
            names.append(v.id)
        return tuple(names)

    # --- expressions ----------------------------------------------------------------------
    def _call(self, node: ast.expr) -> tuple[str, tuple[Arg, ...]]:
        """The op and arguments of a top-level expression, flattening nested ones."""
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name):
                raise self.error(_unsupported_reason(node.func, "call an op by its bare name"), node.func)
            name = node.func.id
            if name not in ops.OPS:
                raise self.error(ops.unknown_op_message(name), node.func)
            if node.keywords:
                raise self.error(f"{name}() takes positional arguments only", node.keywords[0])
            op = ops.OPS[name]
            if len(node.args) != op.arity:
                raise self.error(
                    f"{name}() takes {op.arity} argument{'s' if op.arity != 1 else ''}, got {len(node.args)}", node
                )
            return name, tuple(self._arg(a) for a in node.args)
        if isinstance(node, ast.BinOp):
            op = _BINOPS.get(type(node.op))
            if op is None:
                raise self.error(f"operator {_OPERATOR_TEXT.get(type(node.op), '?')} is not supported", node)
            return op, (self._arg(node.left), self._arg(node.right))
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.USub):
                return "negative", (self._arg(node.operand),)
            raise self.error(f"unary operator {ast.unparse(node).split()[0]!r} is not supported", node)
        raise self.error(_unsupported_reason(node, f"unsupported expression {ast.unparse(node)!r}"), node)

    def _arg(self, node: ast.expr) -> Arg:
        """An argument: a variable, a constant, or a nested expression held in a temporary."""
        if isinstance(node, ast.Name):
            if node.id in self.bound:
                return Var(node.id)
            if node.id in ops.CONSTANTS and node.id not in self.declared:
                return Const(ops.CONSTANTS[node.id], node.id)
            raise self.error(self._unbound_reason(node.id), node)
        if _is_number(node) or isinstance(node, ast.Constant):
            return Const(self._number(node, "constant"))
        if isinstance(node, ast.UnaryOp) and _is_number(node.operand):
            return Const(self._number(node, "constant"))
        op, args = self._call(node)
        temp = self._fresh()
        self._emit(temp, op, args, node)
        return Var(temp)

    def _number(self, node: ast.expr, what: str) -> float:
        sign = 1.0
        inner = node
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            sign = -1.0 if isinstance(node.op, ast.USub) else 1.0
            inner = node.operand
        if not _is_number(inner):
            shown = ast.unparse(node)
            kind = type(inner.value).__name__ if isinstance(inner, ast.Constant) else "expression"
            raise self.error(f"{what} must be a number, got {kind} {shown}", node)
        try:
            value = sign * float(inner.value)
            format_number(value)
        except (ValueError, OverflowError):  # 1e999 is inf; 10 ** 400 written out overflows float()
            shown = ast.unparse(node)
            shown = shown if len(shown) <= 40 else shown[:20] + "..." + shown[-10:]
            raise self.error(f"{what} {shown} is not a finite number", node) from None
        return value

    def _fresh(self) -> str:
        while True:
            self.temp_counter += 1
            name = f"_t{self.temp_counter}"
            if name not in self.all_names and name not in self.bound:
                return name

    def _unbound_reason(self, name: str) -> str:
        if name in self.declared:
            return f"variable {name!r} is used before it is assigned"
        if name in ops.OPS:
            return f"{name!r} is an op: call it, like {name}(x)"
        return f"undefined variable {name!r}"


def _is_number(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Constant)
        and isinstance(node.value, (int, float))
        and not isinstance(node.value, bool)
    )


def _is_docstring(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)


def _unsupported_reason(node: ast.AST, default: str) -> str:
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Name):
        if node.value.func.id in ("__import__", "exec", "eval", "compile", "open", "getattr"):
            return f"calling {node.value.func.id}() is not allowed in a program"
    for kind, reason in _UNSUPPORTED.items():
        if isinstance(node, kind):
            return reason
    return default
