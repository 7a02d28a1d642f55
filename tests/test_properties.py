"""Invariants on random small instances: every plan validates, never beats a proven floor."""

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from solver.closure import Closure, PathInfo
from solver.components import split_components
from solver.instance import Problem, build_instance
from solver.plan import (
    State,
    evaluate,
    glue_of,
    one_step,
    presence_matrix,
    scratch_by_step,
)
from solver.search import Status, plan_upgrade
from solver.search.bounds import steps_lower_bound
from solver.search.greedy import greedy_batches, greedy_sequence, jump_needs, merge_greedy
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


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(budgeted(max_pkgs=8), st.data())
def test_numpy_accounting_matches_every_group_counted_by_hand(case, data):
    # Forward plans (old, maybe absent, new) take the gap shortcut, any other plan the
    # general path; both must agree with the definition of a group on disk.
    _, inst, _, _ = case
    state = st.sampled_from([State.OLD, State.NEW, State.ABSENT])
    gens = data.draw(
        st.lists(st.tuples(*[state] * inst.size), min_size=2, max_size=6), label="generations"
    )
    if data.draw(st.booleans(), label="forward"):
        rank = {State.OLD: 0, State.ABSENT: 1, State.NEW: 2}
        columns = [sorted(column, key=rank.__getitem__) for column in zip(*gens, strict=True)]
        gens = [tuple(g) for g in zip(*columns, strict=True)] if columns else gens
    present = presence_matrix(inst, gens)
    for i, gen in enumerate(gens):
        for g, group in enumerate(inst.groups):
            by_hand = any(gen[c] == State.OLD for c in group.old_users) or any(
                gen[c] == State.NEW for c in group.new_users
            )
            assert present[i, g] == by_hand
    needs = jump_needs(inst, gens)
    for s in range(len(gens)):
        for e in range(s + 1, len(gens)):
            plan = evaluate(inst, [gens[s], gens[e]])
            # A two-generation plan has the end glues; needs[s, e] the glue of places s, e.
            last = len(gens) - 1
            glue = glue_of(inst, s, last) + glue_of(inst, e, last)
            glue_here = glue_of(inst, 0, 1) + glue_of(inst, 1, 1)
            scratch = sum(scratch_by_step(inst, gens)[s + 1 : e + 1])
            built = scratch_by_step(inst, plan.generations)[1]
            alone = plan.steps[0].peak_bytes - glue_here - built
            assert needs[s, e] == alone + glue + scratch
