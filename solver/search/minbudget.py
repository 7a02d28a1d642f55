"""The smallest budget under which any plan fits: exact on few changes, bracketed on many.

Any plan can be refined into one change per step without raising the need of its middle
steps: every path of a generation inserted between G_k and G_{k+1} is in one of the two
(docs/model.md, "Facts the solver uses"). Only the first and the last step differ, because their
glue is the current or the target system's own. So the smallest budget is a bottleneck
(minimax) path through the graph of generations in which the first and the last step
may change any number of components and every other step changes one. With few changes
that graph is small enough to search whole; past that the answer is bracketed between
a proven floor and the best plan found, and CP-SAT narrows the bracket.
"""

import logging
import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from solver.components import Change
from solver.deadline import Deadline
from solver.instance import Instance
from solver.model import Objective, SolveStatus, build_model, default_workers, model_work
from solver.plan import Generation, Plan, State, evaluate, final, initial, one_step
from solver.search.bounds import peak_lower_bound
from solver.search.greedy import min_peak_plan
from solver.search.orders import lower_bottleneck
from solver.search.tuning import BRACKET_GAP, EXACT_WORK, LARGE_SLOT_MODEL, ORDER_SECONDS

log = logging.getLogger(__name__)

_INF = np.iinfo(np.int64).max // 4


@dataclass(frozen=True)
class BudgetBound:
    """The smallest budget: `found` has a plan, none needs less than `lower`."""

    found: int
    lower: int
    seconds: float
    plan: Plan | None = None

    @property
    def exact(self) -> bool:
        return self.found == self.lower


@dataclass(frozen=True)
class _Kind:
    """A component's states in the search: which are old, new, absent, and the moves."""

    states: int
    old: int  # the state whose old closure is on disk (the start)
    new: int | None  # the state whose new closure is on disk
    end: int  # the state in the target
    moves: tuple[tuple[int, int], ...]
    first_new: frozenset[tuple[int, int]]  # moves that bring the new version for the first time
    as_plan: tuple[State, ...]


# Vital, added or removed: old, then new.
_PLAIN = _Kind(2, 0, 1, 1, ((0, 1),), frozenset({(0, 1)}), (State.OLD, State.NEW))
# A non-vital package that is upgraded: old, absent before its new version, new, absent
# after it. It never goes back to old once new (the plan is monotone), and build scratch
# is paid only the first time it becomes new.
_DROPPABLE = _Kind(
    4,
    0,
    2,
    2,
    ((0, 1), (1, 0), (0, 2), (1, 2), (2, 3), (3, 2)),
    frozenset({(0, 2), (1, 2)}),
    (State.OLD, State.ABSENT, State.NEW, State.ABSENT),
)
# A non-vital package that does not change: present or absent.
_DROPPABLE_SAME = _Kind(2, 0, None, 0, ((0, 1), (1, 0)), frozenset(), (State.OLD, State.ABSENT))


def _kind(inst: Instance, c: int) -> _Kind:
    if inst.vital[c] or inst.changes[c] in (Change.ADD, Change.REMOVE):
        return _PLAIN
    return _DROPPABLE_SAME if inst.changes[c] is Change.SAME else _DROPPABLE


_MOVES_NEEDED = {id(_PLAIN): 1, id(_DROPPABLE): 4, id(_DROPPABLE_SAME): 2}


def transitions_bound(inst: Instance) -> int:
    """Steps enough for some lowest-peak plan of any budget.

    Every plan can be reshaped, without any step needing more, so that a vital component
    changes once, an upgraded non-vital one at most four times (old, absent, new, absent,
    new: absent wherever the plan had it anything but old before or new after) and an
    unchanged non-vital one twice.
    """
    return sum(_MOVES_NEEDED[id(_kind(inst, c))] for c in range(inst.size))


