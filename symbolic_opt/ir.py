"""The program IR: a frozen, flat list of single-op assignments (paper-notes section 1).

A ``Program`` is what ``train(w, g, m, lr, beta1=0.9, ...)`` says:

* ``params``: the positional arguments in order. ``w`` (weight), ``g`` (gradient),
  ``lr`` (the scheduled learning rate) and optionally ``step`` (1, 2, ...) are inputs;
  every other positional argument is a *state variable*, zero at the start.
* ``hyperparams``: the keyword arguments with their defaults (``beta1=0.9``).
* ``body``: statements ``target = op(arg, ...)``, each calling exactly one op on
  variables or constants.
* ``returns``: the variable holding the update, then one variable per state variable,
  in the order the state variables are declared: the value each holds next step.

The training loop applies ``w = w - update``. Values are immutable and hashable, so
programs can be set members, cache keys and dict keys. Source positions are kept for
error messages but take no part in equality.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Iterator

INPUTS: tuple[str, ...] = ("w", "g", "lr", "step")
"""Positional arguments with a fixed meaning; any other positional argument is state."""

REQUIRED_INPUTS: tuple[str, ...] = ("w", "g", "lr")
READ_ONLY_INPUTS: tuple[str, ...] = ("w", "step")
"""Inputs a program may not reassign. ``g`` and ``lr`` may be: the paper's programs do
(``lr = lr * 0.001``, ``g = clip(g, lr)``)."""


@dataclass(frozen=True)
class Var:
    """A reference to a variable by name."""

    name: str

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Const:
    """A number in the program; ``name`` is set for the named constants (``pi``, ``e``, ``eps``)."""

    value: float
    name: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", float(self.value))

    def __str__(self) -> str:
        return self.name or format_number(self.value)


Arg = Var | Const


def format_number(value: float) -> str:
    """The shortest text that parses back to exactly ``value`` (``repr`` of a float)."""
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{value} is not a finite number; constants must be finite")
    return repr(float(value))


@dataclass(frozen=True)
class Statement:
    """``target = op(*args)``."""

    target: str
    op: str
    args: tuple[Arg, ...]
    line: int | None = field(default=None, compare=False, repr=False)

    def reads(self) -> Iterator[str]:
        """The variables this statement reads, in argument order (repeats included)."""
        return (a.name for a in self.args if isinstance(a, Var))

    def with_args(self, args: tuple[Arg, ...]) -> "Statement":
        return replace(self, args=tuple(args))


@dataclass(frozen=True)
class Program:
    """An optimizer as a straight-line program. See the module docstring."""

    params: tuple[str, ...]
    body: tuple[Statement, ...]
    returns: tuple[str, ...]
    hyperparams: tuple[tuple[str, float], ...] = ()
    name: str = field(default="train", compare=False)
    doc: str | None = field(default=None, compare=False)

    @property
    def state(self) -> tuple[str, ...]:
        """The state variables, in declaration order."""
        return tuple(p for p in self.params if p not in INPUTS)

    @property
    def inputs(self) -> tuple[str, ...]:
        """The fixed-meaning inputs this program declares (``w``, ``g``, ``lr``, maybe ``step``)."""
        return tuple(p for p in self.params if p in INPUTS)

    @property
    def update(self) -> str:
        """The variable holding the update (``w <- w - update``)."""
        return self.returns[0]

    @property
    def state_out(self) -> dict[str, str]:
        """For each state variable, the variable whose value it holds next step."""
        return dict(zip(self.state, self.returns[1:]))

    @property
    def defaults(self) -> dict[str, float]:
        return dict(self.hyperparams)

    @property
    def uses_step(self) -> bool:
        return "step" in self.params

    def with_body(self, body: tuple[Statement, ...] | list[Statement]) -> "Program":
        return replace(self, body=tuple(body))

    def with_hyperparams(self, **values: float) -> "Program":
        """The same program with new hyperparameter defaults (unknown names raise)."""
        known = self.defaults
        unknown = set(values) - set(known)
        if unknown:
            raise KeyError(f"unknown hyperparameter(s) {sorted(unknown)}; this program has {sorted(known)}")
        known.update({k: float(v) for k, v in values.items()})
        return replace(self, hyperparams=tuple(known.items()))

    def __len__(self) -> int:
        return len(self.body)

    def __str__(self) -> str:
        from .printer import print_program

        return print_program(self)
