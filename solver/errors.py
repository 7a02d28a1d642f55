"""The project's error hierarchy, and the exit status each kind of error means.

One top-level handler (adapters/cli/main.py) prints `error: ...` and exits with the
error's `exit_code`; the commands' own outcomes (a plan that does not fit, a reboot to
wait for) use the same `ExitCode`s, and `fleet --apply` reads them back from each host's
`apply --json` document.
"""

from collections.abc import Sequence
from enum import IntEnum
from typing import ClassVar

# How many names (paths, packages) an error message lists before it says "and N more".
NAMED_IN_ERRORS = 3


def some_named(names: Sequence[str]) -> str:
    """The first few of `names` for an error message, and how many more there are."""
    shown = ", ".join(names[:NAMED_IN_ERRORS])
    more = len(names) - NAMED_IN_ERRORS
    return f"{shown} and {more} more" if more > 0 else shown


class ExitCode(IntEnum):
    """The exit status of every command, one meaning each."""

    OK = 0
    # Something failed that the input did not cause: a step, Nix, the connection, a
    # write to stdout; or the user declined, and nothing was changed.
    FAILED = 1
    # Bad input (an option, a file, a size), or another run holds the profile's lock.
    INPUT = 2
    # No plan fits the budget (proven), or none was found within the time limit.
    NO_PLAN = 3
    # `apply --booted-system reboot`: reboot into the new generation, then run again.
    REBOOT = 4
    # Ctrl-C (128 + SIGINT, as a shell reports it).
    INTERRUPTED = 130


class BudgetSolveError(Exception):
    """Base of every error the command line reports as `error: ...`."""

    exit_code: ClassVar[ExitCode] = ExitCode.FAILED


class InputError(BudgetSolveError):
    """User input (a file, an option, a size) is wrong."""

    exit_code = ExitCode.INPUT


class ClosureError(InputError):
    """A closure is inconsistent: a missing path, a dangling reference, a bad size."""


class NixError(BudgetSolveError):
    """A nix command failed or printed something we cannot read: not bad input."""

    exit_code = ExitCode.FAILED


class ConnectionLostError(NixError):
    """ssh to the host failed (exit code 255): the host's state is as the last command
    that got through left it."""
