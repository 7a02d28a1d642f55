"""Lower bounds: on the budget any plan needs, and on the number of steps under a budget."""

import math

import networkx as nx
import numpy as np
import numpy.typing as npt

from solver.components import Change
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
    """The largest of the clique bound, the volume bound and the library bound."""
    if inst.size == 0:
        return 0
    return max(
        _clique_bound(inst, budget), _volume_bound(inst, budget), _library_bound(inst, budget)
    )


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


def _library_bound(inst: Instance, budget: int) -> int:
    """Steps needed when each library is counted in every step that changes one of its
    users, as many times as its users' own bytes need steps.

    The step that changes c holds c's groups (`touched`), its scratch, one side of every
    pair of old and new groups with the same users (`_pairs`), and the fixed bytes. Cut
    what it holds beyond the fixed bytes and one side of each pair into a component's own
    bytes (groups no other changing component touches, and its scratch) and libraries
    (groups two or more touch, keyed by those users): a step holds its components' own
    bytes and every library one of them touches, within `room`. A library that every
    changing component touches is in every step that changes one, so it comes off the room.
    The users of a library u need at least m_u = ceil(own(u) / (room - size_u)) steps for
    their own bytes, and u is on disk in each of them, so all the steps together hold at
    least own + sum(size_u * m_u) bytes: at least that many rooms.

    On a mass rebuild the volume bound counts each library once; libraries with many users
    are on disk twice in most steps. A 3,000-path rebuild of 149 packages at a tight
    budget: 4.88 rooms counted once, 5.03 this way, so 6 steps, what the planner finds.
    """
    changing = [c for c in range(inst.size) if inst.changes[c] is not Change.SAME]
    if not changing:
        return 1
    moves = set(changing)
    bytes_of: dict[tuple[int, ...], int] = {}
    for g in inst.groups:
        # Sorted, as the groups' own user tuples are: `_pairs` keys them so.
        key = tuple(
            sorted(
                {c for c in g.new_users if c in moves}
                | {c for c in g.old_users if c in moves and inst.vital[c]}
            )
        )
        if key:
            bytes_of[key] = bytes_of.get(key, 0) + g.size
    fixed = _fixed(inst)
    for users, least in _pairs(inst).items():
        # One side is on disk in every step: fixed. Its new-only group, keyed by all of
        # `users`, holds at least `least`, so the key's bytes stay at or above zero.
        if all(c in moves for c in users):
            fixed += least
            bytes_of[users] -= least
    room = budget - fixed - bytes_of.pop(tuple(changing), 0)
    if room <= 0:
        return 1
    own = dict(zip(changing, (inst.scratch[c] for c in changing), strict=True))
    libraries = []
    for users, size in bytes_of.items():
        if len(users) == 1:
            own[users[0]] += size
        elif size > 0:
            libraries.append((users, size))
    held = sum(own.values())
    for users, size in libraries:
        # A step that changes a user holds the library too: room - size for own bytes.
        left = room - size
        users_own = sum(own[c] for c in users)
        held += size * (max(1, -(-users_own // left)) if left > 0 else 1)
    return max(1, -(-held // room))
