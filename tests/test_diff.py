"""solver/diff.py: Nix's version order, the packages each step changes, and their text."""

import json
import os
import random
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.nixstore.sources import read_source
from solver.diff import (
    Diff,
    Kind,
    PackageChange,
    compare_versions,
    package_changes,
    render,
    step_diff,
    step_diffs,
    upgrade_diff,
)
from solver.errors import InputError
from solver.instance import Problem, build_instance
from solver.plan import State, evaluate, final, initial
from solver.search.greedy import greedy_sequence, merge_greedy
from solver.storepath import StorePath
from solver.validate import validate
from tests.e2e import versions
from tests.helpers import GiB, SystemBuilder, fake_path, instance_of

EXAMPLES = Path(__file__).resolve().parent.parent / "scenarios" / "examples"

# builtins.compareVersions, as Nix's own tests have it (tests/functional/lang/
# eval-okay-versions.nix, src/libexpr-tests/primops.cc), and what Nix 2.8, 2.26 and
# 2.34 answer to the corners of names.cc: an int that overflows is a word, "pre" is
# below everything, the end of a version below a number but above "pre".
NIX_CASES = [
    ("1.0", "1.0.0", -1),
    ("1.0.0", "1.0", 1),
    ("1.0", "2.3", -1),
    ("2.1", "2.3", -1),
    ("2.3", "2.3", 0),
    ("2.5", "2.3", 1),
    ("3.1", "2.3", 1),
    ("2.3.1", "2.3", 1),
    ("2.3.1", "2.3a", 1),
    ("2.3pre1", "2.3", -1),
    ("2.3pre3", "2.3pre12", -1),
    ("2.3a", "2.3c", -1),
    ("2.3pre1", "2.3c", -1),
    ("2.3pre1", "2.3q", -1),
    ("", "", 0),
    ("", "0", -1),
    ("", "a", -1),
    ("", "pre", 1),
    ("1.0", "1-0", 0),
    ("1..0", "1.0", 0),
    ("1.", "1", 0),
    ("01", "1", 0),
    ("0000000000000000000000001", "1", 0),
    ("1", "2147483647", -1),
    ("1", "2147483648", 1),
    ("1", "99999999999", 1),
    ("99999999999", "99999999998", 1),
    ("5.2p15", "5.2p26", -1),
    ("1.0rc1", "1.0", 1),
    ("1.0alpha", "1.0beta", -1),
    ("2.38-44", "2.38-27", 1),
    ("6.6.1", "6.6.10", -1),
]


@pytest.mark.parametrize(("a", "b", "expected"), NIX_CASES)
def test_compare_versions_as_nix(a, b, expected):
    assert compare_versions(a, b) == expected
    assert compare_versions(b, a) == -expected


_PARTS = ["0", "1", "2", "9", "10", "007", "2147483647", "2147483648", "99999999999"]
_PARTS += ["pre", "rc", "a", "b", "p", "alpha", "git", ""]
_SEPARATORS = [".", "-", "", ".."]


@st.composite
def version_texts(draw):
    """Versions built from the components names.cc treats apart, or any short text."""
    parts = draw(st.lists(st.sampled_from(_PARTS), max_size=5))
    text = "".join(part + draw(st.sampled_from(_SEPARATORS)) for part in parts)
    return draw(st.one_of(st.just(text), st.text(alphabet="0129.-aeprx", max_size=10)))


@given(version_texts(), version_texts())
def test_compare_versions_is_antisymmetric(a, b):
    assert compare_versions(a, b) == -compare_versions(b, a)
    assert compare_versions(a, a) == 0


def _generated_pairs(count: int) -> list[tuple[str, str]]:
    """Version pairs that share most of their components, as a package's versions do."""
    rng = random.Random(7)

    def version(parts: list[str]) -> str:
        return "".join(p + rng.choice(_SEPARATORS) for p in parts).rstrip(".-")

    pairs = []
    for _ in range(count):
        parts = [rng.choice(_PARTS) for _ in range(rng.randint(1, 4))]
        other = list(parts)
        other[rng.randrange(len(other))] = rng.choice(_PARTS)
        if rng.random() < 0.3:
            other.append(rng.choice(_PARTS))
        pairs.append((version(parts), version(other)))
    return pairs


