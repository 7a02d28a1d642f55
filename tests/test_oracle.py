"""The exhaustive oracle (tests/oracle.py) checked by hand and against the validator, then
the planner and the smallest-budget search checked against the oracle on tiny problems."""

import hashlib
import itertools

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from solver.closure import Closure, PathInfo
from solver.components import Change, split_components
from solver.deadline import Deadline
from solver.instance import Problem, build_instance
from solver.plan import State, evaluate
from solver.search import bounds, minbudget, plan_upgrade
from solver.search.bounds import steps_lower_bound
from solver.storepath import NIX_BASE32
from solver.validate import validate
from tests.helpers import GiB, MiB, SystemBuilder, fake_path, instance_of, user_story
from tests.oracle import MAX_STATES, exhaustive

_ALPHA = sorted(NIX_BASE32)
# Glue of tests.helpers.SystemBuilder.system(): system-path and top-level, 1000 bytes each.
GLUE = 2000

OLD, NEW, ABSENT = int(State.OLD), int(State.NEW), int(State.ABSENT)


def checked_needs(problem, generations, budget=None):
    """The validator's needs of a plan (the plan's steps from the planner's accounting)."""
    plan = evaluate(build_instance(problem), generations)
    return validate(problem, plan, budget).needs


# ---------------------------------------------------------------- hand-made cases


def test_user_story_by_hand():
    # glibc (1 GiB) is kept by both vital packages: always on disk. Glue: 2000 bytes a side,
    # nothing shared, so an intermediate generation counts 2000 virtual bytes.
    old, new = user_story()
    problem, _ = instance_of(old, new)
    oracle = exhaustive(problem)
    one = 1 * GiB + 16 * GiB + 2 * GLUE  # both old and both new packages, both glues
    two = 1 * GiB + 12 * GiB + 2 * GLUE  # one package in both versions beside the other
    assert oracle.one_step_need == one
    assert oracle.min_budget == two
    assert oracle.min_steps(two - 1) is None
    assert oracle.plan(two - 1) is None
    assert oracle.min_steps(two) == 2
    assert oracle.min_steps(one - 1) == 2
    assert oracle.min_steps(one) == 1
    assert oracle.plan(one) == [(OLD, OLD), (NEW, NEW)]
    witness = oracle.min_budget_plan
    assert len(witness) == 3 and witness[1] in ((NEW, OLD), (OLD, NEW))
    assert checked_needs(problem, witness, two) == (two, two)


def test_user_story_with_droppable_games_by_hand():
    # games (2 GiB) is unchanged and non-vital: dropping it first and restoring it last
    # lowers the smallest budget from 15 GiB to 13 GiB, at the price of four steps.
    old, new = user_story(extra=2 * GiB)
    problem, _ = instance_of(old, new, non_vital=["games"])
    oracle = exhaustive(problem)
    assert [c.name for c in problem.modelled()] == ["bigPackageA", "bigPackageB", "games"]
    assert oracle.one_step_need == 19 * GiB + 2 * GLUE
    assert oracle.min_budget == 13 * GiB + 2 * GLUE
    assert oracle.min_steps(13 * GiB + 2 * GLUE - 1) is None
    assert oracle.min_steps(13 * GiB + 2 * GLUE) == 4
    assert oracle.min_steps(15 * GiB + 2 * GLUE - 1) == 4
    assert oracle.min_steps(15 * GiB + 2 * GLUE) == 2
    assert oracle.min_steps(19 * GiB + 2 * GLUE - 1) == 2
    assert oracle.min_steps(19 * GiB + 2 * GLUE) == 1
    witness = oracle.min_budget_plan
    assert witness[1][2] == ABSENT and witness[-2][2] == ABSENT
    small, big = 11 * GiB + 2 * GLUE, 13 * GiB + 2 * GLUE
    assert checked_needs(problem, witness, big) == (small, big, big, small)
    assert oracle.needs(witness) == [small, big, big, small]


