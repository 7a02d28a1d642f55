"""The `budget-solve` command: the group, its default command, and the entry point."""

import errno
import io
import logging
import os
import sys
from collections.abc import Sequence

import click

from adapters.cli.apply import apply
from adapters.cli.failures import exit_code, message
from adapters.cli.plan import plan
from adapters.cli.studies import fleet, scenario
from solver.errors import BudgetSolveError, ExitCode


class DefaultGroup(click.Group):
    """A group whose bare form runs `plan`: `budget-solve --limit 9G ...` is
    `budget-solve plan --limit 9G ...`. Only --debug and --help belong to the group."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        first = next((i for i, a in enumerate(args) if a != "--debug"), None)
        word = args[first] if first is not None else None
        if word is not None and word not in self.commands and word not in ("-h", "--help"):
            if not word.startswith("-"):
                # `plan` takes no bare words: this was meant as a command.
                commands = ", ".join(sorted(self.commands))
                raise click.UsageError(f"no command {word!r} (commands: {commands})")
            args.insert(first, "plan")  # type: ignore[arg-type]
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
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING, format="%(name)s: %(message)s"
    )


for _command in (plan, apply, scenario, fleet):
    cli.add_command(_command)


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


def _encode_anything() -> None:
    """Output in any encoding the locale or PYTHONIOENCODING asks for: what it cannot
    encode (a non-ASCII name on an ASCII terminal, a file name that was not UTF-8) is
    written as an escape instead of failing the command."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")


if __name__ == "__main__":
    main()
