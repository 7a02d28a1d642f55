"""The command line: `budget-solve --limit 9G --current SRC --target SRC [--json]`."""

import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from adapters.apply.builder import ApplyError, Builder
from adapters.apply.executor import ApplyResult, ApplyStatus, Executor, InfeasibleError
from adapters.apply.journal import state_dir_for
from adapters.apply.measure import size_bytes
from adapters.apply.nixos import (
    Activation,
    BootedSystem,
    Flake,
    NixosBuilder,
    old_nixpkgs_from_lock,
    system_profile,
)
from adapters.apply.profile import ProfileBuilder
from adapters.cli.plots import fleet_figure, save_png, scenario_figure
from adapters.cli.text import Spinner, render, render_fleet, render_scenario
from adapters.nixstore import nix
from adapters.nixstore.loading import load_problem
from adapters.studies.fleet import load as load_fleet
from adapters.studies.fleet import run as run_fleet
from adapters.studies.scenario import load as load_scenario
from adapters.studies.scenario import run as run_scenario
from solver.errors import BudgetSolveError, InputError
from solver.instance import build_instance
from solver.planner import PEAK_GAP, Result, plan_upgrade
from solver.units import format_size, parse_size
from solver.validate import validate

EXIT_OK, EXIT_FAILED, EXIT_INPUT, EXIT_INFEASIBLE, EXIT_REBOOT = 0, 1, 2, 3, 4
EXIT_INTERRUPTED = 130

SRC_HELP = (
    "a store path (read from the live store), a saved `nix path-info --json` file (any Nix "
    "version), a closure-graph or registration file, or a directory of .narinfo files"
)


class Size(click.ParamType):  # type: ignore[type-arg]
    """A byte size: 9G, 9GiB, 9.5G, 512M or plain bytes (binary units)."""

    name = "SIZE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_size(value)
        except InputError as e:
            self.fail(str(e), param, ctx)


def _couples(values: Sequence[str]) -> list[list[str]]:
    groups = []
    for value in values:
        names = [n.strip() for n in value.split(",") if n.strip()]
        if len(names) < 2:
            raise InputError(f"--couple {value!r}: name at least two components, comma-separated")
        groups.append(names)
    return groups


# Options that planning and `apply` share.
RESERVE_OPTION = click.option(
    "--reserve",
    type=Size(),
    default="0",
    show_default=True,
    help="Space kept free at every step (min-free, SQLite WAL, the reserved file).",
)
NON_VITAL_OPTION = click.option(
    "--non-vital",
    multiple=True,
    metavar="NAME",
    help="A package the plan may remove for a while and add back later. Repeatable.",
)
TIME_LIMIT_OPTION = click.option(
    "--time-limit",
    type=click.FloatRange(min=0.1),
    default=60.0,
    show_default=True,
    help="Seconds the optimiser may spend; the best plan so far is printed.",
)
WORKERS_OPTION = click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="CP-SAT worker threads [default: CPU count, at most 8].",
)
QUIET_OPTION = click.option("-q", "--quiet", is_flag=True, help="No progress messages on stderr.")


