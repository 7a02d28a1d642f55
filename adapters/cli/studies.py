"""`budget-solve scenario` and `budget-solve fleet`: what-if studies from YAML."""

import json
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import click
from click.core import ParameterSource

from adapters.apply.results import DeclinedError
from adapters.cli.options import (
    MAX_WORKERS,
    QUIET_OPTION,
    WORKERS_OPTION,
    Finite,
    Whole,
    plot_option,
)
from adapters.cli.text import (
    Spinner,
    fleet_progress,
    render_fleet,
    render_rollout,
    render_scenario,
)
from solver.errors import ExitCode, InputError

if TYPE_CHECKING:
    from adapters.studies.rollout import Rollout

# More than any fleet file holds (a study file is at most 1 MiB): a typo, not a fleet.
MAX_HOSTS: Final = 100_000
# A Dask scheduler's address, as `distributed` reads it: [PROTOCOL://]HOST:PORT.
_SCHEDULER: Final = re.compile(
    r"(?:(?:tcp|tls|ws|wss|ucx)://)?(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]*):([0-9]{1,5})"
)


class Scheduler(click.ParamType):  # type: ignore[type-arg]
    """A Dask scheduler's address: `tcp://HOST:PORT` (or tls://, ws://, wss://, ucx://, or
    no protocol: tcp)."""

    name = "ADDRESS"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        text = str(value)
        found = _SCHEDULER.fullmatch(text)
        if found is None or not 0 < int(found.group(1)) < 65536:
            self.fail(
                f"{text[:60]!r} is not a Dask scheduler address such as tcp://host:8786",
                param,
                ctx,
            )
        return text


