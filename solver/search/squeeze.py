"""One step fewer: merge two steps of a plan, then spread what overflows the budget.

At tight budgets every step of a good plan is nearly full, and a plan with one step fewer
differs from it everywhere: libraries whose users are changed in different steps are on
disk twice (old and new) in every step between, and fewer steps only fit when many such
users move together. Asked for the whole plan at once, CP-SAT finds nothing in minutes,
and windows asked for one step fewer with both ends fixed are refuted
(solver/search/windows.py).

A measure of how far a plan is from fitting gives the search a direction: the bytes by
which its steps overflow the budget, summed. Starting from the plan with its two most
compatible adjacent steps merged, two searches take turns bringing that sum to zero:

- a local search that moves one component to another step, for the least overflow and
  then the fewest bytes over all steps (`_Moves`), and once single moves settle with a
  step over the budget, swaps a component of that step with one of a neighbour (when
  both steps are full, no single move between them helps); it settles in about a second;
- kicks out of where it settles (`_Moves.wander`, an iterated local search): from a
  step over the budget (drawn by its bytes over), the users of one shared library, or a
  few components, go to a neighbouring step, the moves settle again, and the result is
  kept when it overflows no more than the best so far. Single moves cannot take a
  library's users across together, and it is the library that then leaves a step;
- CP-SAT on stretches of STRETCH_MIN_WIDTH to STRETCH_MAX_WIDTH consecutive steps with
  both ends fixed, minimising the stretch's overflow at the same number of steps (a
  model built with `overflow` on windows.py's `restrict` instance; a window, there, is
  re-planned in one step fewer):
  it moves whole groups of components at once, which single moves cannot.

With the kicks, a 25,000-path update of 13 % of its paths at a tight budget gets from 6
steps to 5, its bound, in 5 to 6 s, where single moves settled 230 MB over. With the
swaps, the 25,000-path mass rebuilds of 500 and of 1,000 packages at a tight budget get
from 9 steps to 8 (bound 7) in a default run, in 13 and 16 s; on the one of 500, single
moves and kicks had settled 25 MB over.
Only plans without drops are squeezed: the local search moves each component once, from
old to new.
"""

import itertools
import logging
import random
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from solver.components import Change
from solver.deadline import Deadline
from solver.instance import Instance
from solver.model import Objective, build_model
from solver.plan import Generation, Plan, State, canonical, evaluate, glue_of
from solver.progress import Progress, quiet
from solver.search.greedy import jump_needs
from solver.search.tuning import (
    DESCENTS,
    KICK_PATIENCE,
    KICKED_COMPONENTS,
    PRICE_CALL_SECONDS,
    PRICE_FILTER_SECONDS,
    PRICE_ROW_SECONDS,
    PRICED_TOGETHER,
    STRETCH_MAX_WIDTH,
    STRETCH_MIN_WIDTH,
    STRETCH_PATIENCE,
    STRETCH_SECONDS,
    SWAPS_CHECKED,
)
from solver.search.windows import restrict, splice

log = logging.getLogger(__name__)


