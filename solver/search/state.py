"""The search state that every stage of the pipeline reads and adds to, and its clock."""

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from solver.deadline import Deadline
from solver.instance import Instance
from solver.model import UpgradeModel
from solver.plan import Plan
from solver.progress import Progress
from solver.search.result import NoPlan, Result, Status


class Clock:
    """Time since the start, laps by stage, and the deadline of the whole search."""

    def __init__(self, limit: float, *, deterministic: bool = False) -> None:
        self.started = time.monotonic()
        self.limit = limit
        self.deadline = Deadline.after(limit, deterministic=deterministic)
        self.timings: dict[str, float] = {}
        self._lap = self.started

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.timings[name] = self.timings.get(name, 0.0) + now - self._lap
        self._lap = now

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def repeatable(self) -> bool:
        """Whether the search so far counted work only: the clock never cut it short."""
        meter = self.deadline.meter
        return meter is not None and not meter.capped

    def share(self, fraction: float) -> Deadline:
        """At most `fraction` of the time limit from now, and never past the deadline."""
        return self.deadline.within(fraction * self.limit)


@dataclass(eq=False)
class Search:
    """What the pipeline knows so far. Fields without a default are set by the stage named
    beside them; a stage that settles the answer calls `stop`."""

    inst: Instance
    budget: int
    workers: int
    peak_gap: float
    progress: Progress
    clock: Clock
    # `bounds`: the one-step upgrade, and the floor no plan peaks below.
    single: Plan = field(init=False)
    floor: int = field(init=False)
    # `lowest_peak`: the lowest-peak order found, one change per step.
    lowest: Plan = field(init=False)
    # The best plan so far: from `merged_heuristics` on, or the early exit's.
    best: Plan = field(init=False)
    # The proven lower bound on steps (`steps_bound`, raised by `probes`, `whole_model`).
    bound: int = 0
    # `probes`: the end of the search for fewer steps (probes, squeeze, windows, whole model).
    steps_deadline: Deadline = field(init=False)
    # `lower_peak`: its model, which `shorten_absences` solves again.
    peak_model: UpgradeModel | None = None
    greedy_steps: int | None = None
    first_plan_seconds: float | None = None
    steps_proven_seconds: float | None = None
    peak_bound: int = 0
    steps_proven: bool = False
    peak_proven: bool = False
    absence_proven: bool = False
    no_plan: NoPlan | None = None
    done: bool = False

    def stop(self, no_plan: NoPlan | None = None) -> None:
        """The answer is settled: `best` as it is, or `no_plan`."""
        self.no_plan = no_plan
        self.done = True

    def result(self) -> Result:
        """The Result of the search so far: the one place a Result is made."""
        verdict = self.no_plan
        plan = None if verdict is not None else self.best
        optimal = self.steps_proven and self.peak_proven and self.absence_proven
        return Result(
            status=verdict.status if verdict else Status.OPTIMAL if optimal else Status.FEASIBLE,
            budget=self.budget,
            plan=plan,
            lower_bound_steps=min(self.bound, len(plan)) if plan is not None else 0,
            min_feasible_budget=verdict.min_feasible_budget if verdict else None,
            min_budget_lower_bound=verdict.min_budget_lower_bound if verdict else None,
            peak_floor=self.floor,
            one_step_peak=self.single.peak_bytes,
            greedy_steps=self.greedy_steps,
            seconds=self.clock.elapsed(),
            timings=self.clock.timings,
            first_plan_seconds=self.first_plan_seconds,
            steps_proven_seconds=self.steps_proven_seconds,
            peak_bound=min(self.peak_bound, plan.peak_bytes) if plan is not None else 0,
            repeatable=self.clock.repeatable,
        )


# A stage of the pipeline (solver/search/pipeline.py): it reads the search and adds to it.
Stage = Callable[[Search], None]
