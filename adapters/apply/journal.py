"""The apply engine's state on disk: the journal (which plan, which step) and the lock
that keeps a second run off the same profile.

The journal is written atomically (adapters/files.py), so a power cut leaves the old or
the new one. It is read back field by field: a damaged, foreign or older file is an
`InputError` that names the field and says how to start afresh, never a traceback. It
carries a digest of itself, so that a journal changed by anything but budget-solve is
refused too. It is checked, not believed: what a run deletes and where it ends are
decided from the profile and the command line (adapters/apply/executor.py), and the
journal only says where a plan stands.
"""

import hashlib
import json
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar, cast

from adapters.apply.measure import Calibration
from adapters.nixstore.host import LOCAL, Held, Host
from solver.errors import BudgetSolveError, ExitCode, InputError
from solver.plan import PlanDocument

VERSION = 3
# A journal is small: a few hundred bytes per step. Anything far larger is not ours.
MAX_BYTES = 64 << 20

T = TypeVar("T")


class RunStatus(Enum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    ROLLED_BACK = "rolled back"


class Phase(Enum):
    """Where step `step` was when the journal was last written."""

    BUILD = "build"
    SWITCH = "switch"
    COLLECT = "collect"
    DONE = "done"


@dataclass
class Journal:
    """One run of a plan on one profile."""

    profile: str  # the resolved profile the plan runs on
    target: str  # the builder's identity of the target
    budget: int  # --limit, in bytes: a rerun with another budget plans afresh
    status: RunStatus
    # The profile's generation when the run started: the plan replaces it (deleted only
    # while it still points at the start, paths[0]).
    start_generation: int | None
    # The newest generation number when the run started: the run's own generations are
    # the newer ones that point at a generation of this plan.
    newest_generation: int
    # Top-level store path of every generation, start to target (None: not built yet).
    paths: list[str | None]
    # Per generation, start to target: `EndSpec` for both ends, the builder's step between.
    specs: list[Mapping[str, object]]
    summaries: list[str]
    plan: PlanDocument
    model_peaks: list[int]
    arriving: list[int]
    calibration: Calibration
    measured: list[int | None]
    step: int = 0
    phase: Phase = Phase.BUILD
    failed_step: int | None = None
    error: str | None = None
    version: int = VERSION
    # Where it lives, on which host; not part of the document.
    path: Path = field(default=Path("journal.json"), compare=False, repr=False)
    host: Host = field(default=LOCAL, compare=False, repr=False)

    @property
    def steps(self) -> int:
        return len(self.specs) - 1

    # -- reading and writing -------------------------------------------------------------

    @classmethod
    def load(cls, host: Host, path: Path) -> "Journal | None":
        """The journal at `path` on `host`, None when there is none; `InputError` when
        damaged."""
        try:
            raw = host.read_bytes(path)
        except OSError as e:
            raise InputError(f"{path}: cannot read the journal: {e.strerror or e}") from e
        if raw is None:
            return None
        fix = f"; remove {path} to plan afresh"
        if len(raw) > MAX_BYTES:
            raise InputError(f"{path}: not a budget-solve journal (too large){fix}")
        try:
            data = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise InputError(f"{path}: not a budget-solve journal (not UTF-8 text){fix}") from None
        except (json.JSONDecodeError, RecursionError) as e:
            where = f" (line {e.lineno})" if isinstance(e, json.JSONDecodeError) else ""
            raise InputError(f"{path}: the journal is not valid JSON{where}{fix}") from None
        if not isinstance(data, dict):
            raise InputError(f"{path}: not a budget-solve journal{fix}")
        version = data.get("version")
        if version != VERSION:
            raise InputError(
                f"{path}: journal version {version!r} is not the one this budget-solve "
                f"writes ({VERSION}){fix}"
            )
        if data.get("digest") != _digest(data):
            raise InputError(
                f"{path}: the journal was changed since budget-solve wrote it (its digest "
                f"does not match){fix}"
            )
        try:
            return cls._parse(data, host, path)
        except _BadField as e:
            raise InputError(f"{path}: damaged journal: {e}{fix}") from None

    @classmethod
    def _parse(cls, data: dict[str, Any], host: Host, path: Path) -> "Journal":
        get = _Reader(data)
        journal = cls(
            profile=get.of("profile", str),
            target=get.of("target", str),
            budget=get.of("budget", int),
            status=get.enum("status", RunStatus),
            start_generation=get.optional("start_generation", int),
            newest_generation=get.of("newest_generation", int),
            paths=get.list_of("paths", str, optional=True),
            specs=get.list_of("specs", dict),
            summaries=get.list_of("summaries", str),
            # The plan as `Result.to_json` wrote it (the digest says nothing changed it).
            plan=cast(PlanDocument, get.of("plan", dict)),
            model_peaks=get.list_of("model_peaks", int),
            arriving=get.list_of("arriving", int),
            calibration=Calibration(
                get.number("calibration", "ratio"),
                get.nested_int("calibration", "other_bytes"),
                get.nested_int("calibration", "tolerance_bytes"),
            ),
            measured=get.list_of("measured", int, optional=True),
            step=get.of("step", int),
            phase=get.enum("phase", Phase),
            failed_step=get.optional("failed_step", int),
            error=get.optional("error", str),
            path=path,
            host=host,
        )
        steps = len(journal.specs) - 1
        if steps < 1:
            raise _BadField("specs: a plan has at least one step")
        for name in ("paths",):
            if len(getattr(journal, name)) != steps + 1:
                raise _BadField(f"{name}: {steps + 1} entries expected")
        for name in ("summaries", "model_peaks", "arriving", "measured"):
            if len(getattr(journal, name)) != steps:
                raise _BadField(f"{name}: {steps} entries expected")
        if not 0 <= journal.step <= steps:
            raise _BadField(f"step: between 0 and {steps} expected")
        if journal.calibration.ratio <= 0:
            raise _BadField("calibration.ratio: a positive number expected")
        if journal.budget <= 0:
            raise _BadField("budget: a positive number of bytes expected")
        if journal.start_generation is not None and not (
            0 < journal.start_generation <= journal.newest_generation
        ):
            raise _BadField("start_generation: a generation up to newest_generation expected")
        if journal.paths[0] is None or journal.paths[-1] is None:
            raise _BadField("paths: the start and the target must be named")
        # The start and the target are fetched or built by their specs: the same paths.
        for end, spec in ((0, journal.specs[0]), (steps, journal.specs[-1])):
            if spec.get("path") != journal.paths[end]:
                raise _BadField(f"specs[{end}].path: {journal.paths[end]!r} expected")
        return journal

    def to_json(self) -> dict[str, Any]:
        out = {
            f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("path", "host")
        }
        out["status"] = self.status.value
        out["phase"] = self.phase.value
        out["calibration"] = self.calibration.to_json()
        out["digest"] = _digest(out)
        return out

    def save(self) -> None:
        text = json.dumps(self.to_json(), indent=1, sort_keys=True) + "\n"
        self.host.write_atomic(self.path, text)

    def update(self, **changes: Any) -> None:
        """Change fields and make the change durable before returning."""
        for name, value in changes.items():
            if name not in {f.name for f in fields(self)}:
                raise AttributeError(name)
            setattr(self, name, value)
        self.save()

    def remove(self) -> None:
        self.host.unlink(self.path)


def _digest(doc: dict[str, Any]) -> str:
    """SHA-256 of the document without its digest, in one canonical form."""
    body = {key: value for key, value in doc.items() if key != "digest"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


class _BadField(Exception):  # noqa: N818 (internal, caught at once)
    """A field of the journal has the wrong shape."""


class _Reader:
    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def _value(self, key: str) -> Any:
        if key not in self.data:
            raise _BadField(f"{key} is missing")
        return self.data[key]

    def of(self, key: str, kind: type[T]) -> T:
        value = self._value(key)
        if not _is(value, kind):
            raise _BadField(f"{key}: {kind.__name__} expected, got {type(value).__name__}")
        return value  # type: ignore[no-any-return]

    def optional(self, key: str, kind: type[T]) -> T | None:
        value = self.data.get(key)
        if value is not None and not _is(value, kind):
            raise _BadField(f"{key}: {kind.__name__} or null expected, got {type(value).__name__}")
        return value

    def list_of(self, key: str, kind: type[Any], *, optional: bool = False) -> list[Any]:
        value = self.of(key, list)
        for i, item in enumerate(value):
            if not (_is(item, kind) or (optional and item is None)):
                raise _BadField(f"{key}[{i}]: {kind.__name__} expected")
        return value

    def enum(self, key: str, kind: Callable[[str], T]) -> T:
        value = self.of(key, str)
        try:
            return kind(value)
        except ValueError:
            raise _BadField(f"{key}: unknown value {value!r}") from None

    def _nested(self, key: str, inner: str) -> Any:
        outer = self.of(key, dict)
        if inner not in outer:
            raise _BadField(f"{key}.{inner} is missing")
        return outer[inner]

    def number(self, key: str, inner: str) -> float:
        value = self._nested(key, inner)
        if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
            raise _BadField(f"{key}.{inner}: a number expected")
        return float(value)

    def nested_int(self, key: str, inner: str) -> int:
        value = self._nested(key, inner)
        if not _is(value, int) or value < 0:
            raise _BadField(f"{key}.{inner}: a non-negative integer expected")
        return int(value)


def _is(value: object, kind: type[Any]) -> bool:
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


# -- the state directory and its lock ----------------------------------------------------


class LockedError(BudgetSolveError):
    """Another apply holds the profile's lock: as bad input, this run changes nothing."""

    exit_code = ExitCode.INPUT


# What the state directory holds besides the journal and the lock (adapters/apply/roots.py
# and the builders' step files).
SUBDIRS = ("roots", "keep", "drvs", "steps")


def check_state_dir(host: Host, state: Path) -> None:
    """Make the state directory and its subdirectories, or refuse them when another user
    could change what is in them: a symbolic link, not ours, writable by others, here or
    in the directories above (`host.ensure_private`). Nothing is read, written or deleted
    under `state` before this."""
    host.ensure_private(state.parent, state, *(state / name for name in SUBDIRS))


@contextmanager
def profile_lock(host: Host, state: Path, profile: Path) -> Iterator[None]:
    """The profile's lock for the block: an exclusive lock on the state directory's `lock`
    file on `host` (`Host.lock`), or `LockedError` naming the run that holds it."""
    try:
        with host.lock(state / "lock"):
            yield
    except Held as held:
        raise LockedError(
            f"another budget-solve apply is running on {host.named(profile)} (pid {held.holder})"
        ) from None


def state_dir_for(host: Host, profile: Path) -> Path:
    """Where the journal, the lock and our temporary GC roots live for one profile."""
    # The host's own: on --target-host, its environment and its Nix state directory.
    base = host.environment("BUDGET_SOLVE_STATE_DIR")
    root = Path(base) if base else host.state_dir() / "budget-solve"
    # os.fsencode: a path that is not UTF-8 (its bytes kept as surrogates) hashes as bytes.
    digest = hashlib.sha256(os.fsencode(profile.absolute())).hexdigest()[:16]
    return root / f"{profile.name}-{digest}"