def squeeze(
    inst: Instance,
    budget: int,
    plan: Plan,
    deadline: Deadline,
    *,
    workers: int,
    progress: Progress = quiet,
) -> Plan | None:
    """A plan with one step fewer than `plan` within `budget`, or None if none was
    found by `deadline` (which proves nothing)."""
    gens = plan.generations
    if len(plan) < 2 or any(State.ABSENT in gen for gen in gens):
        return None
    needs = jump_needs(inst, gens)
    progress(f"searching for a plan in {len(plan) - 1} steps")
    # Each adjacent pair of steps merged, the smallest merged need first. The moves alone
    # often spread one of them within the budget, and not always the first; the one
    # they leave least over starts the stretches, then the others in turn. Single moves
    # rank the starts; swaps wait for the start chosen: on a 25,000-path mass rebuild of
    # 1,000 packages at a tight budget, the three starts' swaps (288 of them, each
    # followed by single moves) took the squeeze's whole share, and 9 steps stood where
    # 8 fit in 15 s without them.
    order = sorted(range(len(gens) - 2), key=lambda a: int(needs[a, a + 2]))
    layout = _Layout(inst)
    starts: list[tuple[int, list[Generation]]] = []
    for a in order[:DESCENTS]:
        moves = _Moves(layout, budget, [*gens[: a + 1], *gens[a + 2 :]])
        moved = moves.descend(deadline, swaps=False)
        starts.append((sum(moves.over()), moved))
    starts.sort(key=lambda start: start[0])
    rest = [[*gens[: a + 1], *gens[a + 2 :]] for a in order[DESCENTS:]]
    for start in [gens for _, gens in starts] + rest:
        if deadline.passed():
            break
        spread = _spread(layout, budget, start, deadline, workers)
        if spread is not None:
            found = evaluate(inst, canonical(inst, spread))
            if found.peak_bytes <= budget and len(found) < len(plan):
                return found
    return None


def _spread(
    layout: "_Layout", budget: int, gens: list[Generation], deadline: Deadline, workers: int
) -> list[Generation] | None:
    """`gens` changed until no step overflows the budget, or None when the moves and the
    stretches settle first or `deadline` comes."""
    inst = layout.inst
    # The moves of the plan in hand: built once per plan, for its overflow and a descent.
    first = _Moves(layout, budget, gens)
    current, over = gens, first.over()
    moves: _Moves | None = first
    # Kicks are drawn from a generator of their own, seeded alike: the same plan every run.
    kicks = random.Random(0)
    settled: set[tuple[int, int]] = set()
    tried: dict[tuple[int, int], int] = {}
    turns = itertools.count()
    while sum(over) and not deadline.passed():
        if moves is not None:
            # The moves settle in one descent and its kicks; they are due again once a
            # stretch changed.
            moves.descend(deadline)
            moved = moves.wander(deadline, kicks)
            moved_over = moves.over()
            moves = None
            log.debug("squeeze: moves leave %d bytes over", sum(moved_over))
            if sum(moved_over) < sum(over):
                current, over = moved, moved_over
                settled.clear()
            continue
        stretch = _next_stretch(over, settled, tried)
        if stretch is None:
            break  # every stretch is as good as CP-SAT makes it, and no move helps
        a, width = stretch
        tried[stretch] = next(turns)
        within = deadline.within(STRETCH_SECONDS)
        better = _rebalance(inst, budget, current, a, width, within, workers)
        rebalanced = None if better is None else _Moves(layout, budget, better)
        log.debug("squeeze: stretch %d+%d: %s", a, width, rebalanced and sum(rebalanced.over()))
        if better is None or rebalanced is None or sum(rebalanced.over()) >= sum(over):
            settled.add(stretch)
        else:
            current, over, moves = better, rebalanced.over(), rebalanced
            settled = {w for w in settled if w[0] + w[1] <= a or w[0] >= a + width}
    if sum(over):
        log.debug("squeeze: %d bytes over the budget left in %d steps", sum(over), len(over))
        return None
    return current


def _next_stretch(
    over: list[int], settled: set[tuple[int, int]], tried: dict[tuple[int, int], int]
) -> tuple[int, int] | None:
    """The narrowest unsettled stretch (first step, width): the one tried longest ago,
    then the one that overflows most; steps with `over` bytes above the budget.

    Stretches are taken in turn: CP-SAT improves the fullest one a little each time it is
    asked, and a neighbour often improves it far more.
    """
    k = len(over)
    for width in range(min(STRETCH_MIN_WIDTH, k), min(STRETCH_MAX_WIDTH, k) + 1):
        open_ = [(a, width) for a in range(k - width + 1) if (a, width) not in settled]
        if open_:
            return min(open_, key=lambda w: (tried.get(w, -1), -sum(over[w[0] : w[0] + w[1]])))
    return None


