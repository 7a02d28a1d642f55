"""Heuristic planners and the baselines: one step, one component per step, greedy merging."""

from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

from solver.components import Change
from solver.instance import Instance
from solver.plan import (
    Generation,
    Plan,
    State,
    absence_gaps,
    evaluate,
    final,
    glue_of,
    group_sizes,
    initial,
    presence_matrix,
    scratch_by_step,
)


class _Disk:
    """Incremental presence of groups as components change state, one at a time."""

    def __init__(self, inst: Instance, start: Generation) -> None:
        self.inst = inst
        self.state = list(start)
        n = len(inst.groups)
        self.old_count = [0] * n
        self.new_count = [0] * n
        self.new_groups: list[list[int]] = [[] for _ in range(inst.size)]
        self.old_groups: list[list[int]] = [[] for _ in range(inst.size)]
        for g, group in enumerate(inst.groups):
            for c in group.old_users:
                self.old_groups[c].append(g)
                if start[c] == State.OLD:
                    self.old_count[g] += 1
            for c in group.new_users:
                self.new_groups[c].append(g)
                if start[c] == State.NEW:
                    self.new_count[g] += 1
        self.sizes = [g.size for g in inst.groups]
        self.stored = sum(s for g, s in enumerate(self.sizes) if self.present(g))
        # add_cost[c]: bytes that turning c new would bring on disk right now.
        self.add_cost = [
            sum(self.sizes[g] for g in self.new_groups[c] if not self.present(g))
            for c in range(inst.size)
        ]

    def present(self, g: int) -> bool:
        return self.old_count[g] > 0 or self.new_count[g] > 0

    def _flip(self, g: int, now_present: bool) -> None:
        size = self.sizes[g]
        self.stored += size if now_present else -size
        for c in self.inst.groups[g].new_users:
            self.add_cost[c] += -size if now_present else size

    def freed_by(self, c: int) -> int:
        """Bytes that leave the disk once c's old state is collected (c turned new)."""
        if self.state[c] != State.OLD:
            return 0
        return sum(
            self.sizes[g]
            for g in self.old_groups[c]
            if self.old_count[g] == 1 and self.new_count[g] == 0 and c not in self._new_users(g)
        )

    def _new_users(self, g: int) -> tuple[int, ...]:
        return self.inst.groups[g].new_users

    def set(self, c: int, to: State) -> None:
        was = self.state[c]
        if was == to:
            return
        if to == State.NEW:
            for g in self.new_groups[c]:
                self.new_count[g] += 1
                if self.new_count[g] == 1 and self.old_count[g] == 0:
                    self._flip(g, True)
        if was == State.OLD:
            for g in self.old_groups[c]:
                self.old_count[g] -= 1
                if self.old_count[g] == 0 and self.new_count[g] == 0:
                    self._flip(g, False)
        if was == State.NEW:
            for g in self.new_groups[c]:
                self.new_count[g] -= 1
                if self.new_count[g] == 0 and self.old_count[g] == 0:
                    self._flip(g, False)
        if to == State.OLD:
            for g in self.old_groups[c]:
                self.old_count[g] += 1
                if self.old_count[g] == 1 and self.new_count[g] == 0:
                    self._flip(g, True)
        self.state[c] = to


def _droppable(inst: Instance) -> list[int]:
    """Non-vital components that can be made absent (present now, not about to vanish)."""
    return [c for c in range(inst.size) if not inst.vital[c] and inst.changes[c] is not Change.ADD]


def _start(inst: Instance, drop_non_vital: bool) -> tuple[_Disk, list[Generation]]:
    """The current system, and with `drop_non_vital` a first step that drops what it may."""
    disk = _Disk(inst, initial(inst))
    gens: list[Generation] = [tuple(disk.state)]
    if drop_non_vital:
        dropped = _droppable(inst)
        for c in dropped:
            # Removing a non-vital component early is its final state already.
            disk.set(c, State.NEW if inst.changes[c] is Change.REMOVE else State.ABSENT)
        if dropped:
            gens.append(tuple(disk.state))
    return disk, gens


