"""The planner: heuristics for a first plan and a floor, then CP-SAT to prove or improve.

Stages: one step if it fits; else the lowest-peak order, and when even that does not fit,
the exact smallest budget or a proof-seeking search (solver/minbudget.py); then merged
heuristic plans, CP-SAT for fewer steps, and CP-SAT for a lower peak and shorter absences.
"""

import logging
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from solver.bounds import peak_lower_bound, steps_lower_bound
from solver.cpsat import SolveStatus, UpgradeModel, default_workers
from solver.greedy import (
    best_of,
    greedy_batches,
    greedy_sequence,
    merge_greedy,
    merge_optimal,
    min_peak_plan,
)
from solver.instance import Instance, Problem, build_instance
from solver.minbudget import SLOT_MODEL_WORK, exact_min_budget, smallest_budget, transitions_bound
from solver.orders import ORDER_SECONDS, lower_bottleneck
from solver.plan import Generation, Plan, PlanDocument, evaluate, initial, one_step
from solver.progress import Progress, quiet
from solver.squeeze import squeeze
from solver.validate import Checked, validate
from solver.windows import compress

log = logging.getLogger(__name__)

# With the fewest steps found, the peak is lowered until it is within this fraction of
# its proven bound (0.01 %, the usual MIP gap: 2.5 MB on a 25 GB store). Proving the
# last few megabytes can take the whole time limit and buys nothing a disk notices.
PEAK_GAP = 1e-4


class Status(Enum):
    OPTIMAL = "optimal"
    FEASIBLE = "feasible"
    # Proven: no plan of any number of steps fits the budget.
    INFEASIBLE = "infeasible"
    # No plan was found and none was proven impossible within the time limit.
    UNKNOWN = "unknown"


@dataclass(frozen=True, kw_only=True)
class Result:
    """A plan (or the verdict that none fits) and what is known about how good it is."""

    status: Status
    budget: int
    plan: Plan | None
    lower_bound_steps: int
    # Without a plan: the smallest budget a plan is known for, and a proven floor under
    # the smallest budget of any plan (equal when the smallest budget is exact).
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
        }


# Once the fewest steps are known, the peak stage gets at most this share of the time
# limit, and stops sooner when CP-SAT has not lowered the peak by more than the peak gap
# for PATIENCE seconds: the last megabytes are rarely worth the user's wait (--time-limit
# is a cap, not a target).
PEAK_SHARE = 0.05
PATIENCE = 2.0
# ... but never less than this, so that small plans get their lowest peak on a busy machine.
PEAK_SECONDS = 3.0
# Searching for fewer steps (or for any plan, when the heuristics have none under the
# budget) gets at most this share of the time limit: when CP-SAT neither finds nor
# refutes a plan by then, it rarely does before the limit, and the user is waiting.
STEPS_SHARE = 0.3
# Of that share, re-planning windows of a few steps with their ends fixed
# (solver/windows.py) gets at most this much, before the whole model is asked.
WINDOW_SHARE = 0.2
# ... and squeezing the plan into one step fewer (solver/squeeze.py) at most this much,
# or this much when the plan is two or more steps above the bound (see _squeezed).
SQUEEZE_SHARE = 0.15
SQUEEZE_FAR_SHARE = 0.4
# ... and a probe of the lower bound on steps from below (_raise_bound) this much each.
PROBE_SECONDS = 1.0
# No probe, and no model for the peak, with more (group, user) pairs times slots than
# this: building it alone takes seconds (25,000 paths all rebuilt: 250,000 pairs, 3 s for
# 7 slots), and on such models neither has been decided in its time.
LARGE_MODEL = 500_000
# Without a plan under a budget below the proven floor, the smallest budget that works
# is searched for this share of the time limit.
MIN_BUDGET_SHARE = 0.15