def _rebalance(
    inst: Instance,
    budget: int,
    gens: list[Generation],
    a: int,
    width: int,
    deadline: Deadline,
    workers: int,
) -> list[Generation] | None:
    """`gens` with the stretch of steps a+1..a+width re-planned by CP-SAT for less
    overflow, if it finds that; at most as many steps."""
    b = a + width
    restricted = restrict(inst, gens[a], gens[b], a == 0, b == len(gens) - 1)
    if restricted is None:
        return None
    sub, free = restricted
    stretch = [tuple(gen[c] for c in free) for gen in gens[a : b + 1]]
    before = sum(max(0, step.peak_bytes - budget) for step in evaluate(sub, stretch).steps)
    # A better stretch has no step over by more than the whole stretch is now.
    model = build_model(sub, budget, width, hint=stretch, overflow=max(1, before))
    solved = model.solve(Objective.OVERFLOW, deadline, workers=workers, patience=STRETCH_PATIENCE)
    if solved.generations is None or solved.objective is None or solved.objective >= before:
        return None
    return splice(gens, a, b, free, solved.generations)


class _Layout:
    """Which groups each changing component uses, on which side: what the moves need of
    an instance, whatever the plan."""

    def __init__(self, inst: Instance) -> None:
        self.inst = inst
        self.moving = [c for c in range(inst.size) if inst.changes[c] is not Change.SAME]
        n_groups = len(inst.groups)
        self.sizes = np.fromiter((g.size for g in inst.groups), dtype=np.int64, count=n_groups)
        # Kept on disk by an unchanged (droppable, never dropped here) user.
        self.kept = np.zeros(n_groups, dtype=np.bool_)
        sides: tuple[list[tuple[int, int]], list[tuple[int, int]]] = ([], [])
        mine: list[dict[int, tuple[bool, bool]]] = [{} for _ in range(inst.size)]
        for g, group in enumerate(inst.groups):
            for side, users in enumerate((group.old_users, group.new_users)):
                for c in users:
                    if inst.changes[c] is Change.SAME:
                        self.kept[g] = True
                        continue
                    sides[side].append((g, c))
                    old, new = mine[c].get(g, (False, False))
                    mine[c][g] = (old or side == 0, new or side == 1)
        # (group, user) pairs of the old and the new side, as two index arrays each.
        self.old_pairs, self.new_pairs = (
            np.asarray(pairs, dtype=np.int64).reshape(-1, 2).T for pairs in sides
        )
        self.groups = [np.fromiter(m, dtype=np.int64, count=len(m)) for m in mine]
        # Groups with two or more changing users (a shared library's paths), and those
        # users: what a kick moves together.
        sharing: dict[int, set[int]] = {}
        for c, m in enumerate(mine):
            for g in m:
                sharing.setdefault(g, set()).add(c)
        shared = [g for g in sorted(sharing) if len(sharing[g]) > 1]
        self.shared = np.asarray(shared, dtype=np.int64)
        self.shared_users = [np.asarray(sorted(sharing[g]), dtype=np.int64) for g in shared]
        self.is_old = [np.fromiter((o for o, _ in m.values()), dtype=np.bool_) for m in mine]
        self.is_new = [np.fromiter((n for _, n in m.values()), dtype=np.bool_) for m in mine]
        self.scratch = np.asarray(inst.scratch, dtype=np.int64)


