"""The planner: heuristics for a first plan and a floor, then CP-SAT to prove or improve."""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from solver.bounds import peak_lower_bound, steps_lower_bound
from solver.cpsat import SolveStatus, UpgradeModel, default_workers
from solver.greedy import best_of, greedy_batches, greedy_sequence, merge_greedy, merge_optimal
from solver.instance import Instance
from solver.plan import Plan, evaluate, one_step

log = logging.getLogger(__name__)

# With the fewest steps found, the peak is lowered until it is within this fraction of
# its proven bound (0.01 %, the usual MIP gap: 2.5 MB on a 25 GB store). Proving the
# last few megabytes can take the whole time limit and buys nothing a disk notices.
PEAK_GAP = 1e-4

Progress = Callable[[str], None]


class Status(Enum):
    OPTIMAL = "optimal"
    FEASIBLE = "feasible"
    INFEASIBLE = "infeasible"


@dataclass(frozen=True)
class Result:
    """A plan (or the verdict that none fits) and what is known about how good it is."""

    status: Status
    budget: int
    plan: Plan | None
    lower_bound_steps: int
    # Smallest budget we found a plan for; None when this budget fits.
    min_feasible_budget: int | None
    # No plan, whatever its number of steps, can peak below this.
    peak_floor: int
    one_step_peak: int
    # Steps of the baseline: one change per step in greedy order, merged while it fits.
    greedy_steps: int | None
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
        return self.min_feasible_budget is not None and self.min_feasible_budget == self.peak_floor

    def to_json(self) -> dict[str, Any]:
        """The object of DESIGN.md's `--json` contract."""
        return {
            "status": self.status.value,
            "budget_bytes": self.budget,
            "peak_bytes": self.peak_bytes,
            "lower_bound_steps": self.lower_bound_steps,
            "min_feasible_budget_bytes": self.min_feasible_budget,
            "steps": [s.to_json() for s in self.plan.steps] if self.plan else [],
        }


def _quiet(_: str) -> None:
    pass


def min_peak_plan(inst: Instance) -> Plan:
    """The lowest-peak plan the heuristics find: one change per step, best greedy order."""
    candidates = [greedy_sequence(inst)]
    if not all(inst.vital):
        candidates.append(greedy_sequence(inst, drop_non_vital=True))
    plans = [evaluate(inst, c) for c in candidates]
    return min(plans, key=lambda p: (p.peak_bytes, p.absent_steps, len(p)))


