"""A reviewed plan (`apply --plan FILE`): the document `plan --json` (or `apply --dry-run
--json`) wrote, read back, checked against this run's systems and budget, and replayed on
this run's model, so that the run carries out the plan that was read, or refuses.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, TypedDict, cast

from solver.closure import Closure
from solver.errors import InputError
from solver.plan import STEP_KINDS, Plan, StepDocument, replay
from solver.units import format_size

if TYPE_CHECKING:
    # Annotations only: the model (and numpy) is imported by what builds it.
    from solver.instance import Instance


class SystemsDocument(TypedDict):
    """What a plan document says it is for: the roots of the current system's and the
    target's closures, and the --limit in bytes."""

    current_roots: list[str]
    target_roots: list[str]
    limit_bytes: int


def systems_document(old: Closure, new: Closure, limit: int) -> SystemsDocument:
    return {
        "current_roots": list(old.roots),
        "target_roots": list(new.roots),
        "limit_bytes": limit,
    }


# Only these statuses carry a plan to run.
_RUNNABLE = ("optimal", "feasible", "planned")


@dataclass(frozen=True)
class Reviewed:
    """A plan read from `file`: what it is for, and its steps."""

    file: Path
    current_roots: tuple[str, ...]
    target_roots: tuple[str, ...]
    limit: int
    steps: tuple[StepDocument, ...]

    @classmethod
    def read(cls, file: Path) -> Self:
        """The plan in `file`; InputError naming the file when it is not one."""
        try:
            doc = json.loads(file.read_bytes().decode("utf-8"))
        except OSError as e:
            raise InputError(f"--plan {file}: {e.strerror or e}") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise InputError(f"--plan {file}: not JSON ({e})") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("steps"), list):
            raise InputError(
                f"--plan {file}: not a plan (write one with `budget-solve plan ... --json`)"
            )
        status = doc.get("status")
        if status not in _RUNNABLE:
            raise InputError(f"--plan {file}: the plan's status is {status!r}: it has no plan")
        missing = [k for k in SystemsDocument.__annotations__ if k not in doc]
        if missing:
            raise InputError(
                f"--plan {file}: it does not say which systems and budget it is for "
                f"(no {missing[0]!r}): plan again with this version"
            )
        return cls(
            file,
            _names(file, doc, "current_roots"),
            _names(file, doc, "target_roots"),
            _whole(file, doc, "limit_bytes"),
            tuple(_step(file, i, step) for i, step in enumerate(doc["steps"], 1)),
        )

    def check_limit(self, limit: int) -> None:
        if limit != self.limit:
            raise InputError(
                f"--plan {self.file} is for --limit {format_size(self.limit)} "
                f"({self.limit:,} bytes), this run's is {format_size(limit)} "
                f"({limit:,} bytes): plan again, or give the same --limit"
            )

    def check_systems(self, old: Closure, new: Closure) -> None:
        """The plan's current system and target are this run's."""
        for what, theirs, mine in (
            ("current system", self.current_roots, old.roots),
            ("target", self.target_roots, new.roots),
        ):
            if tuple(sorted(theirs)) != tuple(sorted(mine)):
                raise InputError(
                    f"--plan {self.file} is for another {what}: {_roots(theirs)}, this run's "
                    f"is {_roots(mine)}: plan again"
                )

    def plan(self, inst: "Instance", budget: int) -> Plan:
        """The reviewed steps on this run's model; InputError when they are not a plan of
        this upgrade, or do not fit `budget` (the model's, calibrated on the disk)."""
        try:
            plan = replay(inst, self.steps)
        except InputError as e:
            raise InputError(f"--plan {self.file}: {e}: plan again") from None
        if plan.peak_bytes > budget:
            raise InputError(
                f"--plan {self.file} needs {format_size(plan.peak_bytes)} of store on this "
                f"disk, over the {format_size(budget)} that --limit leaves the store now "
                "(more is on the filesystem, or pinned, than when it was planned): plan again"
            )
        return plan


def _roots(roots: Sequence[str]) -> str:
    return ", ".join(roots) if roots else "(none)"


def _names(file: Path, doc: dict[str, Any], key: str) -> tuple[str, ...]:
    value = doc[key]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InputError(f"--plan {file}: {key!r} is not a list of strings")
    return tuple(value)


def _whole(file: Path, doc: dict[str, Any], key: str) -> int:
    value = doc[key]
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise InputError(f"--plan {file}: {key!r} is not a positive whole number")
    return value


def _step(file: Path, index: int, step: object) -> StepDocument:
    if not isinstance(step, dict):
        raise InputError(f"--plan {file}: step {index} is not an object")
    for kind in STEP_KINDS:
        names = step.get(kind, [])
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise InputError(f"--plan {file}: step {index}: {kind!r} is not a list of names")
    return cast(StepDocument, {kind: step.get(kind, []) for kind in STEP_KINDS})