def test_pinned_reserve_and_scratch_by_hand():
    # tool is upgraded (3 MiB -> 4 MiB, built locally), app is added (5 MiB, built
    # locally), big (100 MiB) is removed but pinned by another root, so it stays.
    old_b, new_b = SystemBuilder("old"), SystemBuilder("new")
    base = old_b.add("base-1.0", 10 * MiB)
    new_b.add("base-1.0", 10 * MiB)
    big = old_b.add("big-1.0", 100 * MiB)
    tool = old_b.add("tool-1.0", 3 * MiB, (base,))
    tool2 = new_b.add("tool-2.0", 4 * MiB, (base,))
    app = new_b.add("app-1.0", 5 * MiB, (base,))
    for p in (tool2, app):
        info = new_b.infos[p]
        new_b.infos[p] = PathInfo(p, info.nar_size, info.references, estimated=True)
    old, new = old_b.system([base, big, tool]), new_b.system([base, tool2, app])
    pinned = old.restrict([big])
    split = split_components(old, new)
    problem = Problem(old, new, split, pinned=pinned, reserve=7 * MiB)
    assert {c.name: c.change for c in problem.modelled()} == {
        "app": Change.ADD,
        "big": Change.REMOVE,
        "tool": Change.UPGRADE,
    }
    oracle = exhaustive(problem)
    # Always: base (a vital SAME component) and big (pinned): removing big frees nothing.
    always = 110 * MiB
    one = always + 3 * MiB + 4 * MiB + 5 * MiB + 2 * GLUE + 9 * MiB + 7 * MiB
    assert oracle.one_step_need == one
    # tool first (its 4 MiB of scratch with it), then app (5 MiB of scratch): the second
    # step holds tool's new version, app, app's scratch and the reserve.
    tool_first = always + 3 * MiB + 4 * MiB + 2 * GLUE + 4 * MiB + 7 * MiB
    app_next = always + 4 * MiB + 5 * MiB + 2 * GLUE + 5 * MiB + 7 * MiB
    assert tool_first < app_next
    assert oracle.min_budget == app_next
    assert oracle.min_steps(app_next) == 2
    assert oracle.min_steps(app_next - 1) is None
    assert oracle.min_steps(one - 1) == 2
    assert oracle.min_steps(one) == 1
    witness = oracle.min_budget_plan
    assert witness[1][0] == OLD and witness[1][2] == NEW
    assert oracle.needs(witness) == [tool_first, app_next]
    assert checked_needs(problem, witness, app_next) == (tool_first, app_next)
    # app first, then tool while removing big.
    gens = [(OLD, OLD, OLD), (NEW, OLD, OLD), (NEW, NEW, NEW)]
    first = always + 3 * MiB + 5 * MiB + 2 * GLUE + 5 * MiB + 7 * MiB
    second = always + 3 * MiB + 4 * MiB + 5 * MiB + 2 * GLUE + 4 * MiB + 7 * MiB
    assert oracle.needs(gens) == [first, second]
    assert checked_needs(problem, gens) == (first, second)


def test_oracle_rejects_broken_plans_and_huge_problems():
    old, new = user_story(extra=GiB)
    problem, _ = instance_of(old, new, non_vital=["games"])
    oracle = exhaustive(problem)
    with pytest.raises(ValueError):
        oracle.needs([(OLD, OLD, OLD), (NEW, OLD, OLD), (OLD, NEW, NEW), (NEW, NEW, NEW)])
    with pytest.raises(ValueError):
        oracle.needs([(OLD, OLD, OLD), (ABSENT, OLD, OLD), (NEW, NEW, NEW)])
    with pytest.raises(ValueError):
        oracle.needs([(OLD, OLD, OLD), (OLD, OLD, OLD)])
    o_b, n_b = SystemBuilder("old"), SystemBuilder("new")
    olds = [o_b.add(f"p{i}-1.0", 1000) for i in range(13)]
    news = [n_b.add(f"p{i}-2.0", 1000) for i in range(13)]
    big, _ = instance_of(o_b.system(olds), n_b.system(news))
    with pytest.raises(ValueError, match=f"at most {MAX_STATES}"):
        exhaustive(big)


