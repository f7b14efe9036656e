"""The abstract values a program computes with: what a variable holds, not its numbers.

A value is one of four kinds, ordered by how much it varies::

    SCALAR  <  GROUP  <  TSCALAR  <  TENSOR

``SCALAR``   one host number for the whole parameter group: ``lr``, ``step``, the
             hyperparameters, constants, and anything computed from those alone.
             The eager and foreach backends keep it a Python float (no device work).
``GROUP``    one number for the group that depends on the tensors, so it lives on the
             device as a 0-d tensor: a reduction over the whole group (``global_norm``).
``TSCALAR``  one number per parameter tensor, a 0-d tensor each: a per-tensor
             reduction (``tensor_norm``), or a state variable that only ever holds one.
``TENSOR``   shaped like the weight.

An elementwise op broadcasts, so its result is the largest kind among its arguments.
"""

from __future__ import annotations

import enum


class Kind(enum.IntEnum):
    SCALAR = 0
    GROUP = 1
    TSCALAR = 2
    TENSOR = 3

    @property
    def on_device(self) -> bool:
        """Whether values of this kind are tensors (everything but host scalars)."""
        return self is not Kind.SCALAR

    @property
    def per_parameter(self) -> bool:
        """Whether there is one value per parameter tensor (a list in the foreach backend)."""
        return self >= Kind.TSCALAR

    def describe(self) -> str:
        return {
            Kind.SCALAR: "a scalar",
            Kind.GROUP: "a scalar of the whole group",
            Kind.TSCALAR: "a scalar per tensor",
            Kind.TENSOR: "a tensor shaped like w",
        }[self]


def join(*kinds: Kind) -> Kind:
    """The kind of an elementwise result: the largest kind among its arguments."""
    return max(kinds, default=Kind.SCALAR)