def greedy_sequence(inst: Instance, *, drop_non_vital: bool = False) -> list[Generation]:
    """One change per step, smallest next peak first (ties: most bytes freed)."""
    disk, gens = _start(inst, drop_non_vital)
    todo = {c for c in range(inst.size) if disk.state[c] == State.OLD}
    restores = {c for c in range(inst.size) if disk.state[c] == State.ABSENT}
    for pool in (todo, restores):
        while pool:
            cost = {c: disk.add_cost[c] + inst.scratch[c] for c in pool}
            cheapest = min(cost.values())
            # What a change frees only breaks ties: it is worth computing for those alone.
            best = min(
                (c for c in pool if cost[c] == cheapest), key=lambda c: (-disk.freed_by(c), c)
            )
            pool.discard(best)
            disk.set(best, State.NEW)
            gens.append(tuple(disk.state))
    return gens


def jump_needs(inst: Instance, gens: Sequence[Generation]) -> npt.NDArray[np.int64]:
    """needs[s, e]: disk need of going from generation s straight to e (for s < e)."""
    union = _unions(inst, gens)
    last = len(gens) - 1
    glue = np.array([glue_of(inst, i, last) for i in range(len(gens))], dtype=np.int64)
    scratch = np.cumsum(scratch_by_step(inst, gens), dtype=np.int64)
    needs: npt.NDArray[np.int64] = (
        union
        + glue[:, None]
        + glue[None, :]
        + (scratch[None, :] - scratch[:, None])
        + inst.always
        + inst.reserve
    )
    return needs


def _unions(inst: Instance, gens: Sequence[Generation]) -> npt.NDArray[np.int64]:
    """union[s, e]: bytes of the groups on disk in generation s or e (for s <= e)."""
    sizes = group_sizes(inst)
    count = len(gens)
    states = np.asarray(gens, dtype=np.int8).reshape(count, inst.size)
    gaps = absence_gaps(inst, states)
    if gaps is not None:
        # A forward plan: a group is off the disk of both s and e exactly when its gap
        # holds both, lo <= s and e < hi. Its bytes go to cell (lo, hi); the sum over
        # lo <= s and hi >= e + 1 is two running sums.
        lo, hi = gaps
        gap = lo < hi
        cells = np.bincount(
            lo[gap] * (count + 1) + hi[gap], weights=sizes[gap], minlength=(count + 1) ** 2
        )
        # Exact: float64 holds integers to 2**53 bytes, far beyond any store.
        missing = np.rint(cells).astype(np.int64).reshape(count + 1, count + 1)
        missing = np.cumsum(missing, axis=0)
        missing = np.cumsum(missing[:, ::-1], axis=1)[:, ::-1]
        return int(sizes.sum()) - missing[:count, 1:]
    # Any plan: what each generation stores less what every pair shares, one matrix
    # product (exact in float64, as above).
    present = presence_matrix(inst, gens).astype(np.float64)
    weights = sizes.astype(np.float64)
    stored = present @ weights
    shared = present @ (present * weights).T
    return np.rint(stored[:, None] + stored[None, :] - shared).astype(np.int64)


def merge_greedy(inst: Instance, gens: Sequence[Generation], budget: int) -> list[Generation]:
    """Merge consecutive steps left to right while the union still fits (the baseline)."""
    needs = jump_needs(inst, gens)
    kept = [0]
    start = 0
    last = len(gens) - 1
    while start < last:
        end = start + 1
        while end < last and needs[start, end + 1] <= budget:
            end += 1
        kept.append(end)
        start = end
    return [gens[i] for i in kept]