class _Moves:
    """Local search over the step each component changes in, the number of steps fixed.

    A group is on disk in step j while one of its old users changes in step j or later,
    or one of its new users in step j or earlier (or an unchanged user keeps it), so per
    group only the last step of its old users and the first of its new users matter.
    Moving one component changes those for its own groups only: every target step of one
    component is priced at once, in numpy. Of those, only groups that no other user
    keeps on disk in every step are priced: on a mass rebuild most of a component's
    groups are libraries with other users changing in the first step and in the last.
    """

    def __init__(self, layout: _Layout, budget: int, gens: list[Generation]) -> None:
        inst = self.inst = layout.inst
        self.layout = layout
        self.budget = budget
        self.start = gens[0]
        self.finish = gens[-1]
        self.k = k = len(gens) - 1
        self.moving = layout.moving
        self.sizes, self.kept, self.scratch = layout.sizes, layout.kept, layout.scratch
        self.groups, self.is_old, self.is_new = layout.groups, layout.is_old, layout.is_new
        # The generation each component is new in first (0 for the unchanged).
        states = np.asarray(gens, dtype=np.int64).reshape(k + 1, inst.size)
        self.step = np.argmax(states == State.NEW, axis=0).astype(np.int64)
        counts = []
        for groups, users in (layout.old_pairs, layout.new_pairs):
            count = np.zeros((len(self.sizes), k + 2), dtype=np.int64)
            np.add.at(count, (groups, self.step[users]), 1)
            counts.append(count)
        self.old_count, self.new_count = counts
        self.steps = np.arange(1, k + 1)
        self.base = np.array(
            [
                inst.always + inst.reserve + glue_of(inst, j - 1, k) + glue_of(inst, j, k)
                for j in range(1, k + 1)
            ],
            dtype=np.int64,
        )
        self.last_old, self.first_new = self._ends(self.old_count, self.new_count)
        self.present = self._presence(self.last_old, self.first_new, self.kept)
        self.needs = self._needs()

    def _presence(
        self,
        last_old: npt.NDArray[np.int64],
        first_new: npt.NDArray[np.int64],
        kept: npt.NDArray[np.bool_],
    ) -> npt.NDArray[np.bool_]:
        """present[g, j-1] for groups with these ends (`_ends`)."""
        return (
            kept[:, None] | (self.steps <= last_old[:, None]) | (self.steps >= first_new[:, None])
        )

    def _ends(
        self, old_count: npt.NDArray[np.int64], new_count: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """The last step an old user changes in (0: none), the first a new user does
        (k+1: none)."""
        at = np.arange(self.k + 2)
        last_old = np.where(old_count > 0, at, 0).max(axis=-1)
        first_new = np.where(new_count > 0, at, self.k + 1).min(axis=-1)
        return last_old, first_new

    def _needs(self) -> npt.NDArray[np.int64]:
        needs = self.base + self.sizes @ self.present
        moving = np.asarray(self.moving, dtype=np.int64)
        np.add.at(needs, self.step[moving] - 1, self.scratch[moving])
        return needs

    def _parts(
        self, needs: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """What a plan's score is made of, from its steps' needs (the last axis): bytes
        over the budget, then bytes in all."""
        return np.maximum(0, needs - self.budget).sum(axis=-1), needs.sum(axis=-1)

    def _score(self) -> tuple[int, int]:
        """The plan in hand's score (`_parts`), lower is better."""
        over, total = self._parts(self.needs)
        return int(over), int(total)

    def _best_targets(
        self, priced: npt.NDArray[np.int64]
    ) -> tuple[list[int], list[tuple[int, int]]]:
        """For each component priced: the step it does best in (the least overflow, then
        the fewest bytes in all, then the earliest) and that score."""
        over, total = self._parts(priced)
        least = over.min(axis=1, keepdims=True)
        best = np.where(over == least, total, np.iinfo(np.int64).max).argmin(axis=1)
        rows = np.arange(len(priced))
        scores = zip(over[rows, best].tolist(), total[rows, best].tolist(), strict=True)
        return (best + 1).tolist(), list(scores)

    def _priced(self, cs: Sequence[int], deadline: Deadline | None = None) -> npt.NDArray[np.int64]:
        """needs[i, b-1, j-1]: the needs of every step with cs[i] alone moved to step b;
        `deadline` is charged for the work.

        The components are priced together, in one pass over the rows of all their
        groups: numpy's cost per call, not the bytes, is what a single one would pay.
        """
        k, width = self.k, self.k + 2
        runs = [self.groups[c] for c in cs]
        groups = np.concatenate(runs)
        owner = np.repeat(np.arange(len(cs)), [len(run) for run in runs])
        is_old = np.concatenate([self.is_old[c] for c in cs])
        is_new = np.concatenate([self.is_new[c] for c in cs])
        now = self.step[np.asarray(cs, dtype=np.int64)]
        # A group that another user keeps on disk in every step, wherever this one goes
        # (an old user still changing in the last step, a new one already in the first,
        # or an unchanged user), prices nothing: most rows of a library everything links.
        moved = now[owner]
        fixed = (
            self.kept[groups]
            | (self.old_count[groups, k] - (is_old & (moved == k)) > 0)
            | (self.new_count[groups, 1] - (is_new & (moved == 1)) > 0)
        )
        live = ~fixed
        groups, owner, is_old, is_new = groups[live], owner[live], is_old[live], is_new[live]
        if deadline is not None:
            deadline.charge(
                PRICE_CALL_SECONDS
                + PRICE_FILTER_SECONDS * len(fixed)
                + PRICE_ROW_SECONDS * len(groups) * width
            )
        # Each row's group's ends without its component: they differ from the group's
        # only where the component is the one user at an end.
        moved = moved[live]
        last_old, first_new = self.last_old[groups], self.first_new[groups]
        alone = (is_old & (moved == last_old) & (self.old_count[groups, last_old] == 1)) | (
            is_new & (moved == first_new) & (self.new_count[groups, first_new] == 1)
        )
        if alone.any():
            redo = np.flatnonzero(alone)
            rows = np.arange(len(redo))
            old_count, new_count = self.old_count[groups[redo]], self.new_count[groups[redo]]
            old_count[rows[is_old[redo]], moved[redo][is_old[redo]]] -= 1
            new_count[rows[is_new[redo]], moved[redo][is_new[redo]]] -= 1
            last_old[redo], first_new[redo] = self._ends(old_count, new_count)
        to = self.steps[None, :]
        last_old = np.where(is_old[:, None], np.maximum(last_old[:, None], to), last_old[:, None])
        first_new = np.where(
            is_new[:, None], np.minimum(first_new[:, None], to), first_new[:, None]
        )
        # A group is off disk in the steps strictly between the two: bytes off disk per
        # (component, target, step) by a difference array over the steps.
        sizes = self.sizes[groups].astype(np.float64)
        start, stop = last_old + 1, first_new
        weights = (sizes[:, None] * (start < stop)).ravel()
        # Each row's cell in a (component, k) table: per target step for what the move
        # leaves off disk, per step for what is off disk now.
        pair = owner[:, None] * k + np.arange(k)[None, :]
        cells = len(cs) * k * width
        base = (pair * width).ravel()
        off = np.bincount(base + start.ravel(), weights, minlength=cells) - np.bincount(
            base + stop.ravel(), weights, minlength=cells
        )
        off_after = np.rint(off.reshape(len(cs), k, width).cumsum(axis=2)[:, :, 1 : k + 1])
        absent = (sizes[:, None] * ~self.present[groups]).ravel()
        off_now = np.rint(np.bincount(pair.ravel(), absent, minlength=len(cs) * k))
        off_now = off_now.reshape(len(cs), k)
        delta = (off_now[:, None, :] - off_after).astype(np.int64)
        needs: npt.NDArray[np.int64] = self.needs[None, None, :] + delta
        for i, c in enumerate(cs):
            if self.scratch[c]:
                needs[i, :, now[i] - 1] -= self.scratch[c]
                needs[i, self.steps - 1, self.steps - 1] += self.scratch[c]
        return needs

    def _move(self, c: int, to: int) -> None:
        groups, now = self.groups[c], self.step[c]
        for count, side in ((self.old_count, self.is_old[c]), (self.new_count, self.is_new[c])):
            count[groups[side], now] -= 1
            count[groups[side], to] += 1
        self.step[c] = to
        last_old, first_new = self._ends(self.old_count[groups], self.new_count[groups])
        self.last_old[groups], self.first_new[groups] = last_old, first_new
        present = self._presence(last_old, first_new, self.kept[groups])
        changed = present != self.present[groups]
        self.needs = self.needs + self.sizes[groups] @ (changed * np.where(present, 1, -1))
        self.needs[now - 1] -= self.scratch[c]
        self.needs[to - 1] += self.scratch[c]
        self.present[groups] = present

    def descend(self, deadline: Deadline, *, swaps: bool = True) -> list[Generation]:
        """Single moves until none lowers the score (`_settle`), then, with `swaps`, a
        swap of two components between a step over the budget and a neighbour (`_swap`),
        and single moves again, until neither lowers it.

        When both steps are full, no single move between them helps, and a swap often
        does: on a 25,000-path mass rebuild of 500 packages at a tight budget, single moves
        and kicks settled 25 MB over in 8 steps after 24 s, and with swaps the plan fits
        after two kicks."""
        self._settle(deadline)
        if swaps:
            while sum(self.over()) and not deadline.passed() and self._swap(deadline):
                self._settle(deadline)
        return self.generations()

    def _settle(self, deadline: Deadline) -> None:
        """Best single moves, component by component, until none lowers the score.

        The components are scanned round and round, a batch priced at a time, and the
        descent ends once a whole round from the last move has found none."""
        score = self._score()
        n = len(self.moving)
        at = quiet = 0
        while quiet < n and score[0] and not deadline.passed():
            # Priced a batch at a time; a move makes the rest of its batch stale.
            batch = [self.moving[(at + i) % n] for i in range(min(PRICED_TOGETHER, n - quiet))]
            targets, scores = self._best_targets(self._priced(batch, deadline))
            for i, (c, to) in enumerate(zip(batch, targets, strict=True)):
                if scores[i] < score and to != self.step[c]:
                    self._move(c, to)
                    score = scores[i]
                    at, quiet = (at + i + 1) % n, 0
                    break
            else:
                at, quiet = (at + len(batch)) % n, quiet + len(batch)

    def _swap(self, deadline: Deadline) -> bool:
        """Swap a component of a step over the budget with one of a neighbouring step, if
        that lowers the score; steps most over first. Whether one was made.

        Each side's moves are priced alone (`_priced`), a pair's needs estimated as the
        sum of both changes, and the SWAPS_CHECKED best estimates made for real, the first
        that lowers the score kept: the estimate is exact unless the two share groups.
        """
        over = self.over()
        score = self._score()
        for j in sorted(self.steps.tolist(), key=lambda j: (-over[j - 1], j)):
            if not over[j - 1]:
                break
            for t in (j - 1, j + 1):
                if 1 <= t <= self.k and self._swap_between(j, t, score, deadline):
                    return True
        return False

    def _swap_between(self, j: int, t: int, score: tuple[int, int], deadline: Deadline) -> bool:
        here = [c for c in self.moving if self.step[c] == j]
        there = [c for c in self.moving if self.step[c] == t]
        if not here or not there:
            return False
        # Each side's change of every step's need, moved to the other step.
        away = self._priced_all(here, deadline)[:, t - 1, :] - self.needs
        back = self._priced_all(there, deadline)[:, j - 1, :] - self.needs
        deadline.charge(PRICE_ROW_SECONDS * len(here) * len(there) * self.k)
        over, total = self._parts(self.needs + away[:, None, :] + back[None, :, :])
        for pair in np.lexsort((total.ravel(), over.ravel()))[:SWAPS_CHECKED].tolist():
            a, b = divmod(pair, len(there))
            if (int(over[a, b]), int(total[a, b])) >= score:
                break
            c, d = here[a], there[b]
            self._move(c, t)
            self._move(d, j)
            if self._score() < score:
                return True
            self._move(d, t)
            self._move(c, j)
        return False

    def _priced_all(self, cs: Sequence[int], deadline: Deadline) -> npt.NDArray[np.int64]:
        """`_priced` of any number of components, PRICED_TOGETHER at a time."""
        return np.concatenate(
            [
                self._priced(cs[i : i + PRICED_TOGETHER], deadline)
                for i in range(0, len(cs), PRICED_TOGETHER)
            ]
        )

    def wander(self, deadline: Deadline, rng: random.Random) -> list[Generation]:
        """Kicks out of the local optimum, each followed by a descent: kept when the
        overflow is no more than the best (plateaus are crossed), undone otherwise, until
        none is left or KICK_PATIENCE kicks in a row have not lowered it."""
        best = sum(self.over())
        stale = 0
        # One step has no neighbour to kick to.
        while best and self.k > 1 and stale < KICK_PATIENCE and not deadline.passed():
            saved = self._snapshot()
            self._kick(rng, library=stale % 2 == 0)
            self.descend(deadline)
            now = sum(self.over())
            log.debug("kick: %d over (best %d)", now, best)
            stale = 0 if now < best else stale + 1
            if now <= best:
                best = now
            else:
                self._restore(saved)
        return self.generations()

    def _kick(self, rng: random.Random, *, library: bool) -> None:
        """From a step over the budget (drawn by its bytes over), to a neighbour drawn at
        random: the users there of one shared group (drawn by its bytes) with `library`,
        else a few of its components.

        Kicked always from the step most over, the search returns to the same few
        steps: on a 25,000-path mass rebuild it settled 19 MB over in 8 steps after 700
        kicks, where drawing the step fits in 300 to 480 (three seeds).
        """
        over = self.over()
        if sum(over):
            (j,) = rng.choices(self.steps.tolist(), weights=over)
        else:
            j = int(np.argmax(self.needs)) + 1
        to = rng.choice([t for t in (j - 1, j + 1) if 1 <= t <= self.k])
        here = self.step == j
        chosen: list[int] = []
        if library:
            layout = self.layout
            # The shared groups with a user changing in step j, from the running counts.
            users_here = self.old_count[layout.shared, j] + self.new_count[layout.shared, j]
            candidates = np.flatnonzero(users_here).tolist()
            if candidates:
                weights = self.sizes[layout.shared[candidates]].tolist()
                (i,) = rng.choices(candidates, weights=weights)
                users = layout.shared_users[i]
                chosen = users[here[users]].tolist()
        if not chosen:
            pool = [c for c in self.moving if here[c]]
            chosen = rng.sample(pool, min(len(pool), KICKED_COMPONENTS))
        for c in chosen:
            self._move(c, to)

    # What a move changes: `_snapshot` copies it, `_restore` puts it back.
    _STATE = ("step", "old_count", "new_count", "last_old", "first_new", "present", "needs")

    def _snapshot(self) -> tuple[npt.NDArray[Any], ...]:
        return tuple(getattr(self, name).copy() for name in self._STATE)

    def _restore(self, saved: tuple[npt.NDArray[Any], ...]) -> None:
        for name, array in zip(self._STATE, saved, strict=True):
            setattr(self, name, array)

    def over(self) -> list[int]:
        """Bytes by which each step exceeds the budget."""
        return [max(0, int(need) - self.budget) for need in self.needs]

    def generations(self) -> list[Generation]:
        gens = [self.start]
        for i in range(1, self.k):
            gen = list(self.start)
            for c in self.moving:
                if self.step[c] <= i:
                    gen[c] = State.NEW
            gens.append(tuple(gen))
        gens.append(self.finish)
        return gens