def test_oracle_at_its_size_limit():
    # Ten upgraded packages, two of them non-vital: 4 * 4 * 2**8 = 4096 generations.
    old_b, new_b = SystemBuilder("old"), SystemBuilder("new")
    libs = [old_b.add(f"lib{i}-1.0", (i + 1) * 3 * MiB) for i in range(4)]
    for lib in libs:
        new_b.infos[lib] = old_b.infos[lib]
    olds, news = [], []
    for i in range(10):
        refs = (libs[i % 4], libs[(i * 3 + 1) % 4])
        olds.append(old_b.add(f"p{i}-1.0", (i * 7 % 10 + 1) * 5 * MiB, refs))
        news.append(new_b.add(f"p{i}-2.0", (i * 3 % 10 + 1) * 5 * MiB, refs))
    problem, _ = instance_of(old_b.system(olds), new_b.system(news), non_vital=["p0", "p1"])
    oracle = exhaustive(problem)
    assert oracle.count == MAX_STATES
    witness = oracle.min_budget_plan
    assert max(checked_needs(problem, witness, oracle.min_budget)) == oracle.min_budget
    assert oracle.min_budget < oracle.one_step_need
    assert oracle.min_steps(oracle.min_budget - 1) is None


# ---------------------------------------------------------------- random tiny problems


def _hash(label: str) -> str:
    digest = hashlib.sha256(label.encode()).digest()
    return "".join(_ALPHA[b % 32] for b in digest[:32])


@st.composite
def tiny_problems(draw, planned=False):
    """A random old and new system: libraries, packages, additions, removals, upgrades with
    hash propagation, non-vital packages, pinned paths, a reserve and local builds.

    `planned`: at least one modelled component (the glue-only case has its own tests).
    """
    serial = itertools.count()
    tag = draw(st.integers(0, 10**6))

    def path(name):
        return f"/nix/store/{_hash(f'{tag}/{next(serial)}/{name}')}-{name}"

    def size():
        kb = draw(st.integers(2, 4096))
        return kb * 1024 * draw(st.sampled_from([1, 1, 1, 1, 1, 8, 60]))

    n_libs = draw(st.integers(0, 4))
    n_pkgs = draw(st.integers(1, 7))
    n_add = draw(st.integers(0, min(2, 9 - n_pkgs)))
    n_exposed = draw(st.integers(0, min(n_libs, 10 - n_pkgs - n_add, 2)))

    # The old system: a DAG of libraries and packages (each referencing earlier nodes).
    nodes = []  # (name, size, refs as indices into nodes)
    for i in range(n_libs):
        refs = draw(st.sets(st.integers(0, i - 1), max_size=2)) if i else set()
        nodes.append((f"lib{i}-1.{i}", size(), sorted(refs)))
    for i in range(n_pkgs):
        earlier = len(nodes)
        refs = draw(st.sets(st.integers(0, earlier - 1), max_size=3)) if earlier else set()
        nodes.append((f"pkg{i}-1.0", size(), sorted(refs)))
    pkgs = list(range(n_libs, n_libs + n_pkgs))
    exposed = list(range(n_exposed))
    # A removed package may stay in the new closure, referenced by another package.
    removed = draw(st.sets(st.sampled_from(pkgs), max_size=min(2, n_pkgs - 1)))

    old_paths = []
    old_infos = []
    for name, sz, refs in nodes:
        p = path(name)
        old_paths.append(p)
        old_infos.append(PathInfo(p, sz, tuple(sorted(old_paths[r] for r in refs))))

    # The new system: seeds change (a new version, maybe a new size); whatever references
    # a changed path changes too (a new hash), in topological order.
    seeds = draw(st.sets(st.integers(0, len(nodes) - 1), min_size=0, max_size=len(nodes)))
    new_paths, new_infos = [], []
    changed = []
    for i, (name, sz, refs) in enumerate(nodes):
        propagated = any(changed[r] for r in refs)
        if i in seeds or propagated:
            if i in seeds:
                head, _, version = name.rpartition("-")
                name = f"{head}-{version}.{draw(st.integers(1, 9))}"
                sz = draw(st.sampled_from([sz, size(), sz + 4096]))
            p = path(name)
            estimated = draw(st.booleans()) and draw(st.booleans())
            info = PathInfo(p, sz, tuple(sorted(new_paths[r] for r in refs)), estimated=estimated)
            changed.append(True)
        else:
            p, info = old_paths[i], old_infos[i]
            if draw(st.integers(0, 7)) == 0:
                # Marked as built locally, but on disk already: no scratch.
                info = PathInfo(p, info.nar_size, info.references, estimated=True)
            changed.append(False)
        new_paths.append(p)
        new_infos.append(info)
    added = []
    for i in range(n_add):
        refs = draw(st.sets(st.integers(0, len(nodes) - 1), max_size=3))
        p = path(f"app{i}-0.{i}")
        estimated = draw(st.booleans())
        new_infos.append(
            PathInfo(p, size(), tuple(sorted(new_paths[r] for r in refs)), estimated=estimated)
        )
        added.append(p)

    def system(label, infos, listed, etc=None):
        """Top-level -> system-path (-> listed packages) and maybe an etc (-> a few)."""
        infos = list(infos)
        sp = path("system-path")
        infos.append(PathInfo(sp, draw(st.integers(500, 300_000)), tuple(sorted(listed))))
        glue = [sp]
        if etc is None and draw(st.booleans()):
            refs = draw(st.sets(st.sampled_from(sorted(listed)), max_size=2)) if listed else ()
            etc = PathInfo(path("etc"), draw(st.integers(500, 200_000)), tuple(sorted(refs)))
        if etc is not None:
            infos.append(etc)
            glue.append(etc.path)
        top = path(f"nixos-system-{label}")
        infos.append(PathInfo(top, draw(st.integers(500, 50_000)), tuple(sorted(glue))))
        return Closure(infos, [top], source=label).restrict([top])

    old_listed = [old_paths[i] for i in (*exposed, *pkgs)]
    new_listed = [new_paths[i] for i in (*exposed, *pkgs) if i not in removed] + added
    old = system("old", old_infos, old_listed)
    # An etc whose references did not change is the same path in both: shared glue.
    old_etc = [old[p] for p in old if p.endswith("-etc")]
    keep_etc = None
    if old_etc and set(old_etc[0].references) <= set(new_listed) and draw(st.booleans()):
        keep_etc = old_etc[0]
    new = system("new", new_infos, new_listed, keep_etc)

    names = sorted(c.name for c in split_components(old, new).components)
    n_non_vital = draw(st.integers(0, min(2, len(names))))
    non_vital = draw(
        st.lists(st.sampled_from(names), min_size=n_non_vital, max_size=2, unique=True)
    )
    split = split_components(old, new, non_vital=non_vital)
    pinned = None
    if draw(st.integers(0, 3)) == 0:
        # Any old package or library, in the old system or not (a user profile's).
        roots = draw(st.lists(st.sampled_from(old_paths), min_size=1, max_size=2, unique=True))
        pinned = Closure(old_infos, roots, source="pinned").restrict(roots)
    reserve = draw(st.sampled_from([0, 0, 0, 4096, 3 * MiB]))
    problem = Problem(old, new, split, pinned=pinned, reserve=reserve, scratch_factor=1.0)
    assert len(problem.modelled()) <= 10
    assume(problem.modelled() or not planned)
    return problem


