"""`budget-solve apply`: build the plan's generations one by one on a Nix profile.

Each intermediate generation is built from `generation.nix`, set as the profile's new
generation, the previous generation is deleted and garbage is collected. The journal names
the plan and the step in progress, so a rerun after a crash or a power cut resumes.
"""

import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from adapters.apply.builder import ApplyError, Builder, Target
from adapters.apply.journal import Journal
from adapters.apply.measure import Calibration, PeakSampler
from adapters.nixstore import nix
from adapters.nixstore.loading import live_pinned
from adapters.nixstore.sources import read_source
from solver.closure import Closure, merge
from solver.components import split_components
from solver.errors import BudgetSolveError, NixError
from solver.instance import Problem, build_instance
from solver.plan import Step as PlanStep
from solver.plan import evaluate
from solver.planner import Result, Status, plan_upgrade
from solver.units import format_size
from solver.validate import Checked, validate

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


class InfeasibleError(BudgetSolveError):
    """No plan fits the budget."""

    def __init__(self, result: Result) -> None:
        self.result = result
        need = format_size(result.min_feasible_budget or 0)
        if result.status is Status.INFEASIBLE:
            said = f"no plan fits {format_size(result.budget)}"
        else:
            said = f"no plan found under {format_size(result.budget)} within the time limit"
        super().__init__(f"{said}; a budget of {need} would")


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


