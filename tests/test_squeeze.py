"""One step fewer by merging and spreading the overflow (solver/search/squeeze.py): the local
search prices moves exactly as `evaluate` does, CP-SAT's overflow is zero exactly when
the steps fit, and a squeezed plan is valid and never beats the exhaustive oracle."""

import random

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import solver.search.squeeze as squeeze_module
from solver.components import Change
from solver.deadline import Deadline
from solver.instance import build_instance
from solver.model import Objective, SolveStatus, build_model
from solver.plan import Generation, State, canonical, evaluate, final, initial
from solver.search.greedy import jump_needs, merge_optimal, min_peak_plan
from solver.search.squeeze import _Layout, _Moves, squeeze
from solver.validate import validate
from tests.helpers import GiB, SystemBuilder, instance_of, rebuild_of_1000_paths
from tests.oracle import exhaustive
from tests.test_oracle import tiny_problems
from tests.test_orders import single_change_orders
from tests.test_windows import four_steps_around_a_shared_library


def _assigned(inst, steps: list[int], k: int) -> list[Generation]:
    """The plan of k steps where changing component c becomes new in step steps[c]."""
    start, finish = initial(inst), final(inst)
    gens = [start]
    for i in range(1, k):
        gens.append(
            tuple(
                State.NEW if inst.changes[c] is not Change.SAME and steps[c] <= i else start[c]
                for c in range(inst.size)
            )
        )
    return [*gens, finish]


@st.composite
def assignments(draw):
    """A tiny problem and a plan of 1 to 4 steps without drops: each changing component
    becomes new in a drawn step (steps may be left empty)."""
    problem, inst, _ = draw(single_change_orders())
    k = draw(st.integers(1, 4))
    steps = [draw(st.integers(1, k)) for _ in range(inst.size)]
    return problem, inst, k, steps


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(assignments(), st.data())
def test_every_move_is_priced_as_evaluate_prices_the_moved_plan(case, data):
    _, inst, k, steps = case
    moves = _Moves(_Layout(inst), 0, _assigned(inst, steps, k))
    assert [int(n) for n in moves.needs] == [
        s.peak_bytes for s in evaluate(inst, _assigned(inst, steps, k)).steps
    ]
    if not moves.moving:
        return
    # Components are priced together: each as if it alone moved.
    batch = data.draw(st.lists(st.sampled_from(moves.moving), min_size=1, max_size=4))
    for c, priced in zip(batch, moves._priced(batch), strict=True):
        for to in range(1, k + 1):
            moved = [to if d == c else s for d, s in enumerate(steps)]
            expected = [s.peak_bytes for s in evaluate(inst, _assigned(inst, moved, k)).steps]
            assert [int(n) for n in priced[to - 1]] == expected
    c = batch[0]
    # Making the move keeps the running needs exact.
    to = data.draw(st.integers(1, k))
    moves._move(c, to)
    moved = [to if d == c else s for d, s in enumerate(steps)]
    assert [int(n) for n in moves.needs] == [
        s.peak_bytes for s in evaluate(inst, _assigned(inst, moved, k)).steps
    ]
    assert moves.generations() == _assigned(inst, moved, k)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(assignments(), st.data())
def test_kicks_never_raise_the_overflow_and_keep_the_needs_exact(case, data):
    _, inst, k, steps = case
    gens = _assigned(inst, steps, k)
    budget = data.draw(st.integers(0, evaluate(inst, gens).peak_bytes))
    moves = _Moves(_Layout(inst), budget, gens)
    moves.descend(Deadline.after(5))
    before = sum(moves.over())
    after = moves.wander(Deadline.after(5), random.Random(0))
    assert sum(moves.over()) <= before
    assert [int(n) for n in moves.needs] == [s.peak_bytes for s in evaluate(inst, after).steps]
    assert len(after) == k + 1


def _spread_over(k: int):
    """The 1,000-path rebuild (tests/helpers.py) with its components dealt round the k
    steps, and its moves."""
    _, inst, budget = rebuild_of_1000_paths()
    steps = [c % k + 1 for c in range(inst.size)]
    return inst, steps, _Moves(_Layout(inst), budget, _assigned(inst, steps, k))