def _describe(problem, oracle=None):
    kinds = {}
    for c in problem.modelled():
        key = f"{c.change.value}{'' if c.vital else '/non-vital'}"
        kinds[key] = kinds.get(key, 0) + 1
    text = (
        f"{len(problem.old)} old paths, {len(problem.new)} new, components {kinds}, "
        f"pinned {len(problem.pinned_paths)}, reserve {problem.reserve}"
    )
    if oracle is not None:
        text += (
            f"; oracle: {oracle.count} generations, {oracle.edges} steps, "
            f"min budget {oracle.min_budget}, one step {oracle.one_step_need}"
        )
    return text


@st.composite
def random_plans(draw, problem):
    """A plan of 1 to 5 steps that obeys the model's rules, drawn independently of the oracle."""
    comps = problem.modelled()
    inner = draw(st.integers(0, 4))
    columns = []
    for c in comps:
        if c.vital or c.change in (Change.ADD, Change.REMOVE):
            switch = draw(st.integers(1, inner + 1))
            col = [OLD if i < switch else NEW for i in range(inner + 1)]
        elif c.change is Change.SAME:
            col = [OLD] + [draw(st.sampled_from([OLD, ABSENT])) for _ in range(inner)]
        else:
            col, seen_new, state = [OLD], False, OLD
            for _ in range(inner):
                if state == OLD:
                    state = draw(st.sampled_from([OLD, ABSENT, NEW]))
                elif state == ABSENT and not seen_new:
                    state = draw(st.sampled_from([ABSENT, OLD, NEW]))
                else:
                    state = draw(st.sampled_from([NEW, ABSENT]))
                seen_new = seen_new or state == NEW
                col.append(state)
        columns.append([*col, NEW])
    return [tuple(col[i] for col in columns) for i in range(inner + 2)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_oracle_needs_match_the_validator_on_random_plans(data):
    problem = data.draw(tiny_problems())
    oracle = exhaustive(problem)
    for _ in range(3):
        gens = data.draw(random_plans(problem))
        assert oracle.needs(gens) == list(checked_needs(problem, gens)), _describe(problem)
    one = [(OLD,) * len(problem.modelled()), (NEW,) * len(problem.modelled())]
    assert oracle.needs(one) == [oracle.one_step_need]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tiny_problems())
