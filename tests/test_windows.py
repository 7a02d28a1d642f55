"""Re-planning windows of a plan (solver/search/windows.py): the restricted instance prices a
window's steps exactly as the whole instance does, and compressing never breaks a plan,
never adds a step and never goes below the exhaustive oracle."""

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from solver.deadline import Deadline
from solver.plan import State, evaluate
from solver.search.orders import _generations
from solver.search.windows import compress, restrict
from solver.validate import validate
from tests.helpers import GiB, SystemBuilder, instance_of
from tests.oracle import exhaustive
from tests.test_orders import single_change_orders


def _monotone(gens, a, b):
    """No component is absent anywhere from generation a to b."""
    return all(state != State.ABSENT for gen in gens[a : b + 1] for state in gen)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(single_change_orders(), st.data())
def test_a_window_costs_the_same_in_the_restricted_instance(case, data):
    _, inst, order = case
    plan = evaluate(inst, _generations(inst, order))
    gens = plan.generations
    last = len(gens) - 1
    a = data.draw(st.integers(0, last - 1))
    b = data.draw(st.integers(a + 1, last))
    assume(_monotone(gens, a, b))
    restricted = restrict(inst, gens[a], gens[b], a == 0, b == last)
    assert restricted is not None
    sub, free = restricted
    window = [tuple(gen[c] for c in free) for gen in gens[a : b + 1]]
    # The window's own steps, priced by the restricted instance, cost what they cost in
    # the whole plan: every byte outside the free components is constant over the window.
    assert [s.peak_bytes for s in evaluate(sub, window).steps] == [
        s.peak_bytes for s in plan.steps[a:b]
    ]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(single_change_orders(), st.data())
def test_compress_keeps_a_valid_plan_and_never_beats_the_oracle(case, data):
    problem, inst, order = case
    start = evaluate(inst, _generations(inst, order))
    # A budget between the start's peak and the plain upgrade's need.
    one = evaluate(inst, [start.generations[0], start.generations[-1]]).peak_bytes
    budget = data.draw(st.integers(start.peak_bytes, max(start.peak_bytes, one)))
    shorter = compress(inst, budget, start, Deadline.after(5), workers=1)
    assert len(shorter) <= len(start)
    assert shorter.peak_bytes <= budget
    assert validate(problem, shorter, budget).peak == shorter.peak_bytes
    assert len(shorter) >= exhaustive(problem).min_steps(budget)


def test_a_drop_inside_the_ends_is_not_a_window():
    """A component that leaves and comes back between the ends is not described by the
    window model; restrict() says so instead of pricing it wrongly."""
    old, new = SystemBuilder("old"), SystemBuilder("new")
    old_system = old.system([old.add("a-1", 1 * GiB), old.add("b-1", 1 * GiB)])
    new_system = new.system([new.add("a-2", 1 * GiB), new.add("b-2", 1 * GiB)])
    _, inst = instance_of(old_system, new_system, non_vital=["b"])
    b = inst.index("b")
    start = (State.OLD,) * inst.size
    dropped = tuple(State.ABSENT if c == b else State.OLD for c in range(inst.size))
    assert restrict(inst, start, dropped, True, False) is None
    assert restrict(inst, start, start, True, False) is not None


def four_steps_around_a_shared_library():
    """Four packages, each 2 GiB old and new, and a 3 GiB library the first two share,
    changed one per step alternating the library's users (both libraries stay on disk
    for longest), under the budget of that order's peak: (problem, inst, start, budget)."""
    old, new = SystemBuilder("old"), SystemBuilder("new")
    lib_old = old.add("lib-1", 3 * GiB)
    lib_new = new.add("lib-2", 3 * GiB)
    old_pkgs = [old.add(f"p{i}-1", 2 * GiB, refs=[lib_old] if i < 2 else []) for i in range(4)]
    new_pkgs = [new.add(f"p{i}-2", 2 * GiB, refs=[lib_new] if i < 2 else []) for i in range(4)]
    problem, inst = instance_of(old.system(old_pkgs), new.system(new_pkgs))
    order = [inst.index(n) for n in ("p0", "p2", "p1", "p3")]
    start = evaluate(inst, _generations(inst, [(c, True, True) for c in order]))
    return problem, inst, start, start.peak_bytes


def test_four_steps_become_three_where_merging_cannot():
    """One change per step never merges under 9 GiB+: any two in one step hold 4 GiB
    more. The window sees the whole way and regroups."""
    problem, inst, start, budget = four_steps_around_a_shared_library()
    best = exhaustive(problem).min_steps(budget)
    assert best is not None and best < len(start)
    shorter = compress(inst, budget, start, Deadline.after(10), workers=1)
    assert len(shorter) == best
    assert validate(problem, shorter, budget).peak <= budget
