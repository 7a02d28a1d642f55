"""The planner on hand-made and generated closures; every plan goes through the validator."""

import json
import re
from pathlib import Path

import pytest

from adapters.nixstore.formats.pathinfo import dump_path_info_json
from adapters.nixstore.sources import read_source
from solver.components import split_components
from solver.instance import Problem, build_instance
from solver.plan import evaluate, one_step
from solver.search import STAGES, Status, pipeline, plan_upgrade
from solver.search.bounds import peak_lower_bound
from solver.search.greedy import greedy_sequence, merge_greedy
from solver.synthetic import generate_pair
from solver.validate import validate
from tests.helpers import GiB, MiB, instance_of, user_story

EXAMPLES = Path(__file__).resolve().parent.parent / "scenarios" / "examples"


def checked(problem, result):
    """Validate a result's plan and return it."""
    assert result.plan is not None
    report = validate(problem, result.plan, result.budget)
    assert report.peak == result.peak_bytes <= result.budget
    return result.plan


def test_user_story_two_steps():
    old, new = user_story()
    problem, inst = instance_of(old, new)
    assert one_step(inst).peak_bytes > 14 * GiB
    result = plan_upgrade(inst, 14 * GiB, time_limit=10, workers=1)
    plan = checked(problem, result)
    assert result.status is Status.OPTIMAL
    assert len(plan) == 2 and result.lower_bound_steps == 2
    assert sorted(plan.steps[0].upgrade + plan.steps[1].upgrade) == ["bigPackageA", "bigPackageB"]


def test_one_step_when_it_fits():
    old, new = user_story()
    problem, inst = instance_of(old, new)
    result = plan_upgrade(inst, 40 * GiB, time_limit=10, workers=1)
    plan = checked(problem, result)
    assert len(plan) == 1 and result.status is Status.OPTIMAL


def test_infeasible_reports_min_budget():
    old, new = user_story()
    _problem, inst = instance_of(old, new)
    result = plan_upgrade(inst, 10 * GiB, time_limit=10, workers=1)
    assert result.status is Status.INFEASIBLE and result.plan is None
    assert result.to_json()["steps"] == []
    need = result.min_feasible_budget
    assert need is not None and need > 10 * GiB
    assert plan_upgrade(inst, need, time_limit=10, workers=1).status is not Status.INFEASIBLE
    assert plan_upgrade(inst, need - MiB, time_limit=10, workers=1).status is Status.INFEASIBLE


def test_non_vital_dropped_and_restored():
    old, new = user_story(extra=2 * GiB)
    # Without dropping games, upgrading either big package needs 15 GiB.
    problem, inst = instance_of(old, new, non_vital=["games"])
    budget = 13 * GiB + 64 * MiB
    result = plan_upgrade(inst, budget, time_limit=10, workers=1)
    plan = checked(problem, result)
    dropped = [n for s in plan.steps for n in s.drop]
    restored = [n for s in plan.steps for n in s.restore]
    assert dropped == ["games"] and restored == ["games"]
    _vital_problem, vital_inst = instance_of(old, new)
    assert plan_upgrade(vital_inst, budget, time_limit=10, workers=1).status is Status.INFEASIBLE


def test_reserve_counts_on_every_step():
    old, new = user_story()
    problem, inst = instance_of(old, new, reserve=GiB)
    assert plan_upgrade(inst, 14 * GiB, time_limit=10, workers=1).status is Status.INFEASIBLE
    result = plan_upgrade(inst, 14 * GiB + 64 * MiB, time_limit=10, workers=1)
    plan = checked(problem, result)
    assert all(s.peak_bytes >= 13 * GiB + GiB for s in plan.steps)


@pytest.fixture(scope="module")
def synthetic_3000(tmp_path_factory):
    """3,000 paths and 150 packages, read back from Nix 2.19 `path-info --json` files."""
    pair = generate_pair(3000, 150, changed=0.3, seed=3)
    files = tmp_path_factory.mktemp("closures")
    closures = []
    for name, closure in (("old", pair.old), ("new", pair.new)):
        path = files / f"{name}.json"
        path.write_text(dump_path_info_json(closure, shape="2.19"))
        assert isinstance(json.loads(path.read_text()), dict)
        closures.append(read_source(str(path)))
    old, new = closures
    assert len(old) == 3000
    split = split_components(old, new)
    # 150 packages; the kernel and its initrd count as one coupled component.
    assert sum(len(c.members) or 1 for c in split.components) == 150
    problem = Problem(old, new, split)
    return problem, build_instance(problem)


