"""The local search over single-change orders (solver/search/orders.py): its interval sweep gives
the planner's own step needs, and what it returns is a valid plan, never worse than its
start and never below the exhaustive oracle's smallest budget."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from solver.deadline import Deadline
from solver.instance import build_instance
from solver.plan import evaluate
from solver.search.greedy import min_peak_plan
from solver.search.orders import _generations, _moves, _Orders, lower_bottleneck
from solver.validate import validate
from tests.helpers import GiB, SystemBuilder, instance_of
from tests.oracle import exhaustive
from tests.test_oracle import tiny_problems


@st.composite
def single_change_orders(draw):
    """A tiny problem and an order of its moves: one switch per component, or a drop and a
    later restore for a non-vital one."""
    problem = draw(tiny_problems(planned=True))
    inst = build_instance(problem)
    moves = []
    for c in range(inst.size):
        if not inst.vital[c] and draw(st.booleans()):
            moves += [(c, True, False), (c, False, True)]
        else:
            moves.append((c, True, True))
    order = draw(st.permutations(moves))
    # A restore drawn before its drop swaps places with it.
    place = {m: i for i, m in enumerate(order)}
    for c, leaves, enters in moves:
        if enters and not leaves and place[(c, False, True)] < place[(c, True, False)]:
            i, j = place[(c, False, True)], place[(c, True, False)]
            order[i], order[j] = order[j], order[i]
            place[(c, False, True)], place[(c, True, False)] = j, i
    return problem, inst, order


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(single_change_orders())
def test_interval_sweep_gives_the_planners_needs(case):
    problem, inst, order = case
    plan = evaluate(inst, _generations(inst, order))
    sweep = _Orders(inst, order).needs(list(range(len(order))))
    assert [int(n) for n in sweep] == [s.peak_bytes for s in plan.steps]
    assert tuple(sweep) == validate(problem, plan).needs
    assert _moves(inst, plan.generations) == order


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(single_change_orders())
def test_lower_bottleneck_is_valid_never_worse_and_never_below_the_oracle(case):
    problem, inst, order = case
    start = evaluate(inst, _generations(inst, order))
    lowered = lower_bottleneck(inst, start, Deadline.after(2))
    assert lowered.peak_bytes <= start.peak_bytes
    assert validate(problem, lowered).peak == lowered.peak_bytes
    assert lowered.peak_bytes >= exhaustive(problem).min_budget


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tiny_problems(planned=True))
def test_lower_bottleneck_stops_at_its_target(problem):
    inst = build_instance(problem)
    start = min_peak_plan(inst)
    # Already under its target: the plan comes back as it is.
    assert lower_bottleneck(inst, start, Deadline.after(2), target=2 * start.peak_bytes) is start
    # At its own peak: a plan no higher (splitting its steps may first cost glue bytes).
    lowered = lower_bottleneck(inst, start, Deadline.after(2), target=start.peak_bytes)
    assert lowered.peak_bytes <= start.peak_bytes


def test_lower_bottleneck_repairs_a_bad_order():
    """A grows from 1 to 5 GiB, B shrinks from 5 to 1: B first peaks at 7 GiB, A first at
    11. From the bad order, the search finds the oracle's smallest budget."""
    old, new = SystemBuilder("old"), SystemBuilder("new")
    old_system = old.system([old.add("A-1", 1 * GiB), old.add("B-1", 5 * GiB)])
    new_system = new.system([new.add("A-2", 5 * GiB), new.add("B-2", 1 * GiB)])
    problem, inst = instance_of(old_system, new_system)
    a, b = (inst.names.index(n) for n in ("A", "B"))
    bad = evaluate(inst, _generations(inst, [(a, True, True), (b, True, True)]))
    lowered = lower_bottleneck(inst, bad, Deadline.after(2))
    assert bad.peak_bytes > 10 * GiB
    assert lowered.peak_bytes == exhaustive(problem).min_budget < 8 * GiB
    assert validate(problem, lowered).peak == lowered.peak_bytes