class DefaultGroup(click.Group):
    """A group whose bare form runs `plan`: `budget-solve --limit 9G ...` is
    `budget-solve plan --limit 9G ...`. Only --debug and --help belong to the group."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        first = next((i for i, a in enumerate(args) if a != "--debug"), None)
        if (
            first is not None
            and args[first] not in self.commands
            and args[first]
            not in (
                "-h",
                "--help",
            )
        ):
            args.insert(first, "plan")
        return super().parse_args(ctx, args)


@click.group(
    cls=DefaultGroup,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option("--debug", is_flag=True, help="Log what happens, and show tracebacks.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Upgrade NixOS and Nix profiles on disks too small for both systems at once.

    Plans the fewest intermediate generations whose every step fits a disk budget, and
    applies them one by one, collecting garbage in between. Without a command, `plan`:
    `budget-solve --limit 9G --target SRC` is `budget-solve plan --limit 9G --target SRC`.

    \b
    Commands: plan (the default), apply, scenario, fleet.
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING, format="%(name)s: %(message)s"
    )


@cli.command("plan")
@click.option(
    "--limit", required=True, type=Size(), help="Disk budget for the store: 9G, 9.5GiB, 512M."
)
@click.option(
    "--current",
    default="/run/current-system",
    show_default=True,
    metavar="SRC",
    help=f"The running system: {SRC_HELP}.",
)
@click.option(
    "--target", required=True, metavar="SRC", help=f"The system to upgrade to: {SRC_HELP}."
)
@click.option(
    "--target-store",
    metavar="URL",
    help="Read --target (a store path) from this binary cache or store, as "
    "`nix path-info --store URL` does: https://cache.nixos.org, file:///dir.",
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
    type=click.FloatRange(min=0, max=100),
    default=100 * PEAK_GAP,
    show_default=True,
    metavar="PERCENT",
    help="Stop lowering the peak once it is within this many percent of the lowest peak "
    "possible in as many steps; 0 proves the lowest (may take the whole time limit).",
)
@WORKERS_OPTION
@QUIET_OPTION
@click.pass_context
def plan(
    ctx: click.Context,
    limit: int,
    current: str,
    target: str,
    target_store: str | None,
    as_json: bool,
    reserve: int,
    non_vital: tuple[str, ...],
    couple: tuple[str, ...],
    keep: tuple[str, ...],
    no_gc_roots: bool,
    time_limit: float,
    peak_gap: float,
    workers: int | None,
    quiet: bool,
) -> None:
    """Plan an upgrade that fits a disk budget (the default command).

    Reads the current and the target system's closures (store paths, references, NAR
    sizes) and finds the fewest intermediate generations such that, while each one is
    built next to the previous one, the store never needs more than --limit bytes.
    Changes nothing.

    \b
    Exit status: 0 a plan fits, 3 no plan fits the budget (or none was found in time),
    2 bad input.
    \b
    Examples:
      budget-solve --limit 9G --target ./target-path-info.json
      budget-solve plan --limit 8G --current old.json --target new.json --json
    """
    with Spinner(enabled=not quiet) as progress:
        problem = load_problem(
            current,
            target,
            non_vital=non_vital,
            couple=_couples(couple),
            keep=keep,
            reserve=reserve,
            gc_roots=not no_gc_roots,
            target_store=target_store,
        )
        pinned = problem.pinned.size() if problem.pinned is not None else 0
        if pinned + reserve > limit:
            raise InputError(
                f"the budget {format_size(limit)} is below what stays pinned anyway: "
                f"{format_size(pinned)} of other GC roots and --keep paths"
                + (f" plus the {format_size(reserve)} reserve" if reserve else "")
            )
        progress("building the model")
        inst = build_instance(problem)
        result = plan_upgrade(
            inst,
            limit,
            time_limit=time_limit,
            workers=workers,
            peak_gap=peak_gap / 100,
            progress=progress,
        )
        if result.plan is not None:
            progress("validating the plan")
            validate(problem, result.plan, limit)
    _print(result, as_json)
    ctx.exit(EXIT_OK if result.plan is not None else EXIT_INFEASIBLE)


class LimitOrAuto(Size):
    """A byte size, or `auto`: the size of the filesystem that holds the store."""

    name = "SIZE|auto"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if value == "auto":
            return size_bytes(nix.store_dir())
        return super().convert(value, param, ctx)


@cli.command()
@click.option(
    "--profile",
    type=click.Path(path_type=Path),
    help="The profile link whose current generation is the running system "
    "[with --nixos: $NIX_STATE_DIR/profiles/system].",
)
@click.option(
    "--target",
    metavar="PATH",
    help="The target's top-level store path (fetched from the substituters) or its .drv.",
)
@click.option(
    "--limit",
    required=True,
    type=LimitOrAuto(),
    help="Disk budget, or `auto` for the size of the store's filesystem.",
)
@click.option(
    "--substituter",
    multiple=True,
    metavar="URL",
    help="Binary cache to size and fetch the target from [default: nix.conf].",
)
@click.option(
    "--nixos",
    is_flag=True,
    help="Upgrade the NixOS system: build each step from the new configuration with the "
    "packages not upgraded yet taken from the old nixpkgs, and activate it.",
)
@click.option("--flake", metavar="FLAKE#HOST", help="With --nixos: the new configuration's flake.")
@click.option(
    "-I",
    "include",
    multiple=True,
    metavar="NAME=PATH",
    help="With --nixos (classic): a search path entry, as for nixos-rebuild: "
    "-I nixos-config=/etc/nixos/configuration.nix -I nixpkgs=/path/to/new/nixpkgs.",
)
@click.option(
    "--old-nixpkgs",
    metavar="PATH|flake.lock",
    help="With --nixos: the nixpkgs the running system was built from: a nixpkgs tree, or "
    "the flake.lock it was built with (its locked `nixpkgs` input).",
)
@click.option(
    "--activation",
    type=click.Choice([a.value for a in Activation]),
    default=Activation.SWITCH.value,
    show_default=True,
    help="With --nixos: how each generation is activated by switch-to-configuration.",
)
@click.option(
    "--booted-system",
    type=click.Choice([b.value for b in BootedSystem]),
    default=BootedSystem.PIN.value,
    show_default=True,
    help="With --nixos: /run/booted-system keeps the booted generation until reboot. "
    "`pin` counts it as staying on disk; `reboot` activates each step for the next boot "
    "and stops (exit 4) until you reboot and run the command again; `drop` removes that "
    "GC root (rolling back to the booted system then means rebuilding it).",
)
@RESERVE_OPTION
@NON_VITAL_OPTION
@click.option(
    "--rollback-to-start",
    is_flag=True,
    help="When a step fails, walk back generation by generation to the start.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Plan (or find where an interrupted run would resume), show it, and stop: "
    "nothing is built, switched or deleted.",
)
@TIME_LIMIT_OPTION
@WORKERS_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the plan and the measured steps.")
@QUIET_OPTION
@click.pass_context
def apply(
    ctx: click.Context,
    profile: Path | None,
    target: str | None,
    limit: int,
    substituter: tuple[str, ...],
    nixos: bool,
    flake: str | None,
    include: tuple[str, ...],
    old_nixpkgs: str | None,
    activation: str,
    booted_system: str,
    reserve: int,
    non_vital: tuple[str, ...],
    rollback_to_start: bool,
    dry_run: bool,
    time_limit: float,
    workers: int | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Upgrade a Nix profile or a NixOS system through the planned generations.

    Plans under --limit (calibrated on the real filesystem) and shows the plan before
    anything is deleted (--dry-run stops there). Then it collects garbage and runs the
    plain one-step upgrade when it fits, and otherwise, for each step, builds an
    intermediate generation, makes it current, deletes the one it replaced and collects
    garbage. Only the starting generation and the generations the run creates are ever
    deleted. A journal in Nix's state directory lets a rerun resume after a crash or a
    power cut; a lock keeps a second run off the same profile.

    \b
    Exit status: 0 done (or planned, with --dry-run), 1 a step failed, 2 bad input or
    another run holds the profile, 3 no plan fits, 4 reboot into the new generation, then
    run the same command again.
    \b
    Examples:
      budget-solve apply --profile /nix/var/nix/profiles/per-user/me/env \\
        --target /nix/store/...-env --limit auto
      budget-solve apply --nixos --flake /etc/nixos#box \\
        --old-nixpkgs ./flake.lock.old --limit 9G --booted-system reboot
    """
    builder: Builder
    if nixos:
        builder = _nixos_builder(
            profile,
            target,
            flake,
            include,
            old_nixpkgs,
            substituter,
            non_vital,
            activation,
            booted_system,
        )
    else:
        for name, value in (("--flake", flake), ("-I", include), ("--old-nixpkgs", old_nixpkgs)):
            if value:
                raise click.UsageError(f"{name} needs --nixos")
        if profile is None or target is None:
            raise click.UsageError("give --profile PROFILE and --target PATH (or --nixos)")
        builder = ProfileBuilder(
            profile, target, substituter, state=state_dir_for(nix.resolve_profile(profile))
        )

    def show_plan(result: Result) -> None:
        if not as_json:
            progress.clear()
            render(result, sys.stdout)
            sys.stdout.flush()

    with Spinner(enabled=not quiet) as progress:
        executor = Executor(builder, progress=progress, detail=progress.detail, show_plan=show_plan)
        try:
            result = executor.run(
                limit,
                rollback_to_start=rollback_to_start,
                dry_run=dry_run,
                reserve=reserve,
                non_vital=non_vital,
                time_limit=time_limit,
                workers=workers,
            )
        except InfeasibleError as e:
            if as_json:
                click.echo(json.dumps(e.result.to_json(), indent=2))
            hint = ""
            if nixos and booted_system == BootedSystem.PIN.value and builder.pinned():
                hint = (
                    " (/run/booted-system keeps the running system on disk throughout: "
                    "--booted-system reboot or drop frees it)"
                )
            click.echo(f"error: {e}{hint}", err=True)
            ctx.exit(EXIT_INFEASIBLE)
        except ApplyError as e:
            click.echo(f"error: {e}", err=True)
            ctx.exit(EXIT_FAILED)
    _print_applied(result, builder.profile, as_json)
    ctx.exit(EXIT_REBOOT if result.status is ApplyStatus.REBOOT else EXIT_OK)