def test_oracle_witnesses_validate(problem):
    oracle = exhaustive(problem)
    best = oracle.min_budget
    witness = oracle.min_budget_plan
    needs = checked_needs(problem, witness, best)
    assert max(needs) == best
    assert len(witness) - 1 == oracle.min_steps(best)
    assert oracle.min_steps(best - 1) is None
    assert oracle.min_steps(oracle.one_step_need) == 1
    previous = None
    for budget in sorted({best, (best + oracle.one_step_need) // 2, oracle.one_step_need - 1}):
        if budget < best:
            continue
        plan = oracle.plan(budget)
        assert plan is not None and len(plan) - 1 == oracle.min_steps(budget)
        assert max(checked_needs(problem, plan, budget)) <= budget
        if previous is not None:
            assert oracle.min_steps(budget) <= previous
        previous = oracle.min_steps(budget)


def _obeys_rules(problem, plan):
    """The model's rules, written per component over a plan's written states."""
    for c, comp in enumerate(problem.modelled()):
        column = [g[c] for g in plan]
        if comp.vital or comp.change in (Change.ADD, Change.REMOVE):
            if ABSENT in column:
                return False
        if comp.change is Change.SAME:
            if NEW in column[1:-1]:  # written old while present, but for the target
                return False
        elif NEW in column and OLD in column[column.index(NEW) :]:
            return False
    return True


def _every_plan(problem, most_inner):
    """Every rule-abiding plan with at most `most_inner` intermediate generations."""
    n = len(problem.modelled())
    gens = list(itertools.product((OLD, NEW, ABSENT), repeat=n))
    for k in range(most_inner + 1):
        for inner in itertools.product(gens, repeat=k):
            plan = [(OLD,) * n, *inner, (NEW,) * n]
            if _obeys_rules(problem, plan):
                yield plan


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tiny_problems())
def test_oracle_agrees_with_brute_force_over_short_plans(problem):
    # On problems of at most three components, every plan of at most three steps is
    # validated: wherever the oracle says three steps or fewer, brute force must find
    # that many and no fewer; wherever it says more or none, brute force must find none.
    if len(problem.modelled()) > 3:
        return
    oracle = exhaustive(problem)
    inst = build_instance(problem)
    fewest = {}  # peak -> fewest steps of a plan with that peak
    for plan in _every_plan(problem, 2):
        needs = validate(problem, evaluate(inst, plan)).needs
        assert oracle.needs(plan) == list(needs)
        peak = max(needs)
        fewest[peak] = min(fewest.get(peak, 99), len(needs))
    assert min(fewest) >= oracle.min_budget
    for budget in sorted({*fewest, oracle.min_budget}):
        brute = min((s for peak, s in fewest.items() if peak <= budget), default=None)
        steps = oracle.min_steps(budget)
        if steps is not None and steps <= 3:
            assert brute == steps, (budget, _describe(problem, oracle))
        else:
            assert brute is None, (budget, _describe(problem, oracle))


# ---------------------------------------------------------------- the planner against it


@st.composite
def problems_and_budgets(draw):
    """A problem, its oracle, and three budgets from 10 % under the smallest budget to 5 %
    over the one-step need."""
    problem = draw(tiny_problems(planned=True))
    oracle = exhaustive(problem)
    lo = int(oracle.min_budget * 0.9)
    hi = max(lo, int(oracle.one_step_need * 1.05))
    budgets = draw(st.lists(st.integers(lo, hi), min_size=3, max_size=3))
    return problem, oracle, budgets


def check_planner(problem, oracle, budget):
    result = plan_upgrade(build_instance(problem), budget, time_limit=5, workers=1)
    fewest = oracle.min_steps(budget)
    where = f"budget {budget}; {_describe(problem, oracle)}"
    if fewest is not None:
        assert result.plan is not None, f"planner: {result.status.value}; {where}"
        validate(problem, result.plan, budget)
        assert len(result.plan) == fewest, (
            f"planner {len(result.plan)} steps, oracle {fewest}; {where}"
        )
        assert result.lower_bound_steps <= fewest, where
    else:
        assert result.plan is None, where
        assert result.status.value in ("infeasible", "unknown"), where
        assert result.status.value == "infeasible", where
        assert result.min_feasible_budget == oracle.min_budget, (
            f"planner's min feasible budget {result.min_feasible_budget}; {where}"
        )
        lower = getattr(result, "min_budget_lower_bound", None)
        assert lower is not None, f"Result has no min_budget_lower_bound; {where}"
        assert lower <= oracle.min_budget, where


def _glue_only():
    """Only the glue changes: no component to plan, one step, the glue of both sides."""
    old_b, new_b = SystemBuilder("old"), SystemBuilder("new")
    old_b.add("base-1.0", 5 * MiB)
    new_b.add("base-1.0", 5 * MiB)
    old, new = old_b.system([fake_path("base-1.0")]), new_b.system([fake_path("base-1.0")])
    return Problem(old, new, split_components(old, new))


def test_oracle_on_a_glue_only_upgrade():
    problem = _glue_only()
    assert problem.modelled() == ()
    oracle = exhaustive(problem)
    need = 5 * MiB + 2 * GLUE
    assert oracle.min_budget == oracle.one_step_need == need
    assert oracle.min_steps(need) == 1 and oracle.min_steps(need - 1) is None
    assert oracle.min_budget_plan == [(), ()]
    assert checked_needs(problem, [(), ()]) == (need,)


def test_planner_on_a_glue_only_upgrade():
    problem = _glue_only()
    oracle = exhaustive(problem)
    check_planner(problem, oracle, oracle.min_budget)
    check_planner(problem, oracle, oracle.min_budget - 1)


def test_smallest_budget_on_a_glue_only_upgrade():
    problem = _glue_only()
    bound = minbudget.smallest_budget(build_instance(problem), Deadline.after(5), workers=1)
    assert (bound.found, bound.lower) == (exhaustive(problem).min_budget,) * 2


def _restored_with_scratch():
    """pkg0 is rebuilt locally (3072 bytes, estimated); pkg1 (non-vital) and app0, an
    addition, reference it; app1 is added. Found by test_planner_at_random_budgets."""
    o0, o1, s2, s3 = (fake_path(n) for n in ("pkg0-1.0", "pkg1-1.0", "pkg2-1.0", "pkg3-1.0"))
    osp, otop = fake_path("system-path", "old"), fake_path("nixos-system-old")
    old = Closure(
        [
            PathInfo(o0, 3072),
            PathInfo(o1, 2048, (o0,)),
            PathInfo(s2, 2048),
            PathInfo(s3, 2048),
            PathInfo(osp, 500, (o0, o1, s2, s3)),
            PathInfo(otop, 500, (osp,)),
        ],
        [otop],
    )
    n0, n1 = fake_path("pkg0-1.0.1"), fake_path("pkg1-1.0", "new")
    a0, a1 = fake_path("app0-0.0"), fake_path("app1-0.1")
    nsp, ntop = fake_path("system-path", "new"), fake_path("nixos-system-new")
    new = Closure(
        [
            PathInfo(n0, 3072, estimated=True),
            PathInfo(n1, 2048, (n0,)),
            PathInfo(s2, 2048),
            PathInfo(s3, 2048),
            PathInfo(a0, 2048, (n0,)),
            PathInfo(a1, 2048),
            PathInfo(nsp, 500, (n0, n1, s2, s3, a0, a1)),
            PathInfo(ntop, 500, (nsp,)),
        ],
        [ntop],
    )
    return Problem(old, new, split_components(old, new, non_vital=["pkg1"]))


@pytest.mark.parametrize("budget", [15312, 16000, 17000, 18000, 20000])
def test_planner_on_a_restored_non_vital_with_scratch(budget):
    # The lowest plan drops pkg1, upgrades pkg0 (paying its scratch), brings pkg1 back new
    # (paying the scratch of its closure), drops it again and restores it at the end.
    problem = _restored_with_scratch()
    oracle = exhaustive(problem)
    assert oracle.min_budget == 15312 and oracle.one_step_need == 29648
    assert [oracle.min_steps(b) for b in (15312, 17000, 18000, 20000)] == [6, 5, 4, 3]
    check_planner(problem, oracle, budget)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tiny_problems(planned=True))
