"""A reviewed plan read back (`apply --plan FILE`): solver/plan.py's `replay`, and
adapters/apply/reviewed.py's reading and checks. Their end-to-end run on a real store is
in tests/e2e/test_apply.py."""

import json

import pytest

from adapters.apply.reviewed import Reviewed, systems_document
from solver.errors import InputError
from solver.plan import one_step, replay
from solver.search import plan_upgrade
from solver.search.greedy import min_peak_plan
from solver.synthetic import generate_pair
from tests.helpers import GiB, MiB, instance_of, user_story


def _steps(plan):
    return [json.loads(json.dumps(s.to_json())) for s in plan.steps]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_plan_read_back_is_the_same_plan(seed):
    pair = generate_pair(600, 40, changed=0.4, seed=seed)
    old, new = pair.old, pair.new
    _problem, inst = instance_of(old, new)
    # Half-way from the lowest peak known to the one step's need: a plan of a few steps.
    budget = (min_peak_plan(inst).peak_bytes + one_step(inst).peak_bytes) // 2
    result = plan_upgrade(inst, budget, time_limit=10)
    assert result.plan is not None and len(result.plan) >= 2
    assert replay(inst, _steps(result.plan)) == result.plan


def test_drops_and_restores_are_read_back():
    old, new = user_story(extra=2 * GiB)
    _problem, inst = instance_of(old, new, non_vital=["games"])
    result = plan_upgrade(inst, 13 * GiB + 64 * MiB, time_limit=10)
    assert result.plan is not None
    assert any(s.drop for s in result.plan.steps)
    assert replay(inst, _steps(result.plan)) == result.plan


def test_steps_of_another_upgrade_are_refused():
    old, new = user_story()
    _problem, inst = instance_of(old, new)
    result = plan_upgrade(inst, 14 * GiB, time_limit=10)
    assert result.plan is not None
    steps = _steps(result.plan)
    with pytest.raises(InputError, match="unknown component 'nope'"):
        replay(inst, [dict(steps[0], upgrade=[*steps[0]["upgrade"], "nope"]), *steps[1:]])
    # A package left out of every step is never upgraded.
    first = steps[0]["upgrade"] or steps[-1]["upgrade"]
    left_out = [dict(s, upgrade=[n for n in s["upgrade"] if n != first[0]]) for s in steps]
    with pytest.raises(InputError, match=f"never upgrades {first[0]}"):
        replay(inst, left_out)
    with pytest.raises(InputError, match="no step"):
        replay(inst, [])


def _write(tmp_path, doc, name="plan.json"):
    file = tmp_path / name
    file.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return file


def test_a_plan_file_is_read_with_what_it_is_for(tmp_path):
    old, new = user_story()
    _problem, inst = instance_of(old, new)
    result = plan_upgrade(inst, 14 * GiB, time_limit=10)
    doc = {**result.to_json(), **systems_document(old, new, 14 * GiB)}
    reviewed = Reviewed.read(_write(tmp_path, doc))
    assert reviewed.limit == 14 * GiB
    reviewed.check_limit(14 * GiB)
    reviewed.check_systems(old, new)
    assert reviewed.plan(inst, 14 * GiB) == result.plan
    with pytest.raises(InputError, match=r"is for --limit 14\.0 GiB"):
        reviewed.check_limit(13 * GiB)
    with pytest.raises(InputError, match="is for another target"):
        reviewed.check_systems(old, old)
    with pytest.raises(InputError, match="is for another current system"):
        reviewed.check_systems(new, new)
    assert result.plan is not None
    with pytest.raises(InputError, match=r"needs .* over the"):
        reviewed.plan(inst, result.plan.peak_bytes - 1)


@pytest.mark.parametrize(
    ("content", "said"),
    [
        ("{", "not JSON"),
        ("[]", "not a plan"),
        (json.dumps({"status": "infeasible", "steps": []}), "status is 'infeasible'"),
        (json.dumps({"status": "optimal", "steps": []}), "no 'current_roots'"),
        (
            json.dumps(
                {
                    "status": "optimal",
                    "steps": [{"upgrade": "bash"}],
                    "current_roots": [],
                    "target_roots": [],
                    "limit_bytes": 5,
                }
            ),
            "step 1: 'upgrade' is not a list",
        ),
        (
            json.dumps(
                {
                    "status": "optimal",
                    "steps": [],
                    "current_roots": [],
                    "target_roots": [],
                    "limit_bytes": True,
                }
            ),
            "'limit_bytes' is not a positive whole number",
        ),
    ],
)
def test_what_is_not_a_plan_file_is_one_error_naming_it(tmp_path, content, said):
    file = _write(tmp_path, content)
    with pytest.raises(InputError, match=f"^--plan {file}: .*{said}"):
        Reviewed.read(file)


def test_a_missing_plan_file_is_named(tmp_path):
    with pytest.raises(InputError, match=r"^--plan .*missing\.json: No such file"):
        Reviewed.read(tmp_path / "missing.json")
