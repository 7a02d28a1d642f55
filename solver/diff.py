"""What a generation changes from another, package by package, as nvd and dix print it.

A plan's step moves some components between states (solver/plan.py); the packages it
changes are their entry paths (what the system selects, by pname plus output), grouped
like nvd: every version of one package on each side together, the change called an
upgrade or a downgrade by Nix's own `builtins.compareVersions`. Dependencies inside a
component's closure are not listed; the size change counts them, and the glue, as the
planner does (`Step.store_delta`).
"""

import functools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np

from solver.components import Component
from solver.errors import InputError
from solver.instance import Instance, Problem, build_instance
from solver.plan import (
    DiffDocument,
    Generation,
    PackageDocument,
    Plan,
    State,
    one_step,
    presence_matrix,
)
from solver.storepath import StorePath
from solver.units import format_size

# Nix reads a version component as a C `int` (string2Int<int> in names.cc): a longer run
# of digits is not a number to it, and compares as a string.
_INT_MAX = 2**31 - 1
_SEPARATORS = ".-"


def _is_digit(ch: str) -> bool:
    # Not str.isdigit: Nix's isdigit() in the C locale knows only ASCII digits.
    return "0" <= ch <= "9"


def _next_component(version: str, i: int) -> tuple[str, int]:
    """The component of `version` from `i` on, and where the next one starts (Nix's
    nextComponent): a run of digits or a run of other characters, separators skipped."""
    end = len(version)
    while i < end and version[i] in _SEPARATORS:
        i += 1
    start = i
    if i < end and _is_digit(version[i]):
        while i < end and _is_digit(version[i]):
            i += 1
    else:
        while i < end and not _is_digit(version[i]) and version[i] not in _SEPARATORS:
            i += 1
    return version[start:i], i


def _as_int(component: str) -> int | None:
    if not component or not _is_digit(component[0]):
        return None
    value = int(component)
    return value if value <= _INT_MAX else None


def _component_less(c1: str, c2: str) -> bool:
    """Nix's componentsLT, case by case."""
    n1, n2 = _as_int(c1), _as_int(c2)
    if n1 is not None and n2 is not None:
        return n1 < n2
    if c1 == "" and n2 is not None:
        return True
    if c1 == "pre" and c2 != "pre":
        return True
    if c2 == "pre":
        return False
    # "2.3a" < "2.3.1": a number beats a word.
    if n2 is not None:
        return True
    if n1 is not None:
        return False
    return c1 < c2


def compare_versions(a: str, b: str) -> int:
    """-1, 0 or 1 as `builtins.compareVersions a b` returns (Nix's src/libstore/names.cc)."""
    i = j = 0
    while i < len(a) or j < len(b):
        c1, i = _next_component(a, i)
        c2, j = _next_component(b, j)
        if _component_less(c1, c2):
            return -1
        if _component_less(c2, c1):
            return 1
    return 0


def _sorted_versions(versions: Iterable[str]) -> tuple[str, ...]:
    """Oldest first by Nix's order; versions it calls equal ("1.0", "1.00") by text."""
    return tuple(sorted(sorted(set(versions)), key=functools.cmp_to_key(compare_versions)))


class Kind(Enum):
    """How a package changes, in the order a diff lists them."""

    UPGRADED = "upgraded"
    DOWNGRADED = "downgraded"
    ADDED = "added"
    REMOVED = "removed"
    # The same versions, other paths: rebuilt (a dependency or the build changed).
    CHANGED = "changed"


_ORDER = {kind: i for i, kind in enumerate(Kind)}


@dataclass(frozen=True)
class PackageChange:
    """One package (pname, `-output` unless the default) and its versions on each side,
    oldest first; "" is a path without a version."""

    name: str
    old: tuple[str, ...]
    new: tuple[str, ...]

    @property
    def kind(self) -> Kind:
        """Added, removed; else the newest versions decide, then the oldest."""
        if not self.old:
            return Kind.ADDED
        if not self.new:
            return Kind.REMOVED
        if self.old != self.new:
            order = compare_versions(self.new[-1], self.old[-1]) or compare_versions(
                self.new[0], self.old[0]
            )
            if order > 0:
                return Kind.UPGRADED
            if order < 0:
                return Kind.DOWNGRADED
        return Kind.CHANGED

    def to_json(self) -> PackageDocument:
        return {"name": self.name, "old": list(self.old), "new": list(self.new)}


def package_changes(before: Iterable[str], after: Iterable[str]) -> tuple[PackageChange, ...]:
    """The packages whose store paths differ between two sets of entry paths, by kind in
    `Kind`'s order and by name within a kind."""
    sides: dict[str, tuple[set[str], set[str]]] = defaultdict(lambda: (set(), set()))
    for side, paths in enumerate((before, after)):
        for path in paths:
            sides[StorePath.parse(path).key][side].add(path)
    changes = [
        PackageChange(
            key,
            _sorted_versions(StorePath.parse(p).version for p in old),
            _sorted_versions(StorePath.parse(p).version for p in new),
        )
        for key, (old, new) in sides.items()
        if old != new
    ]
    return tuple(sorted(changes, key=lambda c: (_ORDER[c.kind], c.name)))


