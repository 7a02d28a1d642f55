"""The pipeline's last stages: with the step count settled, CP-SAT lowers the peak of a
plan with as many steps, then shortens how long non-vital packages are absent."""

import logging

from solver.model import Objective, SolveStatus, build_model, model_work
from solver.plan import evaluate
from solver.search.state import Search
from solver.search.tuning import (
    LARGE_MODEL,
    PEAK_OF_LEFT,
    PEAK_PATIENCE,
    PEAK_SECONDS,
    PEAK_SHARE,
)

log = logging.getLogger(__name__)


def lower_peak(s: Search) -> None:
    """The lowest peak of a plan with as many steps, to within the peak gap, and its bound."""
    best = s.best
    # Within the peak gap of the floor already, there is nothing to lower that the gap
    # asks for; and without time for another model, or with one too large to decide
    # anything in its share, what is proven is what the floor says.
    close = best.peak_bytes - s.floor <= s.peak_gap * s.floor
    if close or s.clock.deadline.passed() or model_work(s.inst, len(best)) > LARGE_MODEL:
        log.debug("no model to lower the peak of %d steps", len(best))
        s.peak_bound = s.floor
        s.peak_proven = best.peak_bytes == s.floor
        return
    model = s.peak_model = build_model(s.inst, s.budget, len(best), hint=best.generations)
    s.progress(f"lowering the peak of {len(best)} steps")
    seconds = max(PEAK_SECONDS, PEAK_SHARE * s.clock.limit)
    solved = model.solve(
        Objective.PEAK,
        s.clock.deadline.share(PEAK_OF_LEFT).within(seconds),
        workers=s.workers,
        at_most={Objective.STEPS: len(best)},
        gap=s.peak_gap,
        patience=PEAK_PATIENCE,
    )
    s.peak_proven = solved.status is SolveStatus.OPTIMAL
    if solved.generations is not None:
        found = evaluate(s.inst, solved.generations)
        if len(found) <= len(best) and found.peak_bytes <= best.peak_bytes:
            s.best = found
    # CP-SAT's bound holds for plans of at most len(best) steps; the floor for any.
    s.peak_bound = s.best.peak_bytes if s.peak_proven else max(s.floor, solved.bound or 0)


def shorten_absences(s: Search) -> None:
    """The fewest generations with something absent, at the same steps and peak."""
    best, model = s.best, s.peak_model
    if model is None or not best.absent_steps:
        s.absence_proven = not best.absent_steps
        return
    model.hint(best.generations)
    s.progress("shortening absences")
    solved = model.solve(
        Objective.ABSENCE,
        s.clock.deadline.within(max(PEAK_SECONDS, PEAK_SHARE * s.clock.limit)),
        workers=s.workers,
        at_most={Objective.STEPS: len(best), Objective.PEAK: best.peak_bytes},
        patience=PEAK_PATIENCE,
    )
    if solved.generations is not None:
        found = evaluate(s.inst, solved.generations)
        if (len(found), found.peak_bytes, found.absent_steps) < (
            len(best),
            best.peak_bytes,
            best.absent_steps,
        ):
            s.best = found
    s.absence_proven = solved.status is SolveStatus.OPTIMAL
