"""Invariants on random small instances: every plan validates, never beats a proven floor."""

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from solver.bounds import steps_lower_bound
from solver.closure import Closure, PathInfo
from solver.components import split_components
from solver.greedy import greedy_batches, greedy_sequence, merge_greedy
from solver.instance import Problem, build_instance
from solver.plan import evaluate, one_step
from solver.planner import Status, plan_upgrade
from solver.synthetic import fake_hash, propagate
from solver.validate import validate


def random_pair(seed: int, n_pkgs: int, n_libs: int, changed: int, non_vital: int):
    rng = random.Random(seed)
    infos = {}

    def add(name, size, refs):
        path = f"/nix/store/{fake_hash(rng)}-{name}"
        infos[path] = PathInfo(path, size, tuple(refs))
        return path

    libs = []
    for i in range(n_libs):
        libs.append(
            add(f"lib{i}-1.{i}", rng.randint(1, 50) * 1000, rng.sample(libs, k=min(len(libs), 2)))
        )
    pkgs = [
        add(
            f"p{i}-1.0",
            rng.randint(1, 100) * 1000,
            rng.sample(libs, k=min(len(libs), rng.randint(0, 3))),
        )
        for i in range(n_pkgs)
    ]
    sp = add("system-path", 500, pkgs)
    top = add("nixos-system-x", 500, [sp])
    old = Closure(infos.values(), [top])
    seeds = rng.sample(sorted(p for p in old if "system" not in p), k=min(changed, len(old) - 2))
    new = propagate(
        old, seeds, resize=lambda i: int(i.nar_size * rng.uniform(0.8, 1.5)) + 1, rng=rng
    )
    names = sorted({c.name for c in split_components(old, new).components})
    return old, new, names[:non_vital]


@st.composite
def budgeted(draw, max_pkgs: int):
    """A random pair's problem and instance, a budget between the larger system and the
    one-step need, and the non-vital names."""
    old, new, nv = random_pair(
        draw(st.integers(0, 10_000)),
        draw(st.integers(2, max_pkgs)),
        draw(st.integers(0, 5)),
        draw(st.integers(1, 6)),
        draw(st.integers(0, 2)),
    )
    problem = Problem(old, new, split_components(old, new, non_vital=nv))
    inst = build_instance(problem)
    lo = max(old.size(), new.size())
    hi = one_step(inst).peak_bytes
    budget = int(lo + (hi - lo) * draw(st.floats(0.0, 1.0)))
    return problem, inst, budget, nv


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(budgeted(max_pkgs=8))
def test_plans_validate_and_beat_greedy(case):
    problem, inst, budget, nv = case
    result = plan_upgrade(inst, budget, time_limit=5, workers=1)
    if result.status is Status.INFEASIBLE:
        assert result.min_feasible_budget is not None and result.min_feasible_budget > budget
        assert result.min_feasible_budget >= result.peak_floor
        return
    assert result.plan is not None
    report = validate(problem, result.plan, budget)
    assert report.peak == result.peak_bytes <= budget
    assert result.peak_floor <= result.peak_bytes
    assert result.lower_bound_steps <= len(result.plan)
    greedy = evaluate(inst, merge_greedy(inst, greedy_sequence(inst), budget))
    if greedy.peak_bytes <= budget:
        assert len(result.plan) <= len(greedy)
    # The one-change-per-step sequence validates too, whatever the budget.
    seq = evaluate(inst, greedy_sequence(inst, drop_non_vital=bool(nv)))
    assert validate(problem, seq).needs == tuple(s.peak_bytes for s in seq.steps)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(budgeted(max_pkgs=7))
def test_steps_lower_bound_never_above_a_fitting_plan(case):
    # The planner reports min(bound, steps); here the bound itself is checked, against
    # CP-SAT's proven minimum and against every heuristic plan that fits.
    _, inst, budget, _ = case
    bound = steps_lower_bound(inst, budget)
    plans = [greedy_sequence(inst), greedy_batches(inst, budget)]
    plans += [merge_greedy(inst, p, budget) for p in plans]
    for gens in plans:
        plan = evaluate(inst, gens)
        if plan.peak_bytes <= budget:
            assert bound <= len(plan)
    result = plan_upgrade(inst, budget, time_limit=5, workers=1)
    if result.plan is not None and result.steps_proven_seconds is not None:
        assert bound <= len(result.plan)