@dataclass(frozen=True)
class Diff:
    """What one generation changes from another: packages, and bytes and paths on disk.

    `paths_added` and `paths_removed` count the paths of the components' closures that
    arrive and leave; the glue each generation rebuilds is in `size_change_bytes` only.
    """

    packages: tuple[PackageChange, ...]
    size_change_bytes: int
    paths_added: int
    paths_removed: int

    def of(self, kind: Kind) -> tuple[PackageChange, ...]:
        return tuple(p for p in self.packages if p.kind is kind)

    @property
    def counts(self) -> dict[Kind, int]:
        """How many packages of each kind, every kind listed."""
        return {kind: len(self.of(kind)) for kind in Kind}

    def to_json(self) -> DiffDocument:
        def listed(kind: Kind) -> list[PackageDocument]:
            return [p.to_json() for p in self.of(kind)]

        return {
            "upgraded": listed(Kind.UPGRADED),
            "downgraded": listed(Kind.DOWNGRADED),
            "added": listed(Kind.ADDED),
            "removed": listed(Kind.REMOVED),
            "changed": listed(Kind.CHANGED),
            "size_change_bytes": self.size_change_bytes,
            "paths_added": self.paths_added,
            "paths_removed": self.paths_removed,
        }


def _entries(component: Component, state: int) -> tuple[str, ...]:
    if state == State.OLD:
        return component.old
    if state == State.NEW:
        return component.new
    return ()


def _diff(
    problem: Problem, inst: Instance, before: Generation, after: Generation, size_change: int
) -> Diff:
    comps = problem.modelled()
    if not len(before) == len(after) == len(comps) == inst.size:
        raise InputError(
            f"a generation of {len(before)} components for a problem of {len(comps)}: "
            "the plan is for another upgrade"
        )
    moved = [c for c, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]
    packages = package_changes(
        (p for c in moved for p in _entries(comps[c], before[c])),
        (p for c in moved for p in _entries(comps[c], after[c])),
    )
    present = presence_matrix(inst, [before, after])
    paths = np.fromiter((g.paths for g in inst.groups), dtype=np.int64, count=len(inst.groups))
    return Diff(
        packages,
        size_change,
        paths_added=int(paths[~present[0] & present[1]].sum()),
        paths_removed=int(paths[present[0] & ~present[1]].sum()),
    )


def step_diff(problem: Problem, plan: Plan, index: int, inst: Instance | None = None) -> Diff:
    """What step `index` (Step.index: 1 is the first) of `plan` changes. `inst`: the
    problem's instance, when it is built already."""
    if not 1 <= index <= len(plan.steps):
        raise IndexError(f"step {index} of a plan of {len(plan.steps)} steps")
    if inst is None:
        inst = build_instance(problem)
    step = plan.steps[index - 1]
    before, after = plan.generations[index - 1], plan.generations[index]
    return _diff(problem, inst, before, after, step.store_delta)


def step_diffs(problem: Problem, plan: Plan, inst: Instance | None = None) -> tuple[Diff, ...]:
    """What every step of `plan` changes, in order."""
    if inst is None:
        inst = build_instance(problem)
    return tuple(step_diff(problem, plan, i, inst) for i in range(1, len(plan.steps) + 1))


def upgrade_diff(problem: Problem, inst: Instance | None = None) -> Diff:
    """What the whole upgrade changes: the current system to the target, in one step."""
    if inst is None:
        inst = build_instance(problem)
    plan = one_step(inst)
    return _diff(problem, inst, plan.generations[0], plan.generations[1], plan.steps[0].store_delta)


_HEADERS = {
    Kind.UPGRADED: ("Upgraded", "U."),
    Kind.DOWNGRADED: ("Downgraded", "D."),
    Kind.ADDED: ("Added", "A+"),
    Kind.REMOVED: ("Removed", "R-"),
    Kind.CHANGED: ("Rebuilt", "C."),
}


def _versions(versions: Sequence[str]) -> str:
    return ", ".join(v or "<none>" for v in versions)


def _change_text(p: PackageChange) -> str:
    if not p.old:
        return _versions(p.new)
    if not p.new:
        return _versions(p.old)
    if p.old == p.new:
        return f"{_versions(p.old)} (rebuilt)"
    return f"{_versions(p.old)} -> {_versions(p.new)}"


def render(diff: Diff) -> list[str]:
    """The diff as nvd prints one, in ASCII: a header per kind, every package on a line
    with its name in a column, then the size change. Nothing is cut to a width."""
    width = max((len(p.name) for p in diff.packages), default=0)
    lines: list[str] = []
    for kind, (header, mark) in _HEADERS.items():
        changes = diff.of(kind)
        if changes:
            lines.append(f"{header}:")
            lines.extend(f"[{mark}] {p.name:<{width}}  {_change_text(p)}" for p in changes)
    if not diff.packages:
        lines.append("No package changes.")
    size = diff.size_change_bytes
    lines.append(
        f"Closure size: {diff.paths_added} package paths added, {diff.paths_removed} removed, "
        f"disk usage {'+' if size > 0 else ''}{format_size(size)}"
    )
    return lines