class _Clock:
    """Time since the start, laps by stage, and what is left of the limit."""

    def __init__(self, time_limit: float) -> None:
        self.started = time.monotonic()
        self.limit = time_limit
        self.deadline = self.started + time_limit
        self.timings: dict[str, float] = {}
        self._lap = self.started

    def lap(self, name: str) -> float:
        now = time.monotonic()
        self.timings[name] = self.timings.get(name, 0.0) + now - self._lap
        self._lap = now
        return now - self.started

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.started


def plan_upgrade(
    inst: Instance,
    budget: int,
    *,
    time_limit: float = 60.0,
    workers: int | None = None,
    peak_gap: float = PEAK_GAP,
    progress: Progress = quiet,
) -> Result:
    """Fewest steps under `budget`, then the lowest peak, then the least absence.

    `peak_gap`: stop lowering the peak once it is within this fraction of its proven
    bound (the step count is always minimised to the end or the time limit).
    """
    clock = _Clock(time_limit)
    workers = workers or default_workers()
    single = one_step(inst)
    floor = min(peak_lower_bound(inst), single.peak_bytes)
    clock.lap("bounds")
    common = {"budget": budget, "peak_floor": floor, "one_step_peak": single.peak_bytes}
    if not inst.changed:
        # The target is the current system: no step, and nothing to prove.
        return Result(
            status=Status.OPTIMAL,
            plan=evaluate(inst, [initial(inst)]),
            lower_bound_steps=0,
            seconds=clock.elapsed(),
            timings=clock.timings,
            peak_bound=0,
            # No step, so no peak: its floor is 0 too, not the floor of a step never taken.
            **(common | {"peak_floor": 0}),
        )
    if inst.size == 0 and single.peak_bytes > budget:
        # Only the glue changes: the one step is the only plan, and its need is exact.
        return Result(
            status=Status.INFEASIBLE,
            plan=None,
            lower_bound_steps=0,
            min_feasible_budget=single.peak_bytes,
            min_budget_lower_bound=single.peak_bytes,
            seconds=clock.elapsed(),
            timings=clock.timings,
            **common,
        )
    if single.peak_bytes <= budget or inst.size == 0:
        # One step is the only plan with one step; nothing to optimise.
        elapsed = clock.elapsed()
        return Result(
            status=Status.OPTIMAL,
            plan=single,
            lower_bound_steps=min(1, inst.size),
            greedy_steps=min(1, inst.size),
            seconds=elapsed,
            timings=clock.timings,
            first_plan_seconds=elapsed,
            steps_proven_seconds=elapsed,
            peak_bound=single.peak_bytes,
            **common,
        )

    progress("ordering components")
    lowest = min_peak_plan(inst)
    if lowest.peak_bytes > budget:
        lowest = lower_bottleneck(inst, lowest, seconds=2 * ORDER_SECONDS, target=budget)
    clock.lap("min_peak")
    if lowest.peak_bytes > budget:
        found = _any_plan(inst, budget, floor, lowest, clock, workers, progress)
        if not isinstance(found, Plan):
            status, least, lower = found
            return Result(
                status=status,
                plan=None,
                lower_bound_steps=0,
                min_feasible_budget=least,
                min_budget_lower_bound=lower,
                seconds=clock.elapsed(),
                timings=clock.timings,
                **common,
            )
        lowest = found

    progress("merging steps")
    baseline, fitting = _merged(inst, budget, lowest)
    # The lowest-peak plan fits (it was checked above): there is always a candidate.
    best = best_of(inst, [*fitting, lowest.generations])
    first_plan = clock.lap("heuristics")
    bound = max(2, steps_lower_bound(inst, budget))
    clock.lap("steps_bound")
    if len(best) > bound:
        # Another order, with a lower bottleneck, often merges into fewer steps.
        progress("improving the order")
        lowered = lower_bottleneck(inst, lowest)
        if lowered is not lowest:
            best = best_of(
                inst, [best.generations, merge_optimal(inst, lowered.generations, budget)]
            )
        clock.lap("order")
    log.debug(
        "heuristic plan: %d steps (baseline %d), lower bound %d", len(best), len(baseline), bound
    )

    # The search for fewer steps, within the one stage (the squeeze may run past it): probes
    # of the bound from below, the squeeze, windows of the plan, then the whole model.
    stage_end = time.monotonic() + min(clock.left(), STEPS_SHARE * clock.limit)
    best, bound = _raise_bound(inst, budget, best, bound, stage_end, workers, progress)
    best = _squeezed(inst, budget, best, bound, stage_end, clock, workers, progress)
    clock.lap("squeeze")
    if len(best) > bound:
        share = min(stage_end - time.monotonic(), WINDOW_SHARE * clock.limit)
        best = compress(
            inst, budget, best, seconds=share, workers=workers, lower_bound=bound, progress=progress
        )
        clock.lap("windows")
    best, bound = _fewer_steps(inst, budget, best, bound, stage_end, workers, progress)
    proven_steps = bound >= len(best)
    steps_proven = clock.lap("cpsat_steps") if proven_steps else None
    best, peak_bound, proven_peak, proven_absence = _lower_peak(
        inst, budget, best, floor, clock, workers, peak_gap, progress
    )
    optimal = proven_steps and proven_peak and proven_absence
    return Result(
        status=Status.OPTIMAL if optimal else Status.FEASIBLE,
        plan=best,
        lower_bound_steps=min(bound, len(best)),
        greedy_steps=len(baseline) if baseline.peak_bytes <= budget else None,
        seconds=clock.elapsed(),
        timings=clock.timings,
        first_plan_seconds=first_plan,
        steps_proven_seconds=steps_proven,
        peak_bound=min(peak_bound, best.peak_bytes),
        **common,
    )