def test_moves_on_a_1000_path_rebuild_are_priced_as_evaluate_prices_them():
    """Most rows of a rebuild are libraries that another user keeps on disk in every
    step, which the moves do not price; the prices are exact all the same, also where a
    component is the only user of a library at its first or last step."""
    k = 4
    inst, steps, moves = _spread_over(k)
    batch = moves.moving[::7]
    for c, priced in zip(batch, moves._priced(batch), strict=True):
        for to in range(1, k + 1):
            moved = [to if d == c else s for d, s in enumerate(steps)]
            expected = [s.peak_bytes for s in evaluate(inst, _assigned(inst, moved, k)).steps]
            assert [int(n) for n in priced[to - 1]] == expected, (c, to)


def test_a_descent_ends_where_no_single_move_lowers_the_score():
    *_, moves = _spread_over(3)
    moves.budget = int(moves.needs.min())  # every step but one over
    moves.descend(Deadline.after(60, deterministic=True))
    score = moves._score()
    assert score[0] > 0
    for at in range(0, len(moves.moving), 16):
        batch = moves.moving[at : at + 16]
        _, scores = moves._best_targets(moves._priced(batch))
        assert min(scores) >= score


def test_a_kick_moves_components_out_of_a_step_over_the_budget_only():
    *_, moves = _spread_over(4)
    # Only the fullest step is over the budget.
    fullest = int(moves.needs.argmax()) + 1
    moves.budget = int(sorted(moves.needs)[-2])
    assert moves.over().count(0) == 3
    for seed in range(6):
        before = moves.step.copy()
        moves._kick(random.Random(seed), library=seed % 2 == 0)
        moved = before != moves.step
        assert moved.any()
        assert set(before[moved].tolist()) == {fullest}
        assert set(moves.step[moved].tolist()) <= {fullest - 1, fullest + 1}
        for c in np.flatnonzero(moved).tolist():
            moves._move(c, int(before[c]))


def _a_merge_the_moves_leave_over():
    """The 1,000-path rebuild (tests/helpers.py), its lowest-peak order merged into 3
    steps, and those merged further into 2 (the pair whose union needs least)."""
    problem, inst, budget = rebuild_of_1000_paths()
    gens = merge_optimal(inst, min_peak_plan(inst).generations, budget)
    needs = jump_needs(inst, gens)
    a = min(range(len(gens) - 2), key=lambda a: int(needs[a, a + 2]))
    return problem, inst, budget, gens, [*gens[: a + 1], *gens[a + 2 :]]


def test_a_swap_finds_the_plan_single_moves_settle_short_of():
    """Single moves settle 6.5 MB over the budget in 2 steps, both steps full; a swap of
    two components between them, and single moves again, fit, the same way every run."""
    problem, inst, budget, _, merged = _a_merge_the_moves_leave_over()
    layout = _Layout(inst)
    plans = []
    for _ in range(2):
        moves = _Moves(layout, budget, merged)
        moves.descend(Deadline.after(10, deterministic=True), swaps=False)
        assert 0 < sum(moves.over()) < 7_000_000
        plans.append(moves.descend(Deadline.after(10, deterministic=True)))
        assert sum(moves.over()) == 0
    assert plans[0] == plans[1]
    shorter = evaluate(inst, canonical(inst, plans[0]))
    assert len(shorter) == 2
    assert validate(problem, shorter, budget).peak == shorter.peak_bytes <= budget