def _nixos_builder(
    profile: Path | None,
    target: str | None,
    flake: str | None,
    include: Sequence[str],
    old_nixpkgs: str | None,
    substituters: Sequence[str],
    non_vital: Sequence[str],
    activation: str,
    booted_system: str,
) -> NixosBuilder:
    if profile is not None or target is not None:
        raise click.UsageError(
            "--nixos builds the system profile from the configuration: no --profile or --target"
        )
    if non_vital:
        raise InputError(
            "--non-vital is not supported with --nixos yet: a step cannot take a package out "
            "of the configuration"
        )
    if old_nixpkgs is None:
        raise click.UsageError(
            "--nixos needs --old-nixpkgs: the nixpkgs tree or the flake.lock the running "
            "system was built from"
        )
    configuration = None
    rest = []
    for entry in include:
        name, sep, value = entry.partition("=")
        if name == "nixos-config" and sep:
            configuration = value
        else:
            rest.append(entry)
    if flake is None and configuration is None:
        default = Path("/etc/nixos/configuration.nix")
        if not default.exists():
            raise click.UsageError("--nixos needs --flake FLAKE#HOST or -I nixos-config=PATH")
        configuration = str(default)
    if configuration is not None and not Path(configuration).exists():
        raise InputError(f"-I nixos-config={configuration}: no such file")
    return NixosBuilder(
        old_nixpkgs=_old_nixpkgs(old_nixpkgs),
        state=state_dir_for(system_profile()),
        flake=Flake.parse(flake) if flake else None,
        configuration=configuration,
        include=rest,
        substituters=substituters,
        activation=Activation(activation),
        booted=BootedSystem(booted_system),
        run_dir=Path(os.environ.get("BUDGET_SOLVE_RUN_DIR") or "/run"),
    )


