"""What the planner answers: a plan and what is proven about it, or the verdict that none
fits (`NoPlan`)."""

from dataclasses import dataclass, field
from enum import Enum

from solver.plan import Plan, PlanDocument


class Status(Enum):
    OPTIMAL = "optimal"
    FEASIBLE = "feasible"
    # Proven: no plan of any number of steps fits the budget.
    INFEASIBLE = "infeasible"
    # No plan was found and none was proven impossible within the time limit.
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class NoPlan:
    """No plan under the budget: proven (INFEASIBLE) or not found (UNKNOWN), the smallest
    budget a plan is known for, and a proven floor under the smallest budget of any plan
    (equal when the smallest budget is exact)."""

    status: Status
    min_feasible_budget: int
    min_budget_lower_bound: int


@dataclass(frozen=True, kw_only=True)
class Result:
    """A plan (or the verdict that none fits) and what is known about how good it is."""

    status: Status
    budget: int
    plan: Plan | None
    lower_bound_steps: int
    # Without a plan: see NoPlan.
    min_feasible_budget: int | None = None
    min_budget_lower_bound: int | None = None
    # No plan, whatever its number of steps, can peak below this.
    peak_floor: int
    one_step_peak: int
    # Steps of the baseline: one change per step in greedy order, merged while it fits.
    greedy_steps: int | None = None
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)
    # Seconds from the start to the first complete plan, and to the proof that no plan
    # has fewer steps (None: not proven by the time limit).
    first_plan_seconds: float | None = None
    steps_proven_seconds: float | None = None
    # No plan with as many steps peaks below this (the plan's own peak when proven).
    peak_bound: int = 0
    # Every limit of the search was deterministic work and the wall-clock cap (the time
    # limit) never cut it short: every run gives this same result (solver/deadline.py).
    repeatable: bool = False

    @property
    def peak_bytes(self) -> int:
        return self.plan.peak_bytes if self.plan else 0

    @property
    def min_budget_proven(self) -> bool:
        return (
            self.min_feasible_budget is not None
            and self.min_feasible_budget == self.min_budget_lower_bound
        )

    def to_json(self) -> PlanDocument:
        """The object of the `--json` contract (README, "Usage")."""
        return {
            "status": self.status.value,
            "budget_bytes": self.budget,
            "peak_bytes": self.peak_bytes,
            "lower_bound_steps": self.lower_bound_steps,
            "min_feasible_budget_bytes": self.min_feasible_budget,
            "min_budget_lower_bound_bytes": self.min_budget_lower_bound,
            "steps": [s.to_json() for s in self.plan.steps] if self.plan else [],
            "repeatable": self.repeatable,
        }