def test_planner_at_the_smallest_budget_and_just_below(problem):
    oracle = exhaustive(problem)
    check_planner(problem, oracle, oracle.min_budget)
    check_planner(problem, oracle, oracle.min_budget - 1)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems_and_budgets())
def test_planner_at_random_budgets(case):
    problem, oracle, budgets = case
    for budget in budgets:
        check_planner(problem, oracle, budget)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tiny_problems(planned=True))
def test_smallest_budget_is_exact_on_tiny_problems(problem):
    oracle = exhaustive(problem)
    bound = minbudget.smallest_budget(build_instance(problem), Deadline.after(5), workers=1)
    where = f"found {bound.found}, lower {bound.lower}; {_describe(problem, oracle)}"
    assert bound.lower <= oracle.min_budget, where
    assert bound.found == oracle.min_budget, where
    assert bound.exact, where


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems_and_budgets())
def test_steps_lower_bound_is_below_the_fewest_steps(case):
    """The lower bound on steps, `_middle_store` included (both versions of what every
    component uses, in every generation between the ends), never passes the oracle's
    fewest steps."""
    problem, oracle, budgets = case
    inst = build_instance(problem)
    for budget in budgets:
        fewest = oracle.min_steps(budget)
        if fewest is not None:
            where = f"budget {budget}; {_describe(problem, oracle)}"
            assert steps_lower_bound(inst, budget) <= fewest, where
            # Each bound on its own: the largest must not hide one that is wrong.
            assert bounds._volume_bound(inst, budget) <= fewest, where
            assert bounds._clique_bound(inst, budget) <= fewest, where
            assert bounds._library_bound(inst, budget) <= fewest, where


