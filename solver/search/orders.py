"""Local search over one-change-per-step orders, for the lowest bottleneck.

A plan of single changes is an order of moves: a component leaves its old state and
enters its new one in the same step, or (non-vital) leaves in one step and comes back in
a later one. The disk of step s holds a group unless every user that keeps it old has
left before s and every user that brings it new enters after s, so the need of every step
is one interval sweep over the groups (`_Orders.needs`), cheap enough to try moving each
change to each place around the bottleneck.

The greedy order is a good start but commits early; moving the bottleneck step's change,
or a change across it, often lowers the peak by the size of a package. That decides
whether any plan fits a budget near the floor, and lower single-change peaks leave more
room for merging.
"""

import itertools

import numpy as np
import numpy.typing as npt

from solver.deadline import Deadline
from solver.instance import Instance
from solver.plan import Generation, Plan, State, evaluate, glue_of, initial
from solver.search.tuning import ORDER_CALL_SECONDS, ORDER_PAIR_SECONDS

# A move: (component, enters its new state). Vital components have one move that does
# both; a non-vital one that is dropped first has a leaving move and an entering one.
Move = tuple[int, bool, bool]  # (component, leaves old, enters new)


class _Orders:
    """Needs of every step of an order of moves, in O(groups) numpy work."""

    def __init__(self, inst: Instance, moves: list[Move]) -> None:
        self.inst = inst
        self.count = len(moves)
        # (group, user) pairs and users: what one `needs` costs grows with.
        self.pairs = len(inst.old_users.users) + len(inst.new_users.users) + inst.size
        self.comp = np.asarray([c for c, _, _ in moves], dtype=np.int64)
        self.leaves = np.asarray([leaves for _, leaves, _ in moves], dtype=np.bool_)
        self.enters = np.asarray([enters for _, _, enters in moves], dtype=np.bool_)
        self.old = inst.old_users
        self.new = inst.new_users
        self.sizes = np.fromiter((g.size for g in inst.groups), dtype=np.int64)
        self.total = int(self.sizes.sum())
        self.scratch = np.asarray([*inst.scratch, 0], dtype=np.int64)
        last = self.count
        glue = np.array([glue_of(inst, i, last) for i in range(last + 1)], dtype=np.int64)
        # base[s]: need of step s (1-based) before the groups and scratch.
        self.base = inst.always + inst.reserve + glue[:-1] + glue[1:]

    def needs(self, order: list[int]) -> npt.NDArray[np.int64]:
        """need[s - 1] of step s, for every step s = 1..m of an order of move numbers."""
        n = self.inst.size
        m = self.count
        ids = np.asarray(order, dtype=np.int64)
        steps = np.arange(1, m + 1, dtype=np.int64)
        # off[c]: the step c leaves its old state (0: it has none); on[c]: the step it
        # enters its new one (m + 1: never). The dummy user n is neither.
        off = np.zeros(n + 1, dtype=np.int64)
        on = np.full(n + 1, m + 1, dtype=np.int64)
        leaving = self.leaves[ids]
        entering = self.enters[ids]
        off[self.comp[ids[leaving]]] = steps[leaving]
        on[self.comp[ids[entering]]] = steps[entering]
        # Step s holds a group unless its last old user left before s (latest <= s - 1)
        # and its first new user enters after s (earliest >= s + 1).
        latest = np.maximum.reduceat(off[self.old.users], self.old.starts)
        earliest = np.minimum.reduceat(on[self.new.users], self.new.starts)
        lo = latest + 1
        hi = earliest  # exclusive
        gap = lo < hi
        absent = np.bincount(lo[gap], weights=self.sizes[gap], minlength=m + 2)
        absent -= np.bincount(hi[gap], weights=self.sizes[gap], minlength=m + 2)
        missing = np.rint(np.cumsum(absent)[1 : m + 1]).astype(np.int64)
        scratch = np.zeros(m + 2, dtype=np.int64)
        np.add.at(scratch, on[:n], self.scratch[:n])
        needs: npt.NDArray[np.int64] = self.base + self.total - missing + scratch[1 : m + 1]
        return needs


