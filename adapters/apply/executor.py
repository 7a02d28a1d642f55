"""`budget-solve apply`: run a plan's generations one by one on a Nix profile.

The order of a run, so that nothing is deleted before the plan is known and shown:
take the profile's lock, read the current system and the target and root the target,
plan (garbage still on disk is measured and not counted), show the plan (`--dry-run`
stops here), then collect garbage and run the steps. Each step builds a generation, makes
it current, deletes the one it replaced and collects garbage. Only the start generation
and generations this run created are ever deleted, and both are recognised on the profile
itself, not taken from the journal's word (operations.py: `Operations.owned`). The
journal names the plan and the step, so a rerun after a crash or a power cut resumes
(resume.py); a run ends well only where the command line's target is current.
"""

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import NoReturn

from adapters.apply.builder import ApplyError, Builder
from adapters.apply.journal import (
    Journal,
    Phase,
    RunStatus,
    check_state_dir,
    profile_lock,
    state_dir_for,
)
from adapters.apply.measure import PeakSampler
from adapters.apply.operations import Operations, closure_of, end_spec, kept_bytes
from adapters.apply.plain import plain_upgrade
from adapters.apply.planning import InfeasibleError, Planned, PlanOptions, plan_apply
from adapters.apply.results import (
    ApplyResult,
    ApplyStatus,
    DeclinedError,
    Deletions,
    PlainOutcome,
    StepRecord,
)
from adapters.apply.resume import awaiting_reboot, forget_replaced, resumable
from adapters.apply.reviewed import Reviewed, systems_document
from adapters.nixstore import profiles
from solver.diff import Diff, step_diffs
from solver.errors import BudgetSolveError, ConnectionLostError
from solver.instance import Problem
from solver.plan import Plan, PlanDocument
from solver.progress import Progress, quiet
from solver.search import Result
from solver.units import format_size

log = logging.getLogger(__name__)