def _merged(inst: Instance, budget: int, lowest: Plan) -> tuple[Plan, list[list[Generation]]]:
    """The baseline (greedy order, merged left to right) and every heuristic plan that
    fits: the lowest-peak order merged optimally, and batches filled while they fit."""
    baseline = evaluate(inst, merge_greedy(inst, greedy_sequence(inst), budget))
    if baseline.peak_bytes > budget:
        baseline = evaluate(inst, merge_greedy(inst, lowest.generations, budget))
    candidates = [merge_optimal(inst, lowest.generations, budget), greedy_batches(inst, budget)]
    if not all(inst.vital):
        candidates.append(greedy_batches(inst, budget, drop_non_vital=True))
    fitting = [c for c in candidates if evaluate(inst, c).peak_bytes <= budget]
    if baseline.peak_bytes <= budget:
        fitting.append(list(baseline.generations))
    return baseline, fitting


def _any_plan(
    inst: Instance,
    budget: int,
    floor: int,
    lowest: Plan,
    clock: _Clock,
    workers: int,
    progress: Progress,
) -> Plan | tuple[Status, int, int]:
    """A plan under `budget` when the heuristics have none, or the verdict that there is
    none: (status, smallest budget known to work, proven floor under the smallest)."""
    progress("searching for the smallest budget")
    exact = exact_min_budget(inst)
    clock.lap("exact_min_budget")
    if exact is not None:
        if exact.peak_bytes <= budget:
            return exact
        return Status.INFEASIBLE, exact.peak_bytes, exact.peak_bytes
    if budget < floor:
        # Proven already; how much would do is worth a short search.
        share = min(clock.left(), MIN_BUDGET_SHARE * clock.limit)
        bracket = smallest_budget(
            inst, time_limit=share, workers=workers, heuristic=lowest, patience=PATIENCE
        )
        clock.lap("min_budget")
        return Status.INFEASIBLE, bracket.found, bracket.lower
    # Between the floor and the best plan known: ask CP-SAT, with a slot for every change
    # a plan can need, whether any plan fits; "infeasible" is then a proof.
    slots = transitions_bound(inst)
    if slots * len(inst.groups) > SLOT_MODEL_WORK or clock.left() <= 0:
        return Status.UNKNOWN, lowest.peak_bytes, floor
    progress(f"searching for any plan under the budget ({slots} slots)")
    model = UpgradeModel(inst, budget, slots)
    stage = model.solve(
        "steps", time_limit=min(clock.left(), STEPS_SHARE * clock.limit), workers=workers
    )
    clock.lap("cpsat_any")
    if stage.generations is not None:
        return evaluate(inst, stage.generations)
    if stage.status is SolveStatus.INFEASIBLE:
        return Status.INFEASIBLE, lowest.peak_bytes, budget + 1
    return Status.UNKNOWN, lowest.peak_bytes, floor


