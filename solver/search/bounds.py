"""Lower bounds: on the budget any plan needs, and on the number of steps under a budget."""

import math

import networkx as nx
import numpy as np
import numpy.typing as npt

from solver.instance import Instance


def touched(inst: Instance) -> npt.NDArray[np.float64]:
    """incidence[c, g] = 1 when group g is surely on disk during the step that changes c."""
    inc = np.zeros((inst.size, len(inst.groups)), dtype=np.float64)
    for g, group in enumerate(inst.groups):
        for c in group.new_users:
            inc[c, g] = 1.0
        for c in group.old_users:
            # A non-vital component may be dropped first; then its old paths are gone.
            if inst.vital[c]:
                inc[c, g] = 1.0
    return inc


def _fixed(inst: Instance) -> int:
    # Every step holds two generations' glue: at least old + new (mid is the larger of them).
    return inst.always + inst.reserve + inst.old_glue + inst.new_glue


def peak_lower_bound(inst: Instance) -> int:
    """No plan, however many steps, needs less than this.

    Some step changes each component c: it holds c's new paths, its old ones if c is vital,
    its build scratch, and of every pair of old and new paths with the same users that
    are not c's, one side (`_unavoidable`). When the target is the current system, the
    plan has no step and needs nothing: the floor is 0.
    """
    if not inst.changed:
        return 0
    stored_old = _stored(inst, old=True)
    stored_new = _stored(inst, old=False)
    bound = inst.reserve + max(
        stored_old + min(inst.mid_glue, inst.new_glue),
        stored_new + min(inst.mid_glue, inst.old_glue),
    )
    if inst.size and inst.groups:
        sizes = np.fromiter((g.size for g in inst.groups), dtype=np.float64)
        per_comp = touched(inst) @ sizes
        scratch = np.asarray(inst.scratch, dtype=np.float64)
        others = _unavoidable(inst)
        bound = max(bound, round(float((per_comp + scratch + others).max())) + _fixed(inst))
    return bound


def _unavoidable(inst: Instance) -> npt.NDArray[np.float64]:
    """others[c]: bytes on disk in every generation that `touched` does not count for c.

    An old group and a new group with the same users, one of them vital: while that user
    is old the old group is on disk, once it is new the new one, so at least the smaller.
    For c among the users, `touched` counts both already.
    """
    others = np.zeros(inst.size, dtype=np.float64)
    for users, least in _pairs(inst).items():
        others += least
        for c in users:
            others[c] -= least
    return others


def _pairs(inst: Instance) -> dict[tuple[int, ...], int]:
    """For each user set that has old-only and new-only groups and a vital user: the
    smaller side's bytes, one of which every generation stores."""
    old_side: dict[tuple[int, ...], int] = {}
    new_side: dict[tuple[int, ...], int] = {}
    for g in inst.groups:
        if g.old_users and not g.new_users:
            old_side[g.old_users] = old_side.get(g.old_users, 0) + g.size
        elif g.new_users and not g.old_users:
            new_side[g.new_users] = new_side.get(g.new_users, 0) + g.size
    return {
        users: min(size, new_side[users])
        for users, size in old_side.items()
        if users in new_side and any(inst.vital[c] for c in users)
    }


def _stored(inst: Instance, *, old: bool) -> int:
    """Store bytes of the current (old=True) or the target system, glue included."""
    total = inst.always + (inst.old_glue if old else inst.new_glue)
    for g in inst.groups:
        users = g.old_users if old else g.new_users
        if users:
            total += g.size
    return total


def steps_lower_bound(inst: Instance, budget: int) -> int:
    """The larger of the clique bound and the volume bound."""
    if inst.size == 0:
        return 0
    return max(_clique_bound(inst, budget), _volume_bound(inst, budget))


def _smallest_store(inst: Instance) -> int:
    """No generation stores fewer group bytes than this, whatever its components' states."""
    return sum(_pairs(inst).values())


def _middle_store(inst: Instance) -> int:
    """No generation strictly between the current system and the target stores fewer
    group bytes than this; 0 where that cannot be shown.

    When every component is vital, each step changes one at least, so every generation
    between the two ends has a component still old and one new already. A group that
    every component uses on the old side is then on disk, and so is one that every
    component uses on the new side: in a mass rebuild, both versions of the libraries
    everything links (glibc's old and new paths), which `_smallest_store` counts once.
    Pairs of groups with other users count their smaller side, as there.
    """
    if not inst.size or not all(inst.vital):
        return 0
    everyone = tuple(range(inst.size))
    stored = sum(g.size for g in inst.groups if everyone in (g.old_users, g.new_users))
    return stored + sum(least for users, least in _pairs(inst).items() if users != everyone)


def _volume_bound(inst: Instance, budget: int) -> int:
    """Steps needed to bring every new path in (and to see every old one go).

    During step j the disk holds generation j-1 plus what arrives for generation j, so a
    step brings at most the budget less the fixed bytes less what generation j-1 stores:
    exactly the current system for step 1, at least `_smallest_store` after that (and
    `_middle_store`, what every generation between the two systems holds). Every
    path of the target that the current system lacks arrives in some step. Leaving is the
    mirror image, with the target as the last generation.
    """
    fixed = _fixed(inst)
    arriving = sum(g.size for g in inst.groups if g.new_users and not g.old_users)
    leaving = sum(g.size for g in inst.groups if g.old_users and not g.new_users)
    current = sum(g.size for g in inst.groups if g.old_users)
    target = sum(g.size for g in inst.groups if g.new_users)
    room = budget - fixed - max(_smallest_store(inst), _middle_store(inst))
    bound = 1
    # Arrivals: step 1 has the current system on disk; departures: the last, the target.
    for moving, end in ((arriving, current), (leaving, target)):
        first = budget - fixed - end
        if moving > first and room > 0:
            bound = max(bound, 1 + math.ceil((moving - first) / room))
    return bound


def _clique_bound(inst: Instance, budget: int) -> int:
    """A clique of components no two of which fit in one step: each needs its own step."""
    if inst.size == 1 or not inst.groups:
        return 1
    sizes = np.fromiter((g.size for g in inst.groups), dtype=np.float64)
    inc = touched(inst)
    alone = inc @ sizes + np.asarray(inst.scratch, dtype=np.float64)
    both = (inc * sizes) @ inc.T
    pair = alone[:, None] + alone[None, :] - both + _fixed(inst)
    conflict = nx.Graph()
    conflict.add_nodes_from(range(inst.size))
    rows, cols = np.nonzero(np.triu(pair > budget, k=1))
    conflict.add_edges_from(zip(rows.tolist(), cols.tolist(), strict=True))
    best = 1
    # Greedy cliques from every start, densest first: cheap, and exact on small graphs.
    order = sorted(conflict.nodes, key=conflict.degree, reverse=True)
    for start in order[:200]:
        clique = [start]
        candidates = set(conflict[start])
        for v in order:
            if v in candidates:
                clique.append(v)
                candidates &= set(conflict[v])
        best = max(best, len(clique))
    return best
