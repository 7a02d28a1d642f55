"""The one place that starts subprocesses: argv lists, text, explicit `check`, readable errors."""

import contextlib
import contextvars
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

# Where the output of long commands (builds) goes as it comes, line by line; None: nowhere.
_sink: contextvars.ContextVar[Callable[[str], None] | None] = contextvars.ContextVar(
    "build_log", default=None
)


# The ssh command (`ssh OPTIONS HOST`) that commands run through, or None: here.
_remote: contextvars.ContextVar[tuple[str, ...] | None] = contextvars.ContextVar(
    "remote", default=None
)


# Whether commands on the host run through `sudo` (nixos-rebuild's --sudo).
_sudo: contextvars.ContextVar[bool] = contextvars.ContextVar("sudo", default=False)


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


def current_remote() -> tuple[str, ...] | None:
    """The ssh command that `run` runs commands through now, None when here."""
    return _remote.get()


def on_remote(argv: Sequence[str], env: Mapping[str, str] | None = None) -> list[str]:
    """The local command that runs `argv` on the current host: one shell command there,
    with `env` set on that side, as root through `sudo` when asked. `SSH... HOST --
    'COMMAND'`: the ssh command ends with its destination, and `--` follows it."""
    ssh = _remote.get()
    assert ssh is not None, "on_remote() is for a block run on another host"
    assignments = [f"{name}={value}" for name, value in (env or {}).items()]
    command = ["env", *assignments, *argv] if assignments else list(argv)
    if _sudo.get():
        # Never a password prompt: no one may be there to type it.
        command = ["sudo", "--non-interactive", "--", *command]
    # OpenSSH reads options again after the destination unless `--` ends them there, so
    # nothing of the command is ever an option to ssh.
    return [*ssh, "--", shlex.join(command)]


@contextlib.contextmanager
def remote(ssh: Sequence[str] | None, *, sudo: bool = False) -> Iterator[None]:
    """Within the block, `run` runs every command through `ssh` (None: here again), with
    `sudo` on the host when asked."""
    token = _remote.set(tuple(ssh) if ssh is not None else None)
    sudo_token = _sudo.set(sudo and ssh is not None)
    try:
        yield
    finally:
        _sudo.reset(sudo_token)
        _remote.reset(token)


@contextlib.contextmanager
def streaming(sink: Callable[[str], None] | None) -> Iterator[None]:
    """Within the block, `run(..., stream=True)` passes each stderr line to `sink`."""
    token = _sink.set(sink)
    try:
        yield
    finally:
        _sink.reset(token)


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
    stream: bool = False,
    label: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `argv` (never through a shell), capturing stdout and stderr as text.

    `env` adds variables on top of the inherited environment, so NIX_STORE_DIR and
    friends always reach Nix. With `check=True` a non-zero exit raises `NixError`.
    `stream`: a build whose log also goes, line by line, to the `streaming` sink.
    `label`: what errors call the command instead of its argv (a script, say).
    """
    argv = list(argv)
    if not argv:
        raise ValueError("run() needs a command")
    remote = _remote.get()
    where = f"{remote[-1]}: " if remote is not None else ""
    shown = where + (label if label is not None else describe(argv))
    if remote is not None:
        argv, env = on_remote(argv, env), None
    logger.debug("running %s", shlex.join(argv))
    full_env = {**os.environ, **env} if env is not None else None
    sink = _sink.get() if stream else None
    try:
        if sink is not None:
            result = _streamed(argv, full_env, sink)
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
        # ssh exits 255 when the connection fails or breaks, and passes on any other code.
        if remote is not None and result.returncode == 255:
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
