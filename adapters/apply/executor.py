"""`budget-solve apply`: run a plan's generations one by one on a Nix profile.

The order of a run, so that nothing is deleted before the plan is known and shown:
take the profile's lock, read the current system and the target and root the target,
plan (garbage still on disk is measured and not counted), show the plan (`--dry-run`
stops here), then collect garbage and run the steps. Each step builds a generation, makes
it current, deletes the one it replaced and collects garbage. Only the start generation
and generations this run created are ever deleted, and both are recognised on the profile
itself, not taken from the journal's word: the start while it points at the start system,
and the run's own as numbers newer than all at the start that point at generations of
this plan. The journal names the plan and the step, so a rerun after a crash or a power
cut resumes; it resumes only the plan for this profile, target and budget, and a run ends
well only where the command line's target is current.
"""

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Any, NoReturn

from adapters.apply.builder import ApplyError, Builder, generation_entries
from adapters.apply.journal import (
    CalibrationRecord,
    Journal,
    Phase,
    ProfileLock,
    RunStatus,
    check_state_dir,
    state_dir_for,
)
from adapters.apply.measure import Calibration, PeakSampler
from adapters.apply.planning import InfeasibleError, Planned, plan_apply
from adapters.apply.roots import Roots
from adapters.nixstore import host, nix
from solver.errors import BudgetSolveError, ConnectionLostError, NixError
from solver.instance import Problem, build_instance
from solver.plan import Generation, Plan, one_step
from solver.planner import Result
from solver.progress import Progress, quiet
from solver.units import format_size

log = logging.getLogger(__name__)


class ApplyStatus(Enum):
    DONE = "done"
    # Activated for the next boot: reboot, then run the same command again.
    REBOOT = "reboot"
    # --dry-run: planned (or found where to resume), nothing changed.
    PLANNED = "planned"


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
    steps: list[StepRecord] = field(default_factory=list)
    calibration: dict[str, Any] = field(default_factory=dict)
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
        out["calibration"] = self.calibration
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

    profile: str
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


