"""`budget-solve apply`: build the plan's generations one by one on a Nix profile.

Each intermediate generation is built from `generation.nix`, set as the profile's new
generation, the previous generation is deleted and garbage is collected. The journal names
the plan and the step in progress, so a rerun after a crash or a power cut resumes.
"""

import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapters import nix
from adapters.journal import Journal
from adapters.loading import live_pinned
from adapters.measure import Calibration, PeakSampler
from adapters.readers import read_source
from solver.closure import Closure, merge
from solver.components import Change, split_components
from solver.errors import BudgetSolveError, NixError
from solver.instance import Problem, build_instance
from solver.plan import Generation, State
from solver.planner import Result, Status, plan_upgrade
from solver.units import format_size

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


class ApplyError(BudgetSolveError):
    """A step failed; the profile still points at the last good generation."""


class InfeasibleError(BudgetSolveError):
    """No plan fits the budget."""

    def __init__(self, result: Result) -> None:
        self.result = result
        need = format_size(result.min_feasible_budget or 0)
        super().__init__(f"no plan fits {format_size(result.budget)}; a budget of {need} would")


@dataclass
class StepRecord:
    index: int
    path: str
    model_peak_bytes: int
    predicted_peak_bytes: int
    measured_peak_bytes: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "path": self.path,
            "model_peak_bytes": self.model_peak_bytes,
            "predicted_peak_bytes": self.predicted_peak_bytes,
            "measured_peak_bytes": self.measured_peak_bytes,
        }


@dataclass
class ApplyResult:
    status: str
    plan: dict[str, Any]
    steps: list[StepRecord] = field(default_factory=list)
    calibration: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out = dict(self.plan)
        out["status"] = self.status
        out["calibration"] = self.calibration
        for step, record in zip(out.get("steps", []), self.steps, strict=False):
            step.update(record.to_json())
        return out


def state_dir_for(profile: Path) -> Path:
    """Where the journal and our temporary GC roots live for one profile."""
    base = os.environ.get("BUDGET_SOLVE_STATE_DIR")
    root = Path(base) if base else nix.state_dir() / "budget-solve"
    digest = hashlib.sha256(str(profile.absolute()).encode()).hexdigest()[:16]
    return root / f"{profile.name}-{digest}"


def generation_entries(problem: Problem, gen: Generation) -> list[str]:
    """Top-level paths of a generation: each component's old or new entries, or none."""
    paths: set[str] = set()
    for comp in problem.split.components:
        if comp.change is Change.SAME and comp.vital:
            paths.update(comp.old)
    for comp, state in zip(problem.modelled(), gen, strict=True):
        if state == State.OLD:
            paths.update(comp.old)
        elif state == State.NEW:
            paths.update(comp.new)
    return sorted(paths)


def _target_closure(target: str, substituters: Sequence[str]) -> Closure:
    if not nix.invalid_paths([target]):
        return read_source(target)
    errors = []
    for url in substituters:
        try:
            return nix.closure(target, store=url)
        except BudgetSolveError as e:
            errors.append(str(e))
    detail = f": {errors[-1]}" if errors else " (give --substituter URL)"
    raise ApplyError(f"{target} is not in the store and no substituter has it{detail}")


