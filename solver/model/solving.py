"""Running CP-SAT on an upgrade model: the objectives, the solver's parameters, the answer."""

import logging
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from ortools.sat.python import cp_model

from solver.deadline import WORK_PER_SECOND, Deadline
from solver.plan import Generation

log = logging.getLogger(__name__)


class Objective(Enum):
    """What a solve minimises; earlier objectives' optima become limits of later ones."""

    STEPS = "steps"
    PEAK = "peak"
    ABSENCE = "absence"
    # Bytes by which the steps exceed the budget, summed (a model built with `overflow`).
    OVERFLOW = "overflow"


class SolveStatus(Enum):
    OPTIMAL = "optimal"
    FEASIBLE = "feasible"
    INFEASIBLE = "infeasible"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Solution:
    """What one solve achieved: its plan (None without one), objective and proven bound."""

    status: SolveStatus
    generations: tuple[Generation, ...] | None
    objective: int | None
    bound: int | None
    seconds: float


# CP-SAT's own choice for 2-3 workers leaves out the worker with the full LP relaxation,
# and that is the one that proves "no plan in fewer steps" on large closures (25,000
# paths: 9 s with it, not within minutes without).
_SMALL_PORTFOLIO = ("max_lp", "default_lp", "quick_restart")


def default_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


class _Gains:
    """The objective values that count as improvements: better than the last counted one
    by more than `gain` (a fraction of it); smaller improvements than the gap the caller
    accepts do not keep a search going."""

    def __init__(self, gain: float) -> None:
        self._gain = gain
        self._counted: float | None = None

    def count(self, value: float) -> bool:
        """Whether `value` improves enough; if so, it is the one to beat next."""
        if self._counted is None or self._counted - value > self._gain * abs(self._counted):
            self._counted = value
            return True
        return False


class _Stagnation(cp_model.CpSolverSolutionCallback):
    """Stops a search whose objective has not improved for `patience` seconds by more
    than `gain` (see _Gains)."""

    def __init__(self, solver: cp_model.CpSolver, patience: float, gain: float = 0.0) -> None:
        super().__init__()
        self._solver = solver
        self._patience = patience
        self._gains = _Gains(gain)
        self._last = time.monotonic()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def on_solution_callback(self) -> None:
        if self._gains.count(self.objective_value):
            self._last = time.monotonic()

    def _watch(self) -> None:
        while not self._done.wait(0.05):
            if time.monotonic() - self._last > self._patience:
                self._solver.stop_search()
                return

    def __enter__(self) -> "_Stagnation":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join()


class _WorkPatience(cp_model.CpSolverSolutionCallback):
    """Stops a deterministic search at the first solution found `patience` work units
    after the last one that improved the objective by more than `gain` (see _Gains): the
    deterministic counterpart of _Stagnation, checked at solutions only, so that where it
    stops does not depend on the clock."""

    def __init__(self, patience: float, gain: float = 0.0) -> None:
        super().__init__()
        self._patience = patience
        self._gains = _Gains(gain)
        self._since = 0.0

    def on_solution_callback(self) -> None:
        now = self.deterministic_time
        if self._gains.count(self.objective_value):
            self._since = now
        elif now - self._since > self._patience:
            self.stop_search()


def _solver(deadline: Deadline, workers: int, gap: float) -> cp_model.CpSolver:
    solver = cp_model.CpSolver()
    if deadline.deterministic:
        # The same answer on every machine and every run: a budget of CP-SAT's own work
        # units, one worker, and the wall clock only as a cap.
        solver.parameters.max_deterministic_time = deadline.solver_seconds()
        solver.parameters.max_time_in_seconds = deadline.cap_seconds()
        solver.parameters.num_workers = 1
    else:
        solver.parameters.max_time_in_seconds = deadline.solver_seconds()
        solver.parameters.num_workers = workers
        if 1 < workers < 4:
            solver.parameters.subsolvers.extend(_SMALL_PORTFOLIO[:workers])
    solver.parameters.relative_gap_limit = gap
    if log.isEnabledFor(logging.DEBUG):
        solver.parameters.log_search_progress = True
        solver.log_callback = log.debug
    return solver


def run(
    model: cp_model.CpModel,
    objective: Objective,
    deadline: Deadline,
    workers: int,
    gap: float,
    patience: float | None,
    extract: Callable[[cp_model.CpSolver], tuple[Generation, ...]],
) -> Solution:
    """Solve `model` (its objective set) until `deadline`; `extract` reads a plan from a
    solution."""
    solver = _solver(deadline, workers, gap)
    start = time.monotonic()
    if patience is None:
        code = solver.solve(model)
    elif deadline.deterministic:
        code = solver.solve(model, _WorkPatience(patience * WORK_PER_SECOND, gap))
    else:
        with _Stagnation(solver, patience, gap) as watch:
            code = solver.solve(model, watch)
    seconds = time.monotonic() - start
    deadline.spend(solver.response_proto.deterministic_time)
    deadline.passed()  # notes on the meter when the wall-clock cap stopped the solve
    status = {
        cp_model.OPTIMAL: SolveStatus.OPTIMAL,
        cp_model.FEASIBLE: SolveStatus.FEASIBLE,
        cp_model.INFEASIBLE: SolveStatus.INFEASIBLE,
    }.get(code, SolveStatus.UNKNOWN)
    log.debug(
        "cp-sat %s: %s in %.2fs (%.2f work)",
        objective.value,
        status.value,
        seconds,
        solver.response_proto.deterministic_time,
    )
    if status not in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE):
        return Solution(status, None, None, None, seconds)
    gens = extract(solver)
    bound = math.ceil(solver.best_objective_bound - 1e-6)
    value = round(solver.objective_value)
    if status is SolveStatus.OPTIMAL and bound < value:
        status = SolveStatus.FEASIBLE  # stopped by the gap, not proven
    return Solution(status, gens, value, bound, seconds)
