"""Steps against the budget, where the answer changes: for k = 1, 2, ..., the smallest
budget under which the upgrade takes at most k steps, each shown by a plan and bracketed
by a proven floor.

One step is exact: it is the only one-step plan. For more steps the budget is found as
capacity planning finds it (capacity.py): the heuristics' plans give a budget, and CP-SAT,
asked for the lowest peak of at most k steps for a little work, lowers it and proves what
it can. The heuristic side prices every step count at once: a plan that keeps a sequence
of generations in order and merges it into at most k steps peaks at the bottleneck of a
k-edge path through the sequence's jump needs (greedy.py's `jump_needs`, what
`merge_optimal` walks for one budget), so one matrix per sequence gives every stair, where
a bisection would re-plan each step count a dozen times.

Where CP-SAT proves no stair, the answer is bracketed: `Staircase.steps_at` is what the
best plans known take, `Staircase.fewest_at` the fewest steps not ruled out.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from solver.deadline import Deadline
from solver.instance import Instance
from solver.model import Objective, SolveStatus, build_model, model_work
from solver.plan import Generation, Plan, evaluate, one_step
from solver.search.bounds import peak_lower_bound
from solver.search.greedy import jump_needs, min_peak_plan
from solver.search.minbudget import exact_min_budget
from solver.search.result import Result, Status
from solver.search.tuning import BUILD_WORK_SECONDS

# Stairs past this many steps are not looked for: the plot says "more steps" there.
MOST_STAIRS = 24
# CP-SAT work (solver/deadline.py's units, about 4 s each) for lowering and proving all
# the stairs, and the wall-clock cap on it: a figure is not worth more than a few seconds.
STAIRCASE_WORK = 0.15
STAIRCASE_SECONDS = 3.0
# ... and no model past this size (solver/model/size.py's `model_work`) is built for a
# stair: on the 25,000-path desktop (340,000 for two steps) CP-SAT spent 2 s and proved
# nothing; on 1,000-path systems (under 10,000) it proves stairs in a fraction of that.
STAIR_MODEL = 100_000
# Sequences longer than this are not merged: the jump needs are a square matrix of them
# (2,000 generations: 32 MB, and two more of its size while merging).
MOST_MERGED = 2_000

_INF = np.iinfo(np.int64).max // 4


@dataclass(frozen=True)
class Stair:
    """Plans of at most `steps` steps fit from `budget` up, as `plan` shows; none fits
    below `lower` (proven)."""

    steps: int
    plan: Plan
    lower: int

    @property
    def budget(self) -> int:
        return self.plan.peak_bytes

    @property
    def proven(self) -> bool:
        return self.lower >= self.budget


@dataclass(frozen=True)
class Staircase:
    """The budgets where the answer changes, from one step down.

    `stairs`: each budget below the one before, at more steps. `lower[k - 1]`: no plan of
    at most k steps fits below it, for k up to the last stair's steps. `floor`: no plan at
    all fits below it. `complete`: the stairs reach the smallest budget a plan is known for
    (else they stop at MOST_STAIRS or at the budget they were asked to reach).
    """

    stairs: tuple[Stair, ...]
    lower: tuple[int, ...]
    floor: int
    complete: bool

    @property
    def least(self) -> int | None:
        """The smallest budget a plan is known for among the stairs (None: nothing to do)."""
        return self.stairs[-1].budget if self.stairs else None

    def steps_at(self, budget: int) -> int | None:
        """Steps the best plan known takes under `budget`; None below the last stair."""
        fitting = [s.steps for s in self.stairs if s.budget <= budget]
        return min(fitting) if fitting else None

    def fewest_at(self, budget: int) -> int | None:
        """The fewest steps not ruled out under `budget`; None when no plan fits (proven)."""
        if budget < self.floor:
            return None
        for k, lower in enumerate(self.lower, start=1):
            if lower <= budget:
                return k
        return len(self.lower) + 1


def staircase(
    inst: Instance,
    *,
    known: Sequence[Result] = (),
    down_to: int | None = None,
    most_steps: int = MOST_STAIRS,
    work: float = STAIRCASE_WORK,
) -> Staircase:
    """The stairs of `inst`, down to the first at or below `down_to` (None: down to the
    smallest budget a plan is known for), at most `most_steps` of them.

    `known`: the planner's results on this same instance (a scenario's budgets): their
    plans are candidates, and what they prove (fewest steps, floors) bounds the stairs.
    """
    single = one_step(inst)
    if not inst.changed or not single.steps:
        return Staircase((), (), 0, complete=True)
    floor = min(peak_lower_bound(inst), single.peak_bytes)
    sequences: list[Sequence[Generation]] = [min_peak_plan(inst).generations]
    exact = exact_min_budget(inst)
    if exact is not None:
        # The lowest peak of all, proven: nothing fits below it.
        floor = max(floor, exact.peak_bytes)
        sequences.append(exact.generations)
    plans = [r.plan for r in known if r.plan is not None and len(r.plan) > 0]
    sequences += [p.generations for p in plans]

    # best[k]: the lowest-peak plan of at most k steps found (k = 1 is the one step).
    best: dict[int, Plan] = {1: single}
    for gens in sequences:
        for k, plan in _merges(inst, gens, most_steps).items():
            if k not in best or plan.peak_bytes < best[k].peak_bytes:
                best[k] = plan
    for plan in plans:
        k = len(plan)
        if k <= most_steps and (k not in best or plan.peak_bytes < best[k].peak_bytes):
            best[k] = plan
    most = _needed(best, down_to, most_steps)
    floor, lower = _proven_lower(known, floor, most)
    lower[1] = single.peak_bytes
    deadline = Deadline.of_work(work, cap=STAIRCASE_SECONDS)
    _lower_with_cp_sat(inst, best, lower, most, deadline, down_to)
    most = _needed(best, down_to, most)
    # A floor under k steps holds for fewer; none is above the best plan known.
    for k in range(most - 1, 0, -1):
        lower[k] = max(lower[k], lower[k + 1])
    bounds = tuple(min(lower[k], _fewest(best, k).peak_bytes) for k in range(1, most + 1))
    stairs: list[Stair] = []
    for k in range(1, most + 1):
        plan = _fewest(best, k)
        if not stairs or plan.peak_bytes < stairs[-1].budget:
            stairs.append(Stair(k, plan, bounds[k - 1]))
    # A stair stands for the step counts up to the next stair's: its floor is the lowest
    # of theirs (weaker, never wrong).
    for i, stair in enumerate(stairs):
        last = stairs[i + 1].steps - 1 if i + 1 < len(stairs) else stair.steps
        stairs[i] = Stair(stair.steps, stair.plan, bounds[last - 1])
    least = min(p.peak_bytes for p in best.values())
    return Staircase(tuple(stairs), bounds, min(floor, least), complete=stairs[-1].budget == least)


def _fewest(best: dict[int, Plan], k: int) -> Plan:
    """The lowest-peak plan of at most k steps among those found."""
    return min((p for j, p in best.items() if j <= k), key=lambda p: (p.peak_bytes, len(p)))


def _needed(best: dict[int, Plan], down_to: int | None, most: int) -> int:
    """The step counts worth a stair: up to the first at or below `down_to`, or to the
    smallest budget found."""
    least = min(p.peak_bytes for p in best.values())
    for k in range(1, most + 1):
        peak = _fewest(best, k).peak_bytes
        if peak == least or (down_to is not None and peak <= down_to):
            return k
    return most


def _proven_lower(known: Sequence[Result], floor: int, most: int) -> tuple[int, dict[int, int]]:
    """What the results prove: the floor under any plan, and under at most k steps for
    k = 1..`most`."""
    lower = dict.fromkeys(range(1, most + 1), floor)
    for r in known:
        floor = max(floor, r.peak_floor)
        if r.plan is None:
            floor = max(floor, r.min_budget_lower_bound or 0)
            if r.status is Status.INFEASIBLE:
                floor = max(floor, r.budget + 1)
            continue
        # No plan of fewer than lower_bound_steps steps fits the budget.
        for k in range(1, min(r.lower_bound_steps, most + 1)):
            lower[k] = max(lower[k], r.budget + 1)
        # No plan of as many steps peaks below peak_bound.
        if 0 < len(r.plan) <= most:
            lower[len(r.plan)] = max(lower[len(r.plan)], r.peak_bound)
    return floor, {k: max(v, floor) for k, v in lower.items()}


def _lower_with_cp_sat(
    inst: Instance,
    best: dict[int, Plan],
    lower: dict[int, int],
    most: int,
    deadline: Deadline,
    down_to: int | None,
) -> None:
    """CP-SAT, for each step count in turn while work is left: the lowest peak of at most
    k steps (into `best`) and its bound (into `lower`)."""
    for k in range(2, most + 1):
        plan = _fewest(best, k)
        if lower[k] >= plan.peak_bytes:
            continue
        if deadline.passed() or model_work(inst, k) > STAIR_MODEL:
            break
        deadline.charge(BUILD_WORK_SECONDS * model_work(inst, k))
        model = build_model(inst, plan.peak_bytes, k, hint=plan.generations)
        solved = model.solve(
            Objective.PEAK,
            deadline.share(1 / (most - k + 1)),
            workers=1,
            at_most={Objective.STEPS: k},
        )
        if solved.generations is not None:
            found = evaluate(inst, solved.generations)
            if len(found) <= k and found.peak_bytes < plan.peak_bytes:
                best[k] = plan = found
        if solved.status is SolveStatus.OPTIMAL:
            lower[k] = max(lower[k], plan.peak_bytes)
        elif solved.bound is not None:
            lower[k] = max(lower[k], solved.bound)
        if down_to is not None and plan.peak_bytes <= down_to:
            return


def _merges(inst: Instance, gens: Sequence[Generation], most: int) -> dict[int, Plan]:
    """For k = 1..`most`: the lowest-peak plan that keeps `gens` in order in at most k
    steps (merging consecutive steps), by a bottleneck path of at most k jumps."""
    last = len(gens) - 1
    if not 0 < last <= MOST_MERGED:
        return {}
    needs = jump_needs(inst, gens)
    # jumps[s, e]: the need of going from s straight to e; only forward jumps exist.
    forward = np.triu(np.ones_like(needs, dtype=np.bool_), 1)
    jumps: npt.NDArray[np.int64] = np.where(forward, needs, _INF)
    peak = np.full(last + 1, _INF, dtype=np.int64)
    peak[0] = 0
    came: list[npt.NDArray[np.int64]] = []
    out: dict[int, Plan] = {}
    for k in range(1, min(most, last) + 1):
        through = np.maximum(peak[:, None], jumps)
        src = through.argmin(axis=0)
        reach = through[src, np.arange(last + 1)]
        better = reach < peak
        if not better.any():
            break  # more jumps reach nothing lower
        came.append(np.where(better, src, -1))
        peak = np.where(better, reach, peak)
        if better[last]:
            out[k] = evaluate(inst, [gens[i] for i in _path(came, last)])
    return out


def _path(came: list[npt.NDArray[np.int64]], last: int) -> list[int]:
    """The generations kept on the way to `last` in len(came) jumps, first to last."""
    kept = [last]
    for back in reversed(came):
        if back[kept[-1]] >= 0:
            kept.append(int(back[kept[-1]]))
    return kept[::-1]
