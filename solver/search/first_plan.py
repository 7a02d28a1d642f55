"""The pipeline's stages up to the first plan: bounds, early exits, heuristics.

Each stage takes the search (solver/search/state.py) and adds to it; the order is
solver/search/pipeline.py's.
"""

import logging

from solver.model import Objective, SolveStatus, build_model, model_work
from solver.plan import Plan, evaluate, initial, one_step
from solver.search.bounds import peak_lower_bound, steps_lower_bound
from solver.search.greedy import best_of, best_plan, merge_optimal, merged_plans, min_peak_plan
from solver.search.minbudget import exact_min_budget, smallest_budget, transitions_bound
from solver.search.orders import lower_bottleneck
from solver.search.result import NoPlan, Status
from solver.search.state import Search
from solver.search.tuning import (
    LARGE_SLOT_MODEL,
    MIN_BUDGET_SHARE,
    ORDER_SECONDS,
    PEAK_PATIENCE,
    STEPS_SHARE,
)

log = logging.getLogger(__name__)


def bounds(s: Search) -> None:
    """The one-step upgrade, and the floor no plan of any length peaks below."""
    s.single = one_step(s.inst)
    s.floor = min(peak_lower_bound(s.inst), s.single.peak_bytes)


def nothing_to_do(s: Search) -> None:
    """The target is the current system: no step, and nothing to prove."""
    if not s.inst.changed:
        s.best = evaluate(s.inst, [initial(s.inst)])
        s.steps_proven = s.peak_proven = s.absence_proven = True
        s.stop()


def only_glue(s: Search) -> None:
    """Only the glue changes and the one step is over the budget: it is the only plan,
    and its need is exact."""
    if s.inst.size == 0 and s.single.peak_bytes > s.budget:
        need = s.single.peak_bytes
        s.stop(NoPlan(Status.INFEASIBLE, need, need))


def one_step_fits(s: Search) -> None:
    """One step is the only plan with one step; when it fits, nothing is left to optimise."""
    if s.single.peak_bytes <= s.budget or s.inst.size == 0:
        s.best = s.single
        s.bound = s.greedy_steps = min(1, s.inst.size)
        s.first_plan_seconds = s.steps_proven_seconds = s.clock.elapsed()
        s.peak_bound = s.single.peak_bytes
        s.steps_proven = s.peak_proven = s.absence_proven = True
        s.stop()


def lowest_peak(s: Search) -> None:
    """The lowest-peak order: one change per step, its bottleneck lowered if over."""
    s.progress("ordering components")
    s.lowest = min_peak_plan(s.inst)
    if s.lowest.peak_bytes > s.budget:
        order_end = s.clock.deadline.within(2 * ORDER_SECONDS)
        s.lowest = lower_bottleneck(s.inst, s.lowest, order_end, target=s.budget)


def any_plan(s: Search) -> None:
    """When even the lowest-peak order does not fit: the exact smallest budget, or below
    the floor a bracket of it, or CP-SAT asked for any plan; a plan, or the verdict."""
    if s.lowest.peak_bytes <= s.budget:
        return
    s.progress("searching for the smallest budget")
    found = _exact(s)
    if found is None:
        found = _bracket(s)
    if found is None:
        found = _any(s)
    if isinstance(found, Plan):
        s.lowest = found
    else:
        s.stop(found)


def _exact(s: Search) -> Plan | NoPlan | None:
    """The lowest-peak plan of all, when the search over every generation is small."""
    exact = exact_min_budget(s.inst)
    if exact is None:
        return None
    if exact.peak_bytes <= s.budget:
        return exact
    return NoPlan(Status.INFEASIBLE, exact.peak_bytes, exact.peak_bytes)


def _bracket(s: Search) -> NoPlan | None:
    """Below the floor no plan fits, proven already; how much would do is worth a short
    search."""
    if s.budget >= s.floor:
        return None
    deadline = s.clock.share(MIN_BUDGET_SHARE)
    bracket = smallest_budget(
        s.inst, deadline, workers=s.workers, heuristic=s.lowest, patience=PEAK_PATIENCE
    )
    return NoPlan(Status.INFEASIBLE, bracket.found, bracket.lower)


def _any(s: Search) -> Plan | NoPlan:
    """Between the floor and the best plan known: CP-SAT, with a slot for every change a
    plan can need, asked whether any plan fits; "infeasible" is then a proof."""
    inst, lowest = s.inst, s.lowest
    slots = transitions_bound(inst)
    if model_work(inst, slots) > LARGE_SLOT_MODEL or s.clock.deadline.passed():
        return NoPlan(Status.UNKNOWN, lowest.peak_bytes, s.floor)
    s.progress(f"searching for any plan under the budget ({slots} slots)")
    model = build_model(inst, s.budget, slots)
    solved = model.solve(Objective.STEPS, s.clock.share(STEPS_SHARE), workers=s.workers)
    if solved.generations is not None:
        return evaluate(inst, solved.generations)
    if solved.status is SolveStatus.INFEASIBLE:
        return NoPlan(Status.INFEASIBLE, lowest.peak_bytes, s.budget + 1)
    return NoPlan(Status.UNKNOWN, lowest.peak_bytes, s.floor)


def merged_heuristics(s: Search) -> None:
    """The best of the heuristic plans that fit (solver/search/greedy.py's `merged_plans`),
    the lowest-peak order among them: the first plan."""
    s.progress("merging steps")
    baseline, fitting = merged_plans(s.inst, s.budget, s.lowest)
    # The lowest-peak plan fits (`any_plan` saw to it): there is always a candidate.
    s.best = best_plan(fitting)
    s.greedy_steps = len(baseline) if baseline.peak_bytes <= s.budget else None
    s.first_plan_seconds = s.clock.elapsed()


def steps_bound(s: Search) -> None:
    """The lower bound on steps from cliques and volume (solver/search/bounds.py)."""
    s.bound = max(2, steps_lower_bound(s.inst, s.budget))


def better_order(s: Search) -> None:
    """Another order, with a lower bottleneck, often merges into fewer steps."""
    if len(s.best) > s.bound:
        s.progress("improving the order")
        # A share of the search's own deadline: work, not the clock, when deterministic.
        lowered = lower_bottleneck(s.inst, s.lowest, s.clock.deadline.within(ORDER_SECONDS))
        if lowered is not s.lowest:
            merged = merge_optimal(s.inst, lowered.generations, s.budget)
            s.best = best_of(s.inst, [s.best.generations, merged])
    log.debug("heuristic plan: %d steps, lower bound %d", len(s.best), s.bound)
