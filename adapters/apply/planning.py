"""Planning an apply run: read the current system and the target (rooting the target at
once), count what stays pinned, calibrate NAR sizes against the disk, and plan. Nothing
is deleted here.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

from adapters.apply.builder import ApplyError, Builder, Target
from adapters.apply.measure import Calibration
from adapters.apply.reviewed import Reviewed
from adapters.apply.roots import Roots
from adapters.nixstore import builds, nix
from adapters.nixstore.host import Host
from adapters.nixstore.loading import live_pinned
from adapters.nixstore.sources import read_source
from solver.closure import Closure, merge
from solver.errors import BudgetSolveError, ExitCode, InputError
from solver.instance import Problem, build_instance
from solver.plan import evaluate
from solver.progress import Progress, quiet
from solver.search import Result, Status, check, plan_upgrade, replayed
from solver.units import Rounding, format_apart, format_size
from solver.validate import Checked

log = logging.getLogger(__name__)


class InfeasibleError(BudgetSolveError):
    """No plan fits the budget (or none was found in time). `hint`: what would free room,
    said after the budget that would do. With the run's `calibration`, budgets are said
    in the terms of --limit (`limit`): the filesystem's used bytes, not the store's NAR
    bytes the planner counts."""

    exit_code = ExitCode.NO_PLAN

    def __init__(
        self,
        result: Result,
        hint: str = "",
        *,
        calibration: Calibration | None = None,
        limit: int | None = None,
    ) -> None:
        self.result, self.hint, self.calibration, self.limit = result, hint, calibration, limit
        shown = result
        if calibration is not None and limit is not None:
            shown = calibration.in_limit_terms(result, limit)
        budget, need = format_apart(
            (shown.budget, Rounding.NEAREST), (shown.min_feasible_budget or 0, Rounding.UP)
        )
        name = "--limit" if calibration is not None else "budget"
        if result.status is Status.INFEASIBLE:
            said = f"no plan fits {name} {budget}"
        else:
            said = f"no plan found under {name} {budget} within the time limit"
        if calibration is not None and limit is not None:
            store = format_size(result.budget, decimals=2)
            said += (
                f" (the store may use {store} of it: {format_size(calibration.other)} of "
                f"other files, {format_size(calibration.tolerance)} for Nix's own)"
            )
        super().__init__(f"{said}; a {name} of {need} would{hint}")

    def with_hint(self, hint: str) -> "InfeasibleError":
        return InfeasibleError(self.result, hint, calibration=self.calibration, limit=self.limit)


@dataclass(frozen=True)
class Planned:
    """A plan for this profile and target, and what it was made from."""

    problem: Problem
    target: Target
    result: Result
    calibration: Calibration
    checked: Checked | None
    # The start's and the target's derivations that the run keeps (see `_derivations`).
    drvs: dict[str, str]
    # On disk now and collected before the first step (real bytes).
    garbage_bytes: int = 0


def _read_target(builder: Builder, roots: Roots, old: Closure, progress: Progress) -> Target:
    """The target, rooted at once so that no collection deletes it while we plan."""
    progress("reading the target's closure")
    # The target is evaluated and read here, whatever host the run changes.
    target = builder.target(old)
    if not nix.invalid_paths(builder.host, [target.path]):
        roots.keep("target", target.path)
    if target.drv is not None and not nix.invalid_paths(builder.host, [target.drv]):
        roots.keep("target.drv", target.drv)
    return target


@dataclass(frozen=True)
class PlanOptions:
    """What the command line says about planning: space kept free, packages that may be
    absent for a while, and the planner's time limit and workers."""

    reserve: int = 0
    non_vital: Sequence[str] = ()
    time_limit: float = 60.0
    workers: int | None = None
    # `apply --plan FILE`: this plan, checked and replayed, instead of planning.
    reviewed: Reviewed | None = None


