"""The command line: `budget-solve --limit 9G --current SRC --target SRC [--json]`."""

import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from adapters import nix
from adapters.executor import ApplyError, Executor, InfeasibleError
from adapters.loading import load_problem
from adapters.measure import size_bytes
from adapters.render import Spinner, render
from solver.errors import BudgetSolveError, InputError
from solver.instance import build_instance
from solver.planner import Result, Status, plan_upgrade
from solver.units import format_size, parse_size
from solver.validate import validate

EXIT_OK, EXIT_FAILED, EXIT_INPUT, EXIT_INFEASIBLE, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

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


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--limit", type=Size(), help="Disk budget for the store: 9G, 9.5GiB, 512M, bytes.")
@click.option(
    "--current",
    default="/run/current-system",
    show_default=True,
    metavar="SRC",
    help=f"The running system: {SRC_HELP}.",
)
@click.option("--target", metavar="SRC", help=f"The system to upgrade to: {SRC_HELP}.")
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
@WORKERS_OPTION
@QUIET_OPTION
@click.option("--debug", is_flag=True, help="Log what happens, and show tracebacks.")
@click.pass_context
def cli(
    ctx: click.Context,
    limit: int | None,
    current: str,
    target: str | None,
    target_store: str | None,
    as_json: bool,
    reserve: int,
    non_vital: tuple[str, ...],
    couple: tuple[str, ...],
    keep: tuple[str, ...],
    no_gc_roots: bool,
    time_limit: float,
    workers: int | None,
    quiet: bool,
    debug: bool,
) -> None:
    """Plan a NixOS upgrade that fits a small disk.

    Reads the current and the target system's closures (store paths, references, NAR
    sizes) and finds the fewest intermediate generations such that, while each one is
    built next to the previous one, the store never needs more than --limit bytes.

    \b
    Exit status: 0 a plan fits, 3 no plan fits the budget, 2 bad input.
    \b
    Examples:
      budget-solve --limit 9G --target ./target-path-info.json
      budget-solve --limit 8G --current old.json --target new.json --json
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING, format="%(name)s: %(message)s"
    )
    if ctx.invoked_subcommand is not None:
        return
    if limit is None:
        raise click.UsageError("missing --limit SIZE (the disk budget, e.g. --limit 9G)")
    if target is None:
        raise click.UsageError("missing --target SRC (the system to upgrade to)")
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
            inst, limit, time_limit=time_limit, workers=workers, progress=progress
        )
        if result.plan is not None:
            progress("validating the plan")
            validate(problem, result.plan, limit)
    _print(result, as_json)
    ctx.exit(EXIT_INFEASIBLE if result.status is Status.INFEASIBLE else EXIT_OK)


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
    required=True,
    type=click.Path(path_type=Path),
    help="The profile link whose current generation is the running system.",
)
@click.option(
    "--target",
    required=True,
    metavar="PATH",
    help="The target's top-level store path (fetched from the substituters).",
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
@RESERVE_OPTION
@NON_VITAL_OPTION
@click.option(
    "--rollback-to-start",
    is_flag=True,
    help="When a step fails, walk back generation by generation to the start.",
)
@TIME_LIMIT_OPTION
@WORKERS_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the plan and the measured steps.")
@QUIET_OPTION
@click.pass_context
def apply(
    ctx: click.Context,
    profile: Path,
    target: str,
    limit: int,
    substituter: tuple[str, ...],
    reserve: int,
    non_vital: tuple[str, ...],
    rollback_to_start: bool,
    time_limit: float,
    workers: int | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Upgrade a Nix profile to TARGET through the planned intermediate generations.

    Plans under --limit (calibrated on the real filesystem), then for each step builds an
    intermediate generation, makes it the profile's current generation, deletes the
    previous one and collects garbage. A journal in Nix's state directory lets a rerun
    resume after a crash. Exit status: 0 done, 1 a step failed, 3 no plan fits, 2 bad input.
    """
    executor = Executor(profile, substituters=substituter)
    with Spinner(enabled=not quiet) as progress:
        executor.progress = progress
        try:
            result = executor.run(
                target,
                limit,
                rollback_to_start=rollback_to_start,
                reserve=reserve,
                non_vital=non_vital,
                time_limit=time_limit,
                workers=workers,
            )
        except InfeasibleError as e:
            if as_json:
                click.echo(json.dumps(e.result.to_json(), indent=2))
            click.echo(f"error: {e}", err=True)
            ctx.exit(EXIT_INFEASIBLE)
        except ApplyError as e:
            click.echo(f"error: {e}", err=True)
            ctx.exit(EXIT_FAILED)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
    else:
        for step in result.steps:
            measured = format_size(step.measured_peak_bytes or 0)
            click.echo(
                f"step {step.index}: {step.path}  peak {measured} "
                f"(predicted {format_size(step.predicted_peak_bytes)})"
            )
        click.echo(f"done: {profile} points at {target}")


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
