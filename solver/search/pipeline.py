"""The planner: a pipeline of stages over one search state, in this order (`STAGES`).

First plan (solver/search/first_plan.py):
 1. bounds: the one-step upgrade and the floor no plan peaks below.
 2. nothing_to_do: the target is the current system: no step (stops).
 3. only_glue: only the glue changes and the one step is over the budget (stops, no plan).
 4. one_step_fits: the one step fits: nothing to optimise (stops).
 5. lowest_peak: the lowest-peak order, one change per step.
 6. any_plan: when even that does not fit, the exact smallest budget, a bracket of it, or
    CP-SAT asked for any plan (solver/search/minbudget.py); a plan, or NoPlan (stops).
 7. merged_heuristics: the best merged heuristic plan that fits: the first plan.
 8. steps_bound: the lower bound on steps.
 9. better_order: an order with a lower bottleneck, merged.
Fewer steps (solver/search/fewer_steps.py), within STEPS_SHARE of the time limit:
10. probes: proofs before search: CP-SAT raises the bound from below.
11. squeeze: two steps merged, the overflow spread (solver/search/squeeze.py).
12. windows: a few steps re-planned in one fewer (solver/search/windows.py).
13. whole_model: CP-SAT asked for one step fewer until refuted.
Peak and absence (solver/search/lower_peak.py):
14. lower_peak: CP-SAT lowers the peak at that many steps.
15. shorten_absences: then the time non-vital packages are absent.

Each stage is a `Stage`: it takes the `Search` (solver/search/state.py) and adds to it;
one that settles the answer stops the pipeline. `Search.result` makes the `Result`.
"""

from typing import TypedDict, Unpack

from solver.instance import Instance, Problem, build_instance
from solver.model import default_workers
from solver.plan import Plan
from solver.progress import Progress, quiet
from solver.search.fewer_steps import probes, squeeze, whole_model, windows
from solver.search.first_plan import (
    any_plan,
    better_order,
    bounds,
    lowest_peak,
    merged_heuristics,
    nothing_to_do,
    one_step_fits,
    only_glue,
    steps_bound,
)
from solver.search.lower_peak import lower_peak, shorten_absences
from solver.search.result import Result
from solver.search.state import Clock, Search, Stage
from solver.search.tuning import PEAK_GAP
from solver.validate import Checked, validate

STAGES: tuple[Stage, ...] = (
    bounds,
    nothing_to_do,
    only_glue,
    one_step_fits,
    lowest_peak,
    any_plan,
    merged_heuristics,
    steps_bound,
    better_order,
    probes,
    squeeze,
    windows,
    whole_model,
    lower_peak,
    shorten_absences,
)


def plan_upgrade(
    inst: Instance,
    budget: int,
    *,
    time_limit: float = 60.0,
    workers: int | None = None,
    peak_gap: float = PEAK_GAP,
    progress: Progress = quiet,
    deterministic: bool | None = None,
) -> Result:
    """Fewest steps under `budget`, then the lowest peak, then the least absence.

    `time_limit`: seconds for the whole search. `peak_gap`: stop lowering the peak once
    it is within this fraction of its proven bound (the step count is always minimised to
    the end or the time limit).

    Repeatable by default: with `workers` None or 1, every limit is deterministic work
    (CP-SAT's deterministic time on one worker, and the local searches' counts; see
    solver/deadline.py), so the same inputs give the same plan on every run, and
    `time_limit` is only a cap (the result says when it cut the search short:
    `Result.repeatable`). With more `workers`, CP-SAT runs a parallel portfolio against
    the wall clock: sometimes faster to a proof on large models, but runs may differ.
    `deterministic` overrides that choice.
    """
    if deterministic is None:
        deterministic = workers is None or workers == 1
    clock = Clock(time_limit, deterministic=deterministic)
    workers = 1 if deterministic else workers or default_workers()
    search = Search(inst, budget, workers, peak_gap, progress, clock)
    for stage in STAGES:
        stage(search)
        clock.lap(stage.__name__)
        if search.done:
            break
    return search.result()


class SearchOptions(TypedDict, total=False):
    """`plan_upgrade`'s keyword options, as `plan_checked` passes them on."""

    time_limit: float
    workers: int | None
    peak_gap: float
    progress: Progress
    deterministic: bool | None


def replayed(inst: Instance, budget: int, plan: Plan) -> Result:
    """The Result of a plan made earlier (a reviewed plan, solver/plan.py's `replay`): the
    bounds of this instance beside it, and nothing proven of the plan itself."""
    search = Search(inst, budget, 1, PEAK_GAP, quiet, Clock(0.0, deterministic=True))
    bounds(search)
    search.best = plan
    if search.single.peak_bytes <= budget:
        search.bound = min(1, len(plan))
    else:
        steps_bound(search)
    return search.result()


def plan_checked(
    problem: Problem,
    budget: int,
    *,
    inst: Instance | None = None,
    **options: Unpack[SearchOptions],
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
