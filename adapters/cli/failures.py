"""What the command line says about an error, and the status it exits with.

The project's errors carry their exit status (`exit_code`, solver/errors.py); this adds
the same map for what click and the OS raise, so that `main` and the documents of
`apply --json` agree on every code.
"""

import click

from adapters.cli.escape import one_line
from solver.errors import BudgetSolveError, ExitCode


def exit_code(error: BaseException) -> ExitCode:
    """The exit status `error` ends the command with."""
    if isinstance(error, BudgetSolveError):
        return error.exit_code
    if isinstance(error, (KeyboardInterrupt, click.Abort)):
        return ExitCode.INTERRUPTED
    if isinstance(error, (click.ClickException, OSError)):
        # A usage error, or a file the command line names that cannot be read.
        return ExitCode.INPUT
    return ExitCode.FAILED


def message(error: BaseException) -> str:
    """The text after `error: `, on one line: a value the user gave (a path with a
    newline, say) cannot start a line of its own or move the cursor."""
    if isinstance(error, (KeyboardInterrupt, click.Abort)):
        text = "interrupted"
    elif isinstance(error, click.ClickException):
        text = error.format_message()
    elif isinstance(error, OSError):
        reason = error.strerror or str(error)
        text = f"{reason}: {error.filename}" if error.filename else reason
    else:
        text = str(error)
    return one_line(text)
