"""`budget-solve apply`: run a plan on a Nix profile or a NixOS system."""

import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from adapters.apply.builder import ApplyError, Builder
from adapters.apply.executor import Executor
from adapters.apply.journal import state_dir_for
from adapters.apply.nixos import Activation, BootedSystem, NixosBuilder, system_profile
from adapters.apply.nixos_inputs import (
    Flake,
    old_nixpkgs_at,
    old_nixpkgs_from_revision,
    split_include,
)
from adapters.apply.planning import InfeasibleError
from adapters.apply.profile import ProfileBuilder
from adapters.apply.results import ApplyResult, ApplyStatus, DeclinedError, Deletions
from adapters.cli.options import (
    EXIT_FAILED,
    EXIT_INFEASIBLE,
    EXIT_OK,
    EXIT_REBOOT,
    NIX_UNSIGNED_MAX,
    NON_VITAL_OPTION,
    QUIET_OPTION,
    RESERVE_OPTION,
    TIME_LIMIT_OPTION,
    WORKERS_OPTION,
    Host,
    LimitOrAuto,
    MaxJobs,
    NixSettingName,
    NixSettingValue,
    Whole,
    check_reserve,
    filesystem_limit,
)
from adapters.cli.text import Spinner, render
from adapters.nixstore import builds, nix, profiles
from adapters.nixstore.builds import NixFlags
from adapters.nixstore.host import LOCAL
from adapters.nixstore.host import Host as Machine
from adapters.nixstore.ssh import Ssh
from solver.errors import InputError
from solver.search import Result
from solver.units import format_size


