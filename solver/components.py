"""Split a system closure into components that can be upgraded on their own.

Walk down from the top-level through *glue* (paths every generation regenerates: the
top-level, `system-path`, `etc`, `unit-*`, small wrappers) to the first real packages, and
match old and new packages by pname plus output. See docs/model.md.
"""

import itertools
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum

from solver.closure import Closure
from solver.errors import InputError
from solver.storepath import StorePath

GLUE_NAMES = frozenset(
    {
        "system-path",
        "etc",
        "user-environment",
        "home-manager-path",
        "home-manager-files",
        "home-manager-generation",
        "firmware",
        "kernel-modules",
        "system-units",
        "user-units",
        "system-generators",
        "system-shutdown",
        "system-environment",
    }
)
GLUE_PREFIXES = ("unit-", "etc-", "X-Restart-Triggers-", "nixos-system-", "darwin-system-")
GLUE_SUFFIXES = (".conf", ".service", ".socket", ".target", ".timer", ".mount", ".slice", ".path")
# A versionless path this small that points elsewhere is a wrapper script or a symlink farm.
SMALL_WRAPPER_BYTES = 64 * 1024

# pnames that move together with the kernel: a kernel never boots with another kernel's modules.
KERNEL_PNAMES = frozenset({"linux", "linux-modules", "linux-headers", "initrd-linux", "initrd"})


def is_regenerated(sp: StorePath) -> bool:
    """Paths that are glue by name: every generation builds its own."""
    name = sp.name
    return name in GLUE_NAMES or name.startswith(GLUE_PREFIXES) or name.endswith(GLUE_SUFFIXES)


def is_glue(sp: StorePath, nar_size: int, has_references: bool) -> bool:
    """True for paths that every generation regenerates rather than upgrades."""
    if is_regenerated(sp):
        return True
    return has_references and nar_size <= SMALL_WRAPPER_BYTES and sp.version == "" and not sp.output


class Change(Enum):
    UPGRADE = "upgrade"
    ADD = "add"
    REMOVE = "remove"
    SAME = "same"


@dataclass(frozen=True)
class Component:
    """One upgradeable unit: its entry paths in the current and the target system."""

    name: str
    old: tuple[str, ...]
    new: tuple[str, ...]
    vital: bool = True
    members: tuple[str, ...] = field(default=())

    @property
    def change(self) -> Change:
        if not self.old:
            return Change.ADD
        if not self.new:
            return Change.REMOVE
        return Change.SAME if set(self.old) == set(self.new) else Change.UPGRADE


@dataclass(frozen=True)
class Split:
    """A system pair cut into components, plus the glue of each side."""

    components: tuple[Component, ...]
    old_glue: frozenset[str]
    new_glue: frozenset[str]

    def by_name(self) -> dict[str, Component]:
        return {c.name: c for c in self.components}

    @property
    def changed(self) -> tuple[Component, ...]:
        return tuple(c for c in self.components if c.change is not Change.SAME)


GluePredicate = Callable[[StorePath, int, bool], bool]


def _walk(closure: Closure, glue: GluePredicate) -> tuple[dict[str, list[str]], set[str]]:
    """Entry paths by component key, and the glue visited on the way down."""
    # Whatever references glue by name (a config dir pointing at system-path, say) is
    # rebuilt with it in every generation, so it is glue too, whatever its own name.
    regenerated = closure.referring(p for p in closure if is_regenerated(StorePath.parse(p)))

    entries: dict[str, list[str]] = defaultdict(list)
    glue_paths: set[str] = set()
    seen: set[str] = set()
    stack = list(closure.roots)
    roots = set(closure.roots)
    while stack:
        path = stack.pop()
        if path in seen:
            continue
        seen.add(path)
        info = closure[path]
        sp = StorePath.parse(path)
        if path in roots or path in regenerated or glue(sp, info.nar_size, bool(info.references)):
            glue_paths.add(path)
            stack.extend(info.references)
        else:
            entries[sp.key].append(path)
    # A small wrapper that some package references belongs to that package.
    inside = closure.reachable(p for ps in entries.values() for p in ps)
    return entries, glue_paths - inside


def _kernel_group(components: Sequence[Component]) -> list[str]:
    """Names of changed components that must switch together with the kernel."""
    versions: set[str] = set()
    for c in components:
        for p in c.old + c.new:
            sp = StorePath.parse(p)
            if sp.pname == "linux" and sp.version:
                versions.add(sp.version)
    group = []
    for c in components:
        if c.change is Change.SAME:
            continue
        sps = [StorePath.parse(p) for p in c.old + c.new]
        if any(sp.pname in KERNEL_PNAMES for sp in sps) or any(
            v and sp.version.endswith("-" + v) for sp in sps for v in versions
        ):
            group.append(c.name)
    return group


def _merge(members: Sequence[Component], name: str) -> Component:
    return Component(
        name=name,
        old=tuple(sorted(p for c in members for p in c.old)),
        new=tuple(sorted(p for c in members for p in c.new)),
        vital=all(c.vital for c in members),
        members=tuple(sorted(m for c in members for m in (c.members or (c.name,)))),
    )


def split_components(
    old: Closure,
    new: Closure,
    *,
    non_vital: Iterable[str] = (),
    couple: Iterable[Sequence[str]] = (),
    couple_kernel: bool = True,
    glue: GluePredicate = is_glue,
) -> Split:
    """Cut the current and target closures into matched components."""
    old_entries, old_glue = _walk(old, glue)
    new_entries, new_glue = _walk(new, glue)
    non_vital = set(non_vital)
    names = sorted(set(old_entries) | set(new_entries))
    unknown = sorted(non_vital - set(names))
    if unknown:
        raise InputError(
            f"unknown non-vital component {unknown[0]!r}: no package of that name in either system"
        )
    comps = {
        n: Component(
            n,
            tuple(sorted(old_entries.get(n, ()))),
            tuple(sorted(new_entries.get(n, ()))),
            vital=n not in non_vital,
        )
        for n in names
    }

    groups: list[list[str]] = [list(g) for g in couple]
    if couple_kernel:
        groups.append(_kernel_group(list(comps.values())))
    # Imported when closures are split: what only reads plans (solver.plan, a command's
    # --help) loads no networkx.
    import networkx as nx

    linked = nx.Graph()
    for group in groups:
        missing = [n for n in group if n not in comps]
        if missing:
            raise InputError(f"unknown component {missing[0]!r} in a coupling group")
        linked.add_nodes_from(group)
        linked.add_edges_from(itertools.pairwise(group))
    for members in nx.connected_components(linked):
        if len(members) < 2:
            continue
        ordered = sorted(members)
        name = "+".join(ordered) if len(ordered) <= 3 else f"{ordered[0]}+{len(ordered) - 1} more"
        comps[name] = _merge([comps.pop(n) for n in ordered], name)
    return Split(tuple(comps[n] for n in sorted(comps)), frozenset(old_glue), frozenset(new_glue))
