"""When a search must stop: the one way time is passed between the planner's parts.

A search counts either wall-clock seconds or deterministic work. Work is what makes the
planner repeatable: the same inputs give the same plan on every run, under any load and on
any machine of the same architecture, because every limit is a count of work done (CP-SAT's
own deterministic time, and the local searches' counts of what they priced), never a
reading of the clock. The clock is then only a cap: a search the cap stops says so
(`Meter.capped`), and only such a search can answer differently on another run.
"""

import time
from dataclasses import dataclass, field

# Work units per second of a time limit. CP-SAT's deterministic time runs about four times
# slower than the wall clock on one core on upgrade models (3 units took 12.5 s on a
# 2,000-path mass rebuild), so a stage given `s` seconds gets s * WORK_PER_SECOND units:
# about `s` seconds of wall time, the same every run.
WORK_PER_SECOND = 0.25


class Meter:
    """The work a search has done so far, in CP-SAT's deterministic time units, and whether
    the wall-clock cap ever stopped part of it."""

    def __init__(self) -> None:
        self.spent = 0.0
        self.capped = False

    def spend(self, units: float) -> None:
        self.spent += units


@dataclass(frozen=True)
class Deadline:
    """A point in time.monotonic(), and, when deterministic, a reading of a work meter.

    A plain deadline gives CP-SAT the wall-clock seconds left. A deterministic one (with a
    `meter`) ends when the meter reaches `work`; its `at` is then only a cap, which
    narrowing leaves alone: `within` and `share` narrow the work.
    """

    at: float
    work: float | None = None
    meter: Meter | None = field(default=None, compare=False)

    @classmethod
    def after(cls, seconds: float, *, deterministic: bool = False) -> "Deadline":
        """`seconds` from now; with `deterministic`, that much work (and the clock a cap)."""
        if not deterministic:
            return cls(time.monotonic() + seconds)
        return cls.of_work(seconds * WORK_PER_SECOND, cap=seconds)

    @classmethod
    def of_work(cls, units: float, *, cap: float | None = None) -> "Deadline":
        """`units` of work on a fresh meter, the clock capped `cap` seconds from now (by
        default, never)."""
        at = time.monotonic() + cap if cap is not None else float("inf")
        return cls(at, units, Meter())

    @property
    def deterministic(self) -> bool:
        return self.meter is not None

    def left(self) -> float:
        """Seconds until the deadline (negative once it has passed): wall-clock seconds,
        or the work left in seconds of a time limit when deterministic."""
        if self.meter is None or self.work is None:
            return self.at - time.monotonic()
        if time.monotonic() >= self.at:
            return 0.0
        return (self.work - self.meter.spent) / WORK_PER_SECOND

    def passed(self) -> bool:
        if self.meter is not None and self.work is not None:
            if time.monotonic() >= self.at:
                self.meter.capped = True
                return True
            return self.meter.spent >= self.work
        return self.left() <= 0

    def within(self, seconds: float) -> "Deadline":
        """This deadline, or `seconds` from now if that comes first."""
        if self.meter is not None and self.work is not None:
            work = min(self.work, self.meter.spent + seconds * WORK_PER_SECOND)
            return Deadline(self.at, work, self.meter)
        return Deadline(min(self.at, time.monotonic() + seconds))

    def share(self, fraction: float) -> "Deadline":
        """`fraction` of what is left of this deadline, from now."""
        if self.meter is not None and self.work is not None:
            spent = self.meter.spent
            return Deadline(self.at, spent + fraction * max(0.0, self.work - spent), self.meter)
        return Deadline(time.monotonic() + fraction * self.left())

    def spend(self, units: float) -> None:
        """Count `units` of work done (nothing, on a wall-clock deadline)."""
        if self.meter is not None:
            self.meter.spend(units)

    def charge(self, seconds: float) -> None:
        """Count work that takes about `seconds` of one core (a local search's pricing, a
        model's build), in work units (nothing, on a wall-clock deadline)."""
        self.spend(seconds * WORK_PER_SECOND)

    def solver_seconds(self) -> float:
        """What CP-SAT is given: the work units left when deterministic, else the seconds
        left (never less than 0.05, CP-SAT's smallest useful limit)."""
        if self.meter is not None and self.work is not None:
            return max(0.05, self.work - self.meter.spent)
        return max(0.05, self.left())

    def cap_seconds(self) -> float:
        """Wall-clock seconds until the cap (CP-SAT's time limit beside its work)."""
        return max(0.05, min(self.at - time.monotonic(), 1e9))
