"""A setting out of the running leaves the batch: its other seeds stop when one fails.

A sweep trains several settings (learning rates, hyperparameters) side by side, each on its
seeds (``tuning.validate``). A setting whose seed diverged has an infinite mean loss and can
never be chosen, so its other seeds stop at once (``training.train`` takes them out of the
batch, so they cost nothing more). This changes no result.

Stopping settings that merely fall behind (successive halving, as in Hyperband: keep the best
3 of 5 by training loss at a quarter of the run, the best 2 at half) was measured and left
out: on the warm start, six library programs and 40 random children on the default suite it
chose another multiplier on 8 of 64 tasks and changed 8 of 16 fitnesses (the warm start's
among them, by up to 0.02) for 16% less CPU time.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Groups:
    """Which setting each row of a run belongs to."""

    setting: tuple[int, ...]

    def fellow_rows(self, failed: int) -> list[int]:
        """The other rows of ``failed``'s setting: out of the running with it."""
        return [i for i, s in enumerate(self.setting) if s == self.setting[failed] and i != failed]