@click.command()
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
    help="Disk budget, or `auto` for the size of the store's filesystem (on --target-host "
    "when given).",
)
@click.option(
    "--target-host",
    type=Host(),
    metavar="[USER@]HOST",
    help="Upgrade another machine over SSH, as nixos-rebuild names it ($NIX_SSHOPTS "
    "applies): --profile is a profile there, and its journal, lock, GC roots, garbage "
    "collection and disk are the host's. The target is read here, and each step copies "
    "there what this machine has of it (`nix copy`); the host substitutes the rest. With "
    "--nixos every step is evaluated here, and the host gets its derivations (`nix copy "
    "--derivation`), realises them and switches. The host needs Nix, sh and coreutils. "
    "Name it ssh-ng://[USER@]HOST for copies through its `nix-daemon --stdio`.",
)
@click.option(
    "--build-host",
    type=Host(),
    metavar="[USER@]HOST",
    help="With --nixos: build each step's system on HOST (as its SSH user), then copy it "
    "to the target (`nix copy --from ssh://HOST`; the target fetches from its own "
    "substituters what they have), as nixos-rebuild --build-host. HOST needs Nix and "
    "the substituters.",
)
@click.option(
    "--sudo",
    is_flag=True,
    help="With --target-host: run every command on the host as root through `sudo` (it "
    "must not ask for a password), as nixos-rebuild --sudo.",
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
@click.option(
    "--flake",
    metavar="FLAKE[#HOST]",
    help="With --nixos: the new configuration's flake; HOST defaults to the hostname, and "
    "/etc/nixos/flake.nix implies --flake /etc/nixos (as nixos-rebuild).",
)
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
    "the flake.lock it was built with (its locked `nixpkgs` input) [default: the revision "
    "`nixos-version --json` names].",
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
    "--option",
    "nix_option",
    type=(NixSettingName(), NixSettingValue()),
    multiple=True,
    metavar="NAME VALUE",
    help="Passed to every Nix build, fetch and evaluation, as nixos-rebuild does. Repeatable.",
)
@click.option(
    "-j",
    "--max-jobs",
    type=MaxJobs(),
    metavar="N|auto",
    help="Passed to Nix: builds at once (or auto).",
)
@click.option(
    "--cores",
    type=Whole(0, NIX_UNSIGNED_MAX),
    metavar="N",
    help="Passed to Nix: cores per build (0: all).",
)
@click.option("--fallback", is_flag=True, help="Passed to Nix: build what a cache fails to give.")
@click.option("--show-trace", is_flag=True, help="Passed to Nix: evaluation traces on errors.")
@click.option(
    "--plain-first",
    is_flag=True,
    help="Try the plain upgrade (the whole target at once) first; only when the disk fills "
    "does the staged plan take over, after collecting what the attempt left. Any other "
    "failure stops.",
)
@click.option(
    "-y",
    "--yes",
    is_flag=True,
    help="Do not ask before deleting: the starting generation (and with it the rollback to "
    "the running system) and the garbage go without a question. Needed when there is no "
    "terminal to ask on.",
)
@click.option(
    "--ask",
    is_flag=True,
    help="Ask before deleting even where --yes is implied; refused without a terminal. "
    "(With a terminal, apply asks anyway unless --yes is given.)",
)
@click.option(
    "--keep-rollback",
    is_flag=True,
    help="Keep the generation before the target (the last intermediate one, or the "
    "starting one for a single step) as a rollback. It is on disk during the last step "
    "anyway, so it costs no budget; it stays on disk after the run (the prompt says how "
    "much).",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Plan (or find where an interrupted run would resume), show it, and stop: "
    "nothing is built, switched or deleted.",
)
@click.option(
    "--no-nom",
    is_flag=True,
    help="Print Nix's build log as it comes, even when nix-output-monitor (nom) is "
    "installed; by default the log goes through `nom --json` then.",
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
    limit: int | str,
    target_host: str | None,
    build_host: str | None,
    sudo: bool,
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
    nix_option: tuple[tuple[str, str], ...],
    max_jobs: int | str | None,
    cores: int | None,
    fallback: bool,
    show_trace: bool,
    plain_first: bool,
    yes: bool,
    ask: bool,
    keep_rollback: bool,
    dry_run: bool,
    no_nom: bool,
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
    Exit status: 0 done (or planned, with --dry-run), 1 a step failed (or the run was
    not confirmed), 2 bad input or
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
    # Every option is checked before the profile is looked at: nothing is locked, read or
    # collected for a command line that is wrong.
    _check_hosts(profile, target_host, sudo)
    _check_confirmation(yes, ask, dry_run)
    # On --target-host, the run changes that host (its profile, journal, roots, disk);
    # what names the target is read here.
    host: Machine = Ssh.parse(target_host, sudo=sudo) if target_host is not None else LOCAL
    if limit == "auto":
        limit = filesystem_limit(host)
    assert isinstance(limit, int)
    check_reserve(limit, reserve)
    passed = [arg for name, value in nix_option for arg in ("--option", name, value)]
    if max_jobs is not None:
        passed += ["--max-jobs", str(max_jobs)]
    if cores is not None:
        passed += ["--cores", str(cores)]
    passed += ["--fallback"] * fallback + ["--show-trace"] * show_trace
    flags = NixFlags(tuple(passed))
    if nixos:
        builder = _nixos_builder(
            host,
            flags,
            profile,
            target,
            flake,
            include,
            old_nixpkgs,
            substituter,
            activation,
            booted_system,
            build_host,
        )
    else:
        if build_host is not None:
            raise click.UsageError(
                "--build-host is for --nixos: a profile's generations are links to "
                "store paths, made where they go"
            )
        for name, value in (
            ("--flake", flake),
            ("-I", include),
            ("--old-nixpkgs", old_nixpkgs),
        ):
            if value:
                raise click.UsageError(f"{name} needs --nixos")
        if profile is None or target is None:
            raise click.UsageError("give --profile PROFILE and --target PATH (or --nixos)")
        state = state_dir_for(host, profiles.resolve_profile(host, profile))
        builder = ProfileBuilder(host, profile, target, substituter, state=state, flags=flags)

    def show_plan(result: Result) -> None:
        if not as_json:
            progress.clear()
            render(result, sys.stdout)
            sys.stdout.flush()

    def echo_log(line: str) -> None:
        progress.clear()
        click.echo(line, err=True)

    # Checked before anything is locked or written: a wrong --profile is one line.
    profiles.profile_system(host, builder.profile)
    monitor = None if quiet or no_nom else builds.log_monitor()

    with (
        # nom draws the builds itself: our spinner would only fight it for the line.
        Spinner(enabled=not quiet and monitor is None) as progress,
        builds.logged(passed, None if quiet else echo_log, monitor=monitor) as logged,
    ):
        builder.flags = logged
        executor = Executor(
            builder,
            progress=progress,
            detail=progress.detail,
            show_plan=show_plan,
            confirm=_confirm(yes and not ask, quiet, progress),
            keep_rollback=keep_rollback,
        )
        try:
            result = executor.run(
                limit,
                rollback_to_start=rollback_to_start,
                dry_run=dry_run,
                plain_first=plain_first,
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
        except (ApplyError, DeclinedError) as e:
            click.echo(f"error: {e}", err=True)
            ctx.exit(EXIT_FAILED)
    _print_applied(host, result, builder.profile, as_json)
    ctx.exit(EXIT_REBOOT if result.status is ApplyStatus.REBOOT else EXIT_OK)


def _check_confirmation(yes: bool, ask: bool, dry_run: bool) -> None:
    """With nothing to ask on, a run that deletes must have been told --yes."""
    if yes and ask:
        raise click.UsageError("--yes and --ask contradict each other: give one")
    if dry_run or (yes and not ask):
        return
    if not _interactive():
        raise click.UsageError(
            "apply deletes the starting generation (the rollback to it) and collects "
            "garbage: give --yes to go on without a terminal to ask on (or --dry-run to see "
            "the plan)"
        )


def _interactive() -> bool:
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def _confirm(yes: bool, quiet: bool, progress: Spinner) -> Callable[[Deletions], bool]:
    """What a run will delete, said on stderr before anything goes (with `yes` and
    `quiet`, not said); asked unless `yes`."""

    def confirm(d: Deletions) -> bool:
        if yes and quiet:
            return True
        progress.clear()
        for line in deletion_lines(d):
            click.echo(line, err=True)
        if yes:
            return True
        return click.confirm("Proceed?", default=False, err=True)

    return confirm


def deletion_lines(d: Deletions) -> list[str]:
    """What a run deletes, for a person: the rollback it loses, first."""
    if d.resuming:
        return [
            f"resuming the interrupted run on {d.profile}: it deletes the "
            "generations it created as the next one replaces each"
        ]
    lines = []
    if d.start_generation is not None:
        if d.rollback_bytes is not None and d.steps == 1:
            lines.append(
                f"keeps generation {d.start_generation} of {d.profile} "
                f"({d.start_path}) as the rollback: {format_size(d.rollback_bytes)} more on "
                "disk after the run"
            )
        else:
            lines.append(
                f"deletes generation {d.start_generation} of {d.profile} "
                f"({d.start_path}) once step 1 is current: the rollback to the running "
                "system goes with it"
            )
    if d.steps > 1:
        kept = " but the last" if d.rollback_bytes is not None else ""
        lines.append(
            f"deletes the {d.steps - 1} intermediate generation(s) it creates{kept}, each "
            "once the next is current"
        )
        if d.rollback_bytes is not None:
            lines.append(
                f"keeps generation {d.steps - 1} of the plan as the rollback: "
                f"{format_size(d.rollback_bytes)} more on disk after the run"
            )
    lines.append(
        f"collects {format_size(d.garbage_bytes)} of garbage first (paths no GC root keeps)"
    )
    if d.rollback_bytes is None:
        lines.append(
            "--keep-rollback keeps the generation before the target as a rollback: no more "
            "disk at any step, some more after the run"
        )
    return ["this run " + lines[0], *(f"  and {line}" for line in lines[1:])]


def _check_hosts(profile: Path | None, target_host: str | None, sudo: bool) -> None:
    if sudo and target_host is None:
        raise click.UsageError("--sudo is for --target-host; here, run budget-solve as root")
    if target_host is not None and profile is not None and not profile.is_absolute():
        # It would be resolved against this machine's working directory.
        raise click.UsageError(
            f"--profile {profile}: a profile on --target-host {target_host} is named by its "
            "absolute path"
        )


# Where nixos-rebuild looks for the configuration when none is named.
ETC_NIXOS = Path("/etc/nixos")


def _nixos_builder(
    host: Machine,
    flags: NixFlags,
    profile: Path | None,
    target: str | None,
    flake: str | None,
    include: Sequence[str],
    old_nixpkgs: str | None,
    substituters: Sequence[str],
    activation: str,
    booted_system: str,
    build_host: str | None,
) -> NixosBuilder:
    if profile is not None or target is not None:
        raise click.UsageError(
            "--nixos builds the system profile from the configuration: no --profile or --target"
        )
    configuration, rest = split_include(include)
    if flake is None and configuration is None:
        # As nixos-rebuild: /etc/nixos/flake.nix makes it a flake, for this hostname.
        if (ETC_NIXOS / "flake.nix").exists():
            flake = str(ETC_NIXOS)
        elif (ETC_NIXOS / "configuration.nix").exists():
            configuration = str(ETC_NIXOS / "configuration.nix")
        else:
            raise click.UsageError("--nixos needs --flake FLAKE[#HOST] or -I nixos-config=PATH")
    old = _old_nixpkgs(old_nixpkgs) if old_nixpkgs is not None else _running_nixpkgs(host)
    return NixosBuilder(
        host,
        old_nixpkgs=old,
        state=state_dir_for(host, system_profile(host)),
        # FLAKE alone names the configuration of the host it goes to.
        flake=Flake.parse(flake, host) if flake else None,
        configuration=configuration,
        include=rest,
        substituters=substituters,
        activation=Activation(activation),
        booted=BootedSystem(booted_system),
        run_dir=Path(os.environ.get("BUDGET_SOLVE_RUN_DIR") or "/run"),
        build_host=Ssh.parse(build_host) if build_host is not None else None,
        flags=flags,
    )


def _running_nixpkgs(host: Machine) -> dict[str, Any]:
    """The nixpkgs the running system was built from, when NixOS knows it."""
    revision = nix.nixos_revision(host)
    if revision is None:
        raise click.UsageError(
            "--nixos needs --old-nixpkgs (the nixpkgs tree or the flake.lock the running "
            "system was built from): nixos-version --json names no nixpkgs revision here"
        )
    return old_nixpkgs_from_revision(revision)


def _old_nixpkgs(value: str) -> str | dict[str, Any]:
    if not value:
        raise InputError("--old-nixpkgs: an empty path")
    try:
        return old_nixpkgs_at(Path(value))
    except InputError as e:
        raise InputError(f"--old-nixpkgs {e}") from e


def _print_applied(host: Machine, result: ApplyResult, profile: Path, as_json: bool) -> None:
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
        elif not result.plan.get("steps"):
            click.echo("dry run: nothing to do; nothing was changed")
        else:
            gens = ", ".join(map(str, result.would_delete or [])) or "none"
            click.echo(
                f"dry run: a run would first collect {format_size(result.garbage_bytes or 0)} "
                f"of garbage, and replace generation {gens} of {profile} (deleting it once the "
                f"first step is current); nothing was built, switched or deleted"
            )
        return
    if result.status is ApplyStatus.REBOOT:
        last = done[-1] if done else None
        where = last.path if last else host.realpath(profile)
        click.echo(
            f"reboot into {where} (the next boot's default), then run the same command again "
            "to continue"
        )
    else:
        click.echo(f"done: {host.named(profile)} points at {host.realpath(profile)}")


Command = TypeVar("Command", bound=Callable[..., Any])