class Executor:
    """Runs a plan on a profile, journaled."""

    def __init__(
        self,
        profile: Path,
        *,
        substituters: Sequence[str] = (),
        progress: Progress = lambda _: None,
    ) -> None:
        self.profile = profile
        self.substituters = list(substituters)
        self.progress = progress
        self.state = state_dir_for(profile)
        self.store_dir = nix.store_dir()

    # -- roots we own --------------------------------------------------------------------

    def _root(self, name: str) -> Path:
        return self.state / "roots" / name

    def _drop_roots(self) -> None:
        roots = self.state / "roots"
        if roots.is_dir():
            for link in roots.iterdir():
                if link.is_symlink():
                    link.unlink()

    def _cleanup(self) -> None:
        """Remove our temporary roots and collect: leftovers of a failed or killed step go."""
        self._drop_roots()
        nix.collect_garbage()

    # -- planning ------------------------------------------------------------------------

    def plan(
        self,
        target: str,
        limit: int,
        *,
        reserve: int = 0,
        non_vital: Sequence[str] = (),
        time_limit: float = 60.0,
        workers: int | None = None,
    ) -> tuple[Problem, Result, Calibration]:
        current = os.path.realpath(self.profile)
        old = read_source(current)
        new = _target_closure(target, self.substituters)
        split = split_components(old, new, non_vital=non_vital)
        pinned = live_pinned(old, new, ignore_under=str(self.state))
        problem = Problem(old, new, split, pinned=pinned, reserve=reserve)
        inst = build_instance(problem)
        on_disk = merge([old, pinned]) if pinned is not None else old
        calibration = Calibration.measure(self.store_dir, on_disk, on_disk.size())
        budget = calibration.to_model(limit)
        self.progress(f"planning under {format_size(limit)} ({format_size(budget)} of NAR)")
        result = plan_upgrade(
            inst, budget, time_limit=time_limit, workers=workers, progress=self.progress
        )
        return problem, result, calibration

    # -- running -------------------------------------------------------------------------

    def run(
        self,
        target: str,
        limit: int,
        *,
        rollback_to_start: bool = False,
        **plan_options: Any,
    ) -> ApplyResult:
        journal = Journal.load(self.state / "journal.json")
        current = os.path.realpath(self.profile)
        if journal is not None and journal.data.get("status") == "running":
            paths = journal.data["paths"]
            if current in paths and journal.data["target"] == target:
                self.progress("resuming the interrupted plan")
                done = paths.index(current)
                self._forget_replaced(paths[:done])
                self._cleanup()
                return self._execute(journal, done, rollback_to_start)
            log.warning("the journal does not match the profile any more; planning afresh")
        self.progress("collecting garbage left by earlier runs")
        self._cleanup()
        problem, result, calibration = self.plan(target, limit, **plan_options)
        if result.status is Status.INFEASIBLE or result.plan is None:
            raise InfeasibleError(result)
        plan = result.plan
        entries = [generation_entries(problem, g) for g in plan.generations]
        start_gen = nix.current_generation(self.profile)
        journal = Journal.create(
            self.state / "journal.json",
            {
                "profile": str(self.profile),
                "target": target,
                "status": "running",
                "start_generation": start_gen,
                "paths": [current] + [None] * (len(plan.generations) - 2) + [target],
                "entries": entries,
                "plan": result.to_json(),
                "model_peaks": [s.peak_bytes for s in plan.steps],
                "calibration": {
                    "ratio": calibration.ratio,
                    "other_bytes": calibration.other,
                    "tolerance_bytes": calibration.tolerance,
                },
                "measured": [None] * len(plan.steps),
            },
        )
        return self._execute(journal, 0, rollback_to_start)

    def _calibration(self, journal: Journal) -> Calibration:
        c = journal.data["calibration"]
        return Calibration(c["ratio"], c["other_bytes"], c["tolerance_bytes"])

    def _execute(self, journal: Journal, done: int, rollback_to_start: bool) -> ApplyResult:
        data = journal.data
        steps = len(data["entries"]) - 1
        calibration = self._calibration(journal)
        for k in range(done + 1, steps + 1):
            journal.update(step=k)
            try:
                measured = self._step(journal, k)
            except NixError as e:
                journal.update(status="failed", failed_step=k, error=str(e))
                self._cleanup()
                good = os.path.realpath(self.profile)
                if rollback_to_start:
                    self._roll_back(journal, k - 1)
                    journal.update(status="rolled back")
                    raise ApplyError(
                        f"step {k} of {steps} failed: {e}; rolled back to the starting system"
                    ) from e
                raise ApplyError(
                    f"step {k} of {steps} failed: {e}; the profile still points at {good}"
                ) from e
            data["measured"][k - 1] = measured
            journal.update(measured=data["measured"])
        journal.update(status="done")
        records = [
            StepRecord(
                i + 1,
                data["paths"][i + 1],
                peak,
                calibration.to_real(peak),
                data["measured"][i],
            )
            for i, peak in enumerate(data["model_peaks"])
        ]
        return ApplyResult("done", data["plan"], records, data["calibration"])

    def _forget_replaced(self, replaced: Sequence[str | None]) -> None:
        """Delete generations that a step replaced but a crash kept from being deleted."""
        current = nix.current_generation(self.profile)
        stale = [
            number
            for number, path in nix.generations(self.profile).items()
            if number != current and os.path.realpath(path) in replaced
        ]
        nix.delete_generations(self.profile, stale)

    def _switch(self, path: str) -> None:
        before = nix.current_generation(self.profile)
        nix.set_profile(self.profile, path)
        after = nix.current_generation(self.profile)
        if before is not None and before != after:
            nix.delete_generations(self.profile, [before])

    def _build(self, journal: Journal, i: int, root: str) -> str:
        """Generation i on disk: the start or the target fetched, or an intermediate built."""
        data = journal.data
        if i in (0, len(data["entries"]) - 1):
            path: str = data["paths"][i]
            nix.realise_path(path, root=self._root(root), substituters=self.substituters)
            return path
        return nix.build_generation(
            f"budget-solve-generation-{i}",
            data["entries"][i],
            out_link=self._root(root),
            substituters=self.substituters,
        )

    def _step(self, journal: Journal, k: int) -> int:
        data = journal.data
        steps = len(data["entries"]) - 1
        with PeakSampler(self.store_dir) as sampler:
            what = "fetching the target" if k == steps else f"building generation {k}"
            self.progress(f"step {k}/{steps}: {what} ({len(data['entries'][k])} components)")
            path = self._build(journal, k, f"step-{k}")
            data["paths"][k] = path
            journal.update(paths=data["paths"], phase="switch")
            self._switch(path)
            journal.update(phase="collect")
            self._drop_roots()
            nix.collect_garbage()
        journal.update(phase="done")
        return sampler.peak

    def _roll_back(self, journal: Journal, last_good: int) -> None:
        """Walk back generation by generation to the starting system, as the user asked."""
        for i in range(last_good - 1, -1, -1):
            self.progress(f"rolling back to generation {i}")
            self._switch(self._build(journal, i, f"back-{i}"))
            self._drop_roots()
            nix.collect_garbage()
