"""The `budget-solve` command: the group, its default command, and the entry point.

The commands are imported when one runs: `budget-solve --help` and `--version` load no
solver (CP-SAT, numpy), and the core install needs neither matplotlib nor Dask.
"""

import codecs
import errno
import importlib
import io
import logging
import os
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

import click

from adapters.cli.failures import exit_code, message
from solver.errors import BudgetSolveError, ExitCode

# name: (module, attribute, one line for the group's --help).
COMMANDS = {
    "plan": ("adapters.cli.plan", "plan", "Plan an upgrade that fits a disk budget (the default)."),
    "apply": (
        "adapters.cli.apply",
        "apply",
        "Upgrade a profile or NixOS through the planned steps.",
    ),
    "scenario": ("adapters.cli.studies", "scenario", "What-if questions from a YAML file."),
    "fleet": ("adapters.cli.studies", "fleet", "Capacity planning for a fleet of hosts."),
    "help": ("adapters.cli.main", "help_command", "Show the help of a command."),
}


class DefaultGroup(click.Group):
    """A group whose bare form runs `plan`: `budget-solve --limit 9G ...` is
    `budget-solve plan --limit 9G ...`. Only --debug, --help and --version belong to the
    group. Commands are imported when asked for (`COMMANDS`)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attribute, _ = COMMANDS[name]
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The commands with their one line, without importing them."""
        with formatter.section("Commands"):
            formatter.write_dl([(name, line) for name, (_, _, line) in COMMANDS.items()])

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        first = next((i for i, a in enumerate(args) if a != "--debug"), None)
        word = args[first] if first is not None else None
        group_only = ("-h", "--help", "--version")
        if word is not None and word not in COMMANDS and word not in group_only:
            if not word.startswith("-"):
                # `plan` takes no bare words: this was meant as a command.
                commands = ", ".join(sorted(COMMANDS))
                raise click.UsageError(f"no command {word!r} (commands: {commands})")
            args.insert(first, "plan")  # type: ignore[arg-type]
        return super().parse_args(ctx, args)


def _version() -> str:
    try:
        return version("budget-solve")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


@click.group(
    cls=DefaultGroup,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option("--debug", is_flag=True, help="Log what happens, and show tracebacks.")
@click.version_option(
    _version(), "--version", prog_name="budget-solve", message="%(prog)s %(version)s"
)
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Upgrade NixOS and Nix profiles on disks too small for both systems at once.

    Plans the fewest intermediate generations whose every step fits a disk budget, and
    applies them one by one, collecting garbage in between. Without a command, `plan`:
    `budget-solve --limit 9G --target SRC` is `budget-solve plan --limit 9G --target SRC`.
    `budget-solve help COMMAND` (or `COMMAND --help`) explains a command.
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING, format="%(name)s: %(message)s"
    )


@click.command("help")
@click.argument("command", required=False, metavar="[COMMAND]")
@click.pass_context
def help_command(ctx: click.Context, command: str | None) -> None:
    """Show the help of COMMAND, or of budget-solve itself."""
    group = ctx.parent
    assert group is not None
    if command is None:
        click.echo(group.get_help())
        return
    found = cli.get_command(ctx, command)
    if found is None:
        raise click.UsageError(f"no command {command!r} (commands: {', '.join(sorted(COMMANDS))})")
    with click.Context(found, info_name=command, parent=group) as sub:
        click.echo(found.get_help(sub))


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: one line `error: ...` and the error's exit status (`failures`),
    tracebacks only with --debug."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    _encode_anything()
    reported = True
    try:
        code = cli.main(args=args, prog_name="budget-solve", standalone_mode=False)
        reported = False
    except click.exceptions.Exit as e:
        code, reported = e.exit_code, False
    except (click.Abort, KeyboardInterrupt) as e:
        code = _report(e)
    except (click.ClickException, BudgetSolveError, OSError) as e:
        if debug:
            raise
        # A write to stdout that failed: its data may still wait in the buffer.
        unwritable = _flush_stdout() if isinstance(e, OSError) else None
        if unwritable is not None or _from_output(e):
            code = _report(unwritable or e, output=True)
        else:
            code = _report(e)
    if not reported:
        # The command is done: what it wrote must reach stdout now, or be said.
        unwritable = _flush_stdout()
        if unwritable is not None:
            code = _report(unwritable, output=True)
    sys.exit(code if isinstance(code, int) else ExitCode.OK)


def _report(error: BaseException, *, output: bool = False) -> ExitCode:
    """Say `error` on stderr; its exit status. `output`: it came from writing stdout (a
    full disk, a closed pipe), which is no fault of the input."""
    if output:
        click.echo(f"error: cannot write the output: {message(error)}", err=True)
        return ExitCode.FAILED
    click.echo(f"error: {message(error)}", err=True)
    return exit_code(error)


# What a write to stdout fails with: a full disk or quota, a closed pipe, a device error.
_OUTPUT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EPIPE, errno.EIO})


def _from_output(error: BaseException) -> bool:
    """`error` came from writing stdout: an OSError of a write that names no file (every
    file the commands read or write is named in its error)."""
    return isinstance(error, OSError) and not error.filename and error.errno in _OUTPUT_ERRNOS


def _flush_stdout() -> OSError | None:
    """Flush stdout; the error when it cannot take the output. Then stdout goes to
    /dev/null, so that the interpreter's own flush at exit does not fail again (it
    would print a traceback and exit 120)."""
    if sys.stdout is None:  # started with stdout closed
        return None
    try:
        sys.stdout.flush()
    except OSError as e:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)
        return e
    return None


# What the output's own characters become where the encoding lacks them.
_ASCII = {"→": "->", "←": "<-", "…": "...", "≤": "<=", "≥": ">=", "█": "#", "·": "."}


def _plainer(error: UnicodeError) -> tuple[str, int]:
    """The `budget-solve` codec error handler: an arrow as `->`, anything else unknown
    as an escape (a name that was not UTF-8 stays readable and does nothing)."""
    assert isinstance(error, UnicodeEncodeError)
    bad = error.object[error.start : error.end]
    text = "".join(_ASCII.get(c) or c.encode("ascii", "backslashreplace").decode() for c in bad)
    return text, error.end


codecs.register_error("budget-solve", _plainer)


def _encode_anything() -> None:
    """Output in any encoding the locale or PYTHONIOENCODING asks for: what it cannot
    encode is written plainer (`_plainer`) instead of failing the command."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="budget-solve")


if __name__ == "__main__":
    main()
