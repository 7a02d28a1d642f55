"""What-if scenarios from YAML: a current closure, changes to it, budgets to try.

    name: openssl bump on a small server
    current: examples/nixos-current.json      # any source the planner reads, or
    # current: {generate: {paths: 3000, components: 150, seed: 1}}
    changes:
      - bump: openssl                           # it and everything above it change
        version: 3.0.15
        grow: 3%                                # or +2M, -1%
      - add: htop-3.3.0                         # installed in system-path
        size: 2M
        references: [glibc, ncurses]
      - remove: nano
      - grow_all: 10%                           # everything rebuilt, 10% bigger
      - diff: upgrade.txt                       # `nix store diff-closures` output
        block: 0                                # which one, in a log of several
    limits: [7G, 8G, 9G, 10G]                   # or limit: 9G
    reserve: 500M
    non_vital: [firefox]
    pinned: [firefox, {name: user-profile, size: 1.2G}]
    time_limit: 10
    seed: 0

Paths are relative to the YAML file.
"""

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

from adapters.studies import schema as y
from adapters.studies.changes import apply_checked, parse_change, read_current
from solver.closure import Closure, PathInfo, merge
from solver.components import Change
from solver.errors import InputError
from solver.instance import Problem, build_instance
from solver.progress import Progress
from solver.search import Result, plan_checked
from solver.storepath import StorePath
from solver.synthetic import fake_hash
from solver.units import format_size
from solver.whatif.scenario import (
    Edit,
    apply_changes,
)

# A day: what the command line's --time-limit allows too.
MAX_TIME_LIMIT = 86_400.0


@dataclass(frozen=True)
class Pinned:
    """Something that stays on disk throughout: an old package, or a sized extra."""

    name: str
    size: int | None = None  # None: the current closure's package of that name


@dataclass
class Scenario:
    name: str
    current: Closure
    changes: list[Edit]
    limits: list[int]
    reserve: int = 0
    non_vital: list[str] = field(default_factory=list)
    pinned: list[Pinned] = field(default_factory=list)
    time_limit: float = 10.0
    seed: int = 0
    notes: list[str] = field(default_factory=list)
    target: Closure | None = None  # the changes applied; computed when None


def load(path: Path) -> Scenario:
    """A scenario file, checked key by key."""
    data, where = y.load(path)
    keys = ["name", "description", "current", "changes", "limits", "limit", "reserve"]
    keys += ["non_vital", "pinned", "time_limit", "seed"]
    m = y.mapping(data, where, required=["current", "changes"], optional=keys[:2] + keys[4:])
    base = path.parent
    current = read_current(m["current"], where.key(m, "current"), base)
    notes: list[str] = []
    at = where.key(m, "changes")
    if not isinstance(m["changes"], list) or not m["changes"]:
        raise at.error("expected a non-empty list of changes")
    seed = y.integer(m.get("seed", 0), where.key(m, "seed"))
    # Applied here, one change at a time, so an error names the line of the change.
    rng = random.Random(seed)
    target = current
    changes: list[Edit] = []
    for i, v in enumerate(m["changes"]):
        item = at.item(m["changes"], i)
        for change in parse_change(v, item, base, current, notes):
            target = apply_checked(target, change, rng, item)
            changes.append(change)
    limits = _limits(m, where)
    reserve = y.size(m.get("reserve", 0), where.key(m, "reserve"))
    if reserve >= limits[0]:
        raise where.key(m, "reserve").error(
            f"{format_size(reserve)} leaves nothing of the budget {format_size(limits[0])} "
            "for the store: the reserve is kept free out of each budget"
        )
    pinned = y.listed(m.get("pinned", []), where.key(m, "pinned"), _pinned)
    for i, p in enumerate(pinned):
        if p.size is None and not any(StorePath.parse(q).pname == p.name for q in current):
            raise (
                where.key(m, "pinned")
                .item(m["pinned"], i)
                .error(f"no package {p.name!r} in the current closure")
            )
    return Scenario(
        name=y.text(m.get("name", path.stem), where.key(m, "name")),
        current=current,
        changes=changes,
        limits=limits,
        reserve=reserve,
        non_vital=y.strings(m.get("non_vital", []), where.key(m, "non_vital")),
        pinned=pinned,
        time_limit=y.number(
            m.get("time_limit", 10.0),
            where.key(m, "time_limit"),
            minimum=0.1,
            maximum=MAX_TIME_LIMIT,
        ),
        seed=seed,
        notes=notes,
        target=Closure(target.infos(), target.roots, source=f"{path.name} target", check=False),
    )