class Executor:
    """Runs a plan on a profile through a `Builder`, journaled."""

    def __init__(
        self,
        builder: Builder,
        *,
        progress: Progress = lambda _: None,
        detail: Progress = lambda _: None,
    ) -> None:
        self.builder = builder
        self.profile = builder.profile
        self.progress = progress
        self.detail = detail
        self.state = state_dir_for(self.profile)
        self.store_dir = nix.store_dir()

    # -- roots we own --------------------------------------------------------------------

    def _root(self, name: str) -> Path:
        return self.state / "roots" / name

    def _drop_roots(self) -> None:
        _unlink_links(self.state / "roots")

    def _keep_drv(self, name: str, drv: str | None) -> str | None:
        """Root a derivation (one `_derivations` chose) for the whole run."""
        if drv is not None:
            nix.add_indirect_root(self.state / "drvs" / name, drv)
        return drv

    def _derivations(self, old: Closure, target: Target) -> dict[str, str]:
        """The start's and the target's derivations, where keeping them pins no package.

        They let a walk back rebuild the start, and the last step build the target's glue.
        A derivation whose closure holds packages of either system (one built with
        `builtins.storePath`, say) would keep those on disk throughout, so it is not kept;
        the others are build recipes and sources, and are counted as pinned.
        """
        wanted = {"start": old[old.roots[0]].deriver, "target": target.drv}
        out = {}
        for name, drv in wanted.items():
            if drv is None or nix.invalid_paths([drv]):
                continue
            paths = set(nix.derivation_closure([drv]))
            if not any(p in old or p in target.closure for p in paths):
                out[name] = drv
        return out

    def _drop_drvs(self) -> None:
        _unlink_links(self.state / "drvs")

    def _cleanup(self) -> None:
        """Remove our temporary roots and collect: leftovers of a failed or killed step go."""
        self._drop_roots()
        nix.collect_garbage()

    # -- planning ------------------------------------------------------------------------

    def plan(
        self,
        limit: int,
        *,
        reserve: int = 0,
        non_vital: Sequence[str] = (),
        time_limit: float = 60.0,
        workers: int | None = None,
    ) -> tuple[Problem, Target, Result, Calibration, Checked | None, dict[str, str]]:
        current = os.path.realpath(self.profile)
        old = read_source(current)
        self.progress("reading the target's closure")
        target = self.builder.target(old)
        split = split_components(old, target.closure, non_vital=non_vital)
        pinned = live_pinned(old, target.closure, ignore_under=str(self.state))
        drvs = self._derivations(old, target)
        held = [p for p in self.builder.pinned() if p != target.path]
        extra = []
        if held:
            extra.append(Closure(nix.path_info(held, recursive=True), held, source="booted system"))
        if drvs:
            extra.append(nix.derivation_closure(drvs.values()))
        for part in extra:
            pinned = merge([pinned, part]) if pinned is not None else part
        problem = Problem(old, target.closure, split, pinned=pinned, reserve=reserve)
        inst = build_instance(problem)
        on_disk = merge([old, pinned]) if pinned is not None else old
        calibration = Calibration.measure(self.store_dir, on_disk, on_disk.size())
        budget = calibration.to_model(limit)
        self.progress(f"planning under {format_size(limit)} ({format_size(budget)} of NAR)")
        result = plan_upgrade(
            inst, budget, time_limit=time_limit, workers=workers, progress=self.progress
        )
        if result.plan is not None:
            gens = self.builder.adjust(problem, result.plan.generations)
            if gens != list(result.plan.generations):
                adjusted = evaluate(inst, gens)
                log.info("plan adjusted to what the builder can build: %d steps", len(adjusted))
                if adjusted.peak_bytes > budget:
                    raise ApplyError(
                        f"the plan needs {format_size(adjusted.peak_bytes)} once additions and "
                        f"removals happen in the first step (a NixOS configuration cannot hold "
                        f"them back), over the budget of {format_size(budget)}"
                    )
                result = replace(result, plan=adjusted)
        checked = validate(problem, result.plan, budget) if result.plan is not None else None
        return problem, target, result, calibration, checked, drvs

    # -- running -------------------------------------------------------------------------

    def run(
        self, limit: int, *, rollback_to_start: bool = False, **plan_options: Any
    ) -> ApplyResult:
        journal = Journal.load(self.state / "journal.json")
        current = os.path.realpath(self.profile)
        self.builder.prepare()
        if journal is not None and journal.data.get("status") == "running":
            paths = journal.data["paths"]
            if current in paths and journal.data["target"] == self.builder.identity():
                done = paths.index(current)
                if self._awaiting_reboot(current):
                    return self._result(journal, "reboot")
                self.progress("resuming the interrupted plan")
                self._forget_replaced(paths[:done])
                self._cleanup()
                return self._execute(journal, done, rollback_to_start)
            log.warning("the journal does not match the profile any more; planning afresh")
        self.progress("collecting garbage left by earlier runs")
        self._drop_drvs()
        self._cleanup()
        problem, target, result, calibration, checked, drvs = self.plan(limit, **plan_options)
        if result.plan is None or checked is None:
            raise InfeasibleError(result)
        plan = result.plan
        gens = plan.generations
        specs: list[dict[str, Any]] = [
            {"path": current, "drv": self._keep_drv("start", drvs.get("start"))},
            *(self.builder.describe(problem, g) for g in gens[1:-1]),
            {"path": target.path, "drv": self._keep_drv("target", drvs.get("target"))},
        ]
        journal = Journal.create(
            self.state / "journal.json",
            {
                "profile": str(self.profile),
                "target": self.builder.identity(),
                "status": "running",
                "start_generation": nix.current_generation(self.profile),
                "paths": [current] + [None] * (len(gens) - 2) + [target.path],
                "specs": specs,
                "summaries": [_summary(s) for s in plan.steps],
                "plan": result.to_json(),
                "model_peaks": [s.peak_bytes for s in plan.steps],
                "arriving": list(checked.arriving),
                "calibration": {
                    "ratio": calibration.ratio,
                    "other_bytes": calibration.other,
                    "tolerance_bytes": calibration.tolerance,
                },
                "measured": [None] * len(plan.steps),
            },
        )
        return self._execute(journal, 0, rollback_to_start)

    def _awaiting_reboot(self, current: str) -> bool:
        booted = self.builder.booted()
        return self.builder.reboots and booted is not None and booted != current

    def _calibration(self, journal: Journal) -> Calibration:
        c = journal.data["calibration"]
        return Calibration(c["ratio"], c["other_bytes"], c["tolerance_bytes"])

    def _execute(self, journal: Journal, done: int, rollback_to_start: bool) -> ApplyResult:
        data = journal.data
        steps = len(data["specs"]) - 1
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
            if k < steps and self.builder.reboots:
                return self._result(journal, "reboot")
        journal.update(status="done")
        self._drop_drvs()
        return self._result(journal, "done")

    def _result(self, journal: Journal, status: str) -> ApplyResult:
        data = journal.data
        calibration = self._calibration(journal)
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
        return ApplyResult(status, data["plan"], records, data["calibration"])

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
        self.builder.activate(path)
        after = nix.current_generation(self.profile)
        if before is not None and before != after:
            nix.delete_generations(self.profile, [before])

    def _build(self, journal: Journal, i: int, root: str) -> str:
        """Generation i on disk: the start or the target fetched, or an intermediate built."""
        spec = journal.data["specs"][i]
        if "path" not in spec:
            return self.builder.build(spec, f"budget-solve-generation-{i}", self._root(root))
        path: str = spec["path"]
        drv = spec.get("drv")
        subs = self.builder.substituters
        if drv and nix.invalid_paths([path]) and not nix.invalid_paths([drv]):
            # Build it (its packages still come from the substituters): the system's glue
            # is in no cache.
            return nix.realise_path(drv, root=self._root(root), substituters=subs)
        return nix.realise_path(path, root=self._root(root), substituters=subs)

    def _step(self, journal: Journal, k: int) -> int:
        data = journal.data
        steps = len(data["specs"]) - 1
        calibration = self._calibration(journal)
        budget = calibration.to_real(data["model_peaks"][k - 1])
        arriving = data["arriving"][k - 1]
        what = data["summaries"][k - 1]
        self.progress(f"step {k}/{steps}: {what}; {format_size(arriving)} to fetch or build")

        def show(used: int) -> None:
            self.detail(f"store {format_size(used)} of {format_size(budget)} predicted")

        with PeakSampler(self.store_dir, on_sample=show) as sampler:
            path = self._build(journal, k, f"step-{k}")
            data["paths"][k] = path
            journal.update(paths=data["paths"], phase="switch")
            self.progress(f"step {k}/{steps}: switching to the new generation")
            self._switch(path)
            journal.update(phase="collect")
            self.progress(f"step {k}/{steps}: collecting garbage")
            self._cleanup()
        journal.update(phase="done")
        return sampler.peak

    def _roll_back(self, journal: Journal, last_good: int) -> None:
        """Walk back generation by generation to the starting system, as the user asked."""
        for i in range(last_good - 1, -1, -1):
            self.progress(f"rolling back to generation {i}")
            self._switch(self._build(journal, i, f"back-{i}"))
            self._cleanup()


def _unlink_links(directory: Path) -> None:
    """Remove the symlinks in `directory` (our GC roots there)."""
    if directory.is_dir():
        for link in directory.iterdir():
            if link.is_symlink():
                link.unlink()


def _summary(step: PlanStep) -> str:
    """What a step changes, for the progress line: `upgrade openssl, curl (+3 more)`."""
    parts = []
    for verb, names in step.by_kind():
        if names:
            shown = ", ".join(names[:3])
            more = f" (+{len(names) - 3} more)" if len(names) > 3 else ""
            parts.append(f"{verb} {shown}{more}")
    return "; ".join(parts) or "rebuild the glue"