def plan_apply(
    builder: Builder,
    roots: Roots,
    limit: int,
    options: PlanOptions,
    *,
    progress: Progress = quiet,
) -> Planned:
    """Plan under `limit` real bytes from what is on disk now; deletes nothing."""
    reserve, time_limit, workers = options.reserve, options.time_limit, options.workers
    host, profile = builder.host, builder.profile
    current = host.realpath(profile)
    if host.address is None:
        old = read_source(current)
    else:
        old = nix.live_closure(host, current, source=host.named(profile))
    target = _read_target(builder, roots, old, progress)
    if options.reviewed is not None:
        options.reviewed.check_systems(old, target.closure)
    # Every GC root counts, except the link of the generation the plan replaces, the
    # links the builder moves itself, and our temporary build roots.
    replaced = []
    if host.is_symlink(profile):
        replaced.append(str(profile.parent / host.readlink(profile)))
    pinned = live_pinned(
        host,
        old,
        target.closure,
        ignore_links=[*replaced, *builder.moved_roots()],
        ignore_under=roots.temporary(),
    )
    if target.drv is not None:
        # A NixOS system evaluated here: the host gets its derivation now, to build the
        # target's glue in the last step; it is counted with the other roots.
        builds.ship(host, [target.drv], builder.flags, derivation=True)
    drvs = _derivations(host, old, target)
    held = [p for p in builder.pinned() if p != target.path]
    extra = []
    if held:
        extra.append(
            Closure(nix.path_info(host, held, recursive=True), held, source="booted system")
        )
    if drvs:
        extra.append(nix.derivation_closure(host, drvs.values()))
    for part in extra:
        pinned = merge([pinned, part]) if pinned is not None else part
    non_vital = sorted({*options.non_vital, *builder.non_vital()})
    problem = Problem.of(old, target.closure, non_vital=non_vital, pinned=pinned, reserve=reserve)
    inst = build_instance(problem)
    on_disk = merge([old, pinned]) if pinned is not None else old
    # Garbage on disk now is collected before the first step: it is no part of the
    # budget's "other" bytes.
    garbage = host.disk_usage(nix.dead_paths(host))
    store = host.store_dir()
    calibration = Calibration.measure(host, store, on_disk, on_disk.size(), garbage_bytes=garbage)
    budget = calibration.to_model(limit)
    if budget <= 0:
        raise InputError(
            f"--limit {format_size(limit)} leaves nothing for the store: it counts the whole "
            f"filesystem of {host.named(store)}, which holds {format_size(calibration.other)} "
            f"besides the store, and Nix needs {format_size(calibration.tolerance)} of "
            "working room"
        )
    if options.reviewed is not None:
        progress(f"checking {options.reviewed.file} under {format_size(limit)}")
        result = replayed(inst, budget, options.reviewed.plan(inst, budget))
    else:
        progress(f"planning under {format_size(limit)} ({format_size(budget)} of NAR)")
        result = plan_upgrade(
            inst, budget, time_limit=time_limit, workers=workers, progress=progress
        )
    if result.plan is not None:
        gens = builder.adjust(problem, result.plan.generations)
        if gens != list(result.plan.generations):
            adjusted = evaluate(inst, gens)
            log.info("plan adjusted to what the builder can build: %d steps", len(adjusted))
            if adjusted.peak_bytes > budget:
                raise ApplyError(
                    f"the plan needs {format_size(adjusted.peak_bytes)} once additions and "
                    f"removals happen in the first step (a NixOS configuration cannot hold "
                    f"them back), over the budget of {format_size(budget)}"
                )
            if options.reviewed is not None:
                raise InputError(
                    f"--plan {options.reviewed.file} adds or removes packages after the "
                    "first step, which a NixOS configuration cannot hold back: plan with "
                    "`apply --dry-run --json` instead"
                )
            result = replace(result, plan=adjusted)
    checked = check(problem, result, budget)
    return Planned(problem, target, result, calibration, checked, drvs, garbage)


def _derivations(host: Host, old: Closure, target: Target) -> dict[str, str]:
    """The start's and the target's derivations, where keeping them pins no package.

    They let a walk back rebuild the start, and the last step build the target's glue.
    A derivation whose closure holds packages of either system (one built with
    `builtins.storePath`, say) would keep those on disk throughout, so it is not kept;
    the others are build recipes and sources, and are counted as pinned.
    """
    wanted = {"start": old[old.roots[0]].deriver, "target": target.drv}
    out = {}
    for name, drv in wanted.items():
        if drv is None or nix.invalid_paths(host, [drv]):
            continue
        paths = set(nix.derivation_closure(host, [drv]))
        if not any(p in old or p in target.closure for p in paths):
            out[name] = drv
    return out
