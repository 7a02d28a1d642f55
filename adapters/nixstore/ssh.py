"""Another machine over SSH, as Nix and nixos-rebuild reach it: `ssh` with $NIX_SSHOPTS,
never asking for a password, one shared connection for every command, and each
command one POSIX sh command line there (as root through `sudo` when asked). Host values
from the command line are checked here first: ssh must never read one as an option.
"""

import atexit
import functools
import os
import shlex
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from adapters.nixstore import process
from adapters.nixstore.host import Held, Host, Owner, Usage
from solver.errors import InputError, NixError

# ssh exits 255 when the connection fails or breaks, and passes on any other code.
LOST = 255


def _split_host(host: str, what: str | None = "host") -> tuple[str | None, str]:
    """The protocol a host is named with (None: none) and its SSH address, checked as
    `check_host` says; the errors name the value as `what` does."""
    named, sep, address = host.partition("://")
    shown = f"{what} {host!r}" if what else repr(host)
    scheme = named if sep else None
    if not sep:
        address = host
    elif scheme not in ("ssh", "ssh-ng") or not address or "/" in address:
        raise InputError(
            f"{shown}: expected [USER@]HOST, ssh://[USER@]HOST or ssh-ng://[USER@]HOST"
        )
    problem = _address_problem(address)
    if problem is not None:
        raise InputError(f"{shown}: {problem}")
    return scheme, address


def _address_problem(address: str) -> str | None:
    user, at, name = address.rpartition("@")
    if not address:
        return "a host address may not be empty"
    # ssh takes a destination that starts with `-` for an option (-oProxyCommand=...
    # runs a command here); a user is the start of the destination.
    if address.startswith("-"):
        return "a host address may not start with '-'"
    # A blank would be a second word on the host's side and in the logs; a newline or an
    # escape a second line or a terminal command wherever the address is printed.
    if any(c.isspace() or not c.isprintable() for c in address):
        return "a host address may not contain whitespace or control characters"
    if at and not user:
        return "no user before '@'"
    if not name:
        return "no host after '@'"
    if name.startswith("-"):
        return "a host name may not start with '-'"
    return None


def check_host(host: str, what: str | None = "host") -> str:
    """The SSH address `host` names (`[USER@]HOST`, `ssh://[USER@]HOST` or
    `ssh-ng://[USER@]HOST`), refused with a one-line InputError that calls it `what` (an
    option's name; None: the value alone) wherever ssh could read it as anything but its
    destination. Nothing is recorded (`host_address` does that)."""
    return _split_host(host, what)[1]


def ssh_options() -> tuple[str, ...]:
    """$NIX_SSHOPTS, split as a shell would."""
    try:
        return tuple(shlex.split(os.environ.get("NIX_SSHOPTS", "")))
    except ValueError as e:
        raise InputError(f"NIX_SSHOPTS: {e}") from None


@functools.cache
def _control_dir() -> str:
    """A directory of our own for the shared connections' sockets, removed at exit with
    the connections (`ssh -O exit`)."""
    directory = tempfile.mkdtemp(prefix="budget-solve-ssh-")
    atexit.register(_close_connections, directory)
    return directory


def _close_connections(directory: str) -> None:
    for socket in Path(directory).iterdir():
        process.run(["ssh", "-o", f"ControlPath={socket}", "-O", "exit", "-"], check=False)
    shutil.rmtree(directory, ignore_errors=True)