@pytest.mark.nix
@pytest.mark.parametrize("name", list(versions.available()))
def test_compare_versions_agrees_with_real_nix(name, tmp_path):
    """~200 pairs in one nix-instantiate, on every Nix installed here."""
    pairs = [(a, b) for a, b, _ in NIX_CASES] + _generated_pairs(200)
    assert all(set(a + b) <= set("0123456789.-abcdefghijklmnopqrstuvwxyz") for a, b in pairs)
    listed = " ".join(f'["{a}" "{b}"]' for a, b in pairs)
    compare = "p: builtins.compareVersions (builtins.elemAt p 0) (builtins.elemAt p 1)"
    expr = f"map ({compare}) [{listed}]"
    nix = versions.available()[name]
    argv = [nix.program("nix-instantiate"), "--store", "dummy://", "--eval", "--strict", "--json"]
    env = {**os.environ, "HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    out = subprocess.run(
        [*argv, "--expr", expr], capture_output=True, text=True, check=False, env=env, timeout=60
    )
    if out.returncode != 0:
        reason = f"nix-instantiate of Nix {nix.release} cannot evaluate here: {out.stderr}"
        if versions.under_ci():
            pytest.fail(reason)
        pytest.skip(reason)
    assert [compare_versions(a, b) for a, b in pairs] == json.loads(out.stdout)


def test_package_changes_group_versions_and_outputs():
    """Every version of a pname on each side together; outputs are packages of their own."""
    before = [
        fake_path("python3-3.11.9"),
        fake_path("python3-3.12.4"),
        fake_path("util-linux-2.38-bin"),
        fake_path("util-linux-2.38-man"),
        fake_path("hello"),
        fake_path("same-1.0"),
    ]
    after = [
        fake_path("python3-3.13.0"),
        fake_path("python3-3.12.5"),
        fake_path("util-linux-2.39-bin"),
        fake_path("util-linux-2.38-man"),
        fake_path("hello", salt="rebuilt"),
        fake_path("same-1.0"),
    ]
    assert package_changes(before, after) == (
        PackageChange("python3", ("3.11.9", "3.12.4"), ("3.12.5", "3.13.0")),
        PackageChange("util-linux-bin", ("2.38",), ("2.39",)),
        PackageChange("hello", ("",), ("",)),
    )
    assert [c.kind for c in package_changes(before, after)] == [
        Kind.UPGRADED,
        Kind.UPGRADED,
        Kind.CHANGED,
    ]


@pytest.mark.parametrize(
    ("old", "new", "kind"),
    [
        ((), ("1.0",), Kind.ADDED),
        (("1.0",), (), Kind.REMOVED),
        (("2.0",), ("1.9",), Kind.DOWNGRADED),
        (("2.38",), ("2.38",), Kind.CHANGED),
        (("1.0", "2.0"), ("2.0", "3.0"), Kind.UPGRADED),
        # The newest version the same: the oldest decides.
        (("1.0", "2.0"), ("2.0",), Kind.UPGRADED),
        (("2.0",), ("1.0", "2.0"), Kind.DOWNGRADED),
        # Other texts, one version to Nix.
        (("1.0",), ("1-0",), Kind.CHANGED),
    ],
)
def test_kind(old, new, kind):
    assert PackageChange("p", old, new).kind is kind


@given(
    st.sets(st.sampled_from(["a-1.0", "a-2.0", "b-1.0", "b-1.0-bin", "c", "d-0.1pre"])),
    st.sets(st.sampled_from(["a-1.0", "a-2.0", "b-1.0", "b-1.0-bin", "c", "d-0.1pre"])),
    st.sets(st.sampled_from(["a-2.0", "b-1.0", "c"])),
)
def test_every_package_whose_paths_differ_is_listed_once(old, new, rebuilt):
    """A package is listed once when its paths differ, with the versions of each side;
    never when its paths are the same."""
    before = [fake_path(n) for n in old]
    after = [fake_path(n, salt="new" if n in rebuilt else "") for n in new]
    changes = package_changes(before, after)
    names = [c.name for c in changes]
    assert len(names) == len(set(names))
    for key in {StorePath.parse(p).key for p in before + after}:
        olds = {p for p in before if StorePath.parse(p).key == key}
        news = {p for p in after if StorePath.parse(p).key == key}
        assert (key in names) == (olds != news)
    for c in changes:
        assert set(c.old) == {sp.version for sp in map(StorePath.parse, before) if sp.key == c.name}
        assert set(c.new) == {sp.version for sp in map(StorePath.parse, after) if sp.key == c.name}
        assert (c.kind is Kind.ADDED) == (not c.old)
        assert (c.kind is Kind.REMOVED) == (not c.new)
    kinds = [list(Kind).index(c.kind) for c in changes]
    assert kinds == sorted(kinds)