@click.command()
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as one JSON object.")
@plot_option(
    "Write a figure (.png, .svg or .pdf, by the name; needs budget-solve[plots]): disk use "
    "per step against each budget, and the steps needed against the budget."
)
@click.option(
    "--time-limit",
    type=Finite(min=0.1, max=86_400),
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
    # Imported when run: --help loads no solver (CP-SAT, numpy).
    from adapters.studies.scenario import load as load_scenario
    from adapters.studies.scenario import run as run_scenario

    if plot is not None:
        # matplotlib is an extra: loaded for --plot alone, and checked before any work.
        from adapters.cli.plots import figure_format

        figure_format(plot)
    with Spinner(enabled=not quiet) as progress:
        progress("reading the scenario")
        spec = load_scenario(file)
        if time_limit is not None:
            spec.time_limit = time_limit
        outcome = run_scenario(spec, workers=workers, progress=progress)
        doc = outcome.to_json()
        if plot is not None:
            from adapters.cli.plots import save, scenario_figure, scenario_stairs

            progress("finding where the steps needed change")
            stairs = scenario_stairs(outcome.problem, outcome.results)
            progress("drawing")
            save(scenario_figure(spec.name, outcome.results, stairs), plot)
    if as_json:
        click.echo(json.dumps(doc, indent=2))
    else:
        render_scenario(outcome, sys.stdout)
        if plot is not None:
            click.echo(f"figure: {plot}")


@click.command()
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@plot_option(
    "Write a figure (.png, .svg or .pdf, by the name; needs budget-solve[plots]): hosts by "
    "steps needed, and disk size for at most k steps."
)
@click.option(
    "--workers",
    type=Whole(1, MAX_WORKERS),
    default=None,
    help="Local processes solving distinct closures [default: CPU count].",
)
@click.option(
    "--scheduler",
    type=Scheduler(),
    help="Solve on a Dask distributed cluster (tcp://host:8786) instead of local processes.",
)
@click.option(
    "--apply",
    "roll",
    is_flag=True,
    help="Upgrade every host that has an `ssh:` address to the file's `apply:` target, "
    "each through its own plan (`apply --target-host HOST --limit auto`), instead of "
    "planning capacity.",
)
@click.option(
    "--parallel",
    type=Whole(1, MAX_WORKERS),
    default=2,
    show_default=True,
    help="With --apply: hosts upgraded at once.",
)
@click.option(
    "--max-failures",
    type=Whole(1, MAX_HOSTS),
    default=1,
    show_default=True,
    help="With --apply: once this many hosts have failed, start no more.",
)
@click.option(
    "--time-limit",
    type=Finite(min=0.1, max=86_400),
    default=60.0,
    show_default=True,
    help="With --apply: seconds each host's planner may spend.",
)
@click.option(
    "-y",
    "--yes",
    is_flag=True,
    help="With --apply: do not ask before the hosts' runs delete their starting "
    "generations (needed without a terminal to ask on).",
)
@QUIET_OPTION
@click.pass_context
def fleet(
    ctx: click.Context,
    file: Path,
    as_json: bool,
    plot: Path | None,
    workers: int | None,
    scheduler: str | None,
    roll: bool,
    parallel: int,
    max_failures: int,
    time_limit: float,
    yes: bool,
    quiet: bool,
) -> None:
    """Plan one update across a fleet of small hosts, or roll it out (--apply).

    Reports per host whether the update fits in one step, in k steps, or not at all (and
    the disk it would need), fleet totals, and the smallest disk size with which every
    host upgrades in at most 1, 2, 3 steps. Hosts with identical closures are solved once.

    With --apply, upgrades the hosts over SSH instead, a few at a time, and reports per
    host: done (steps, measured peak), failed (at which step, and why), skipped (no
    address, or a disk too small for any plan), not started (--max-failures was
    reached). Each host's journal is on the host: running the command again resumes
    interrupted hosts. Exit status: 0, 1 when a host failed, 2 for a bad file.
    """
    from adapters.studies.fleet.reading import load as load_fleet
    from adapters.studies.fleet.running import run as run_fleet
    from adapters.studies.rollout import HostStatus

    given = [f"--{n.replace('_', '-')}" for n in _APPLY_ONLY if _given(ctx, n)]
    if roll:
        if plot is not None or scheduler is not None or workers is not None:
            raise click.UsageError("--apply takes no --plot, --scheduler or --workers")
        rollout = _roll_out(file, parallel, max_failures, time_limit, yes, quiet)
        if as_json:
            click.echo(json.dumps(rollout.to_json(), indent=2))
        else:
            render_rollout(rollout, sys.stdout)
        ctx.exit(ExitCode.FAILED if rollout.counts()[HostStatus.FAILED] else ExitCode.OK)
    if given:
        raise click.UsageError(f"{', '.join(given)}: only with --apply")
    if plot is not None:
        # matplotlib is an extra: loaded for --plot alone, and checked before any work.
        from adapters.cli.plots import figure_format

        figure_format(plot)
    with Spinner(enabled=not quiet) as progress:
        progress("reading the fleet")
        spec = load_fleet(file)
        if not spec.changes:
            raise InputError(
                f"{file}: no update: to plan (a fleet without one can only be rolled out, "
                "with --apply)"
            )
        report = run_fleet(
            spec,
            workers=workers or os.cpu_count() or 1,
            scheduler=scheduler,
            progress=lambda p: progress(fleet_progress(p)),
        )
        doc = report.to_json()
        if plot is not None:
            from adapters.cli.plots import fleet_figure, save

            progress("drawing")
            save(fleet_figure(report), plot)
    if as_json:
        click.echo(json.dumps(doc, indent=2))
    else:
        render_fleet(report, sys.stdout)
        if plot is not None:
            click.echo(f"figure: {plot}")


# The options of `fleet` that only --apply uses.
_APPLY_ONLY = ("parallel", "max_failures", "time_limit", "yes")


def _given(ctx: click.Context, name: str) -> bool:
    return ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE


def _roll_out(
    file: Path, parallel: int, max_failures: int, time_limit: float, yes: bool, quiet: bool
) -> "Rollout":
    """`fleet --apply`: asked once for the whole fleet, then each host's own apply."""
    from adapters.studies.fleet.reading import load as load_fleet
    from adapters.studies.rollout import roll_out

    if not yes and not sys.stdin.isatty():
        raise click.UsageError(
            "fleet --apply deletes each host's starting generation (its rollback) and "
            "collects garbage there: give --yes to go on without a terminal to ask on"
        )
    with Spinner(enabled=not quiet) as progress:
        progress("reading the fleet")
        spec = load_fleet(file)
        if not yes:
            progress.clear()
            hosts = sum(h.ssh is not None for h in spec.hosts)
            click.echo(
                f"this upgrades {hosts} host(s) over SSH; each run deletes its starting "
                "generation (the rollback to it) and collects garbage on its host",
                err=True,
            )
            if not click.confirm("Proceed?", default=False, err=True):
                raise DeclinedError("not confirmed; nothing was changed")
        return roll_out(
            spec,
            parallel=parallel,
            max_failures=max_failures,
            time_limit=time_limit,
            progress=progress,
        )