@dataclass(frozen=True)
class Ssh(Host):
    """A host over SSH: `address` is `[USER@]HOST`; `protocol` the store protocol `nix
    copy` speaks to it (`ssh`: `nix-store --serve`; `ssh-ng`: `nix-daemon --stdio`);
    `sudo`: every command there runs as root through `sudo --non-interactive`."""

    address: str
    protocol: Literal["ssh", "ssh-ng"] = "ssh"
    sudo: bool = False
    options: tuple[str, ...] = field(default=(), compare=True)

    @classmethod
    def parse(cls, value: str, *, sudo: bool = False, what: str | None = "host") -> "Ssh":
        """`[USER@]HOST`, `ssh://[USER@]HOST` or `ssh-ng://[USER@]HOST`, checked
        (`check_host`), with $NIX_SSHOPTS as they are now."""
        scheme, address = _split_host(value, what)
        protocol: Literal["ssh", "ssh-ng"] = "ssh-ng" if scheme == "ssh-ng" else "ssh"
        return cls(address, protocol, sudo, ssh_options())

    @property
    def store_uri(self) -> str:
        return f"{self.protocol}://{self.address}"

    def ssh_argv(self) -> list[str]:
        """`ssh OPTIONS HOST`, the destination last, after every option: `wrap` puts `--`
        right after it, then the command, as nixos-rebuild-ng does."""
        # One connection for all our commands to a host, as nixos-rebuild shares its own:
        # each command is then a session on it, not a new login.
        shared = ["-o", "ControlMaster=auto", "-o", f"ControlPath={_control_dir()}/%C"]
        return [
            "ssh",
            *self.options,
            "-o",
            "BatchMode=yes",
            *shared,
            "-o",
            "ControlPersist=60",
            self.address,
        ]

    def wrap(self, argv: Sequence[str], env: Mapping[str, str] | None = None) -> list[str]:
        """The local command that runs `argv` on the host: one shell command there, with
        `env` set on that side, as root through `sudo` when asked."""
        assignments = [f"{name}={value}" for name, value in (env or {}).items()]
        command = ["env", *assignments, *argv] if assignments else list(argv)
        if self.sudo:
            # Never a password prompt: no one may be there to type it.
            command = ["sudo", "--non-interactive", "--", *command]
        # OpenSSH reads options again after the destination unless `--` ends them there,
        # so nothing of the command is ever an option to ssh.
        return [*self.ssh_argv(), "--", shlex.join(command)]

    def run(
        self,
        argv: Sequence[str],
        *,
        check: bool,
        env: Mapping[str, str] | None = None,
        input: str | None = None,
        timeout: float | None = None,
        log: Callable[[str], None] | None = None,
        label: str | None = None,
    ) -> process.Completed:
        shown = label if label is not None else process.describe(list(argv))
        return process.run(
            self.wrap(argv, env),
            check=check,
            input=input,
            timeout=timeout,
            log=log,
            label=shown,
            where=self.address,
            lost=LOST,
        )

    def _sh(
        self, script: str, *args: str, label: str, check: bool = True, input: str | None = None
    ) -> process.Completed:
        """`sh -c SCRIPT sh ARGS...` on the host; errors name it `label`."""
        return self.run(["sh", "-c", script, "sh", *args], check=check, input=input, label=label)

    def _test(self, condition: str, path: str | Path) -> bool:
        """`[ CONDITION ]` on the host, answered in its output: an exit code would not
        tell "no" from a failure of ssh or sudo."""
        script = f"if {condition}; then echo yes; else echo no; fi"
        out = self._sh(script, str(path), label=f"looking at {path}").stdout.strip()
        if out not in ("yes", "no"):
            raise NixError(f"{self.address}: testing {path} printed {out!r}")
        return out == "yes"

    def hostname(self) -> str:
        return self._sh("uname -n", label="uname -n").stdout.strip()

    def environment(self, name: str) -> str | None:
        return _environment(self, name)

    def lexists(self, path: str | Path) -> bool:
        return self._test('[ -e "$1" ] || [ -L "$1" ]', path)

    def existing(self, paths: Iterable[str]) -> list[str]:
        paths = list(paths)
        if not paths:
            return []
        script = (
            'while IFS= read -r p; do if [ -e "$p" ] || [ -L "$p" ]; then '
            "printf '%s\\n' \"$p\"; fi; done"
        )
        listed = "".join(f"{p}\n" for p in paths)
        out = self._sh(script, input=listed, label=f"looking for {len(paths)} paths").stdout
        found = set(out.split("\n"))
        return [p for p in paths if p in found]

    def is_symlink(self, path: str | Path) -> bool:
        return self._test('[ -L "$1" ]', path)

    def is_dir(self, path: str | Path) -> bool:
        return self._test('[ -d "$1" ]', path)

    def readlink(self, path: str | Path) -> str:
        return self._sh('readlink -- "$1"', str(path), label=f"readlink {path}").stdout.rstrip("\n")

    def realpath(self, path: str | Path) -> str:
        out = self._sh('readlink -m -- "$1"', str(path), label=f"readlink -m {path}").stdout
        return out.rstrip("\n")

    def links(self, directory: str | Path) -> dict[str, str]:
        script = (
            'cd -- "$1" 2>/dev/null || exit 0; for f in * .[!.]*; do '
            'if [ -L "$f" ]; then printf \'%s\\0%s\\0\' "$f" "$(readlink -- "$f")"; fi; done'
        )
        fields = self._sh(script, str(directory), label=f"listing {directory}").stdout.split("\0")
        return dict(zip(fields[0:-1:2], fields[1::2], strict=True))

    def unlink_links(self, directory: str | Path, prefix: str = "") -> None:
        script = (
            'if [ -L "$1" ]; then echo link; exit 0; fi; cd -P -- "$1" 2>/dev/null || exit 0; '
            'for f in "$2"* ".$2"*; do '
            'case "$f" in "$2"*) if [ -L "$f" ]; then rm -f -- "$f"; fi;; esac; done'
        )
        label = f"removing links {directory}/{prefix}*"
        if self._sh(script, str(directory), prefix, label=label).stdout.strip() == "link":
            raise self.through_link(directory, "delete links in it")

    def symlink(self, link: str | Path, target: str) -> None:
        script = (
            'd=$(dirname -- "$1"); t="$d/.$(basename -- "$1").tmp"; '
            'mkdir -p -- "$d" && rm -f -- "$t" && ln -s -- "$2" "$t" && mv -fT -- "$t" "$1"'
        )
        self._sh(script, str(link), target, label=f"linking {link}")

    def read_bytes(self, path: str | Path) -> bytes | None:
        script = (
            'if [ -L "$1" ]; then exit 4; fi; [ -e "$1" ] || exit 3; [ -f "$1" ] || exit 4; '
            'cat -- "$1"'
        )
        result = self._sh(script, str(path), check=False, label="cat")
        if result.returncode == 3:
            return None
        if result.returncode == 4:
            raise self.through_link(path, "read it")
        if result.returncode != 0:
            raise OSError(f"{self.address}:{path}: {process.last_error_line(result.stderr)}")
        return result.stdout.encode("utf-8")

    def write_atomic(self, path: str | Path, data: str, *, mode: int = 0o644) -> None:
        script = (
            'd=$(dirname -- "$1"); mkdir -p -- "$d" && '
            't=$(mktemp -- "$d/.$(basename -- "$1").XXXXXX") || exit 1; '
            'if cat > "$t" && chmod "$2" "$t" && sync -- "$t" && mv -fT -- "$t" "$1"; '
            'then sync -- "$d"; else rm -f -- "$t"; exit 1; fi'
        )
        self._sh(script, str(path), f"{mode:o}", input=data, label=f"writing {path}")

    def unlink(self, path: str | Path) -> None:
        self._sh('rm -f -- "$1"', str(path), label=f"rm {path}")

    def make_dirs(self, path: str | Path, mode: int = 0o755) -> None:
        self._sh('mkdir -p -m "$2" -- "$1"', str(path), f"{mode:o}", label=f"mkdir {path}")

    def owner(self, path: str | Path) -> Owner | None:
        script = (
            'if ! [ -e "$1" ] && ! [ -L "$1" ]; then echo missing; exit 0; fi; '
            'if [ -L "$1" ]; then k=symlink; elif [ -d "$1" ]; then k=directory; else k=other; fi; '
            'echo "$k $(stat -c "%u %a" -- "$1") $(id -u)"'
        )
        result = self._sh(script, str(path), label=f"stat {path}")
        if result.stdout.strip() == "missing":
            return None
        try:
            kind, uid, mode, ours = result.stdout.split()
            return Owner(kind, int(uid), int(mode, 8), int(ours))
        except ValueError:
            raise NixError(
                f"{self.address}: cannot read the owner of {path}: {result.stderr}"
            ) from None

    def private_problem(self, dirs: Sequence[str | Path]) -> str | None:
        label = f"checking {dirs[0]}" if dirs else "checking"
        out = self._sh(_PRIVATE, *map(str, dirs), label=label).stdout.strip()
        return None if out == "ok" else out or f"{dirs[0]}: the check printed nothing"

    def _usage(self, line: str, path: str | Path) -> Usage:
        try:
            blocks, free, block_size = (int(word) for word in line.split())
        except ValueError:
            raise NixError(f"{self.address}: stat -f {path} printed {line.strip()!r}") from None
        return Usage(blocks * block_size, (blocks - free) * block_size)

    def usage(self, path: str | Path) -> Usage:
        return self._usage(self._sh(_STATFS, str(path), label=f"stat -f {path}").stdout, path)

    def disk_usage(self, paths: Iterable[str]) -> int:
        paths = list(paths)
        if not paths:
            return 0
        # du counts each inode once over all its arguments; missing ones are only warned of.
        script = "du -s -B1 -c --files0-from=- 2>/dev/null | tail -n 1"
        listed = "".join(f"{p}\0" for p in paths)
        out = self._sh(script, input=listed, label=f"du of {len(paths)} paths").stdout
        try:
            return int(out.split()[0])
        except (ValueError, IndexError):
            raise NixError(f"{self.address}: du printed {out.strip()!r}, not a total") from None

    @contextmanager
    def usage_samples(
        self, path: str | Path, interval: float, each: Callable[[int], None]
    ) -> Iterator[None]:
        # One long-running command: a command per sample would be too slow.
        loop = f"while {_STATFS}; do sleep {max(interval, 0.05):g}; done"
        proc = process.start(self.wrap(["sh", "-c", loop, "sh", str(path)]), errors=False)

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                try:
                    each(self._usage(line, path).used)
                except NixError:
                    return

        thread = threading.Thread(target=read, daemon=True)
        thread.start()
        try:
            yield
        finally:
            process.finish(proc, grace=5.0)
            thread.join()

    @contextmanager
    def lock(self, file: Path) -> Iterator[None]:
        # Held by a command that runs there until we close its input: whether we exit,
        # are killed, or lose the connection, it ends and the lock goes with it. A link or
        # anything but a file in the lock's place is refused (exit 76), never opened: its
        # target would be overwritten with our pid.
        script = (
            'if [ -L "$1" ] || { [ -e "$1" ] && ! [ -f "$1" ]; }; then exit 76; fi; '
            'exec 9>>"$1" || exit 1; if ! flock -n 9; then cat -- "$1"; exit 75; fi; '
            'echo "$$@$(uname -n)" > "$1"; echo locked; exec cat > /dev/null'
        )
        proc = process.start(self.wrap(["sh", "-c", script, "sh", str(file)]), feed=True)
        assert proc.stdout is not None and proc.stderr is not None
        first = proc.stdout.readline().strip()
        if first != "locked":
            rest = proc.stdout.read()
            code = proc.wait()
            if code == 75:
                raise Held((first + rest).strip() or "unknown")
            if code == 76:
                raise self.through_link(file, "lock it")
            reason = process.last_error_line(proc.stderr.read())
            raise NixError(f"{self.address}: cannot lock {file}: exit code {code}: {reason}")
        try:
            yield
        finally:
            process.finish(proc)