def _moves(inst: Instance, gens: tuple[Generation, ...]) -> list[Move] | None:
    """The moves of a plan, refined to one per step (None: a shape this search skips)."""
    moves: list[Move] = []
    for before, after in itertools.pairwise(gens):
        for c, (a, b) in enumerate(zip(before, after, strict=True)):
            if a == b:
                continue
            if a == State.OLD and b == State.NEW:
                moves.append((c, True, True))
            elif a == State.OLD and b == State.ABSENT:
                moves.append((c, True, False))
            elif a == State.ABSENT and b == State.NEW:
                moves.append((c, False, True))
            else:
                return None
    return moves


def _generations(inst: Instance, order: list[Move]) -> list[Generation]:
    state = list(initial(inst))
    gens = [tuple(state)]
    for c, _leaves, enters in order:
        state[c] = State.NEW if enters else State.ABSENT
        gens.append(tuple(state))
    return gens


def _valid(order: list[int], before: dict[int, int]) -> bool:
    """No component enters before it leaves: `before[m]` is the move that must precede m."""
    if not before:
        return True
    place = {move: i for i, move in enumerate(order)}
    return all(place[first] < place[then] for then, first in before.items())


def _score(needs: npt.NDArray[np.int64]) -> tuple[int, int, int]:
    """Lower is better: the peak, how many steps reach it, then the second highest."""
    peak = int(needs.max())
    at_peak = int((needs == peak).sum())
    below = needs[needs < peak]
    return peak, at_peak, int(below.max()) if below.size else 0


def lower_bottleneck(
    inst: Instance, plan: Plan, deadline: Deadline, *, target: int | None = None
) -> Plan:
    """A one-change-per-step plan whose peak is no higher than `plan`'s, often lower.

    Moves the change of the bottleneck step to every other place, and every other change
    to just before or after the bottleneck, keeping the best; stops when no such move
    helps, at `deadline`, or once the peak is at most `target`.
    """
    moves = _moves(inst, plan.generations)
    if moves is None or len(moves) < 2:
        return plan
    orders = _Orders(inst, moves)
    leaving = {c: m for m, (c, leaves, enters) in enumerate(moves) if leaves and not enters}
    before = {m: leaving[c] for m, (c, leaves, enters) in enumerate(moves) if enters and not leaves}
    order = list(range(len(moves)))
    start = order
    needs = orders.needs(order)
    score = _score(needs)
    # What pricing one order costs a deterministic deadline.
    price = ORDER_CALL_SECONDS + ORDER_PAIR_SECONDS * orders.pairs
    while not deadline.passed() and (target is None or score[0] > target):
        s = int(np.argmax(needs))
        best: tuple[tuple[int, int, int], list[int]] | None = None
        for candidate in _neighbours(order, s):
            if not _valid(candidate, before):
                continue
            found = _score(orders.needs(candidate))
            deadline.charge(price)
            if found < score and (best is None or found < best[0]):
                best = (found, candidate)
            if deadline.passed():
                break
        if best is None:
            break
        score, order = best
        needs = orders.needs(order)
    if order is start:
        return plan
    improved = evaluate(inst, _generations(inst, [moves[m] for m in order]))
    return improved if improved.peak_bytes <= plan.peak_bytes else plan


def _neighbours(order: list[int], s: int) -> list[list[int]]:
    """Orders one relocation away that change the bottleneck step `s` (0-based)."""
    out: list[list[int]] = []
    rest = order[:s] + order[s + 1 :]
    for place in range(len(order)):
        if place != s:
            out.append([*rest[:place], order[s], *rest[place:]])
    for i, move in enumerate(order):
        if i == s:
            continue
        without = order[:i] + order[i + 1 :]
        at = s if i > s else s - 1  # the bottleneck's place in `without`
        for place in (at, at + 1):
            candidate = [*without[:place], move, *without[place:]]
            if candidate != order:
                out.append(candidate)
    return out
