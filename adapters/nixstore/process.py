"""The one place that starts subprocesses: argv lists, text, explicit `check`, readable errors."""

import logging
import os
import re
import shlex
import subprocess
from collections.abc import Mapping, Sequence

from solver.errors import NixError

logger = logging.getLogger(__name__)

# Commands are named in one-line errors; a path-info over hundreds of paths must stay readable.
_MAX_ARGS_SHOWN = 8
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# Lines Nix prints around the real error that say nothing about what went wrong.
_NOISE = (
    "(use '--show-trace'",
    "For full logs, run",
    "warning:",
)


def describe(argv: Sequence[str]) -> str:
    """`argv` as a shell-quoted string, shortened when it is long."""
    if len(argv) <= _MAX_ARGS_SHOWN:
        return shlex.join(argv)
    shown = shlex.join(argv[:_MAX_ARGS_SHOWN])
    return f"{shown} ... ({len(argv) - _MAX_ARGS_SHOWN} more arguments)"


def last_error_line(stderr: str) -> str:
    """The line of `stderr` that best says what failed: the last `error:` line, else the
    last line that is not a hint or a warning, else the last line."""
    lines = [_ANSI.sub("", line).strip() for line in stderr.splitlines()]
    lines = [line for line in lines if line]
    for line in reversed(lines):
        if line.startswith("error:"):
            return line.removeprefix("error:").strip()
    for line in reversed(lines):
        if not line.startswith(_NOISE):
            return line
    return lines[-1] if lines else ""


def run(
    argv: Sequence[str],
    *,
    check: bool,
    env: Mapping[str, str] | None = None,
    input: str | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `argv` (never through a shell), capturing stdout and stderr as text.

    `env` adds variables on top of the inherited environment, so NIX_STORE_DIR and
    friends always reach Nix. With `check=True` a non-zero exit raises `NixError`.
    """
    argv = list(argv)
    if not argv:
        raise ValueError("run() needs a command")
    logger.debug("running %s", shlex.join(argv))
    full_env = {**os.environ, **env} if env is not None else None
    try:
        result = subprocess.run(
            argv,
            check=False,
            env=full_env,
            input=input,
            timeout=timeout,
            text=True,
            # Store paths and Nix messages are UTF-8 whatever the locale says.
            encoding="utf-8",
            errors="replace",
            capture_output=True,
        )
    except FileNotFoundError as e:
        name = os.path.basename(argv[0])
        hint = (
            "install Nix (apt-get install nix-bin)"
            if name == "nix" or name.startswith("nix-")
            else "is it installed and on PATH?"
        )
        raise NixError(f"{argv[0]} not found: {hint}") from e
    except PermissionError as e:
        raise NixError(f"{argv[0]} cannot be executed: {e.strerror}") from e
    except subprocess.TimeoutExpired as e:
        raise NixError(f"{describe(argv)} timed out after {timeout:g} s") from e
    if result.stderr:
        logger.debug("%s stderr: %s", argv[0], result.stderr.rstrip())
    if check and result.returncode != 0:
        if result.returncode < 0:
            status = f"was killed by signal {-result.returncode}"
        else:
            status = f"failed with exit code {result.returncode}"
        reason = last_error_line(result.stderr)
        raise NixError(f"{describe(argv)} {status}" + (f": {reason}" if reason else ""))
    return result