@pytest.mark.slow
def test_synthetic_3000_paths_halfway_budget(synthetic_3000):
    problem, inst = synthetic_3000
    both = one_step(inst).peak_bytes
    alone = max(problem.old.size(), problem.new.size())
    budget = (alone + both) // 2
    result = plan_upgrade(inst, budget, time_limit=20, workers=2)
    plan = checked(problem, result)
    greedy = evaluate(inst, merge_greedy(inst, greedy_sequence(inst), budget))
    assert greedy.peak_bytes <= budget
    assert len(plan) <= len(greedy)
    assert result.lower_bound_steps <= len(plan)


@pytest.mark.slow
def test_synthetic_min_budget_bracket_is_honest(synthetic_3000):
    """Too many changes for the exact search: a bracket, each end of which holds."""
    problem, inst = synthetic_3000
    alone = max(problem.old.size(), problem.new.size())
    result = plan_upgrade(inst, alone, time_limit=10, workers=2)
    assert result.status is Status.INFEASIBLE and result.plan is None
    need, lower = result.min_feasible_budget, result.min_budget_lower_bound
    assert alone < lower <= need
    # Within 2 % of each other on this mass-rebuild-like update.
    assert need - lower <= 0.02 * need
    at = plan_upgrade(inst, need, time_limit=10, workers=2)
    checked(problem, at)
    below = plan_upgrade(inst, lower - 1, time_limit=10, workers=2)
    assert below.status is Status.INFEASIBLE
    between = plan_upgrade(inst, (lower + need) // 2, time_limit=5, workers=2)
    # Either a plan (checked) or an honest "unknown": never a claim of infeasibility
    # without a proof that it carries.
    if between.plan is not None:
        checked(problem, between)
    else:
        assert between.status in (Status.UNKNOWN, Status.INFEASIBLE)
        assert between.min_budget_lower_bound is not None
        if between.status is Status.INFEASIBLE:
            assert between.min_budget_lower_bound > between.budget


@pytest.mark.parametrize("gap", [0.0, 0.01])
def test_peak_gap_stops_early_and_never_claims_a_proof(gap):
    """A peak gap trades the proof of the last bytes for time; the status stays honest.
    Deterministic: CP-SAT counts its own work, so that the proof does not depend on how
    busy the machine is (under load, 3 s of wall time were not always enough)."""
    old = read_source(str(EXAMPLES / "nixos-current.json"))
    new = read_source(str(EXAMPLES / "nixos-target.json"))
    problem = Problem(old, new, split_components(old, new))
    inst = build_instance(problem)
    result = plan_upgrade(inst, 3 * GiB, time_limit=20, peak_gap=gap, deterministic=True)
    checked(problem, result)
    assert result.lower_bound_steps == len(result.plan)
    assert result.peak_bound <= result.peak_bytes <= result.peak_bound * (1 + gap)
    proven = result.peak_bound == result.peak_bytes
    assert (result.status is Status.OPTIMAL) == proven
    # On this example, 1 % is reached before the proof; without a gap the proof comes.
    assert proven == (gap == 0)


@pytest.mark.parametrize("budget", [0, 10 * GiB])
def test_the_current_system_as_target_has_no_step_and_a_floor_of_zero(budget):
    """The target is the current system: no step, so no peak and no floor above it.

    The floor used to be that of a step never taken (peak_floor 168000 with peak_bytes
    0: test_plans_validate_and_beat_greedy failed on about 6 % of seeds, seed 11 among
    them), because the bound on any plan forgot the plan without steps."""
    old, _ = user_story()
    problem, inst = instance_of(old, old)
    assert not inst.changed
    assert peak_lower_bound(inst) == 0
    result = plan_upgrade(inst, budget, time_limit=5, workers=1)
    assert result.status is Status.OPTIMAL
    assert result.plan is not None and len(result.plan) == 0
    assert result.peak_floor == result.peak_bytes == result.peak_bound == 0
    assert result.lower_bound_steps == 0
    assert validate(problem, result.plan, budget).needs == ()


def test_the_stages_run_in_the_order_the_docstring_lists():
    """solver/search/pipeline.py's docstring, docs/model.md and STAGES name the same
    stages in the same order."""
    names = [stage.__name__ for stage in STAGES]
    listed = re.findall(r"^\s*\d+\. (\w+):", pipeline.__doc__ or "", re.MULTILINE)
    assert listed == names
    model_md = (Path(__file__).resolve().parents[1] / "docs" / "model.md").read_text()
    assert re.findall(r"^\d+\. `(\w+)`", model_md, re.MULTILINE) == names
