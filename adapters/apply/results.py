"""What an apply run reports: its status, each step's peaks, and what it is about to
delete (asked before anything goes)."""

from dataclasses import dataclass, field
from enum import Enum
from typing import NotRequired, TypedDict

from adapters.apply.measure import Calibration, CalibrationDocument
from adapters.apply.reviewed import SystemsDocument
from solver.errors import BudgetSolveError, ExitCode
from solver.plan import PlanDocument, StepDocument


class ApplyStatus(Enum):
    DONE = "done"
    # Activated for the next boot: reboot, then run the same command again.
    REBOOT = "reboot"
    # --dry-run: planned (or found where to resume), nothing changed.
    PLANNED = "planned"
    # An error stopped the run (`FailureDocument`): a step, Nix, the input, the lock.
    FAILED = "failed"

    @property
    def exit_code(self) -> ExitCode:
        """What the command exits with when the run ends so."""
        if self is ApplyStatus.REBOOT:
            return ExitCode.REBOOT
        return ExitCode.FAILED if self is ApplyStatus.FAILED else ExitCode.OK


class PlainOutcome(Enum):
    """What `--plain-first`'s attempt came to."""

    DONE = "done"  # the plain upgrade did it
    OUT_OF_SPACE = "out of space"  # the disk filled: the staged plan took over


class FailureDocument(TypedDict):
    """What `apply --json` prints when the run stops on an error, as `fleet --apply`
    reads it: the error's line, the exit status, and the step that failed (None when
    the run failed outside a step: planning, the input, the lock). When no plan fits,
    the plan's own document (status `infeasible` or `unknown`) carries the same keys."""

    status: str
    error: str
    exit_code: int
    failed_step: int | None


class NoPlanDocument(PlanDocument):
    """What `apply --json` prints when no plan fits: the plan's document (status
    `infeasible` or `unknown`, the budget that would do, in the store's NAR bytes) with
    `FailureDocument`'s keys, and once the disk was measured, the same budgets in
    --limit's terms (`limit_bytes`, `min_feasible_limit_bytes`: the --limit to give) and
    the calibration between the two."""

    error: str
    exit_code: int
    failed_step: None
    limit_bytes: NotRequired[int]
    min_feasible_limit_bytes: NotRequired[int | None]
    min_limit_lower_bound_bytes: NotRequired[int | None]
    calibration: NotRequired[CalibrationDocument]


class AppliedStep(StepDocument, total=False):
    """A step of `apply --json`: the plan's, and once the run has it, its generation's
    path, the model's peak, the peak predicted on the disk and the one measured there."""

    path: str
    model_peak_bytes: int
    predicted_peak_bytes: int
    measured_peak_bytes: int | None


class ApplyDocument(PlanDocument):
    """What `apply --json` prints when the run ends without an error (`FailureDocument`
    otherwise): the plan's document, its steps `AppliedStep`s, with the run's status
    (an `ApplyStatus` value) and exit status, the calibration, and what a dry run would
    delete or whether the plain upgrade did it."""

    exit_code: int
    calibration: CalibrationDocument
    would_delete_generations: NotRequired[list[int]]
    garbage_bytes: NotRequired[int | None]
    plain_upgrade: NotRequired[str]
    # With --dry-run: what the plan is for, so that `apply --plan` can take the document.
    current_roots: NotRequired[list[str]]
    target_roots: NotRequired[list[str]]
    limit_bytes: NotRequired[int]


@dataclass
class StepRecord:
    index: int
    path: str
    model_peak_bytes: int
    predicted_peak_bytes: int
    measured_peak_bytes: int | None = None

    def measured(self, step: StepDocument) -> AppliedStep:
        """`step` of the plan with what the run measured of it."""
        return {
            **step,
            "path": self.path,
            "model_peak_bytes": self.model_peak_bytes,
            "predicted_peak_bytes": self.predicted_peak_bytes,
            "measured_peak_bytes": self.measured_peak_bytes,
        }


@dataclass
class ApplyResult:
    status: ApplyStatus
    plan: PlanDocument
    calibration: Calibration
    steps: list[StepRecord] = field(default_factory=list)
    # With --dry-run on an interrupted run: the step a real run would resume after.
    resume_after: int | None = None
    # With --dry-run: what a real run would delete first (generation numbers of the profile,
    # and the real bytes of garbage its first collection frees).
    would_delete: list[int] | None = None
    garbage_bytes: int | None = None
    # With --plain-first: what the plain upgrade came to.
    plain: PlainOutcome | None = None
    # With --dry-run: what the plan is for (adapters/apply/reviewed.py).
    systems: SystemsDocument | None = None

    def to_json(self) -> ApplyDocument:
        steps: list[StepDocument] = list(self.plan["steps"])
        for i, record in enumerate(self.steps[: len(steps)]):
            steps[i] = record.measured(steps[i])
        plan = self.plan
        out: ApplyDocument = {
            "status": self.status.value,
            "budget_bytes": plan["budget_bytes"],
            "peak_bytes": plan["peak_bytes"],
            "lower_bound_steps": plan["lower_bound_steps"],
            "min_feasible_budget_bytes": plan["min_feasible_budget_bytes"],
            "min_budget_lower_bound_bytes": plan["min_budget_lower_bound_bytes"],
            "steps": steps,
            # A journal written before plans said so holds no "repeatable".
            "repeatable": plan.get("repeatable", False),
            "exit_code": int(self.status.exit_code),
            "calibration": self.calibration.to_json(),
        }
        if self.would_delete is not None:
            out["would_delete_generations"] = self.would_delete
            out["garbage_bytes"] = self.garbage_bytes
        if self.plain is not None:
            out["plain_upgrade"] = self.plain.value
        if self.systems is not None:
            out["current_roots"] = self.systems["current_roots"]
            out["target_roots"] = self.systems["target_roots"]
            out["limit_bytes"] = self.systems["limit_bytes"]
        return out


@dataclass(frozen=True)
class Deletions:
    """What a run is about to delete, shown before anything goes (`confirm`)."""

    profile: str  # as messages name it: HOST:PATH on another host
    # The generation the run starts from and its system: replaced, then deleted (with it
    # the rollback to that system), unless it is kept as the rollback.
    start_generation: int | None
    start_path: str
    garbage_bytes: int  # real bytes collected before the first step
    steps: int
    # With keep_rollback: the generation before the target stays, costing this many real
    # bytes on disk after the run, and nothing at any step.
    rollback_bytes: int | None
    resuming: bool = False


class DeclinedError(BudgetSolveError):
    """The user said no: nothing was changed."""
