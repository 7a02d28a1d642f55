"""An independent check of a plan: every step's disk need recomputed by plain set unions.

It shares no code with the planner's signature groups: it walks the closures of every
component in every generation and adds up NAR sizes of the union, so a bug in grouping,
in the CP-SAT rows or in the heuristics shows up as a mismatch.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from solver.components import Change, Component
from solver.errors import BudgetSolveError
from solver.instance import Problem
from solver.plan import Plan, State


class ValidationError(BudgetSolveError):
    """A plan breaks a rule of the model, or its numbers are wrong."""


@dataclass(frozen=True)
class Checked:
    needs: tuple[int, ...]
    stored: tuple[int, ...]
    # Bytes each step brings to disk: paths fetched or built, and the new glue.
    arriving: tuple[int, ...] = ()

    @property
    def peak(self) -> int:
        return max(self.needs, default=0)


def validate(problem: Problem, plan: Plan, budget: int | None = None) -> Checked:
    """Recompute the plan's needs; raise ValidationError on any broken rule or wrong number."""
    comps = problem.modelled()
    gens = plan.generations
    if not gens:
        raise ValidationError("plan has no generations")
    for gen in gens:
        if len(gen) != len(comps):
            raise ValidationError("a generation does not give every component a state")
    _check_states(comps, gens)

    sizes = _SizeOf(problem)
    always = set(problem.pinned_paths)
    for unchanged in problem.split.components:
        if unchanged.change is Change.SAME and unchanged.vital:
            always |= problem.old_closure(unchanged)
    old_cl = [problem.old_closure(c) for c in comps]
    new_cl = [problem.new_closure(c) for c in comps]
    for comp, o, n in zip(comps, old_cl, new_cl, strict=True):
        if comp.vital:
            always |= o & n
    shared_glue = problem.split.old_glue & problem.split.new_glue
    old_only = problem.split.old_glue - always - shared_glue
    new_only = problem.split.new_glue - always - shared_glue
    mid_bytes = max(sizes.total(old_only), sizes.total(new_only))

    last = len(gens) - 1

    def paths_of(i: int) -> set[str]:
        out = set(always)
        for c, state in enumerate(gens[i]):
            if state == State.OLD:
                out |= old_cl[c]
            elif state == State.NEW:
                out |= new_cl[c]
        if i == 0:
            out |= problem.split.old_glue
        elif i == last:
            out |= problem.split.new_glue
        else:
            out |= shared_glue
        return out

    def virtual(i: int) -> int:
        return mid_bytes if 0 < i < last else 0

    built = [
        sum(
            int(problem.new[p].nar_size)
            for p in new_cl[c]
            if problem.new[p].estimated and p not in problem.old
        )
        for c in range(len(comps))
    ]
    on_disk = [paths_of(i) for i in range(len(gens))]
    needs, stored, arriving = [], [], []
    for j in range(1, len(gens)):
        scratch = 0
        for c in range(len(comps)):
            first_new = next((i for i, g in enumerate(gens) if g[c] == State.NEW), None)
            if first_new == j:
                scratch += int(built[c] * problem.scratch_factor)
        need = (
            sizes.total(on_disk[j - 1] | on_disk[j])
            + virtual(j - 1)
            + virtual(j)
            + scratch
            + problem.reserve
        )
        needs.append(need)
        stored.append(sizes.total(on_disk[j]) + virtual(j))
        arriving.append(sizes.total(on_disk[j] - on_disk[j - 1]) + virtual(j))
    checked = Checked(tuple(needs), tuple(stored), tuple(arriving))
    _check_numbers(plan, checked, budget)
    return checked


def _check_numbers(plan: Plan, checked: Checked, budget: int | None) -> None:
    """The plan's own numbers against the recomputed ones, and against the budget."""
    needs, stored = checked.needs, checked.stored
    if len(plan.steps) != len(needs):
        raise ValidationError(f"plan lists {len(plan.steps)} steps for {len(needs)} transitions")
    for step, need, after in zip(plan.steps, needs, stored, strict=True):
        if step.peak_bytes != need:
            raise ValidationError(
                f"step {step.index}: reported peak {step.peak_bytes} bytes, recomputed {need}"
            )
        if step.store_bytes_after != after:
            raise ValidationError(
                f"step {step.index}: store {step.store_bytes_after} bytes, recomputed {after}"
            )
        if budget is not None and need > budget:
            raise ValidationError(f"step {step.index} needs {need} bytes, over the budget {budget}")


def _check_states(comps: Sequence[Component], gens: Sequence[tuple[int, ...]]) -> None:
    for c, comp in enumerate(comps):
        if gens[0][c] != State.OLD:
            raise ValidationError(f"{comp.name}: the plan does not start from the current system")
        if gens[-1][c] != State.NEW:
            raise ValidationError(f"{comp.name}: the plan does not end at the target")
        seen_new = False
        for i, gen in enumerate(gens):
            state = gen[c]
            if state == State.ABSENT and comp.vital:
                raise ValidationError(f"{comp.name}: vital component absent in generation {i}")
            if state == State.OLD and seen_new and comp.change is not Change.SAME:
                raise ValidationError(f"{comp.name}: goes back from new to old in generation {i}")
            seen_new = seen_new or state == State.NEW


class _SizeOf:
    def __init__(self, problem: Problem) -> None:
        self.problem = problem

    def total(self, paths: set[str] | frozenset[str]) -> int:
        return sum(self.problem.size_of(p) for p in paths)
