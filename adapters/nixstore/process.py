"""The one place that starts subprocesses: argv lists, text, explicit `check`, readable errors."""

import contextlib
import io
import json
import logging
import os
import re
import shlex
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence

from solver.errors import ConnectionLostError, NixError

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


# Nix's internal JSON log: the result type of one line of a build's own output.
_BUILD_LOG_LINE = 101

# A command that is running, and one that has run (their output as text).
Running = subprocess.Popen[str]
Completed = subprocess.CompletedProcess[str]


def start(argv: Sequence[str], *, feed: bool = False, errors: bool = True) -> Running:
    """A long-running command, started: its output as text pipes (stderr only with
    `errors`); its input a pipe with `feed` (closing it tells the command to end), else
    empty."""
    return subprocess.Popen(
        list(argv),
        stdin=subprocess.PIPE if feed else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE if errors else subprocess.DEVNULL,
        text=True,
        encoding="utf-8",
        errors="replace",
    )


def finish(proc: Running, *, grace: float = 30.0) -> None:
    """End a command from `start`: its input closed (with `feed`) or a SIGTERM, then
    SIGKILL if it is still there after `grace` seconds."""
    if proc.stdin is not None:
        proc.stdin.close()
    else:
        proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def monitored(argv: Sequence[str]) -> Iterator[Callable[[str], None]]:
    """A log monitor (nix-output-monitor: `nom --json`) for the block: the sink it yields
    feeds the program's standard input, and the program draws on our stderr. If it exits
    early, the rest of the log is dropped, not the build."""
    try:
        err = sys.stderr.fileno()
    except (AttributeError, ValueError, io.UnsupportedOperation):
        err = 2  # sys.stderr replaced by something without a descriptor
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=err,
            stderr=err,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
    except OSError as e:
        raise NixError(f"{argv[0]} cannot be started: {e.strerror}") from e
    feed = proc.stdin
    assert feed is not None
    alive = True

    def sink(line: str) -> None:
        nonlocal alive
        if alive:
            try:
                feed.write(line + "\n")
                feed.flush()
            except (BrokenPipeError, OSError):
                alive = False

    try:
        yield sink
    finally:
        with contextlib.suppress(BrokenPipeError, OSError):
            feed.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def describe(argv: Sequence[str]) -> str:
    """`argv` as a shell-quoted string, shortened when it is long."""
    if len(argv) <= _MAX_ARGS_SHOWN:
        return shlex.join(argv)
    shown = shlex.join(argv[:_MAX_ARGS_SHOWN])
    return f"{shown} ... ({len(argv) - _MAX_ARGS_SHOWN} more arguments)"


def plain_lines(stderr: str) -> list[str]:
    """The text lines of a Nix log: as printed, or from `--log-format internal-json`
    (`@nix {...}` lines: messages, and the lines of build logs), without colours."""
    out: list[str] = []
    for line in stderr.splitlines():
        if line.startswith("@nix "):
            try:
                event = json.loads(line[5:])
            except json.JSONDecodeError:
                continue
            if not isinstance(event, dict):
                continue
            if event.get("action") == "msg" and isinstance(event.get("msg"), str):
                out.extend(event["msg"].splitlines())
            elif event.get("action") == "result" and event.get("type") == _BUILD_LOG_LINE:
                fields = event.get("fields")
                if isinstance(fields, list) and fields and isinstance(fields[0], str):
                    out.append(fields[0])
            continue
        out.append(line)
    return [text for text in (_ANSI.sub("", line).strip() for line in out) if text]


def last_error_line(stderr: str) -> str:
    """The line of `stderr` that best says what failed: a full disk when the kernel said
    so (Nix's own last line then only names a path it could not create), else the last
    `error:` line, else the last line that is not a hint or a warning, else the last line."""
    lines = plain_lines(stderr)
    for line in reversed(lines):
        if "No space left on device" in line:
            return line.removeprefix("error:").strip()
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
    log: Callable[[str], None] | None = None,
    label: str | None = None,
    where: str | None = None,
    lost: int | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `argv` here (never through a shell), capturing stdout and stderr as text.

    `env` adds variables on top of the inherited environment, so NIX_STORE_DIR and
    friends always reach Nix. With `check=True` a non-zero exit raises `NixError`.
    `log`: each stderr line also goes there as it comes (a build's log).
    `label`: what errors call the command instead of its argv (a script, say); `where`:
    the host errors name before it. `lost`: the exit code that means the connection to
    that host failed (ssh's 255), raised as `ConnectionLostError`.
    """
    argv = list(argv)
    if not argv:
        raise ValueError("run() needs a command")
    shown = (f"{where}: " if where else "") + (label if label is not None else describe(argv))
    logger.debug("running %s", shlex.join(argv))
    full_env = {**os.environ, **env} if env is not None else None
    try:
        if log is not None:
            result = _streamed(argv, full_env, log)
        else:
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
        raise NixError(f"{shown} timed out after {timeout:g} s") from e
    if result.stderr:
        logger.debug("%s stderr: %s", argv[0], result.stderr.rstrip())
    if check and result.returncode != 0:
        if result.returncode < 0:
            status = f"was killed by signal {-result.returncode}"
        else:
            status = f"failed with exit code {result.returncode}"
        reason = last_error_line(result.stderr)
        message = f"{shown} {status}" + (f": {reason}" if reason else "")
        if lost is not None and result.returncode == lost:
            raise ConnectionLostError(message)
        raise NixError(message)
    return result


def _streamed(
    argv: list[str], env: Mapping[str, str] | None, sink: Callable[[str], None]
) -> subprocess.CompletedProcess[str]:
    """`subprocess.run`, with each stderr line handed to `sink` as it arrives."""
    with subprocess.Popen(
        argv,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        errors="replace",
    ) as proc:
        stdout, stderr = proc.stdout, proc.stderr
        assert stdout is not None and stderr is not None
        out: list[str] = []
        reader = threading.Thread(target=lambda: out.append(stdout.read()), daemon=True)
        reader.start()
        err: list[str] = []
        for line in stderr:
            err.append(line)
            sink(line.rstrip("\n"))
        reader.join()
        code = proc.wait()
    return subprocess.CompletedProcess(argv, code, "".join(out), "".join(err))