def small_problem(**kwargs):
    """bash upgraded, vim removed, htop added, foo downgraded, hello rebuilt, util-linux's
    bin output upgraded, zlib unchanged; sizes apart so that every sum reads alone."""
    old, new = SystemBuilder("old"), SystemBuilder("new")
    zlib = old.add("zlib-1.3", 100)
    assert new.add("zlib-1.3", 100) == zlib
    current = [
        zlib,
        old.add("bash-5.2p15", 1000, (zlib,)),
        old.add("vim-9.0", 500, (zlib,)),
        old.add("foo-2.0", 400),
        old.add("hello-2.12", 200),
        old.add("util-linux-2.38-bin", 50),
    ]
    target = [
        zlib,
        new.add("bash-5.2p26", 1200, (zlib,)),
        new.add("htop-3.3.0", 300),
        new.add("foo-1.9", 350),
        new.add("hello-2.12", 210, salt="new"),
        new.add("util-linux-2.39-bin", 60),
    ]
    return instance_of(old.system(current), new.system(target), **kwargs)


def two_steps(inst, first):
    """The plan that changes the components `first` in its first step, the rest after."""
    middle = list(initial(inst))
    for name in first:
        middle[inst.index(name)] = State.NEW
    return evaluate(inst, [initial(inst), tuple(middle), final(inst)])


def test_step_diffs_of_a_small_plan():
    problem, inst = small_problem()
    plan = two_steps(inst, ["bash", "vim"])
    first, second = step_diffs(problem, plan, inst)
    assert first == Diff(
        (
            PackageChange("bash", ("5.2p15",), ("5.2p26",)),
            PackageChange("vim", ("9.0",), ()),
        ),
        size_change_bytes=200 - 500,
        paths_added=1,
        paths_removed=2,
    )
    assert second.packages == (
        PackageChange("util-linux-bin", ("2.38",), ("2.39",)),
        PackageChange("foo", ("2.0",), ("1.9",)),
        PackageChange("htop", (), ("3.3.0",)),
        PackageChange("hello", ("2.12",), ("2.12",)),
    )
    assert second.size_change_bytes == 10 - 50 + 300 + 10
    assert (second.paths_added, second.paths_removed) == (4, 3)
    assert second.counts == {
        Kind.UPGRADED: 1,
        Kind.DOWNGRADED: 1,
        Kind.ADDED: 1,
        Kind.REMOVED: 0,
        Kind.CHANGED: 1,
    }
    assert step_diff(problem, plan, 2) == second
    # The size change is the validator's too: it shares no code with the planner's.
    stored = validate(problem, plan).stored
    assert second.size_change_bytes == stored[1] - stored[0]


def test_the_whole_upgrade_is_the_difference_of_the_closures():
    problem, inst = small_problem()
    whole = upgrade_diff(problem, inst)
    assert [(c.name, c.kind) for c in whole.packages] == [
        ("bash", Kind.UPGRADED),
        ("util-linux-bin", Kind.UPGRADED),
        ("foo", Kind.DOWNGRADED),
        ("htop", Kind.ADDED),
        ("vim", Kind.REMOVED),
        ("hello", Kind.CHANGED),
    ]
    assert whole.size_change_bytes == problem.new.size() - problem.old.size() == -30
    assert whole == upgrade_diff(problem)


def test_a_dropped_component_is_removed_then_added():
    """A non-vital component made absent leaves the disk in one step and comes back, new,
    in another: each diff says what that step does."""
    problem, inst = small_problem(non_vital=["hello"])
    hello = inst.index("hello")
    middle = list(initial(inst))
    middle[hello] = State.ABSENT
    plan = evaluate(inst, [initial(inst), tuple(middle), final(inst)])
    first, second = step_diffs(problem, plan, inst)
    assert first.packages == (PackageChange("hello", ("2.12",), ()),)
    assert first.size_change_bytes == -200
    assert PackageChange("hello", (), ("2.12",)) in second.packages