def _raise_bound(
    inst: Instance,
    budget: int,
    best: Plan,
    bound: int,
    stage_end: float,
    workers: int,
    progress: Progress,
) -> tuple[Plan, int]:
    """Raise the proven lower bound on steps from below while CP-SAT refutes it quickly.

    When the plan in hand is two or more steps above the bound, the model with as few
    slots as the bound is often refuted in a fraction of a second (its budget is far too
    tight for so few steps), where the model with one step fewer than the plan stays
    undecided. Each probe gets PROBE_SECONDS; a plan it finds is optimal.
    """
    while bound < len(best) - 1 and stage_end - time.monotonic() > 0:
        if _model_work(inst, bound) > LARGE_MODEL:
            break
        progress(f"proving that {bound} steps are too few")
        trial = UpgradeModel(inst, budget, bound)
        left = stage_end - time.monotonic()
        stage = trial.solve("steps", time_limit=min(left, PROBE_SECONDS), workers=workers)
        log.debug("probe of %d steps: %s", bound, stage.status.value)
        if stage.status is SolveStatus.INFEASIBLE:
            bound += 1
            continue
        if stage.generations is not None:
            found = evaluate(inst, stage.generations)
            if found.peak_bytes <= budget and len(found) < len(best):
                best = found
        break
    return best, bound


def _squeezed(
    inst: Instance,
    budget: int,
    best: Plan,
    bound: int,
    stage_end: float,
    clock: "_Clock",
    workers: int,
    progress: Progress,
) -> Plan:
    """`best` squeezed one step at a time (solver/squeeze.py) while that works.

    Two or more steps above the bound, the squeeze may run past the stage's end, up to
    SQUEEZE_FAR_SHARE of the limit from now: a 25,000-path mass rebuild at a tight budget
    needs 15 to 25 s for its step. One step above, it gets SQUEEZE_SHARE and leaves the
    rest of the stage to the windows and to the whole model, which can prove the bound.
    """
    far_end = time.monotonic() + min(clock.left(), SQUEEZE_FAR_SHARE * clock.limit)
    near_end = time.monotonic() + SQUEEZE_SHARE * clock.limit
    while len(best) > bound:
        end = far_end if len(best) - bound >= 2 else min(stage_end, near_end)
        left = end - time.monotonic()
        if left <= 0:
            break
        shorter = squeeze(inst, budget, best, seconds=left, workers=workers, progress=progress)
        if shorter is None:
            break
        best = shorter
    return best


def _fewer_steps(
    inst: Instance,
    budget: int,
    best: Plan,
    bound: int,
    stage_end: float,
    workers: int,
    progress: Progress,
) -> tuple[Plan, int]:
    """Ask for one step fewer until CP-SAT proves it impossible, or `stage_end` (a
    time.monotonic() value); the plan and the bound.

    Each model has only as many slots as steps asked for: smaller than one with slots to
    spare, and "infeasible" is then a proof that the plan in hand is minimal. Building a
    model takes seconds on the largest closures: no model is built that would be left
    with less time to solve than its build took.
    """
    building = 0.0
    while bound < len(best) and stage_end - time.monotonic() - building > 0:
        fewer = len(best) - 1
        progress(f"searching for a plan in {fewer} steps")
        built = time.monotonic()
        trial = UpgradeModel(inst, budget, fewer)
        building = time.monotonic() - built
        stage = trial.solve("steps", time_limit=stage_end - time.monotonic(), workers=workers)
        if stage.status is SolveStatus.INFEASIBLE:
            bound = len(best)
        elif stage.generations is not None:
            found = evaluate(inst, stage.generations)
            if found.peak_bytes > budget or len(found) >= len(best):
                break
            best = found
        else:
            break
    return best, bound