def _limits(m: y.YamlMapping, where: y.Where) -> list[int]:
    """`limits:` or `limit:`, smallest first."""
    if ("limits" in m) == ("limit" in m):
        raise where.error("give limits: [7G, 8G, ...] or limit: 9G (exactly one)")
    if "limit" in m:
        return [y.budget(m["limit"], where.key(m, "limit"))]
    limits = y.listed(m["limits"], where.key(m, "limits"), y.budget)
    if not limits:
        raise where.key(m, "limits").error("expected at least one budget")
    return sorted(limits)


def _pinned(value: Any, where: y.Where) -> Pinned:
    if isinstance(value, str):
        return Pinned(y.text(value, where))
    m = y.mapping(value, where, required=["name", "size"])
    return Pinned(
        y.text(m["name"], where.key(m, "name")), y.path_size(m["size"], where.key(m, "size"))
    )


def pinned_closure(scenario: Scenario) -> Closure | None:
    parts = []
    store = scenario.current.store_dir
    extras = []
    for i, p in enumerate(scenario.pinned):
        if p.size is None:
            paths = [q for q in scenario.current if StorePath.parse(q).pname == p.name]
            if not paths:
                raise InputError(f"pinned[{i}]: no package {p.name!r} in the current closure")
            parts.append(scenario.current.restrict(paths))
        else:
            digest = fake_hash(random.Random(f"{p.name}-{i}"))
            extras.append(PathInfo(f"{store}/{digest}-{p.name}", p.size, ()))
    if extras:
        parts.append(Closure(extras, [e.path for e in extras], source="pinned extras"))
    return merge(parts, source="pinned") if parts else None


class ScenarioDocument(TypedDict):
    """What `scenario --json` prints."""

    scenario: str
    current_paths: int
    target_paths: int
    changed_paths: int
    current_bytes: int
    target_bytes: int
    components: int
    changed_components: int
    notes: list[str]
    # Per budget, smallest first: `limit_bytes` and the plan object of the `--json`
    # contract (solver.search.Result.to_json, README "Usage").
    results: list[dict[str, Any]]


@dataclass
class Outcome:
    """One scenario, planned under each of its budgets."""

    scenario: Scenario
    problem: Problem
    results: list[Result]

    @property
    def changed_paths(self) -> int:
        return len(set(self.problem.new) - set(self.problem.old))

    @property
    def changed_components(self) -> int:
        return sum(c.change is not Change.SAME for c in self.problem.split.components)

    def to_json(self) -> "ScenarioDocument":
        """The outcome as `scenario --json` prints it."""
        return {
            "scenario": self.scenario.name,
            "current_paths": len(self.problem.old),
            "target_paths": len(self.problem.new),
            "changed_paths": self.changed_paths,
            "current_bytes": self.problem.old.size(),
            "target_bytes": self.problem.new.size(),
            "components": len(self.problem.split.components),
            "changed_components": self.changed_components,
            "notes": self.scenario.notes,
            "results": [{"limit_bytes": r.budget, **r.to_json()} for r in self.results],
        }


def run(
    scenario: Scenario, *, workers: int | None = None, progress: Progress = lambda _: None
) -> Outcome:
    """Build the target and plan the upgrade under each budget; every plan is validated."""
    target = scenario.target
    if target is None:
        progress("applying the changes")
        target = apply_changes(scenario.current, scenario.changes, seed=scenario.seed)
    problem = Problem.of(
        scenario.current,
        target,
        non_vital=scenario.non_vital,
        pinned=pinned_closure(scenario),
        reserve=scenario.reserve,
    )
    progress("building the model")
    inst = build_instance(problem)
    results = []
    for limit in scenario.limits:
        progress(f"planning under {format_size(limit)}")
        result, _ = plan_checked(
            problem, limit, inst=inst, time_limit=scenario.time_limit, workers=workers
        )
        results.append(result)
    return Outcome(scenario, problem, results)