def _old_nixpkgs(value: str) -> str | dict[str, Any]:
    path = Path(value)
    if path.is_dir():
        return str(path.absolute())
    if path.is_file():
        return old_nixpkgs_from_lock(path.read_text())
    raise InputError(f"--old-nixpkgs {value}: neither a nixpkgs directory nor a flake.lock")


def _print_applied(result: ApplyResult, profile: Path, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
        return
    done = [s for s in result.steps if s.measured_peak_bytes is not None]
    for step in done:
        click.echo(
            f"step {step.index}/{len(result.steps)}: {step.path}  peak "
            f"{format_size(step.measured_peak_bytes or 0)} "
            f"(predicted {format_size(step.predicted_peak_bytes)})"
        )
    if result.status is ApplyStatus.PLANNED:
        if result.resume_after is not None:
            click.echo(
                f"dry run: an interrupted run would resume after step {result.resume_after} "
                f"of {len(result.steps)}; nothing was changed"
            )
        else:
            click.echo("dry run: nothing was built, switched or deleted")
        return
    if result.status is ApplyStatus.REBOOT:
        last = done[-1] if done else None
        where = last.path if last else os.path.realpath(profile)
        click.echo(
            f"reboot into {where} (the next boot's default), then run the same command again "
            "to continue"
        )
    else:
        click.echo(f"done: {profile} points at {os.path.realpath(profile)}")


Command = TypeVar("Command", bound=Callable[..., Any])


def _plot_path(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    if value is not None and not value.parent.is_dir():
        raise click.BadParameter(f"no directory {value.parent} for {value}", ctx, param)
    return value


def plot_option(text: str) -> Callable[[Command], Command]:
    """`--plot OUT.png`, checked before any work is done."""
    return click.option(
        "--plot",
        type=click.Path(path_type=Path, dir_okay=False),
        metavar="OUT.png",
        callback=_plot_path,
        help=text,
    )


@cli.command()
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as one JSON object.")
@plot_option("Write a figure: disk use per step against each budget, and steps per budget.")
@click.option(
    "--time-limit",
    type=click.FloatRange(min=0.1),
    default=None,
    help="Seconds per budget the optimiser may spend [default: the file's time_limit, or 10].",
)
@WORKERS_OPTION
@QUIET_OPTION
@click.pass_context
def scenario(
    ctx: click.Context,
    file: Path,
    as_json: bool,
    plot: Path | None,
    time_limit: float | None,
    workers: int | None,
    quiet: bool,
) -> None:
    """Answer a what-if question from a YAML scenario.

    The scenario names a current closure and describes the target as changes to it (bump a
    package, add, remove, grow everything, or a `nix store diff-closures` output), with
    Nix's hash propagation applied. It is planned under each budget of `limits`.
    See scenarios/*.yaml for examples. Exit status: 0, or 2 for a bad file.
    """
    with Spinner(enabled=not quiet) as progress:
        progress("reading the scenario")
        spec = load_scenario(file)
        if time_limit is not None:
            spec.time_limit = time_limit
        outcome = run_scenario(spec, workers=workers, progress=progress)
        doc = outcome.to_json()
        if plot is not None:
            progress("drawing")
            save_png(scenario_figure(spec.name, outcome.results), plot)
    if as_json:
        click.echo(json.dumps(doc, indent=2))
    else:
        render_scenario(doc, outcome.results, sys.stdout)
        if plot is not None:
            click.echo(f"figure: {plot}")


@cli.command()
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@plot_option("Write a figure: hosts by steps needed, and disk size for at most k steps.")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Local processes solving distinct closures [default: CPU count].",
)
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    help="Solve on a Dask distributed cluster (tcp://host:8786) instead of local processes.",
)
@QUIET_OPTION
def fleet(
    file: Path,
    as_json: bool,
    plot: Path | None,
    workers: int | None,
    scheduler: str | None,
    quiet: bool,
) -> None:
    """Plan one update across a fleet of small hosts.

    Reports per host whether the update fits in one step, in k steps, or not at all (and
    the disk it would need), fleet totals, and the smallest disk size with which every
    host upgrades in at most 1, 2, 3 steps. Hosts with identical closures are solved once.
    """
    with Spinner(enabled=not quiet, delay=0.0) as progress:
        progress("reading the fleet")
        spec = load_fleet(file)
        report = run_fleet(
            spec, workers=workers or os.cpu_count() or 1, scheduler=scheduler, progress=progress
        )
        doc = report.to_json()
        if plot is not None:
            save_png(fleet_figure(doc), plot)
    if as_json:
        click.echo(json.dumps(doc, indent=2))
    else:
        render_fleet(doc, sys.stdout)
        if plot is not None:
            click.echo(f"figure: {plot}")


def _print(result: Result, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
    else:
        render(result, sys.stdout)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: one-line `error: ...` for bad input, tracebacks only with --debug."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        code = cli.main(args=args, prog_name="budget-solve", standalone_mode=False)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.Abort:
        click.echo("error: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except KeyboardInterrupt:
        click.echo("error: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as e:
        if debug:
            raise
        click.echo(f"error: {e.format_message()}", err=True)
        sys.exit(EXIT_INPUT)
    except BudgetSolveError as e:
        if debug:
            raise
        click.echo(f"error: {e}", err=True)
        sys.exit(EXIT_INPUT)
    except OSError as e:
        if debug:
            raise
        click.echo(
            f"error: {e.strerror or e}: {e.filename}" if e.filename else f"error: {e}", err=True
        )
        sys.exit(EXIT_INPUT)
    sys.exit(code if isinstance(code, int) else EXIT_OK)


if __name__ == "__main__":
    main()