class _Space:
    """Every generation as a mixed-radix number, and the bytes on disk for sets of them."""

    def __init__(self, inst: Instance) -> None:
        self.inst = inst
        self.kinds = [_kind(inst, c) for c in range(inst.size)]
        self.radix = [1] * inst.size
        for c in range(1, inst.size):
            self.radix[c] = self.radix[c - 1] * self.kinds[c - 1].states
        self.count = self.radix[-1] * self.kinds[-1].states if inst.size else 1
        self.masks = [
            (sum(1 << c for c in g.old_users), sum(1 << c for c in g.new_users), g.size)
            for g in inst.groups
        ]

    def digits(self, nodes: npt.NDArray[np.int64], c: int) -> npt.NDArray[np.int64]:
        return (nodes // self.radix[c]) % self.kinds[c].states

    def bits(self, nodes: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.int64], ...]:
        """Bit c of `old` (of `new`): component c has its old (new) closure on disk."""
        old = np.zeros(len(nodes), dtype=np.int64)
        new = np.zeros(len(nodes), dtype=np.int64)
        for c, kind in enumerate(self.kinds):
            d = self.digits(nodes, c)
            old |= (d == kind.old).astype(np.int64) << c
            if kind.new is not None:
                new |= (d == kind.new).astype(np.int64) << c
        return old, new

    def stored(
        self, old: npt.NDArray[np.int64], new: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.int64]:
        """Group bytes on disk for each (old bits, new bits) pair."""
        total = np.zeros(len(old), dtype=np.int64)
        for old_mask, new_mask, size in self.masks:
            present = (old & old_mask) != 0
            if new_mask:
                present |= (new & new_mask) != 0
            total += present * np.int64(size)
        return total

    def node(self, states: list[int]) -> int:
        return sum(s * r for s, r in zip(states, self.radix, strict=True))

    def generation(self, node: int) -> Generation:
        return tuple(
            int(kind.as_plan[(node // self.radix[c]) % kind.states])
            for c, kind in enumerate(self.kinds)
        )


def exact_min_budget(inst: Instance, work: int = EXACT_WORK) -> Plan | None:
    """The lowest-peak plan of all, by a bottleneck search over every generation.

    None when the instance has too many changes for the search to stay within `work`
    group evaluations.
    """
    if inst.size == 0:
        return one_step(inst)
    if inst.size > 60:
        return None
    space = _Space(inst)
    moves_per_node = sum(len(k.moves) / k.states for k in space.kinds)
    points = space.count * (2 + moves_per_node)
    if points * max(1, len(inst.groups)) > work:
        return None
    nodes = np.arange(space.count, dtype=np.int64)
    old, new = space.bits(nodes)
    start = space.node([k.old for k in space.kinds])
    end = space.node([k.end for k in space.kinds])
    inner = np.ones(space.count, dtype=np.bool_)
    inner[[start, end]] = False
    first, last = _end_steps(space, nodes, old, new, start, end)
    first = np.where(inner, first, _INF)
    src, dst, need = _single_changes(space, nodes, old, new, inner)
    dist = first.copy()
    while True:
        relaxed = dist.copy()
        np.minimum.at(relaxed, dst, np.maximum(dist[src], need))
        if np.array_equal(relaxed, dist):
            break
        dist = relaxed
    single = one_step(inst)
    through = np.maximum(dist, last)
    best = int(through.min()) if space.count > 2 else _INF
    if single.peak_bytes <= best:
        return single
    gens = _witness(space, best, start, first, last, src, dst, need)
    plan = evaluate(inst, gens)
    if plan.peak_bytes != best:
        # The search and the plan's own accounting disagree: claim nothing.
        log.warning("exact search found %d, its plan peaks at %d", best, plan.peak_bytes)
        return None
    return plan


Array = npt.NDArray[np.int64]


def _end_steps(
    space: _Space, nodes: Array, old: Array, new: Array, start: int, end: int
) -> tuple[Array, Array]:
    """The need of the first step into every generation (_INF where the current system
    does not reach it in one step: every component moves at most once) and of the last
    step out of it, glue and scratch included."""
    inst = space.inst
    base = inst.always + inst.reserve + inst.mid_glue
    scratch = np.asarray(inst.scratch, dtype=np.int64)
    first_ok = np.ones(space.count, dtype=np.bool_)
    first_scratch = np.zeros(space.count, dtype=np.int64)
    last_scratch = np.zeros(space.count, dtype=np.int64)
    for c, kind in enumerate(space.kinds):
        d = space.digits(nodes, c)
        reachable = {kind.old} | {b for a, b in kind.moves if a == kind.old}
        first_ok &= np.isin(d, list(reachable))
        if scratch[c]:
            arrive = [b for a, b in kind.first_new if a == kind.old]
            first_scratch += np.isin(d, arrive) * scratch[c]
            last_scratch += np.isin(d, [a for a, b in kind.first_new if b == kind.end]) * scratch[c]
    old0, new0 = int(old[start]), int(new[start])
    old_end, new_end = int(old[end]), int(new[end])
    first = space.stored(old | old0, new | new0) + base + inst.old_glue + first_scratch
    last = space.stored(old | old_end, new | new_end) + base + inst.new_glue + last_scratch
    return np.where(first_ok, first, _INF), last


def _single_changes(
    space: _Space, nodes: Array, old: Array, new: Array, inner: npt.NDArray[np.bool_]
) -> tuple[Array, Array, Array]:
    """Every single change between intermediate generations: source, target, need."""
    inst = space.inst
    base = inst.always + inst.reserve + 2 * inst.mid_glue
    scratch = np.asarray(inst.scratch, dtype=np.int64)
    srcs, dsts, needs = [], [], []
    for c, kind in enumerate(space.kinds):
        d = space.digits(nodes, c)
        for a, b in kind.moves:
            src = nodes[(d == a) & inner]
            dst = src + (b - a) * space.radix[c]
            keep = inner[dst]
            src, dst = src[keep], dst[keep]
            need = space.stored(old[src] | old[dst], new[src] | new[dst]) + base
            if (a, b) in kind.first_new:
                need += scratch[c]
            srcs.append(src)
            dsts.append(dst)
            needs.append(need)
    if not srcs:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    return np.concatenate(srcs), np.concatenate(dsts), np.concatenate(needs)


def _witness(
    space: _Space,
    budget: int,
    start: int,
    first: npt.NDArray[np.int64],
    last: npt.NDArray[np.int64],
    src: npt.NDArray[np.int64],
    dst: npt.NDArray[np.int64],
    need: npt.NDArray[np.int64],
) -> list[Generation]:
    """The plan with the fewest steps among those that never need more than `budget`."""
    parent = np.full(space.count, -2, dtype=np.int64)
    frontier = np.nonzero(first <= budget)[0]
    parent[frontier] = -1
    fits = need <= budget
    src, dst = src[fits], dst[fits]
    while True:
        done = frontier[last[frontier] <= budget]
        if len(done):
            node = int(done[0])
            break
        on = np.zeros(space.count, dtype=np.bool_)
        on[frontier] = True
        step = on[src] & (parent[dst] == -2)
        s, d = src[step], dst[step]
        d, first_of = np.unique(d, return_index=True)
        parent[d] = s[first_of]
        frontier = d
    path = [node]
    while parent[path[-1]] >= 0:
        path.append(int(parent[path[-1]]))
    gens = [space.generation(start)] + [space.generation(n) for n in reversed(path)]
    gens[0] = initial(space.inst)
    gens.append(final(space.inst))
    return gens


def smallest_budget(
    inst: Instance,
    deadline: Deadline,
    *,
    workers: int | None = None,
    heuristic: Plan | None = None,
    patience: float | None = None,
) -> BudgetBound:
    """The smallest budget any plan fits: exact when the search is small, else a bracket.

    `heuristic` is the lowest-peak plan found so far (the planner's); CP-SAT, with a slot
    for every change a plan can need, then lowers the plan and raises the floor, until
    `deadline`, or until `patience` seconds pass without a lower plan.
    """
    started = time.monotonic()
    single = one_step(inst)
    best = heuristic or min_peak_plan(inst)
    if single.peak_bytes <= best.peak_bytes:
        best = single
    floor = min(peak_lower_bound(inst), best.peak_bytes)

    def done(plan: Plan, lower: int) -> BudgetBound:
        lower = min(lower, plan.peak_bytes)
        return BudgetBound(plan.peak_bytes, lower, time.monotonic() - started, plan)

    if inst.size == 0:
        return done(single, single.peak_bytes)
    if best.peak_bytes <= floor:
        return done(best, floor)
    exact = exact_min_budget(inst)
    if exact is not None:
        return done(exact, exact.peak_bytes)
    order_end = deadline.share(0.25).within(ORDER_SECONDS)
    best = lower_bottleneck(inst, best, order_end, target=floor)
    slots = transitions_bound(inst)
    close = best.peak_bytes - floor <= BRACKET_GAP * floor
    if close or model_work(inst, slots) > LARGE_SLOT_MODEL or deadline.left() <= 0.05:
        return done(best, floor)
    model = build_model(inst, best.peak_bytes, slots, hint=best.generations)
    # The floor is proven for every plan: given to CP-SAT, its gap is measured from it,
    # and the search ends once the bracket is within BRACKET_GAP.
    model.model.add(model.peak >= floor)
    solved = model.solve(
        Objective.PEAK,
        deadline,
        workers=workers or default_workers(),
        gap=BRACKET_GAP,
        patience=patience,
    )
    if solved.generations is not None:
        found = evaluate(inst, solved.generations)
        if found.peak_bytes < best.peak_bytes:
            best = found
    if solved.status is SolveStatus.OPTIMAL:
        floor = best.peak_bytes
    elif solved.bound is not None:
        floor = max(floor, solved.bound)
    return done(best, floor)
