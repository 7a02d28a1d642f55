"""What an apply run reports: its status, each step's peaks, and what it is about to
delete (asked before anything goes)."""

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, TypedDict

from adapters.apply.measure import Calibration
from solver.errors import BudgetSolveError, ExitCode


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


class FailureDocument(TypedDict):
    """What `apply --json` prints when the run stops on an error, as `fleet --apply`
    reads it: the error's line, the exit status, and the step that failed (None when
    the run failed outside a step: planning, the input, the lock). When no plan fits,
    the plan's own document (status `infeasible` or `unknown`) carries the same keys."""

    status: str
    error: str
    exit_code: int
    failed_step: int | None


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
    status: ApplyStatus
    plan: dict[str, Any]
    calibration: Calibration
    steps: list[StepRecord] = field(default_factory=list)
    # With --dry-run on an interrupted run: the step a real run would resume after.
    resume_after: int | None = None
    # With --dry-run: what a real run would delete first (generation numbers of the profile,
    # and the real bytes of garbage its first collection frees).
    would_delete: list[int] | None = None
    garbage_bytes: int | None = None
    # With --plain-first: "done" when the plain upgrade did it, "out of space" when the
    # staged plan took over.
    plain: str | None = None

    def to_json(self) -> dict[str, Any]:
        out = dict(self.plan)
        out["status"] = self.status.value
        out["exit_code"] = int(self.status.exit_code)
        out["calibration"] = self.calibration.to_json()
        if self.would_delete is not None:
            out["would_delete_generations"] = self.would_delete
            out["garbage_bytes"] = self.garbage_bytes
        if self.plain is not None:
            out["plain_upgrade"] = self.plain
        for step, record in zip(out.get("steps", []), self.steps, strict=False):
            step.update(record.to_json())
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
