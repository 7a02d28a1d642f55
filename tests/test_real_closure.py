"""The real 913-path NixOS closure from ../shared/data/real, with simulated upgrades."""

from pathlib import Path

import pytest

from adapters.nixstore.sources import read_source
from solver.components import split_components
from solver.instance import Problem, build_instance
from solver.plan import evaluate, one_step
from solver.search import Status, plan_upgrade
from solver.search.greedy import greedy_sequence, merge_greedy
from solver.synthetic import generate_upgrade
from solver.validate import validate

REAL = Path(__file__).resolve().parents[2] / "shared/data/real"
MICRO = REAL / "lf-blog_nixcon2022_nixos-system-micro_closure-graph.json"

pytestmark = pytest.mark.skipif(
    not MICRO.exists(), reason="../shared/data/real is not beside the repo"
)


@pytest.fixture(scope="module")
def micro():
    return read_source(str(MICRO))


def test_reads_913_paths(micro):
    assert len(micro) == 913
    assert micro.roots == (
        "/nix/store/p7kmr6b04zdsxkbxkx758gcfkjbcxma9-nixos-system-micro-22.11.20221011.285e77e",
    )
    # The file's root closureSize is "5.8 GiB"; sizes are rounded to 3-4 digits.
    assert abs(micro.size() / 2**30 - 5.8) < 0.05


def test_components_of_a_real_system(micro):
    split = split_components(micro, micro)
    names = {c.name for c in split.components}
    assert {"systemd", "coreutils", "openssh", "git", "gdb", "nix"} <= names
    glue_names = {p.split("-", 1)[1] for p in split.old_glue}
    assert {"system-path", "etc", "dbus-1"} <= glue_names
    # No component swallows the glue: system-path is rebuilt by every generation.
    for c in split.components:
        closure = micro.reachable(c.old)
        assert not any(p.endswith("-system-path") for p in closure), c.name
    # The initrd references the kernel-modules tree, so each generation rebuilds it.
    assert "linux" in names and "initrd-linux" not in names
    assert any(p.endswith("-initrd-linux-5.15.72") for p in split.old_glue)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_plans_on_real_closure(micro, seed):
    new = generate_upgrade(micro, changed=0.3, seed=seed)
    split = split_components(micro, new)
    problem = Problem(micro, new, split)
    inst = build_instance(problem)
    budget = (max(micro.size(), new.size()) + one_step(inst).peak_bytes) // 2
    result = plan_upgrade(inst, budget, time_limit=20, workers=2)
    if result.status is Status.INFEASIBLE:
        # A mass rebuild can leave nothing to split; then the floor says so.
        assert result.min_feasible_budget > budget >= 0
        return
    assert validate(problem, result.plan, budget).peak == result.peak_bytes <= budget
    greedy = evaluate(inst, merge_greedy(inst, greedy_sequence(inst), budget))
    assert len(result.plan) <= len(greedy)
