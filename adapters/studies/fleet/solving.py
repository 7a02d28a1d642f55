"""The update on one distinct closure: its budget curve, and the steps under each budget
its hosts have. Hosts with identical closures share one `Task`."""

from collections import defaultdict
from dataclasses import dataclass

from adapters.studies.fleet.model import Fleet
from solver.closure import Closure
from solver.instance import Problem, build_instance
from solver.search.greedy import min_peak_plan
from solver.validate import validate
from solver.whatif.capacity import Curve, curve, heuristic_plan
from solver.whatif.scenario import Edit, apply_changes


@dataclass(frozen=True)
class Task:
    """One distinct closure to solve: its update, and the store budgets its hosts have."""

    key: str
    closure: Closure
    changes: tuple[Edit, ...]
    budgets: tuple[int, ...]
    reserve: int
    max_steps: int
    seed: int


@dataclass
class Answer:
    key: str
    paths: int
    target_paths: int
    curve: Curve
    steps: dict[int, int | None]  # by budget; None: no plan fits it


def solve(task: Task) -> Answer:
    """The update on one closure: its budget curve, and the steps under each host budget."""
    target = apply_changes(task.closure, task.changes, seed=task.seed)
    problem = Problem.of(task.closure, target, reserve=task.reserve)
    inst = build_instance(problem)
    shape = curve(inst, task.max_steps)
    lowest = min_peak_plan(inst)
    steps: dict[int, int | None] = {}
    for budget in task.budgets:
        k = shape.steps_at(budget)
        if k is None and budget >= shape.min_bytes:
            plan = heuristic_plan(inst, budget, lowest)
            if plan is not None:
                validate(problem, plan, budget)
                k = len(plan)
        steps[budget] = k
    return Answer(task.key, len(task.closure), len(target), shape, steps)


def tasks(fleet: Fleet) -> list[Task]:
    """One task per distinct closure, with the budgets of the hosts that run it."""
    budgets: dict[str, set[int]] = defaultdict(set)
    for host in fleet.hosts:
        budgets[host.closure].add(fleet.budget(host))
    return [
        Task(
            key,
            fleet.closures[key],
            tuple(fleet.changes),
            tuple(sorted(budgets[key])),
            fleet.reserve,
            fleet.max_steps,
            fleet.seed,
        )
        for key in sorted(budgets)
    ]