def test_render():
    problem, inst = small_problem()
    _, second = step_diffs(problem, two_steps(inst, ["bash", "vim"]), inst)
    assert render(second) == [
        "Upgraded:",
        "[U.] util-linux-bin  2.38 -> 2.39",
        "Downgraded:",
        "[D.] foo             2.0 -> 1.9",
        "Added:",
        "[A+] htop            3.3.0",
        "Rebuilt:",
        "[C.] hello           2.12 (rebuilt)",
        "Closure size: 4 package paths added, 3 removed, disk usage +270 B",
    ]


def test_render_lists_every_package_and_versionless_ones():
    many = tuple(PackageChange(f"pkg{i:03}", (f"{i}.0",), (f"{i}.1",)) for i in range(300))
    versionless = PackageChange("wrapper", ("",), ())
    lines = render(Diff((*many, versionless), -3 * GiB // 2, 0, 301))
    assert len(lines) == 1 + 300 + 1 + 1 + 1
    assert lines[-3:] == [
        "Removed:",
        "[R-] wrapper  <none>",
        "Closure size: 0 package paths added, 301 removed, disk usage -1.5 GiB",
    ]
    assert all(line.isascii() for line in lines)
    assert render(Diff((), 0, 0, 0)) == [
        "No package changes.",
        "Closure size: 0 package paths added, 0 removed, disk usage 0 B",
    ]


def test_to_json():
    problem, inst = small_problem()
    doc = upgrade_diff(problem, inst).to_json()
    assert doc == {
        "upgraded": [
            {"name": "bash", "old": ["5.2p15"], "new": ["5.2p26"]},
            {"name": "util-linux-bin", "old": ["2.38"], "new": ["2.39"]},
        ],
        "downgraded": [{"name": "foo", "old": ["2.0"], "new": ["1.9"]}],
        "added": [{"name": "htop", "old": [], "new": ["3.3.0"]}],
        "removed": [{"name": "vim", "old": ["9.0"], "new": []}],
        "changed": [{"name": "hello", "old": ["2.12"], "new": ["2.12"]}],
        "size_change_bytes": -30,
        "paths_added": 5,
        "paths_removed": 5,
    }
    assert json.loads(json.dumps(doc)) == doc


def test_a_plan_for_another_problem_is_refused():
    problem, inst = small_problem()
    plan = two_steps(inst, ["bash"])
    other, _ = small_problem(non_vital=["zlib"])
    with pytest.raises(InputError, match="the plan is for another upgrade"):
        step_diffs(other, plan)
    with pytest.raises(IndexError):
        step_diff(problem, plan, 3)


def test_no_change_at_all():
    problem, _ = small_problem()
    assert upgrade_diff(Problem.of(problem.old, problem.old)) == Diff((), 0, 0, 0)


def test_every_component_of_the_example_changes_in_exactly_one_step():
    """The bundled example, planned under 3 GiB: each changed component's packages are
    listed in one step's diff, the step that changes it, and together the steps say
    what the whole upgrade says."""
    old = read_source(str(EXAMPLES / "nixos-current.json"))
    new = read_source(str(EXAMPLES / "nixos-target.json"))
    problem = Problem.of(old, new)
    inst = build_instance(problem)
    plan = evaluate(inst, merge_greedy(inst, greedy_sequence(inst), 3 * GiB))
    assert len(plan) > 1
    diffs = step_diffs(problem, plan, inst)

    step_of: dict[str, int] = {}
    for step, diff in zip(plan.steps, diffs, strict=True):
        for package in diff.packages:
            assert package.name not in step_of
            step_of[package.name] = step.index
        changed = set(step.upgrade + step.add + step.remove)
        for component in problem.split.changed:
            keys = {StorePath.parse(p).key for p in component.old + component.new}
            listed = keys & {p.name for p in diff.packages}
            assert bool(listed) == (component.name in changed)
    for component in problem.split.changed:
        keys = {StorePath.parse(p).key for p in component.old + component.new}
        assert len({step_of[k] for k in keys if k in step_of}) == 1

    whole = upgrade_diff(problem, inst)
    by_name = sorted((p for d in diffs for p in d.packages), key=lambda p: p.name)
    assert by_name == sorted(whole.packages, key=lambda p: p.name)
    assert sum(d.size_change_bytes for d in diffs) == whole.size_change_bytes
    assert whole.counts[Kind.CHANGED] > 0 and whole.counts[Kind.UPGRADED] > 0
