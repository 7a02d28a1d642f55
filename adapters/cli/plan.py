"""`budget-solve plan` (the default command): plan an upgrade under a disk budget."""

import io
import json
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Self, TypedDict

import click

from adapters.apply.nixos import StepConfig, instantiate_system, tagged_non_vital
from adapters.apply.nixos_inputs import Flake, split_include
from adapters.apply.reviewed import SystemsDocument, systems_document
from adapters.cli.apply_options import NixOptions, nix_options
from adapters.cli.options import (
    NON_VITAL_OPTION,
    QUIET_OPTION,
    RESERVE_OPTION,
    SRC_HELP,
    TIME_LIMIT_OPTION,
    WORKERS_OPTION,
    Finite,
    Host,
    LimitOrAuto,
    check_reserve,
    couples,
    filesystem_limit,
    over_the_disk,
)
from adapters.cli.text import Spinner, bar_cells, render, render_diffs
from adapters.nixstore.builds import NixFlags
from adapters.nixstore.estimate import SizingReport, sizing_report
from adapters.nixstore.host import LOCAL
from adapters.nixstore.host import Host as Machine
from adapters.nixstore.ssh import Ssh
from solver.errors import ExitCode, InputError
from solver.plan import PlanDocument
from solver.search import PEAK_GAP, Result
from solver.units import format_size

if TYPE_CHECKING:
    from solver.diff import Diff
    from solver.instance import Problem