def merge_optimal(inst: Instance, gens: Sequence[Generation], budget: int) -> list[Generation]:
    """Fewest steps, then lowest peak, that keep `gens` in order (a shortest path over jumps)."""
    needs = jump_needs(inst, gens)
    last = len(gens) - 1
    # best (steps, peak) to reach each generation, and the generation it came from.
    steps = np.full(len(gens), len(gens) + 1, dtype=np.int64)
    peak = np.zeros(len(gens), dtype=np.int64)
    came = np.zeros(len(gens), dtype=np.int64)
    steps[0] = 0
    for s in range(last):
        if steps[s] > last:
            continue
        # Jumps from s that fit the budget; the next generation is always reachable.
        ends = np.flatnonzero(needs[s, s + 1 :] <= budget) + s + 1
        if not len(ends) or ends[0] != s + 1:
            ends = np.concatenate(([s + 1], ends))
        cand = np.maximum(peak[s], needs[s, ends])
        better = (steps[s] + 1 < steps[ends]) | (
            (steps[s] + 1 == steps[ends]) & (cand < peak[ends])
        )
        steps[ends[better]] = steps[s] + 1
        peak[ends[better]] = cand[better]
        came[ends[better]] = s
    path = [last]
    while path[-1] != 0:
        path.append(int(came[path[-1]]))
    return [gens[i] for i in reversed(path)]


def greedy_batches(
    inst: Instance, budget: int, *, drop_non_vital: bool = False
) -> list[Generation]:
    """Fill each step with the cheapest changes while it fits the budget."""
    disk, gens = _start(inst, drop_non_vital)
    # Two generations' glue; intermediate glue is the larger side, so this never undercounts.
    fixed = inst.always + inst.reserve + 2 * inst.mid_glue
    for wanted in (State.OLD, State.ABSENT):
        pool = {c for c in range(inst.size) if disk.state[c] == wanted}
        while pool:
            base = disk.stored + fixed
            # Bytes each change would add to the batch so far: groups the batch brings in
            # are paid for once.
            cost = {c: inst.scratch[c] + disk.add_cost[c] for c in pool}
            added: set[int] = set()
            batch: list[int] = []
            extra = 0
            while pool:
                c = min(pool, key=lambda c: (cost[c], c))
                if batch and base + extra + cost[c] > budget:
                    break
                batch.append(c)
                pool.discard(c)
                extra += cost[c]
                for g in disk.new_groups[c]:
                    if g not in added and not disk.present(g):
                        added.add(g)
                        for user in inst.groups[g].new_users:
                            if user in cost:
                                cost[user] -= disk.sizes[g]
                if base + extra > budget:
                    break  # a change that does not fit even alone: it gets a step of its own
            for c in batch:
                disk.set(c, State.NEW)
            gens.append(tuple(disk.state))
    if gens[-1] != final(inst):
        gens.append(final(inst))
    return gens


def best_of(inst: Instance, candidates: Iterable[Sequence[Generation]]) -> Plan:
    """The plan with fewest steps, then lowest peak, then least absence."""
    return best_plan(evaluate(inst, c) for c in candidates)


def best_plan(plans: Iterable[Plan]) -> Plan:
    """The plan with fewest steps, then lowest peak, then least absence (the first of
    equals)."""
    return min(plans, key=lambda p: (len(p), p.peak_bytes, p.absent_steps))


def merged_plans(inst: Instance, budget: int, lowest: Plan) -> tuple[Plan, list[Plan]]:
    """The baseline (greedy order, merged left to right), and every heuristic plan that
    fits `budget`: the lowest-peak order `lowest` merged optimally, batches filled while
    they fit (with non-vital packages dropped first too), the baseline, and `lowest`."""
    baseline = evaluate(inst, merge_greedy(inst, greedy_sequence(inst), budget))
    if baseline.peak_bytes > budget:
        baseline = evaluate(inst, merge_greedy(inst, lowest.generations, budget))
    candidates = [merge_optimal(inst, lowest.generations, budget), greedy_batches(inst, budget)]
    if not all(inst.vital):
        candidates.append(greedy_batches(inst, budget, drop_non_vital=True))
    plans = [evaluate(inst, c) for c in candidates] + [baseline, lowest]
    return baseline, [p for p in plans if p.peak_bytes <= budget]


def min_peak_plan(inst: Instance) -> Plan:
    """The lowest-peak plan the heuristics find: one change per step, best greedy order."""
    candidates = [greedy_sequence(inst)]
    if not all(inst.vital):
        candidates.append(greedy_sequence(inst, drop_non_vital=True))
    plans = [evaluate(inst, c) for c in candidates]
    return min(plans, key=lambda p: (p.peak_bytes, p.absent_steps, len(p)))