def plan_upgrade(
    inst: Instance,
    budget: int,
    *,
    time_limit: float = 60.0,
    workers: int | None = None,
    peak_gap: float = PEAK_GAP,
    progress: Progress = _quiet,
) -> Result:
    """Fewest steps under `budget`, then the lowest peak, then the least absence.

    `peak_gap`: stop lowering the peak once it is within this fraction of its proven
    bound (the step count is always minimised to the end or the time limit).
    """
    started = time.monotonic()
    workers = workers or default_workers()
    timings: dict[str, float] = {}

    def lap(name: str, since: float) -> float:
        now = time.monotonic()
        timings[name] = now - since
        return now

    single = one_step(inst)
    floor = min(peak_lower_bound(inst), single.peak_bytes)
    t = lap("bounds", started)
    if single.peak_bytes <= budget or inst.size == 0:
        # One step is the only plan with one step; nothing to optimise.
        elapsed = time.monotonic() - started
        return Result(
            Status.OPTIMAL,
            budget,
            single,
            min(1, inst.size),
            None,
            floor,
            single.peak_bytes,
            min(1, inst.size),
            elapsed,
            timings,
            first_plan_seconds=elapsed,
            steps_proven_seconds=elapsed,
            peak_bound=single.peak_bytes,
        )

    progress("ordering components")
    lowest = min_peak_plan(inst)
    t = lap("min_peak", t)
    if lowest.peak_bytes > budget:
        return Result(
            Status.INFEASIBLE,
            budget,
            None,
            0,
            lowest.peak_bytes,
            floor,
            single.peak_bytes,
            None,
            time.monotonic() - started,
            timings,
        )

    progress("merging steps")
    baseline = evaluate(inst, merge_greedy(inst, greedy_sequence(inst), budget))
    if baseline.peak_bytes > budget:
        baseline = evaluate(inst, merge_greedy(inst, lowest.generations, budget))
    candidates = [merge_optimal(inst, lowest.generations, budget), greedy_batches(inst, budget)]
    if not all(inst.vital):
        candidates.append(greedy_batches(inst, budget, drop_non_vital=True))
    fitting = [c for c in candidates if evaluate(inst, c).peak_bytes <= budget]
    best = best_of(inst, [*fitting, baseline.generations])
    t = lap("heuristics", t)
    first_plan = t - started
    bound = max(2, steps_lower_bound(inst, budget))
    t = lap("steps_bound", t)
    log.debug(
        "heuristic plan: %d steps (baseline %d), lower bound %d", len(best), len(baseline), bound
    )

    deadline = started + time_limit
    t = lap("model", t)
    # Ask for one step fewer in a model with only that many slots: smaller than one with
    # slots to spare, and "infeasible" is then a proof that the plan in hand is minimal.
    # Building a model takes seconds on the largest closures: no model is built that
    # would be left with less time to solve than its build took.
    building = 0.0

    def time_left() -> float:
        return deadline - time.monotonic() - building

    while bound < len(best) and time_left() > 0:
        fewer = len(best) - 1
        progress(f"searching for a plan in {fewer} steps")
        built = time.monotonic()
        trial = UpgradeModel(inst, budget, fewer)
        building = time.monotonic() - built
        stage = trial.solve(
            "steps", time_limit=(deadline - time.monotonic()) * 0.6, workers=workers
        )
        if stage.status is SolveStatus.INFEASIBLE:
            bound = len(best)
        elif stage.generations is not None:
            found = evaluate(inst, stage.generations)
            if found.peak_bytes > budget or len(found) >= len(best):
                break
            best = found
        else:
            break
    proven_steps = bound >= len(best)
    t = lap("cpsat_steps", t)
    steps_proven = t - started if proven_steps else None
    # Without time for another model, what is proven is what the floors say.
    proven_peak = best.peak_bytes == floor
    peak_bound = floor
    proven_absence = not best.absent_steps
    if time_left() > 0:
        model = UpgradeModel(inst, budget, len(best))
        model.hint(best.generations)
        progress(f"lowering the peak of {len(best)} steps")
        stage = model.solve(
            "peak",
            time_limit=(deadline - time.monotonic()) * 0.8,
            workers=workers,
            at_most={"steps": len(best)},
            gap=peak_gap,
        )
        proven_peak = stage.status is SolveStatus.OPTIMAL
        if stage.generations is not None:
            found = evaluate(inst, stage.generations)
            if len(found) <= len(best) and found.peak_bytes <= best.peak_bytes:
                best = found
        t = lap("cpsat_peak", t)
        # CP-SAT's bound holds for plans of at most len(best) steps; the floor for any.
        peak_bound = best.peak_bytes if proven_peak else max(floor, stage.bound or 0)
        proven_absence = True
        if not all(inst.vital) and best.absent_steps:
            model.hint(best.generations)
            progress("shortening absences")
            stage = model.solve(
                "absence",
                time_limit=deadline - time.monotonic(),
                workers=workers,
                at_most={"steps": len(best), "peak": best.peak_bytes},
            )
            proven_absence = stage.status is SolveStatus.OPTIMAL
            if stage.generations is not None:
                found = evaluate(inst, stage.generations)
                if (len(found), found.peak_bytes, found.absent_steps) < (
                    len(best),
                    best.peak_bytes,
                    best.absent_steps,
                ):
                    best = found
            lap("cpsat_absence", t)
    else:
        log.debug("no time left to lower the peak of %d steps", len(best))
    optimal = proven_steps and proven_peak and proven_absence
    return Result(
        Status.OPTIMAL if optimal else Status.FEASIBLE,
        budget,
        best,
        min(bound, len(best)),
        None,
        floor,
        single.peak_bytes,
        len(baseline),
        time.monotonic() - started,
        timings,
        first_plan_seconds=first_plan,
        steps_proven_seconds=steps_proven,
        peak_bound=min(peak_bound, best.peak_bytes),
    )