class PlanCommand(click.Command):
    """`plan`, which says so when given an option of `apply` (--ask, --yes, --dry-run...):
    plan changes nothing, so it takes none of them."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption as e:
            from adapters.cli.apply import apply

            if any(e.option_name in p.opts for p in apply.params):
                raise click.UsageError(
                    f"{e.option_name} is an option of `budget-solve apply`: plan changes "
                    "nothing (see budget-solve help apply)"
                ) from e
            raise


@click.command("plan", cls=PlanCommand)
@click.option(
    "--limit",
    required=True,
    type=LimitOrAuto(),
    help="Disk budget for the store: 9G, 9.5GiB, 512M, or auto (the size of the filesystem "
    "that holds the store, on --target-host when given).",
)
@click.option(
    "--current",
    default="/run/current-system",
    show_default=True,
    metavar="SRC",
    help=f"The running system: {SRC_HELP}. With --target-host, a path on that host.",
)
@click.option(
    "--target-host",
    type=Host(),
    metavar="[USER@]HOST",
    help="Plan for another machine, as nixos-rebuild names it: its current system, its GC "
    "roots and (with --limit auto) its disk are read over SSH ($NIX_SSHOPTS applies); the "
    "target is evaluated or read here. Nothing on the host changes.",
)
@click.option(
    "--target",
    metavar="SRC",
    help=f"The system to upgrade to: {SRC_HELP}; or its .drv (sized from the caches where it "
    "is not built), or a saved `nix derivation show -r` of it (any Nix version).",
)
@click.option(
    "--target-store",
    metavar="URL",
    help="Read --target (a store path) from this binary cache or store, as "
    "`nix path-info --store URL` does: https://cache.nixos.org, file:///dir.",
)
@click.option(
    "--substituter",
    multiple=True,
    metavar="URL",
    help="Binary cache to size the target from, instead of nix.conf's list (repeatable), "
    "as apply --substituter. A cache that cannot be reached is skipped and the verdict "
    "says so; what no cache has is estimated.",
)
@click.option(
    "--offline",
    is_flag=True,
    help="Ask no binary cache: what the local store does not have is estimated from the "
    "old versions (planning from a saved derivation without a network).",
)
@click.option(
    "--flake",
    metavar="FLAKE[#HOST]",
    help="Instead of --target: this NixOS configuration's flake (HOST defaults to the "
    "hostname), evaluated here and sized from the caches; nothing is built.",
)
@click.option(
    "-I",
    "include",
    multiple=True,
    metavar="NAME=PATH",
    help="Instead of --target: a classic NixOS configuration, as nixos-rebuild takes it: "
    "-I nixos-config=/etc/nixos/configuration.nix -I nixpkgs=/path/to/new/nixpkgs.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the plan as one JSON object.")
@RESERVE_OPTION
@NON_VITAL_OPTION
@click.option(
    "--couple",
    multiple=True,
    metavar="A,B,...",
    help="Components that must change in the same step. Repeatable.",
)
@click.option(
    "--keep",
    multiple=True,
    metavar="PATH",
    help="A store path that stays on disk throughout (with its closure). Repeatable.",
)
@click.option(
    "--no-gc-roots", is_flag=True, help="On a live store, do not count what other GC roots pin."
)
@TIME_LIMIT_OPTION
@click.option(
    "--peak-gap",
    type=Finite(min=0, max=100),
    default=100 * PEAK_GAP,
    show_default=True,
    metavar="PERCENT",
    help="Stop lowering the peak once it is within this many percent of the lowest peak "
    "possible in as many steps; 0 proves the lowest (may take the whole time limit).",
)
@WORKERS_OPTION
@nix_options
@QUIET_OPTION
@click.pass_context
def plan(
    ctx: click.Context,
    limit: int | str,
    current: str,
    target_host: str | None,
    target: str | None,
    target_store: str | None,
    substituter: tuple[str, ...],
    offline: bool,
    flake: str | None,
    include: tuple[str, ...],
    as_json: bool,
    reserve: int,
    non_vital: tuple[str, ...],
    couple: tuple[str, ...],
    keep: tuple[str, ...],
    no_gc_roots: bool,
    time_limit: float,
    peak_gap: float,
    workers: int | None,
    nix_option: tuple[tuple[str, str], ...],
    max_jobs: int | str | None,
    cores: int | None,
    fallback: bool,
    show_trace: bool,
    quiet: bool,
) -> None:
    """Plan an upgrade that fits a disk budget (the default command).

    Reads the current and the target system's closures (store paths, references, NAR
    sizes) and finds the fewest intermediate generations such that, while each one is
    built next to the previous one, the store never needs more than --limit bytes.
    Changes nothing. The Nix options (--option, -j, --cores, --fallback, --show-trace)
    are apply's: they go to the evaluation of --flake or -I, so that a command line runs
    as `plan` and as `apply` alike.

    \b
    Exit status: 0 a plan fits, 3 no plan fits the budget (or none was found in time),
    2 bad input, 1 Nix failed.
    \b
    Examples:
      budget-solve --limit 9G --target ./target-path-info.json
      budget-solve plan --limit 8G --current old.json --target new.json --json
      budget-solve plan --limit 9G --flake /etc/nixos
      budget-solve plan --target-host root@vps1 --limit auto --flake .#vps1
    """
    # Imported when run: --help loads no solver (CP-SAT, numpy).
    from adapters.nixstore.loading import is_live, load_problem
    from solver.diff import step_diffs
    from solver.search import plan_checked

    _check_sources(target, flake, include, offline, substituter, target_store)
    host: Machine = Ssh.parse(target_host) if target_host is not None else LOCAL
    with Spinner(enabled=not quiet) as progress, tempfile.TemporaryDirectory() as scratch:
        auto = limit == "auto"
        if auto:
            progress("measuring the disk")
            limit = filesystem_limit(host)
        assert isinstance(limit, int)
        # Before the configuration is evaluated or a closure read.
        check_reserve(limit, reserve)
        if target is None:
            progress("evaluating the configuration")
            flags = NixOptions(nix_option, max_jobs, cores, fallback, show_trace).flags()
            target, tagged = _evaluate(flake, include, Path(scratch), host, flags)
            non_vital = tuple(sorted({*non_vital, *tagged}))
        with sizing_report() as report:
            problem = load_problem(
                current,
                target,
                host=host,
                non_vital=non_vital,
                couple=couples(couple),
                keep=keep,
                reserve=reserve,
                gc_roots=not no_gc_roots,
                target_store=target_store,
                substituters=substituter,
                offline=offline,
            )
        _check_pinned(problem, limit, reserve)
        progress("building the model")
        result, _ = plan_checked(
            problem,
            limit,
            time_limit=time_limit,
            workers=workers,
            peak_gap=peak_gap / 100,
            progress=progress,
        )
    estimates = Estimates.of(problem, report)
    live = target_host is not None or is_live(current)
    notes = [*estimates.lines(), *_disk_notes(host, limit, auto, live)]
    systems = systems_document(problem.old, problem.new, limit)
    diffs = step_diffs(problem, result.plan) if result.plan is not None else ()
    _print(result, diffs, estimates, notes, systems, as_json)
    ctx.exit(ExitCode.OK if result.plan is not None else ExitCode.NO_PLAN)


def _disk_notes(host: Machine, limit: int, auto: bool, live: bool) -> list[str]:
    """Planning for a live store: what --limit means against the disk it is on. `plan`
    counts the store's NAR bytes only; `apply` counts the whole filesystem."""
    if not live:
        return []
    store = host.store_dir()
    try:
        usage = host.usage(store)
    except OSError:
        return []
    where = host.named(store)
    if auto:
        return [
            f"--limit auto: {format_size(limit)}, the size of the filesystem of {where}, "
            f"which holds {format_size(usage.used)} now; this plan counts the store's "
            "closures only, apply the whole filesystem (see README, What the budget means)"
        ]
    if limit > usage.size:
        return [f"{over_the_disk(limit, usage.size, where)}: apply refuses it"]
    return []