def test_kicks_find_the_plan_single_moves_settle_short_of(monkeypatch):
    """Without swaps, single moves settle 6.5 MB over the budget in 2 steps; moving a
    library's users together (a kick) and settling again fits, the same way every run."""
    monkeypatch.setattr(squeeze_module, "SWAPS_CHECKED", 0)
    problem, inst, budget, gens, merged = _a_merge_the_moves_leave_over()
    assert len(gens) == 4 and evaluate(inst, gens).peak_bytes <= budget
    layout = _Layout(inst)
    plans = []
    for _ in range(2):
        moves = _Moves(layout, budget, merged)
        moves.descend(Deadline.after(10, deterministic=True))
        assert sum(moves.over()) > 0
        plans.append(moves.wander(Deadline.after(10, deterministic=True), random.Random(0)))
        assert sum(moves.over()) == 0
    assert plans[0] == plans[1]
    shorter = evaluate(inst, canonical(inst, plans[0]))
    assert len(shorter) == 2
    assert validate(problem, shorter, budget).peak == shorter.peak_bytes <= budget


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tiny_problems(planned=True), st.integers(1, 3), st.data())
def test_overflow_is_zero_exactly_when_the_steps_fit(problem, k, data):
    """The overflow model with k slots reaches zero iff the oracle has a plan in k steps;
    its optimum is the overflow its plan really has."""
    inst = build_instance(problem)
    oracle = exhaustive(problem)
    budget = data.draw(st.integers(max(0, oracle.min_budget - GiB), oracle.one_step_need))
    # More than any step can need: every path, both sides' glue, every build.
    glue = 2 * max(inst.old_glue, inst.new_glue, inst.mid_glue)
    everything = inst.always + inst.reserve + sum(g.size for g in inst.groups) + glue
    model = build_model(inst, budget, k, overflow=everything + sum(inst.scratch))
    stage = model.solve(Objective.OVERFLOW, Deadline.after(10, deterministic=True), workers=1)
    assert stage.status is SolveStatus.OPTIMAL
    assert stage.generations is not None
    fits = (oracle.min_steps(budget) or k + 1) <= k
    assert (stage.objective == 0) == fits
    over = sum(max(0, s.peak_bytes - budget) for s in evaluate(inst, stage.generations).steps)
    assert over == stage.objective


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(assignments(), st.data())
def test_a_squeezed_plan_is_valid_and_never_beats_the_oracle(case, data):
    problem, inst, k, steps = case
    start = evaluate(inst, _assigned(inst, steps, k))
    one = evaluate(inst, [start.generations[0], start.generations[-1]]).peak_bytes
    budget = data.draw(st.integers(start.peak_bytes, max(start.peak_bytes, one)))
    shorter = squeeze(inst, budget, start, Deadline.after(5), workers=1)
    if shorter is None:
        return
    assert len(shorter) < len(start)
    assert shorter.peak_bytes <= budget
    assert validate(problem, shorter, budget).peak == shorter.peak_bytes
    assert len(shorter) >= exhaustive(problem).min_steps(budget)


def test_four_steps_become_three_where_merging_cannot():
    """Merging any two steps of the alternating order overflows; spreading finds three."""
    problem, inst, start, budget = four_steps_around_a_shared_library()
    best = exhaustive(problem).min_steps(budget)
    assert best == 3
    shorter = squeeze(inst, budget, start, Deadline.after(10), workers=1)
    assert shorter is not None and len(shorter) == best
    assert validate(problem, shorter, budget).peak <= budget


def _glue_only_with_a_droppable_package():
    """The same non-vital package on both sides: only the system's glue changes."""
    old, new = SystemBuilder("old"), SystemBuilder("new")
    old_pkg, new_pkg = old.add("pkg-1.0", 1000), new.add("pkg-1.0", 1000)
    return instance_of(old.system([old_pkg]), new.system([new_pkg]), non_vital=["pkg"])


def test_a_glue_only_change_is_one_step_not_nothing_to_do():
    _, inst = _glue_only_with_a_droppable_package()
    assert inst.changed
    # The package comes back unchanged: the generations alone look alike on disk.
    dropped = (State.ABSENT,)
    assert len(evaluate(inst, canonical(inst, [initial(inst), final(inst)]))) == 1
    assert len(evaluate(inst, canonical(inst, [initial(inst), dropped, final(inst)]))) == 2


def test_dropping_an_unchanged_package_uses_its_steps():
    """Leaving and coming back are changes of their own: CP-SAT's step count is the plan's.
    Before, an unchanged package could leave and return in slots counted as unused."""
    _, inst = _glue_only_with_a_droppable_package()
    model = build_model(inst, 0, 3, overflow=10**6)
    stage = model.solve(Objective.OVERFLOW, Deadline.after(10, deterministic=True), workers=1)
    assert stage.generations is not None
    over = sum(max(0, s.peak_bytes) for s in evaluate(inst, stage.generations).steps)
    assert stage.objective == over
    model = build_model(inst, 10**6, 3)
    model.model.add(model.absent[0][1] == 1)  # drop it in step 1
    stage = model.solve(Objective.STEPS, Deadline.after(10, deterministic=True), workers=1)
    assert stage.objective == len(evaluate(inst, stage.generations)) == 2
