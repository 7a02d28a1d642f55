"""Capacity planning: how much store a system needs for an upgrade in at most k steps.

For one current system and one update, `curve` finds, for k = 1, 2, ..., the smallest
budget found under which the upgrade takes at most k steps, and the smallest budget under
which it can be done at all. Everything here is deterministic (heuristics, and CP-SAT with
a budget of its own work units on one worker), so a fleet gives the same answers on local
processes and on a Dask cluster.
"""

from dataclasses import dataclass, field

from solver.deadline import Deadline
from solver.instance import Instance
from solver.model import Objective, SolveStatus, build_model
from solver.plan import Plan, evaluate, one_step
from solver.search.greedy import best_plan, merged_plans, min_peak_plan

# Budgets are searched to this precision: disks are not bought by the byte.
PRECISION_BYTES = 1 << 20


def heuristic_plan(inst: Instance, budget: int, lowest: Plan) -> Plan | None:
    """The fewest-step plan the planner's heuristics find under `budget`, if any fits
    (the planner's first plan, solver/search/first_plan.py's `merged_heuristics`)."""
    if lowest.peak_bytes > budget:
        return None
    _, fitting = merged_plans(inst, budget, lowest)
    return best_plan(fitting)


@dataclass
class Curve:
    """Smallest budgets for at most k steps; `proven[k]` when CP-SAT proved it minimal."""

    one_step_bytes: int
    min_bytes: int  # below this no plan was found (the one-change-per-step order's peak)
    need: dict[int, int] = field(default_factory=dict)
    proven: dict[int, bool] = field(default_factory=dict)

    def steps_at(self, budget: int) -> int | None:
        """Steps the upgrade takes under `budget` by this curve; None: no plan fits."""
        if budget < self.min_bytes:
            return None
        fitting = [k for k, need in sorted(self.need.items()) if need <= budget]
        return fitting[0] if fitting else None


def curve(
    inst: Instance, max_steps: int = 3, *, work_per_step: float = 0.5, extra_steps: int = 0
) -> Curve:
    """The budget needed for at most 1..`max_steps` steps (and beyond, see `steps_at`)."""
    single = one_step(inst)
    lowest = min_peak_plan(inst)
    result = Curve(single.peak_bytes, min(lowest.peak_bytes, single.peak_bytes))
    result.need[1] = single.peak_bytes
    result.proven[1] = True
    for k in range(2, max_steps + 1 + extra_steps):
        need, plan = _bisect(inst, lowest, k, result.min_bytes, result.need[k - 1])
        proven = False
        if plan is not None and len(plan) == k and work_per_step > 0:
            model = build_model(inst, need, k, hint=plan.generations)
            solved = model.solve(
                Objective.PEAK,
                Deadline.of_work(work_per_step),
                workers=1,
                at_most={Objective.STEPS: k},
            )
            if solved.generations is not None:
                found = evaluate(inst, solved.generations)
                need = min(need, found.peak_bytes)
            proven = solved.status is SolveStatus.OPTIMAL
        result.need[k] = need
        result.proven[k] = proven
    # CP-SAT may beat the one-change-per-step order: the least budget is the least found.
    result.min_bytes = min(result.min_bytes, *result.need.values())
    return result


def _bisect(inst: Instance, lowest: Plan, k: int, lo: int, hi: int) -> tuple[int, Plan | None]:
    """The smallest budget in [lo, hi] where the heuristics find at most k steps."""

    def ok(budget: int) -> Plan | None:
        plan = heuristic_plan(inst, budget, lowest)
        return plan if plan is not None and len(plan) <= k else None

    best = ok(hi)
    if best is None:
        return hi, None
    at_least = ok(lo)
    if at_least is not None:
        return lo, at_least
    while hi - lo > PRECISION_BYTES:
        mid = (lo + hi) // 2
        found = ok(mid)
        if found is not None:
            hi, best = mid, found
        else:
            lo = mid
    return best.peak_bytes, best
