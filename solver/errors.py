"""The project's error hierarchy: one top-level handler turns these into `error: ...`."""


class BudgetSolveError(Exception):
    """Base of every error the command line reports as `error: ...` (exit 2)."""


class InputError(BudgetSolveError):
    """User input (a file, an option, a size) is wrong."""


class ClosureError(InputError):
    """A closure is inconsistent: a missing path, a dangling reference, a bad size."""


class NixError(BudgetSolveError):
    """A nix command failed or printed something we cannot read."""


class ConnectionLostError(NixError):
    """ssh to the host failed (exit code 255): the host's state is as the last command
    that got through left it."""
