"""When a search must stop: the one way time is passed between the planner's parts."""

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Deadline:
    """A point in time.monotonic(), and how CP-SAT is to count its way there.

    A plain deadline gives CP-SAT the wall-clock seconds left. One with `work` gives it
    that many of CP-SAT's own deterministic work units (about seconds) instead, on one
    worker, with no wall-clock patience: the same answer on every machine and under any
    load. Narrowing such a deadline (`within`, `share`) narrows the work the same way.
    """

    at: float
    work: float | None = None

    @classmethod
    def after(cls, seconds: float, *, deterministic: bool = False) -> "Deadline":
        """`seconds` from now; with `deterministic`, as many CP-SAT work units."""
        return cls(time.monotonic() + seconds, seconds if deterministic else None)

    @property
    def deterministic(self) -> bool:
        return self.work is not None

    def left(self) -> float:
        """Wall-clock seconds until the deadline (negative once it has passed)."""
        return self.at - time.monotonic()

    def passed(self) -> bool:
        return self.left() <= 0

    def within(self, seconds: float) -> "Deadline":
        """This deadline, or `seconds` from now if that comes first."""
        work = None if self.work is None else min(self.work, seconds)
        return Deadline(min(self.at, time.monotonic() + seconds), work)

    def share(self, fraction: float) -> "Deadline":
        """`fraction` of what is left of this deadline, from now."""
        work = None if self.work is None else self.work * fraction
        return Deadline(time.monotonic() + fraction * self.left(), work)

    def solver_seconds(self) -> float:
        """What CP-SAT is given: its work units when deterministic, else the seconds left
        (never less than 0.05, CP-SAT's smallest useful limit)."""
        return max(0.05, self.work if self.work is not None else self.left())