def _check_sources(
    target: str | None,
    flake: str | None,
    include: Sequence[str],
    offline: bool,
    substituters: Sequence[str],
    target_store: str | None,
) -> None:
    """One target, named once; no cache named when none is to be asked."""
    if target is not None and (flake or include):
        raise click.UsageError("give --target, or --flake / -I for a configuration: not both")
    if target is None and not (flake or include):
        raise click.UsageError(
            "missing --target SRC (or --flake FLAKE / -I nixos-config=PATH to evaluate a "
            "NixOS configuration)"
        )
    if offline and (substituters or target_store):
        raise click.UsageError("--offline asks no cache: no --substituter or --target-store")


def _check_pinned(problem: "Problem", limit: int, reserve: int) -> None:
    """The budget holds at least what stays on disk whatever the plan does."""
    pinned = problem.pinned.size() if problem.pinned is not None else 0
    if pinned + reserve > limit:
        raise InputError(
            f"the budget {format_size(limit)} is below what stays pinned anyway: "
            f"{format_size(pinned)} of other GC roots and --keep paths"
            + (f" plus the {format_size(reserve)} reserve" if reserve else "")
        )


class UnreachableCache(TypedDict):
    url: str
    error: str


class EstimatesDocument(TypedDict):
    """What `plan --json` adds to the plan's document: how much of the target is sized
    exactly, how much estimated, and the caches that could not be asked."""

    estimated_paths: int
    estimated_bytes: int
    target_paths: int
    target_bytes: int
    unreachable_caches: list[UnreachableCache]


class PlanOutput(PlanDocument, EstimatesDocument, SystemsDocument):
    """The object `plan --json` prints: `apply --plan` reads it back."""


@dataclass(frozen=True)
class Estimates:
    """How much of the target's size is estimated rather than known exactly, and the
    caches that could not be asked (their paths were estimated)."""

    paths: int
    bytes: int
    target_paths: int
    target_bytes: int
    unreachable: dict[str, str]

    @classmethod
    def of(cls, problem: "Problem", report: SizingReport) -> Self:
        # A path the current system has is known exactly: the planner takes its size there.
        guessed = [i for i in problem.new.infos() if i.estimated and i.path not in problem.old]
        return cls(
            len(guessed),
            sum(i.nar_size for i in guessed),
            len(problem.new),
            problem.new.size(),
            dict(report.unreachable),
        )

    def lines(self) -> list[str]:
        out = []
        if self.paths:
            noun = "path" if self.target_paths == 1 else "paths"
            out.append(
                f"estimated: {self.paths:,} of the target's {self.target_paths:,} {noun} "
                f"({format_size(self.bytes)} of {format_size(self.target_bytes)}) are in "
                "neither the local store nor a cache: their sizes are estimates"
            )
        for url, reason in self.unreachable.items():
            out.append(f"cache {url} unreachable: its paths were estimated ({reason})")
        return out

    def to_json(self) -> EstimatesDocument:
        return {
            "estimated_paths": self.paths,
            "estimated_bytes": self.bytes,
            "target_paths": self.target_paths,
            "target_bytes": self.target_bytes,
            "unreachable_caches": [
                {"url": url, "error": reason} for url, reason in self.unreachable.items()
            ],
        }


def _print(
    result: Result,
    diffs: Sequence["Diff"],
    estimates: Estimates,
    notes: Sequence[str],
    systems: SystemsDocument,
    as_json: bool,
) -> None:
    """The table of steps, every change of each step, what is estimated, and the verdict
    last; or all of it as one JSON object."""
    if as_json:
        doc: PlanOutput = {**result.to_json(), **estimates.to_json(), **systems}
        for step, diff in zip(doc["steps"], diffs, strict=True):
            step["diff"] = diff.to_json()
        click.echo(json.dumps(doc, indent=2))
        return
    text = io.StringIO()
    render(result, text, cells=bar_cells(sys.stdout))
    table, _, verdict = text.getvalue().rstrip("\n").rpartition("\n")
    changes = io.StringIO()
    render_diffs(diffs, changes)
    table += "\n" + changes.getvalue()
    sys.stdout.write("".join(f"{line}\n" for line in (table, *notes, verdict) if line))


def _evaluate(
    flake: str | None, include: Sequence[str], scratch: Path, host: Machine, flags: NixFlags
) -> tuple[str, list[str]]:
    """The top-level derivation of a NixOS configuration, rooted in `scratch` while the
    plan is made (the step module with nothing kept old: the plain new system), and the
    packages the configuration tags as non-vital (`budgetSolve.nonVital`). It is
    evaluated here; FLAKE without #HOST names the configuration of the host planned for,
    as nixos-rebuild takes it."""
    configuration, rest = split_include(include)
    if flake is None and configuration is None:
        raise click.UsageError("-I nixos-config=PATH names the configuration to evaluate")
    # Nothing is kept old, so the old nixpkgs is never read.
    step = StepConfig((), "/", configuration)
    parsed = Flake.parse(flake, host) if flake else None
    drv = instantiate_system(
        step,
        flags,
        step_file=scratch / "step.json",
        root=scratch / "target.drv",
        flake=parsed,
        include=rest,
    )
    return drv, tagged_non_vital(parsed, configuration, rest)