# The variables read from each host's login environment: (host, name) -> value.
_ENVIRONMENT: dict[tuple[Ssh, str], str | None] = {}


def _environment(host: Ssh, name: str) -> str | None:
    """What a command on `host` sees of `name`, read once per host."""
    key = (host, name)
    if key not in _ENVIRONMENT:
        script = 'printf "%s" "$(printenv -- "$1")"'
        out = host._sh(script, name, label=f"printenv {name}").stdout
        _ENVIRONMENT[key] = out or None
    return _ENVIRONMENT[key]


def forget_environments() -> None:
    """Read every host's environment again (a test gives one address a new host)."""
    _ENVIRONMENT.clear()


_STATFS = 'stat -f -c "%b %f %S" -- "$1"'


# The same checks in POSIX sh, for a host over SSH: `stat -c "%u %f"` gives the owner and
# the raw mode in hex; the file type is mode & 0xF000 (0xA000 a link, 0x4000 a directory).
_PRIVATE = r"""
us=$(id -u)
say() { printf '%s\n' "$*"; exit 0; }
look() {
  line=$(stat -c '%u %f' -- "$1" 2>/dev/null) || return 1
  uid=${line%% *}; m=$((0x${line#* })); type=$((m & 0xF000)); perm=$((m & 0xFFF))
}
theirs() { [ "$uid" != 0 ] && [ "$uid" != "$us" ]; }
ancestors() {
  p=$1
  while :; do
    look "$p" || say "cannot read $p"
    theirs && say "$p belongs to another user (uid $uid)"
    if [ $type = $((0x4000)) ] && [ $((m & 0x12)) != 0 ] && [ $((m & 0x200)) = 0 ]; then
      say "$p is writable by others (mode $(printf %o $perm))"
    fi
    [ "$p" = / ] && break
    p=$(dirname -- "$p")
  done
}
for d in "$@"; do
  parent=$(dirname -- "$d")
  [ -e "$parent" ] || mkdir -p -- "$parent" || say "cannot create $parent"
  ancestors "$parent"
  real=$(readlink -f -- "$parent") && ancestors "$real"
  look "$d" || { mkdir -m 700 -- "$d" && look "$d"; } || say "cannot create $d"
  [ $type = $((0xA000)) ] && say "$d is a symbolic link"
  [ $type = $((0x4000)) ] || say "$d is not a directory"
  theirs && say "$d belongs to another user (uid $uid)"
  [ $((m & 0x12)) = 0 ] || say "$d is writable by others (mode $(printf %o $perm)); chmod go-w it"
done
echo ok
"""
