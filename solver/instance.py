"""The disk model: components, signature groups of paths, and the constants of every step.

Paths used by the same set of (component, state) pairs behave alike, so they are grouped
and their sizes summed; real closures collapse a lot this way (docs/model.md).
"""

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt

from solver.closure import Closure
from solver.components import Change, Component, Split, split_components
from solver.errors import InputError
from solver.storepath import StorePath


@dataclass(frozen=True, slots=True)
class Group:
    """Paths present exactly when one of `old_users` is old or one of `new_users` is new."""

    size: int
    old_users: tuple[int, ...]
    new_users: tuple[int, ...]
    paths: int


@dataclass(frozen=True)
class Users:
    """The users of every group on one side, flattened for numpy's reduceat: group g's run
    from starts[g] and end with a dummy user, the number of components, who is none."""

    users: npt.NDArray[np.int64]
    starts: npt.NDArray[np.int64]

    @classmethod
    def of(cls, lists: Iterable[tuple[int, ...]], dummy: int) -> "Users":
        users: list[int] = []
        starts: list[int] = []
        for group_users in lists:
            starts.append(len(users))
            users.extend(group_users)
            users.append(dummy)
        return cls(np.asarray(users, dtype=np.int64), np.asarray(starts, dtype=np.int64))


@dataclass(frozen=True)
class Instance:
    """Everything a planner needs, in bytes, with components numbered 0..n-1."""

    names: tuple[str, ...]
    changes: tuple[Change, ...]
    vital: tuple[bool, ...]
    groups: tuple[Group, ...]
    # Bytes present in every generation: pinned paths, unchanged packages, shared glue.
    always: int
    pinned: int
    reserve: int
    old_glue: int
    new_glue: int
    # Glue of an intermediate generation is rebuilt; we assume the larger of the two sides.
    mid_glue: int
    # Build scratch of the step that upgrades each component (paths built locally).
    scratch: tuple[int, ...]
    # Each component's version change, as diff-closures prints it: "2.11 → 2.12", "∅ → 1.0"
    # (empty when no version changes).
    versions: tuple[str, ...] = ()
    # False when the two systems hold the same paths: no component and no glue changes.
    changed: bool = True

    @property
    def size(self) -> int:
        return len(self.names)

    @cached_property
    def old_users(self) -> Users:
        """Every group's old users, for the numpy accounting (solver/plan.py)."""
        return Users.of((g.old_users for g in self.groups), self.size)

    @cached_property
    def new_users(self) -> Users:
        return Users.of((g.new_users for g in self.groups), self.size)

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise InputError(f"unknown component {name!r}") from None


@dataclass(frozen=True)
class Problem:
    """The inputs of a plan: both closures, their split, what is pinned, and the reserve."""

    old: Closure
    new: Closure
    split: Split
    # Paths that stay whatever the plan does: other GC roots and their closures.
    pinned: Closure | None = None
    reserve: int = 0
    scratch_factor: float = 1.0

    @classmethod
    def of(
        cls,
        old: Closure,
        new: Closure,
        *,
        non_vital: Iterable[str] = (),
        couple: Iterable[Sequence[str]] = (),
        pinned: Closure | None = None,
        reserve: int = 0,
    ) -> "Problem":
        """Both systems split into components (solver/components.py): how every command
        assembles what it plans."""
        for closure, which in ((old, "current"), (new, "target")):
            if not len(closure):
                raise InputError(f"{closure.source}: the {which} system's closure is empty")
        if old.store_dir != new.store_dir:
            raise InputError(
                f"the current system is in {old.store_dir} and the target in "
                f"{new.store_dir}: both must be in one store"
            )
        split = split_components(old, new, non_vital=non_vital, couple=couple)
        return cls(old, new, split, pinned=pinned, reserve=reserve)

    def modelled(self) -> tuple[Component, ...]:
        """Components the plan decides about: the changed ones and the droppable ones."""
        return tuple(c for c in self.split.components if c.change is not Change.SAME or not c.vital)

    def old_closure(self, c: Component) -> set[str]:
        return self.old.reachable(c.old)

    def new_closure(self, c: Component) -> set[str]:
        return self.new.reachable(c.new)

    def size_of(self, path: str) -> int:
        if path in self.old:
            return self.old[path].nar_size
        if path in self.new:
            return self.new[path].nar_size
        if self.pinned is not None and path in self.pinned:
            return self.pinned[path].nar_size
        raise KeyError(path)

    @property
    def pinned_paths(self) -> set[str]:
        return set(self.pinned) if self.pinned is not None else set()


def build_instance(problem: Problem) -> Instance:
    """Compile a problem into signature groups and constants."""
    comps = problem.modelled()
    old_users: dict[str, list[int]] = defaultdict(list)
    new_users: dict[str, list[int]] = defaultdict(list)
    always: set[str] = problem.pinned_paths
    for c in problem.split.components:
        if c.change is Change.SAME and c.vital:
            always |= problem.old_closure(c)
    scratch: list[int] = []
    for i, c in enumerate(comps):
        for p in problem.old_closure(c):
            old_users[p].append(i)
        built = 0
        for p in problem.new_closure(c):
            new_users[p].append(i)
            info = problem.new[p]
            if info.estimated and p not in problem.old:
                built += info.nar_size
        scratch.append(int(built * problem.scratch_factor))

    vital = [c.vital for c in comps]
    sizes: dict[tuple[tuple[int, ...], tuple[int, ...]], list[int]] = defaultdict(lambda: [0, 0])
    for p in set(old_users) | set(new_users):
        if p in always:
            continue
        olds = tuple(old_users.get(p, ()))
        news = tuple(new_users.get(p, ()))
        # A vital component that holds the path in both states keeps it in every generation.
        if set(olds) & set(news) and any(vital[i] for i in set(olds) & set(news)):
            always.add(p)
            continue
        acc = sizes[(olds, news)]
        acc[0] += problem.size_of(p)
        acc[1] += 1
    groups = tuple(
        Group(size, olds, news, n)
        for (olds, news), (size, n) in sorted(sizes.items(), key=lambda kv: (-kv[1][0], kv[0]))
    )

    old_glue = problem.split.old_glue - always
    new_glue = problem.split.new_glue - always
    shared = old_glue & new_glue
    always |= shared
    old_only = sum(problem.size_of(p) for p in old_glue - shared)
    new_only = sum(problem.size_of(p) for p in new_glue - shared)
    return Instance(
        names=tuple(c.name for c in comps),
        changes=tuple(c.change for c in comps),
        vital=tuple(vital),
        groups=groups,
        always=sum(problem.size_of(p) for p in always),
        pinned=problem.pinned.size() if problem.pinned is not None else 0,
        reserve=problem.reserve,
        old_glue=old_only,
        new_glue=new_only,
        mid_glue=max(old_only, new_only),
        scratch=tuple(scratch),
        versions=tuple(_versions(c) for c in comps),
        changed=bool(comps or old_glue - shared or new_glue - shared),
    )


def _versions(c: Component) -> str:
    """`old → new` versions of a component's entries (∅: none on that side)."""

    def side(paths: tuple[str, ...]) -> str:
        found = sorted({StorePath.parse(p).version for p in paths} - {""})
        return ", ".join(found) if found else ("∅" if not paths else "")

    old, new = side(c.old), side(c.new)
    return "" if old == new else f"{old or 'ε'} → {new or 'ε'}"
