"""Fewer steps by re-planning a window of a plan with its two ends held fixed.

A plan of K steps is K+1 generations. Take w consecutive steps, from generation a to
generation b = a + w, and ask CP-SAT for a way from a to b in w - 1 steps. Components in
the same state at both ends stay in that state; only those that go from old to new in the
window are free. The model of a window is the whole model's restriction: a group that a
fixed component keeps on disk is constant bytes, the rest keep only their free users.

Both ends fixed make these models small and quick to decide: on tight budgets a window of
four steps of a 10,000-path mass rebuild is answered in seconds, where the whole model
asked for one step fewer is undecided after minutes. Each splice is checked with
`evaluate` on the whole instance before it is kept.
"""

import logging
from collections.abc import Sequence
from dataclasses import replace

from solver.components import Change
from solver.deadline import Deadline
from solver.instance import Group, Instance
from solver.model import Objective, build_model
from solver.plan import Generation, Plan, State, evaluate
from solver.progress import Progress, quiet
from solver.search.tuning import WINDOW_MAX_WIDTH, WINDOW_SECONDS

log = logging.getLogger(__name__)


def restrict(
    inst: Instance, start: Generation, end: Generation, first: bool, last: bool
) -> tuple[Instance, list[int]] | None:
    """The instance of the way from `start` to `end`, and its components' indices in
    `inst`; None when some component changes otherwise than from old to new between them
    (a drop or a restore), which the window model does not describe.

    `first`/`last`: `start` is the current system / `end` is the target (their glue).
    """
    free: list[int] = []
    for c in range(inst.size):
        if start[c] == end[c]:
            continue
        if start[c] != State.OLD or end[c] != State.NEW:
            return None
        # An unchanged component's old and new paths are the same: it is fixed, on disk.
        if inst.changes[c] is not Change.SAME:
            free.append(c)
    index = {c: i for i, c in enumerate(free)}
    always = inst.always
    groups: list[Group] = []
    for g in inst.groups:
        kept = any(c not in index and start[c] == State.OLD for c in g.old_users) or any(
            c not in index and start[c] == State.NEW for c in g.new_users
        )
        if kept:
            always += g.size
            continue
        olds = tuple(index[c] for c in g.old_users if c in index)
        news = tuple(index[c] for c in g.new_users if c in index)
        if olds or news:
            groups.append(Group(g.size, olds, news, g.paths))
    sub = replace(
        inst,
        names=tuple(inst.names[c] for c in free),
        changes=tuple(inst.changes[c] for c in free),
        vital=(True,) * len(free),
        groups=tuple(groups),
        always=always,
        old_glue=inst.old_glue if first else inst.mid_glue,
        new_glue=inst.new_glue if last else inst.mid_glue,
        scratch=tuple(inst.scratch[c] for c in free),
        versions=tuple(inst.versions[c] for c in free) if inst.versions else (),
    )
    return sub, free


def compress(
    inst: Instance,
    budget: int,
    plan: Plan,
    deadline: Deadline,
    *,
    workers: int,
    lower_bound: int = 1,
    progress: Progress = quiet,
) -> Plan:
    """`plan` with windows of 2 to WINDOW_MAX_WIDTH steps replaced by one step fewer
    wherever CP-SAT finds a way, until `deadline`; stops at `lower_bound` steps."""
    best = plan
    for width in range(2, WINDOW_MAX_WIDTH + 1):
        a = 0
        while a + width < len(best.generations) and len(best) > lower_bound:
            if deadline.passed():
                return best
            progress(f"re-planning steps {a + 1} to {a + width} in {width - 1}")
            window = deadline.within(WINDOW_SECONDS)
            shorter = _shorten(inst, budget, best, a, width, window, workers)
            if shorter is None:
                a += 1
            else:
                log.debug("window %d..%d: %d steps -> %d", a, a + width, len(best), len(shorter))
                best = shorter
    return best


def _shorten(
    inst: Instance, budget: int, plan: Plan, a: int, width: int, deadline: Deadline, workers: int
) -> Plan | None:
    """The plan with generations a..a+width re-planned in width - 1 steps, if that fits."""
    gens = plan.generations
    last = len(gens) - 1
    b = a + width
    restricted = restrict(inst, gens[a], gens[b], a == 0, b == last)
    if restricted is None:
        return None
    sub, free = restricted
    model = build_model(sub, budget, width - 1)
    solved = model.solve(Objective.STEPS, deadline, workers=workers, gap=1.0)
    if solved.generations is None:  # refuted, or undecided in its time
        return None
    spliced = evaluate(inst, splice(gens, a, b, free, solved.generations))
    if spliced.peak_bytes > budget or len(spliced) >= len(plan):
        return None
    return spliced


def splice(
    gens: Sequence[Generation], a: int, b: int, free: list[int], window: Sequence[Generation]
) -> list[Generation]:
    """`gens` with generations a..b replaced by a window plan over the `free` components
    (in `restrict`'s numbering); the others are as in generation a, which is b for them."""
    middle = []
    for state in window[1:-1]:
        gen = list(gens[a])
        for i, c in enumerate(free):
            gen[c] = state[i]
        middle.append(tuple(gen))
    return [*gens[: a + 1], *middle, *gens[b:]]