class Executor:
    """Runs a plan on a profile through a `Builder`, journaled and locked."""

    def __init__(
        self,
        builder: Builder,
        *,
        progress: Progress = quiet,
        detail: Progress = quiet,
        show_plan: Callable[[Result], None] = lambda _: None,
        confirm: Callable[[Deletions], bool] = lambda _: True,
        keep_rollback: bool = False,
    ) -> None:
        # A link to a profile (~/.nix-profile) gets its generations on the real profile.
        builder.profile = nix.resolve_profile(builder.profile)
        self.builder = builder
        self.profile = builder.profile
        self.progress = progress
        self.detail = detail
        self.show_plan = show_plan
        self.confirm = confirm
        # Keep the generation before the target as the rollback (it is on disk at the last
        # step anyway, so it costs no budget).
        self.keep_rollback = keep_rollback
        self.state = state_dir_for(self.profile)
        self.roots = Roots(self.state)
        self.store_dir = nix.store_dir()
        # The target the command line names, once known: the run is done only there.
        self._target: str | None = None

    def _cleanup(self) -> None:
        """Remove our temporary roots and collect: leftovers of a failed or killed step go."""
        self.roots.drop_builds()
        nix.collect_garbage()

    def run(
        self,
        limit: int,
        *,
        rollback_to_start: bool = False,
        dry_run: bool = False,
        plain_first: bool = False,
        **plan_options: Any,
    ) -> ApplyResult:
        """Plan and run (or resume) the upgrade; with `dry_run`, plan and stop. With
        `plain_first`, try the plain one-step upgrade before the staged plan, which takes
        over only when the disk fills."""
        check_state_dir(self.state)
        with ProfileLock(self.state, self.profile):
            return self._run(limit, rollback_to_start, dry_run, plain_first, plan_options)

    def _run(
        self,
        limit: int,
        rollback_to_start: bool,
        dry_run: bool,
        plain_first: bool,
        plan_options: dict[str, Any],
    ) -> ApplyResult:
        journal = Journal.load(self.state / "journal.json")
        current = host.realpath(self.profile)
        if journal is not None and journal.status is RunStatus.RUNNING:
            if self._resumable(journal, current, limit):
                done = journal.paths.index(current)
                if self._awaiting_reboot(current):
                    return self._result(journal, ApplyStatus.REBOOT)
                if dry_run:
                    self.progress(f"an interrupted run would resume after step {done}")
                    return replace(self._result(journal, ApplyStatus.PLANNED), resume_after=done)
                resume = Deletions(
                    str(self.profile),
                    journal.start_generation,
                    journal.paths[0] or "",
                    0,
                    journal.steps,
                    None,
                    resuming=True,
                )
                if not self.confirm(resume):
                    raise DeclinedError("not confirmed; nothing was changed")
                self.progress("resuming the interrupted plan")
                self._forget_replaced(journal)
                if done >= 1:
                    # Step 1 is done: what was kept for it may go (a crash came between
                    # its switch and its collection).
                    self.roots.drop_keeps(prefix="first-")
                self._cleanup()
                return self._execute(journal, done, rollback_to_start)
            log.warning("the journal does not match the profile any more; planning afresh")
        if not dry_run:
            self.builder.prepare()
        try:
            planned = plan_apply(
                self.builder, self.roots, limit, progress=self.progress, **plan_options
            )
        except BaseException:
            self.roots.drop_keeps()
            raise
        result = planned.result
        if result.plan is None or planned.checked is None:
            self.roots.drop_keeps()
            raise InfeasibleError(result)
        self.show_plan(result)
        if not result.plan.steps:
            # The profile is the target already: nothing to build, and nothing is deleted.
            self.roots.drop_keeps()
            status = ApplyStatus.PLANNED if dry_run else ApplyStatus.DONE
            return ApplyResult(status, result.to_json(), [], _calibration_json(planned.calibration))
        if dry_run:
            self.roots.drop_keeps()
            start = nix.current_generation(self.profile)
            return ApplyResult(
                ApplyStatus.PLANNED,
                result.to_json(),
                [],
                _calibration_json(planned.calibration),
                would_delete=[start] if start is not None else [],
                garbage_bytes=planned.garbage_bytes,
            )
        self._target = planned.target.path
        plan = result.plan
        rollback = None
        if self.keep_rollback:
            kept = _kept_bytes(planned.problem, plan.generations[-2], plan.generations[-1])
            rollback = int(planned.calibration.ratio * kept)
        deletions = Deletions(
            str(self.profile),
            nix.current_generation(self.profile),
            current,
            planned.garbage_bytes,
            len(plan.steps),
            rollback,
        )
        if not self.confirm(deletions):
            self.roots.drop_keeps()
            raise DeclinedError("not confirmed; nothing was changed")
        if plain_first:
            plain = self._plain(planned)
            if plain is not None:
                return plain
        journal = self._start(planned, current, limit)
        staged = self._execute(journal, 0, rollback_to_start)
        return replace(staged, plain="out of space") if plain_first else staged

    def _plain(self, planned: Planned) -> ApplyResult | None:
        """The plain upgrade: the target built or fetched whole, then switched to. None
        when the disk filled (what the attempt left is collected first); any other
        failure stops the run."""
        self.progress("collecting garbage")
        self.roots.drop_drvs()
        self._cleanup()
        target = planned.target
        root = self.roots.build("plain")
        self.progress("trying the plain upgrade first")
        with PeakSampler(self.store_dir) as sampler:
            try:
                path = self._built_there(target.path, target.drv, root) or nix.realise_path(
                    target.path, root=root, substituters=self.builder.substituters
                )
            except NixError as e:
                if "No space left on device" not in str(e):
                    raise ApplyError(f"the plain upgrade failed: {e}") from e
                self.progress("the plain upgrade ran out of space: going step by step")
                log.info("plain upgrade out of space: %s", e)
                self._cleanup()
                return None
            before = nix.current_generation(self.profile)
            self.builder.activate(path)
            after = nix.current_generation(self.profile)
            if before is not None and after != before and not self.keep_rollback:
                nix.delete_generations(self.profile, [before])
            self.roots.drop_keeps()
            self._cleanup()
        final = host.realpath(self.profile)
        if final != target.path:
            raise ApplyError(f"the profile ended at {final}, not at the target {target.path}")
        single = one_step(build_instance(planned.problem))
        doc = planned.result.to_json() | {
            "steps": [single.steps[0].to_json()],
            "peak_bytes": single.peak_bytes,
        }
        calibration = planned.calibration
        record = StepRecord(
            1, path, single.peak_bytes, calibration.to_real(single.peak_bytes), sampler.peak
        )
        return ApplyResult(
            ApplyStatus.DONE, doc, [record], _calibration_json(calibration), plain="done"
        )

    def _start(self, planned: Planned, current: str, limit: int) -> Journal:
        """Collect garbage (keeping what step 1 needs and has on disk), write the journal."""
        plan = planned.result.plan
        assert plan is not None and planned.checked is not None
        self._keep_first_step(planned.problem, plan)
        self.progress("collecting garbage")
        self.roots.drop_drvs()
        self._cleanup()
        gens = plan.generations
        drvs = planned.drvs
        specs: list[dict[str, Any]] = [
            {
                "path": current,
                "drv": self.roots.keep_drv("start", drvs.get("start")),
                # How to build the start again when no cache has it (a walk back).
                "rebuild": self.builder.describe(planned.problem, gens[0]),
            },
            *(self.builder.describe(planned.problem, g) for g in gens[1:-1]),
            {"path": planned.target.path, "drv": self.roots.keep_drv("target", drvs.get("target"))},
        ]
        calibration = planned.calibration
        journal = Journal(
            profile=str(self.profile),
            target=self.builder.identity(),
            budget=limit,
            status=RunStatus.RUNNING,
            start_generation=nix.current_generation(self.profile),
            newest_generation=max(nix.generations(self.profile), default=0),
            paths=[current] + [None] * (len(gens) - 2) + [planned.target.path],
            specs=specs,
            summaries=[s.summary() for s in plan.steps],
            plan=planned.result.to_json(),
            model_peaks=[s.peak_bytes for s in plan.steps],
            arriving=list(planned.checked.arriving),
            calibration=CalibrationRecord(
                calibration.ratio, calibration.other, calibration.tolerance
            ),
            measured=[None] * len(plan.steps),
            path=self.state / "journal.json",
        )
        journal.save()
        return journal

    def _keep_first_step(self, problem: Problem, plan: Plan) -> None:
        """Root what the first step needs and a failed run left on disk: it stays for the
        step instead of being collected and fetched again. The model counts it in that
        step already, so keeping it from the start costs no budget."""
        wanted = _closure_of(problem, plan.generations[1])
        present = host.existing(sorted(wanted - set(problem.old)))
        for i, path in enumerate(present):
            self.roots.keep(f"first-{i}", path)
        if present:
            log.info("keeping %d paths the first step needs", len(present))

    def _resumable(self, journal: Journal, current: str, limit: int) -> bool:
        """The journal is this profile's, for this target and budget, the profile is on
        its plan, and its last generation is the target the command line names."""
        if journal.profile != str(self.profile) or current not in journal.paths:
            return False
        if journal.target != self.builder.identity() or journal.budget != limit:
            return False
        for path in journal.paths:
            if path is not None and not nix.is_store_path(path):
                raise ApplyError(
                    f"{journal.path}: names {path!r}, not a store path of {self.store_dir}; "
                    f"remove it to plan afresh"
                )
        self._target = self._target_path(current)
        if journal.paths[-1] != self._target:
            raise ApplyError(
                f"{journal.path}: its last generation {journal.paths[-1]} is not the target "
                f"{self._target}; remove it to plan afresh"
            )
        return True

    def _target_path(self, current: str) -> str:
        """The top-level path of the target the command line names, found again (not
        taken from the journal): cheaply for a store path or a derivation here, else as
        planning reads it."""
        identity = self.builder.identity()
        # The target is named here, where it was evaluated, whatever host the run changes.
        with nix.on_host(None):
            if identity.startswith("/") and not identity.endswith(".drv"):
                resolved = nix.resolve_store_path(identity)
                if resolved is not None and nix.is_store_path(os.path.realpath(identity)):
                    return resolved
            if nix.is_store_path(identity) and identity.endswith(".drv"):
                if not nix.invalid_paths([identity]):
                    return nix.query_outputs(identity)[0]
        old = nix.live_closure(current, source=host.named(current))
        return self.builder.target(old).path

    def _awaiting_reboot(self, current: str) -> bool:
        booted = self.builder.booted()
        return self.builder.reboots and booted is not None and booted != current

    def _execute(self, journal: Journal, done: int, rollback_to_start: bool) -> ApplyResult:
        steps = journal.steps
        for k in range(done + 1, steps + 1):
            journal.update(step=k, phase=Phase.BUILD)
            try:
                measured = self._step(journal, k)
            except ConnectionLostError as e:
                # Not a failed step: the journal on the host stays as it is (running), and
                # the next run resumes from wherever the host stands.
                raise ApplyError(
                    f"step {k} of {journal.steps}: lost the connection to {host.remote()} ({e}); "
                    "run the same command again to resume"
                ) from e
            except (BudgetSolveError, OSError) as e:
                self._fail(journal, k, e, rollback_to_start)
            journal.measured[k - 1] = measured
            journal.update(measured=journal.measured)
            if k < steps and self.builder.reboots:
                return self._result(journal, ApplyStatus.REBOOT)
        final = host.realpath(self.profile)
        if final != self._target:
            journal.update(status=RunStatus.FAILED, error=f"ended at {final}")
            raise ApplyError(f"the profile ended at {final}, not at the target {self._target}")
        journal.update(status=RunStatus.DONE)
        self.roots.drop_drvs()
        self.roots.drop_keeps()
        return self._result(journal, ApplyStatus.DONE)

    def _fail(
        self, journal: Journal, k: int, e: BaseException, rollback_to_start: bool
    ) -> NoReturn:
        """Record a failed step and raise. What it fetched stays on disk (no collection):
        a rerun roots what its first step needs before it collects."""
        message = str(e)
        if isinstance(e, OSError) and e.strerror:
            message = f"{e.strerror}: {e.filename}" if e.filename else e.strerror
        journal.update(status=RunStatus.FAILED, failed_step=k, error=message)
        self.roots.drop_builds()
        good = host.realpath(self.profile)
        if rollback_to_start:
            self._cleanup()
            try:
                self._roll_back(journal, k - 1)
            except (BudgetSolveError, OSError) as back:
                now = host.realpath(self.profile)
                raise ApplyError(
                    f"step {k} of {journal.steps} failed: {message}; walking back failed too: "
                    f"{back}; the profile points at {now}"
                ) from back
            journal.update(status=RunStatus.ROLLED_BACK)
            raise ApplyError(
                f"step {k} of {journal.steps} failed: {message}; rolled back to the starting system"
            ) from e
        raise ApplyError(
            f"step {k} of {journal.steps} failed: {message}; the profile still points at {good}"
        ) from e

    def _result(self, journal: Journal, status: ApplyStatus) -> ApplyResult:
        c = journal.calibration
        calibration = Calibration(c.ratio, c.other_bytes, c.tolerance_bytes)
        records = [
            StepRecord(
                i + 1,
                journal.paths[i + 1] or "",
                peak,
                calibration.to_real(peak),
                journal.measured[i],
            )
            for i, peak in enumerate(journal.model_peaks)
        ]
        return ApplyResult(status, journal.plan, records, _calibration_json(calibration))

    def _owned(self, journal: Journal) -> set[int]:
        """Generations this run may delete, as the profile shows them: the start, which
        the plan replaces, while it points at the start system; and the ones it created,
        newer than every generation at the start and pointing at a generation of the plan.
        A generation that points elsewhere is someone else's, whatever the journal says."""
        owned = set()
        planned = {p for p in journal.paths[1:] if p is not None}
        for number, path in nix.generations(self.profile).items():
            system = host.realpath(path)
            if number == journal.start_generation and system == journal.paths[0]:
                owned.add(number)
            elif number > journal.newest_generation and system in planned:
                owned.add(number)
        return owned

    def _forget_replaced(self, journal: Journal) -> None:
        """Delete generations of this run that a crash kept from being deleted (with
        `keep_rollback`, the newest one before a current target stays)."""
        current = nix.current_generation(self.profile)
        owned = self._owned(journal)
        stale = [n for n in nix.generations(self.profile) if n != current and n in owned]
        if self.keep_rollback and host.realpath(self.profile) == journal.paths[-1] and stale:
            stale.remove(max(stale))
        nix.delete_generations(self.profile, stale)

    def _switch(self, journal: Journal, path: str) -> None:
        before = nix.current_generation(self.profile)
        self.builder.activate(path)
        after = nix.current_generation(self.profile)
        if self.keep_rollback and path == journal.paths[-1]:
            return  # the generation before the target is the rollback
        if before is not None and before != after and before in self._owned(journal):
            nix.delete_generations(self.profile, [before])

    def _build(self, journal: Journal, i: int, root: str) -> str:
        """Generation i on disk: the start or the target fetched, or an intermediate built."""
        spec = journal.specs[i]
        if "path" not in spec:
            nix.ship(spec.get("entries", []))
            return self.builder.build(spec, f"budget-solve-generation-{i}", self.roots.build(root))
        path: str = spec["path"]
        built = self._built_there(path, spec.get("drv"), self.roots.build(root))
        if built is not None:
            return built
        subs = self.builder.substituters
        try:
            return nix.realise_path(path, root=self.roots.build(root), substituters=subs)
        except NixError:
            rebuild = spec.get("rebuild")
            if not isinstance(rebuild, dict):
                raise
            # Gone from the store and from every cache: the same packages, built again
            # (on NixOS, the old ones from --old-nixpkgs), with glue of their own.
            self.progress(f"generation {i} is in no cache: building it again")
            name = f"budget-solve-generation-{i}"
            return self.builder.build(rebuild, name, self.roots.build(root))

    def _built_there(self, path: str, drv: str | None, root: Path) -> str | None:
        """`path` built from `drv`, rooted at `root`, when the host lacks it and has the
        derivation (a NixOS system's glue is in no cache); None when it is to be fetched.
        On another host, what this machine has of both goes there first."""
        nix.ship([path])
        if not drv:
            return None
        nix.ship([drv], derivation=True)
        if nix.invalid_paths([path]) and not nix.invalid_paths([drv]):
            if path not in nix.query_outputs(drv):
                # Never build what does not give the generation asked for.
                raise ApplyError(f"{drv} does not build {path}; refusing to build it")
            return self.builder.realise(drv, root)
        return None

    def _step(self, journal: Journal, k: int) -> int:
        steps = journal.steps
        c = journal.calibration
        calibration = Calibration(c.ratio, c.other_bytes, c.tolerance_bytes)
        budget = calibration.to_real(journal.model_peaks[k - 1])
        arriving = journal.arriving[k - 1]
        what = journal.summaries[k - 1]
        self.progress(f"step {k}/{steps}: {what}; {format_size(arriving)} to fetch or build")

        def show(used: int) -> None:
            self.detail(f"store {format_size(used)} of {format_size(budget)} predicted")

        with PeakSampler(self.store_dir, on_sample=show) as sampler:
            path = self._build(journal, k, f"step-{k}")
            journal.paths[k] = path
            journal.update(paths=journal.paths, phase=Phase.SWITCH)
            self.progress(f"step {k}/{steps}: switching to the new generation")
            self._switch(journal, path)
            journal.update(phase=Phase.COLLECT)
            self.progress(f"step {k}/{steps}: collecting garbage")
            if k == 1:
                self.roots.drop_keeps(prefix="first-")
            self._cleanup()
        journal.update(phase=Phase.DONE)
        return sampler.peak

    def _roll_back(self, journal: Journal, last_good: int) -> None:
        """Walk back generation by generation to the starting system, as the user asked.

        When the failed step had switched already (its activation failed), the last good
        generation comes first: it is still on disk, and leaving the failed one frees room.
        """
        if host.realpath(self.profile) != journal.paths[last_good]:
            self.progress(f"switching back to generation {last_good}")
            self._switch(journal, self._build(journal, last_good, f"back-{last_good}"))
            self._cleanup()
        for i in range(last_good - 1, -1, -1):
            self.progress(f"rolling back to generation {i}")
            self._switch(journal, self._build(journal, i, f"back-{i}"))
            self._cleanup()


def _closure_of(problem: Problem, gen: Generation) -> set[str]:
    entries = generation_entries(problem, gen)
    paths = problem.new.reachable([p for p in entries if p in problem.new])
    return paths | problem.old.reachable([p for p in entries if p in problem.old])


def _kept_bytes(problem: Problem, previous: Generation, last: Generation) -> int:
    """NAR bytes that keeping `previous` beside `last` leaves on disk after the run."""
    extra = _closure_of(problem, previous) - _closure_of(problem, last)
    return sum((problem.old[p] if p in problem.old else problem.new[p]).nar_size for p in extra)


def _calibration_json(c: Calibration) -> dict[str, Any]:
    return {"ratio": c.ratio, "other_bytes": c.other, "tolerance_bytes": c.tolerance}
