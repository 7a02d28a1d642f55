"""`budget-solve apply`: run a plan on a Nix profile or a NixOS system."""

import io
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from adapters.apply.builder import Builder
from adapters.apply.nixos import BootedSystem
from adapters.apply.results import ApplyResult, Deletions
from adapters.apply.reviewed import Reviewed
from adapters.cli.apply_options import ApplyOptions, apply_options
from adapters.cli.apply_report import deletion_lines, print_applied, print_failure
from adapters.cli.builders import check_hosts, make_builder
from adapters.cli.options import check_reserve, filesystem_limit, over_the_disk
from adapters.cli.text import Spinner, bar_cells, render, render_diffs
from adapters.nixstore import builds, profiles
from adapters.nixstore.host import LOCAL
from adapters.nixstore.host import Host as Machine
from adapters.nixstore.ssh import Ssh
from solver.errors import BudgetSolveError, InputError
from solver.search import Result

if TYPE_CHECKING:
    from solver.diff import Diff


class _ApplyCommand(click.Command):
    """`apply`'s command: with --json, an error in the command line itself (an unknown
    option, a value click rejects) is a document on stdout too, as every other error of
    the run is (`_documented`): click parses the options before `apply` runs."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        with _documented("--json" in args):
            return super().parse_args(ctx, args)


@click.command(cls=_ApplyCommand)
@apply_options
@click.pass_context
def apply(ctx: click.Context, /, **given: Any) -> None:
    """Upgrade a Nix profile or a NixOS system through the planned generations.

    Plans under --limit (calibrated on the real filesystem) and shows the plan before
    anything is deleted (--dry-run stops there). Then it collects garbage and runs the
    plain one-step upgrade when it fits, and otherwise, for each step, builds an
    intermediate generation, makes it current, deletes the one it replaced and collects
    garbage. Only the starting generation and the generations the run creates are ever
    deleted. A journal in Nix's state directory lets a rerun resume after a crash or a
    power cut; a lock keeps a second run off the same profile.

    \b
    Exit status: 0 done (or planned, with --dry-run), 1 a step or Nix failed (or the run
    was not confirmed), 2 bad input or another run holds the profile, 3 no plan fits, 4
    reboot into the new generation, then run the same command again. With --json a
    failure is a document on stdout too: its status, error, exit_code and failed_step.
    With --plan FILE, the run carries out a plan reviewed earlier (`budget-solve plan
    ... --json > FILE`) and refuses, with one line saying what changed, when the current
    system, the target or --limit differ from what it was made for.

    \b
    Examples:
      budget-solve apply --profile /nix/var/nix/profiles/per-user/me/env \\
        --target /nix/store/...-env --limit auto
      budget-solve apply --nixos --flake /etc/nixos#box \\
        --old-nixpkgs ./flake.lock.old --limit 9G --booted-system reboot
    """
    options = ApplyOptions.parse(given)
    with _documented(options.output.as_json):
        result, builder = _apply(options)
    print_applied(builder.host, result, builder.profile, options.output.as_json)
    ctx.exit(result.status.exit_code)


@contextmanager
def _documented(as_json: bool) -> Iterator[None]:
    """With --json, an error that stops the run is a document on stdout too (then the
    top-level handler says it on stderr and exits with its code)."""
    try:
        yield
    except (BudgetSolveError, OSError, click.ClickException, KeyboardInterrupt) as e:
        if as_json:
            print_failure(e)
        raise


def _apply(options: ApplyOptions) -> tuple[ApplyResult, Builder]:
    """Check every option, make the builder, and run; the result and the builder."""
    # Imported when run: --help loads no solver (CP-SAT, numpy).
    from adapters.apply.executor import Executor
    from adapters.apply.planning import InfeasibleError

    system, run, output = options.system, options.run, options.output
    # Every option is checked before the profile is looked at: nothing is locked, read or
    # collected for a command line that is wrong.
    check_hosts(system)
    _check_confirmation(output.yes, output.ask, run.dry_run)
    # On --target-host, the run changes that host (its profile, journal, roots, disk);
    # what names the target is read here.
    host: Machine = LOCAL
    if system.target_host is not None:
        host = Ssh.parse(system.target_host, sudo=system.sudo)
    reviewed = _reviewed(run.plan, run.plain_first)
    limit = _limit(host, run.limit, reviewed)
    check_reserve(limit, run.reserve)
    builder = make_builder(host, system, options.nix.flags())
    # Checked before anything is locked or written: a wrong --profile is one line.
    profiles.profile_system(host, builder.profile)
    monitor = None if output.quiet or output.no_nom else builds.log_monitor()
    with (
        # nom draws the builds itself: our spinner would only fight it for the line.
        Spinner(enabled=not output.quiet and monitor is None) as progress,
        builds.logged(
            options.nix.passed(), None if output.quiet else _echo_log(progress), monitor=monitor
        ) as logged,
    ):
        builder.flags = logged
        executor = Executor(
            builder,
            progress=progress,
            detail=progress.detail,
            show_plan=_show_plan(output.as_json, progress),
            confirm=_confirm(output.yes and not output.ask, output.quiet, progress),
            keep_rollback=run.keep_rollback,
        )
        try:
            result = executor.run(
                limit,
                rollback_to_start=run.rollback_to_start,
                dry_run=run.dry_run,
                plain_first=run.plain_first,
                reserve=run.reserve,
                non_vital=run.non_vital,
                time_limit=run.time_limit,
                workers=run.workers,
                reviewed=reviewed,
            )
        except InfeasibleError as e:
            booted = BootedSystem(system.booted_system)
            if system.nixos and booted is BootedSystem.PIN and builder.pinned():
                hint = (
                    " (/run/booted-system keeps the running system on disk throughout: "
                    "--booted-system reboot or drop frees it)"
                )
                raise e.with_hint(hint) from e
            raise
    return result, builder


def _reviewed(plan: Path | None, plain_first: bool) -> Reviewed | None:
    """The plan of --plan FILE, read and checked for shape (what it is for is checked
    against the systems once they are read)."""
    if plan is None:
        return None
    if plain_first:
        raise click.UsageError("--plain-first runs another plan than --plan's: give one")
    return Reviewed.read(plan)


def _limit(host: Machine, given: int | str | None, reviewed: Reviewed | None) -> int:
    """--limit in bytes (`auto`: the store's filesystem); with --plan, the plan's own
    when none is given, and the same as the plan's when one is."""
    if given is None:
        if reviewed is None:
            raise click.UsageError("missing option '--limit' (a size, or auto)")
        return reviewed.limit
    size = filesystem_limit(host)
    limit = size if given == "auto" else given
    assert isinstance(limit, int)
    if limit > size:
        where = host.named(host.store_dir())
        raise InputError(
            f"{over_the_disk(limit, size, where)}: a plan under it could fill the disk; "
            "give at most that, or --limit auto"
        )
    if reviewed is not None:
        reviewed.check_limit(limit)
    return limit


def _show_plan(as_json: bool, progress: Spinner) -> Callable[[Result, str, Sequence["Diff"]], None]:
    """The plan in --limit's terms, after the line that says what of --limit the store
    may use, and every change of each step."""

    def show_plan(result: Result, budget: str, diffs: Sequence["Diff"]) -> None:
        if not as_json:
            progress.clear()
            sys.stdout.write(budget + "\n")
            text = io.StringIO()
            render(result, text, cells=bar_cells(sys.stdout))
            table, _, verdict = text.getvalue().rstrip("\n").rpartition("\n")
            sys.stdout.write(table + "\n")
            render_diffs(diffs, sys.stdout)
            sys.stdout.write(f"\n{verdict}\n")
            sys.stdout.flush()

    return show_plan


def _echo_log(progress: Spinner) -> Callable[[str], None]:
    def echo_log(line: str) -> None:
        progress.clear()
        click.echo(line, err=True)

    return echo_log


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