class Executor:
    """Runs a plan on a profile through a `Builder`, journaled and locked."""

    def __init__(
        self,
        builder: Builder,
        *,
        progress: Progress = quiet,
        detail: Progress = quiet,
        show_plan: Callable[[Result, str, Sequence[Diff]], None] = lambda *_: None,
        confirm: Callable[[Deletions], bool] = lambda _: True,
        keep_rollback: bool = False,
    ) -> None:
        # A link to a profile (~/.nix-profile) gets its generations on the real profile.
        builder.profile = profiles.resolve_profile(builder.host, builder.profile)
        self.ops = Operations(
            builder,
            state_dir_for(builder.host, builder.profile),
            progress=progress,
            detail=detail,
            confirm=confirm,
            keep_rollback=keep_rollback,
        )
        self.show_plan = show_plan
        # The target the command line names, once known: the run is done only there.
        self._target: str | None = None

    def run(
        self,
        limit: int,
        *,
        rollback_to_start: bool = False,
        dry_run: bool = False,
        plain_first: bool = False,
        reserve: int = 0,
        non_vital: Sequence[str] = (),
        time_limit: float = 60.0,
        workers: int | None = None,
        reviewed: Reviewed | None = None,
    ) -> ApplyResult:
        """Plan and run (or resume) the upgrade; with `dry_run`, plan and stop. With
        `plain_first`, try the plain one-step upgrade before the staged plan, which takes
        over only when the disk fills. With `reviewed`, that plan is run instead of a new
        one, if it still matches (adapters/apply/reviewed.py)."""
        ops = self.ops
        check_state_dir(ops.host, ops.state)
        options = PlanOptions(reserve, tuple(non_vital), time_limit, workers, reviewed)
        with profile_lock(ops.host, ops.state, ops.profile):
            journal = Journal.load(ops.host, ops.state / "journal.json")
            current = ops.current()
            if journal is not None and journal.status is RunStatus.RUNNING:
                resumed = self._resume(journal, current, limit, dry_run, rollback_to_start)
                if resumed is not None:
                    return resumed
                log.warning("the journal does not match the profile any more; planning afresh")
            planned = self._plan(limit, options, dry_run)
            assert planned.result.plan is not None
            if dry_run or not planned.result.plan.steps:
                return self._planned_only(planned, dry_run, limit)
            self._confirm(planned, current)
            if plain_first:
                plain = plain_upgrade(ops, planned)
                if plain is not None:
                    return plain
            journal = self._start(planned, current, limit)
            staged = self._execute(journal, 0, rollback_to_start)
            return replace(staged, plain=PlainOutcome.OUT_OF_SPACE) if plain_first else staged

    def _resume(
        self, journal: Journal, current: str, limit: int, dry_run: bool, rollback_to_start: bool
    ) -> ApplyResult | None:
        """Resume the interrupted run `journal` records; None when it is not this one."""
        ops = self.ops
        self._target = resumable(ops, journal, current, limit)
        if self._target is None:
            return None
        done = journal.paths.index(current)
        if awaiting_reboot(ops, current):
            return self._result(journal, ApplyStatus.REBOOT)
        if dry_run:
            ops.progress(f"an interrupted run would resume after step {done}")
            return replace(self._result(journal, ApplyStatus.PLANNED), resume_after=done)
        start = journal.paths[0] or ""
        where = ops.host.named(ops.profile)
        resume = Deletions(where, journal.start_generation, start, 0, journal.steps, None, True)
        if not ops.confirm(resume):
            raise DeclinedError("not confirmed; nothing was changed")
        ops.progress("resuming the interrupted plan")
        forget_replaced(ops, journal)
        if done >= 1:
            # Step 1 is done: what was kept for it may go (a crash came between its
            # switch and its collection).
            ops.roots.drop_keeps(prefix="first-")
        ops.cleanup()
        return self._execute(journal, done, rollback_to_start)

    def _plan(self, limit: int, options: PlanOptions, dry_run: bool) -> Planned:
        """A plan that fits, shown; `InfeasibleError` when none does."""
        ops = self.ops
        if not dry_run:
            ops.builder.prepare()
        try:
            planned = plan_apply(ops.builder, ops.roots, limit, options, progress=ops.progress)
        except BaseException:
            ops.roots.drop_keeps()
            raise
        if planned.result.plan is None or planned.checked is None:
            ops.roots.drop_keeps()
            raise InfeasibleError(planned.result, calibration=planned.calibration, limit=limit)
        calibration = planned.calibration
        self.show_plan(
            calibration.in_limit_terms(planned.result, limit),
            calibration.explained(limit),
            step_diffs(planned.problem, planned.result.plan),
        )
        return planned

    def _planned_only(self, planned: Planned, dry_run: bool, limit: int) -> ApplyResult:
        """A run that changes nothing: --dry-run, or a profile at the target already."""
        ops = self.ops
        ops.roots.drop_keeps()
        doc, calibration = _document(planned), planned.calibration
        assert planned.result.plan is not None
        if not planned.result.plan.steps:
            status = ApplyStatus.PLANNED if dry_run else ApplyStatus.DONE
            return ApplyResult(status, doc, calibration)
        start = ops.current_generation()
        return ApplyResult(
            ApplyStatus.PLANNED,
            doc,
            calibration,
            would_delete=[start] if start is not None else [],
            garbage_bytes=planned.garbage_bytes,
            systems=systems_document(planned.problem.old, planned.problem.new, limit),
        )

    def _confirm(self, planned: Planned, current: str) -> None:
        """Say what the run deletes, and ask; `DeclinedError` on a no."""
        ops = self.ops
        self._target = planned.target.path
        plan = planned.result.plan
        assert plan is not None
        rollback = None
        if ops.keep_rollback:
            kept = kept_bytes(planned.problem, plan.generations[-2], plan.generations[-1])
            rollback = int(planned.calibration.ratio * kept)
        start = ops.current_generation()
        where = ops.host.named(ops.profile)
        deletions = Deletions(
            where, start, current, planned.garbage_bytes, len(plan.steps), rollback
        )
        if not ops.confirm(deletions):
            ops.roots.drop_keeps()
            raise DeclinedError("not confirmed; nothing was changed")

    def _start(self, planned: Planned, current: str, limit: int) -> Journal:
        """Collect garbage (keeping what step 1 needs and has on disk), write the journal."""
        ops = self.ops
        plan = planned.result.plan
        assert plan is not None and planned.checked is not None
        self._keep_first_step(planned.problem, plan)
        ops.progress("collecting garbage")
        ops.roots.drop_drvs()
        ops.cleanup()
        gens = plan.generations
        drvs = planned.drvs
        problem, builder = planned.problem, ops.builder
        specs: list[Mapping[str, object]] = [
            # How to build the start again when no cache has it (a walk back).
            end_spec(
                current,
                ops.roots.keep_drv("start", drvs.get("start")),
                builder.describe(problem, gens[0]),
            ),
            *(builder.describe(problem, g) for g in gens[1:-1]),
            end_spec(planned.target.path, ops.roots.keep_drv("target", drvs.get("target"))),
        ]
        journal = Journal(
            profile=str(ops.profile),
            target=ops.builder.identity(),
            budget=limit,
            status=RunStatus.RUNNING,
            start_generation=ops.current_generation(),
            newest_generation=max(profiles.generations(ops.host, ops.profile), default=0),
            paths=[current] + [None] * (len(gens) - 2) + [planned.target.path],
            specs=specs,
            summaries=[s.summary() for s in plan.steps],
            plan=_document(planned),
            model_peaks=[s.peak_bytes for s in plan.steps],
            arriving=list(planned.checked.arriving),
            calibration=planned.calibration,
            measured=[None] * len(plan.steps),
            path=ops.state / "journal.json",
            host=ops.host,
        )
        journal.save()
        return journal

    def _keep_first_step(self, problem: Problem, plan: Plan) -> None:
        """Root what the first step needs and a failed run left on disk: it stays for the
        step instead of being collected and fetched again. The model counts it in that
        step already, so keeping it from the start costs no budget."""
        wanted = closure_of(problem, plan.generations[1])
        present = self.ops.host.existing(sorted(wanted - set(problem.old)))
        for i, path in enumerate(present):
            self.ops.roots.keep(f"first-{i}", path)
        if present:
            log.info("keeping %d paths the first step needs", len(present))

    def _execute(self, journal: Journal, done: int, rollback_to_start: bool) -> ApplyResult:
        ops = self.ops
        steps = journal.steps
        for k in range(done + 1, steps + 1):
            journal.update(step=k, phase=Phase.BUILD)
            try:
                measured = self._step(journal, k)
            except ConnectionLostError as e:
                # Not a failed step: the journal on the host stays as it is (running), and
                # the next run resumes from wherever the host stands.
                raise ApplyError(
                    f"step {k} of {journal.steps}: lost the connection to {ops.host.address} "
                    f"({e}); run the same command again to resume",
                    step=k,
                ) from e
            except (BudgetSolveError, OSError) as e:
                self._fail(journal, k, e, rollback_to_start)
            journal.measured[k - 1] = measured
            journal.update(measured=journal.measured)
            if k < steps and ops.builder.reboots:
                return self._result(journal, ApplyStatus.REBOOT)
        final = ops.current()
        if final != self._target:
            journal.update(status=RunStatus.FAILED, error=f"ended at {final}")
            raise ApplyError(f"the profile ended at {final}, not at the target {self._target}")
        journal.update(status=RunStatus.DONE)
        ops.roots.drop_drvs()
        ops.roots.drop_keeps()
        return self._result(journal, ApplyStatus.DONE)

    def _fail(
        self, journal: Journal, k: int, e: BaseException, rollback_to_start: bool
    ) -> NoReturn:
        """Record a failed step and raise. What it fetched stays on disk (no collection):
        a rerun roots what its first step needs before it collects."""
        ops = self.ops
        message = str(e)
        if isinstance(e, OSError) and e.strerror:
            message = f"{e.strerror}: {e.filename}" if e.filename else e.strerror
        journal.update(status=RunStatus.FAILED, failed_step=k, error=message)
        ops.roots.drop_builds()
        good = ops.current()
        failed = f"step {k} of {journal.steps} failed: {message}"
        if not rollback_to_start:
            raise ApplyError(f"{failed}; the profile still points at {good}", step=k) from e
        ops.cleanup()
        try:
            self._roll_back(journal, k - 1)
        except (BudgetSolveError, OSError) as back:
            now = ops.current()
            raise ApplyError(
                f"{failed}; walking back failed too: {back}; the profile points at {now}",
                step=k,
            ) from back
        journal.update(status=RunStatus.ROLLED_BACK)
        raise ApplyError(f"{failed}; rolled back to the starting system", step=k) from e

    def _result(self, journal: Journal, status: ApplyStatus) -> ApplyResult:
        calibration = journal.calibration
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
        return ApplyResult(status, journal.plan, calibration, records)

    def _step(self, journal: Journal, k: int) -> int:
        ops = self.ops
        steps = journal.steps
        budget = journal.calibration.to_real(journal.model_peaks[k - 1])
        arriving = journal.arriving[k - 1]
        what = journal.summaries[k - 1]
        ops.progress(f"step {k}/{steps}: {what}; {format_size(arriving)} to fetch or build")

        def show(used: int) -> None:
            ops.detail(f"store {format_size(used)} of {format_size(budget)} predicted")

        with PeakSampler(ops.host, ops.host.store_dir(), on_sample=show) as sampler:
            path = ops.build(journal, k, f"step-{k}")
            journal.paths[k] = path
            journal.update(paths=journal.paths, phase=Phase.SWITCH)
            ops.progress(f"step {k}/{steps}: switching to the new generation")
            ops.switch(journal, path)
            journal.update(phase=Phase.COLLECT)
            ops.progress(f"step {k}/{steps}: collecting garbage")
            if k == 1:
                ops.roots.drop_keeps(prefix="first-")
            ops.cleanup()
        journal.update(phase=Phase.DONE)
        return sampler.peak

    def _roll_back(self, journal: Journal, last_good: int) -> None:
        """Walk back generation by generation to the starting system, as the user asked.

        When the failed step had switched already (its activation failed), the last good
        generation comes first: it is still on disk, and leaving the failed one frees room.
        """
        ops = self.ops
        if ops.current() != journal.paths[last_good]:
            ops.progress(f"switching back to generation {last_good}")
            ops.switch(journal, ops.build(journal, last_good, f"back-{last_good}"))
            ops.cleanup()
        for i in range(last_good - 1, -1, -1):
            ops.progress(f"rolling back to generation {i}")
            ops.switch(journal, ops.build(journal, i, f"back-{i}"))
            ops.cleanup()


def _document(planned: Planned) -> PlanDocument:
    """The plan's JSON document, each step with every package it changes."""
    doc = planned.result.to_json()
    if planned.result.plan is not None:
        diffs = step_diffs(planned.problem, planned.result.plan)
        for step, diff in zip(doc["steps"], diffs, strict=True):
            step["diff"] = diff.to_json()
    return doc