def test_a_mass_rebuild_holds_both_libcs_between_the_ends():
    """Four packages over one libc, all rebuilt against a new libc: every generation
    between the ends holds both libcs, so under a budget with room for one libc and a
    package or two beside the old system, the volume bound sees more steps than it did
    with one libc counted, and the oracle agrees with it."""
    mib = 1 << 20

    def system(tag, libc_size):
        built = SystemBuilder(tag)
        libc = built.add(f"glibc-2.{tag}", libc_size)
        return built.system([built.add(f"pkg{i}-1.{tag}", 30 * mib, (libc,)) for i in range(4)])

    old, new = system("39", 100 * mib), system("40", 100 * mib)
    problem = Problem(old, new, split_components(old, new))
    inst = build_instance(problem)
    oracle = exhaustive(problem)
    budget = old.size() + 100 * mib + 35 * mib
    fewest = oracle.min_steps(budget)
    assert fewest is not None
    assert bounds._middle_store(inst) > bounds._smallest_store(inst)
    assert steps_lower_bound(inst, budget) == fewest > 2


def test_a_library_three_packages_link_is_on_disk_twice_in_each_of_their_steps():
    """Three packages over one library, a fourth beside them, all rebuilt against a new
    libc. With room for one package beside both copies of the library, each of the three
    needs a step of its own: the library is on disk twice in three steps, which the
    volume bound (each library counted once) does not see and the library bound does."""
    mib = 1 << 20

    def system(tag):
        built = SystemBuilder(tag)
        libc = built.add(f"glibc-2.{tag}", 100 * mib)
        libfoo = built.add(f"libfoo-1.{tag}", 60 * mib, (libc,))
        packages = [built.add(f"pkg{i}-1.{tag}", 30 * mib, (libfoo,)) for i in range(3)]
        return built.system([*packages, built.add(f"tool-1.{tag}", 30 * mib, (libc,))])

    old, new = system("39"), system("40")
    problem = Problem(old, new, split_components(old, new))
    inst = build_instance(problem)
    budget = old.size() + 195 * mib
    fewest = exhaustive(problem).min_steps(budget)
    assert fewest == 4
    assert bounds._volume_bound(inst, budget) == 2
    assert bounds._clique_bound(inst, budget) == 1
    assert bounds._library_bound(inst, budget) == steps_lower_bound(inst, budget) == fewest
