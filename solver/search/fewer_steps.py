"""The pipeline's stages that search for fewer steps: probes, squeeze, windows, whole model.

They share one deadline, `Search.steps_deadline` (STEPS_SHARE of the time limit), set by
the first of them; the squeeze may run past it when the plan is far above the bound.
"""

import logging

from solver.model import Objective, SolveStatus, build_model, model_work
from solver.plan import evaluate
from solver.search.squeeze import squeeze as one_step_fewer
from solver.search.state import Search
from solver.search.tuning import (
    BUILD_WORK_SECONDS,
    LARGE_MODEL,
    PROBE_SECONDS,
    SQUEEZE_FAR_SHARE,
    SQUEEZE_SHARE,
    STEPS_SHARE,
    WINDOW_SHARE,
)
from solver.search.windows import compress

log = logging.getLogger(__name__)


def probes(s: Search) -> None:
    """Raise the proven lower bound on steps from below while CP-SAT refutes it quickly:
    proofs before search.

    The model with as few slots as the bound is often refuted in a fraction of a second
    (its budget is far too tight for so few steps), where a local search for one step
    fewer would spend its whole share in vain: a 2,500-path mass rebuild one step above
    its bound spent 8 s squeezing before the whole model refuted the step in 0.4 s. Each
    probe gets PROBE_SECONDS; a plan it finds has the fewest steps.
    """
    s.steps_deadline = s.clock.share(STEPS_SHARE)
    while s.bound < len(s.best) and not s.steps_deadline.passed():
        if model_work(s.inst, s.bound) > LARGE_MODEL:
            break
        s.progress(f"proving that {s.bound} steps are too few")
        trial = build_model(s.inst, s.budget, s.bound)
        probe = s.steps_deadline.within(PROBE_SECONDS)
        solved = trial.solve(Objective.STEPS, probe, workers=s.workers)
        log.debug("probe of %d steps: %s", s.bound, solved.status.value)
        if solved.status is SolveStatus.INFEASIBLE:
            s.bound += 1
            continue
        if solved.generations is not None:
            found = evaluate(s.inst, solved.generations)
            if found.peak_bytes <= s.budget and len(found) < len(s.best):
                s.best = found
        break


def squeeze(s: Search) -> None:
    """The plan squeezed one step at a time (solver/search/squeeze.py) while that works.

    Two or more steps above the bound, the squeeze may run past the stage's end, up to
    SQUEEZE_FAR_SHARE of the limit from now: a 25,000-path mass rebuild of 1,000
    packages at a tight budget needs about 7 s for its step. One step above, it gets
    SQUEEZE_SHARE and leaves the rest of the stage to the windows and to the whole model,
    which can prove the bound.
    """
    far = s.clock.share(SQUEEZE_FAR_SHARE)
    near = s.steps_deadline.within(SQUEEZE_SHARE * s.clock.limit)
    while len(s.best) > s.bound:
        deadline = far if len(s.best) - s.bound >= 2 else near
        if deadline.passed():
            break
        shorter = one_step_fewer(
            s.inst, s.budget, s.best, deadline, workers=s.workers, progress=s.progress
        )
        if shorter is None:
            break
        s.best = shorter


def windows(s: Search) -> None:
    """Windows of a few steps re-planned in one step fewer (solver/search/windows.py)."""
    if len(s.best) > s.bound:
        deadline = s.steps_deadline.within(WINDOW_SHARE * s.clock.limit)
        s.best = compress(
            s.inst,
            s.budget,
            s.best,
            deadline,
            workers=s.workers,
            lower_bound=s.bound,
            progress=s.progress,
        )


def whole_model(s: Search) -> None:
    """Ask for one step fewer until CP-SAT proves it impossible, or the stage's end.

    Each model has only as many slots as steps asked for: smaller than one with slots to
    spare, and "infeasible" is then a proof that the plan in hand is minimal. Building a
    model takes seconds on the largest closures: no model is built that would be left
    with less time to solve than its build took.
    """
    while s.bound < len(s.best):
        fewer = len(s.best) - 1
        # Estimated, not timed, so that the decision is the same on every run.
        building = BUILD_WORK_SECONDS * model_work(s.inst, fewer)
        if s.steps_deadline.left() - building <= 0:
            break
        s.progress(f"searching for a plan in {fewer} steps")
        trial = build_model(s.inst, s.budget, fewer)
        s.steps_deadline.charge(building)
        solved = trial.solve(Objective.STEPS, s.steps_deadline, workers=s.workers)
        if solved.status is SolveStatus.INFEASIBLE:
            s.bound = len(s.best)
        elif solved.generations is not None:
            found = evaluate(s.inst, solved.generations)
            if found.peak_bytes > s.budget or len(found) >= len(s.best):
                break
            s.best = found
        else:
            break
    s.steps_proven = s.bound >= len(s.best)
    if s.steps_proven:
        s.steps_proven_seconds = s.clock.elapsed()