def _lower_peak(
    inst: Instance,
    budget: int,
    best: Plan,
    floor: int,
    clock: _Clock,
    workers: int,
    peak_gap: float,
    progress: Progress,
) -> tuple[Plan, int, bool, bool]:
    """Lower the peak of a plan with as many steps, then shorten absences.

    Returns the plan, the proven bound on its peak, and whether the peak and the
    absence are proven minimal.
    """
    # Without time for another model, or with one too large to decide anything in its
    # share, what is proven is what the floor says.
    if clock.left() <= 0 or _model_work(inst, len(best)) > LARGE_MODEL:
        log.debug("no model to lower the peak of %d steps", len(best))
        return best, floor, best.peak_bytes == floor, not best.absent_steps
    model = UpgradeModel(inst, budget, len(best))
    model.hint(best.generations)
    progress(f"lowering the peak of {len(best)} steps")
    stage = model.solve(
        "peak",
        time_limit=min(clock.left() * 0.8, max(PEAK_SECONDS, PEAK_SHARE * clock.limit)),
        workers=workers,
        at_most={"steps": len(best)},
        gap=peak_gap,
        patience=PATIENCE,
    )
    proven_peak = stage.status is SolveStatus.OPTIMAL
    if stage.generations is not None:
        found = evaluate(inst, stage.generations)
        if len(found) <= len(best) and found.peak_bytes <= best.peak_bytes:
            best = found
    clock.lap("cpsat_peak")
    # CP-SAT's bound holds for plans of at most len(best) steps; the floor for any.
    peak_bound = best.peak_bytes if proven_peak else max(floor, stage.bound or 0)
    if all(inst.vital) or not best.absent_steps:
        return best, peak_bound, proven_peak, True
    model.hint(best.generations)
    progress("shortening absences")
    stage = model.solve(
        "absence",
        time_limit=min(clock.left(), max(PEAK_SECONDS, PEAK_SHARE * clock.limit)),
        workers=workers,
        at_most={"steps": len(best), "peak": best.peak_bytes},
        patience=PATIENCE,
    )
    if stage.generations is not None:
        found = evaluate(inst, stage.generations)
        if (len(found), found.peak_bytes, found.absent_steps) < (
            len(best),
            best.peak_bytes,
            best.absent_steps,
        ):
            best = found
    clock.lap("cpsat_absence")
    return best, peak_bound, proven_peak, stage.status is SolveStatus.OPTIMAL


def _model_work(inst: Instance, slots: int) -> int:
    """(group, user) pairs times slots: what building a model of `slots` steps costs."""
    return (len(inst.old_users.users) + len(inst.new_users.users)) * slots


def plan_checked(
    problem: Problem, budget: int, *, inst: Instance | None = None, **options: Any
) -> tuple[Result, Checked | None]:
    """Plan `problem` under `budget` with `plan_upgrade`'s `options`, then recompute the
    plan's needs from the closures (solver/validate.py): the one way every command plans.
    `inst`: the problem's instance, when it is built already.
    """
    result = plan_upgrade(inst or build_instance(problem), budget, **options)
    return result, check(problem, result, budget)


def check(problem: Problem, result: Result, budget: int) -> Checked | None:
    """The validator's needs of the result's plan (None without one); raises on any error."""
    return validate(problem, result.plan, budget) if result.plan is not None else None
