"""Files and disk of the machine a run changes: this one, or another over SSH.

Inside `nix.on_host(HOST)` every function here acts on HOST, with one ssh command that
runs POSIX sh and coreutils there; outside it, on this machine through `os`. The apply
engine reads and writes its journal, its GC roots, the profile's links and the disk's
usage only through these, so one engine runs an upgrade here and one over SSH, and the
host needs Nix, sh and coreutils: nothing of ours.
"""

import errno
import os
import socket
import stat
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from adapters.files import write_atomic as write_here
from adapters.nixstore import process
from solver.errors import InputError, NixError


def remote() -> str | None:
    """The host commands run on now (`user@host`), None for this machine."""
    ssh = process.current_remote()
    return ssh[-1] if ssh is not None else None


def hostname() -> str:
    """The host's name, as nixos-rebuild picks a flake's configuration by it."""
    if remote() is None:
        return socket.gethostname()
    return _sh("uname -n", label="uname -n").stdout.strip()


# The variables read from each host's login environment: (host, name) -> value.
_ENVIRONMENT: dict[tuple[str, str], str | None] = {}


def environment(name: str) -> str | None:
    """A variable of the host's environment (None or empty: unset): here, ours; over SSH,
    what a command there sees. Read once per host."""
    where = remote()
    if where is None:
        return os.environ.get(name) or None
    key = (where, name)
    if key not in _ENVIRONMENT:
        out = _sh('printf "%s" "$(printenv -- "$1")"', name, label=f"printenv {name}").stdout
        _ENVIRONMENT[key] = out or None
    return _ENVIRONMENT[key]


def forget_environments() -> None:
    """Read every host's environment again (a test gives one address a new host)."""
    _ENVIRONMENT.clear()


def named(path: str | Path) -> str:
    """`path` as messages name it: `HOST:PATH` on another host."""
    where = remote()
    return f"{where}:{path}" if where is not None else str(path)


def _sh(
    script: str, *args: str, label: str, check: bool = True, input: str | None = None
) -> process.Completed:
    """`sh -c SCRIPT sh ARGS...` on the host; errors name it `label`."""
    argv = ["sh", "-c", script, "sh", *args]
    return process.run(argv, check=check, input=input, label=label)


def _test(condition: str, path: str | Path) -> bool:
    """`[ CONDITION ]` on the host, answered in its output: an exit code would not tell
    "no" from a failure of ssh or sudo."""
    script = f"if {condition}; then echo yes; else echo no; fi"
    out = _sh(script, str(path), label=f"looking at {path}").stdout.strip()
    if out not in ("yes", "no"):
        raise NixError(f"{remote()}: testing {path} printed {out!r}")
    return out == "yes"


def lexists(path: str | Path) -> bool:
    if remote() is None:
        return os.path.lexists(path)
    return _test('[ -e "$1" ] || [ -L "$1" ]', path)


def existing(paths: Iterable[str]) -> list[str]:
    """Those of `paths` that exist (links too), in their order; one command for all."""
    paths = list(paths)
    if remote() is None or not paths:
        return [p for p in paths if os.path.lexists(p)]
    script = (
        'while IFS= read -r p; do if [ -e "$p" ] || [ -L "$p" ]; then '
        "printf '%s\\n' \"$p\"; fi; done"
    )
    listed = "".join(f"{p}\n" for p in paths)
    found = set(
        _sh(script, input=listed, label=f"looking for {len(paths)} paths").stdout.split("\n")
    )
    return [p for p in paths if p in found]


def is_symlink(path: str | Path) -> bool:
    if remote() is None:
        return os.path.islink(path)
    return _test('[ -L "$1" ]', path)


def is_dir(path: str | Path) -> bool:
    if remote() is None:
        return os.path.isdir(path)
    return _test('[ -d "$1" ]', path)


def readlink(path: str | Path) -> str:
    if remote() is None:
        return os.readlink(path)
    return _sh('readlink -- "$1"', str(path), label=f"readlink {path}").stdout.rstrip("\n")


def realpath(path: str | Path) -> str:
    """Every link resolved, as os.path.realpath (a missing end is kept as named)."""
    if remote() is None:
        return os.path.realpath(path)
    return _sh('readlink -m -- "$1"', str(path), label=f"readlink -m {path}").stdout.rstrip("\n")


def links(directory: str | Path) -> dict[str, str]:
    """The symlinks directly in `directory`, name -> target ({} when it is missing)."""
    directory = Path(directory)
    if remote() is None:
        if not directory.is_dir():
            return {}
        return {p.name: os.readlink(p) for p in directory.iterdir() if p.is_symlink()}
    script = (
        'cd -- "$1" 2>/dev/null || exit 0; for f in * .[!.]*; do '
        'if [ -L "$f" ]; then printf \'%s\\0%s\\0\' "$f" "$(readlink -- "$f")"; fi; done'
    )
    fields = _sh(script, str(directory), label=f"listing {directory}").stdout.split("\0")
    return dict(zip(fields[0:-1:2], fields[1::2], strict=True))


def unlink_links(directory: str | Path, prefix: str = "") -> None:
    """Remove the symlinks in `directory` whose names start with `prefix`: the links
    themselves, never what they point at. A `directory` that is itself a link is refused
    (`InputError`): what it points at is not ours to empty."""
    directory = Path(directory)
    if remote() is None:
        _unlink_links_here(directory, prefix)
        return
    script = (
        'if [ -L "$1" ]; then echo link; exit 0; fi; cd -P -- "$1" 2>/dev/null || exit 0; '
        'for f in "$2"* ".$2"*; do '
        'case "$f" in "$2"*) if [ -L "$f" ]; then rm -f -- "$f"; fi;; esac; done'
    )
    out = _sh(script, str(directory), prefix, label=f"removing links {directory}/{prefix}*")
    if out.stdout.strip() == "link":
        raise _through_link(directory, "delete links in it")


def _unlink_links_here(directory: Path, prefix: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR):
            raise _through_link(directory, "delete links in it") from None
        raise
    try:
        with os.scandir(fd) as entries:
            names = [e.name for e in entries if e.is_symlink() and e.name.startswith(prefix)]
        for name in names:
            # unlinkat: the entry itself goes, whatever it points at.
            os.unlink(name, dir_fd=fd)
    finally:
        os.close(fd)


def _through_link(path: str | Path, what: str) -> InputError:
    return InputError(
        f"{named(path)} is a symbolic link or not what budget-solve made there; refusing to {what}"
    )


def symlink(link: str | Path, target: str) -> None:
    """Point `link` at `target`, atomically (a link beside it, renamed over it)."""
    link = Path(link)
    if remote() is None:
        link.parent.mkdir(parents=True, exist_ok=True)
        tmp = link.with_name(f".{link.name}.tmp")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(target)
        os.replace(tmp, link)
        return
    script = (
        'd=$(dirname -- "$1"); t="$d/.$(basename -- "$1").tmp"; '
        'mkdir -p -- "$d" && rm -f -- "$t" && ln -s -- "$2" "$t" && mv -fT -- "$t" "$1"'
    )
    _sh(script, str(link), target, label=f"linking {link}")


def read_bytes(path: str | Path) -> bytes | None:
    """The contents of the regular file `path`, None when it does not exist. A link, a
    directory or a device at `path` is refused (`InputError`): it is not a file of ours."""
    if remote() is None:
        return _read_here(Path(path))
    script = (
        'if [ -L "$1" ]; then exit 4; fi; [ -e "$1" ] || exit 3; [ -f "$1" ] || exit 4; cat -- "$1"'
    )
    result = _sh(script, str(path), check=False, label="cat")
    if result.returncode == 3:
        return None
    if result.returncode == 4:
        raise _through_link(path, "read it")
    if result.returncode != 0:
        raise OSError(f"{remote()}:{path}: {process.last_error_line(result.stderr)}")
    return result.stdout.encode("utf-8")


def _read_here(path: Path) -> bytes | None:
    # O_NONBLOCK: a FIFO put in the file's place must not hang the run.
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise _through_link(path, "read it") from None
        raise
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _through_link(path, "read it")
        return f.read()


def write_atomic(path: str | Path, data: str, *, mode: int = 0o644) -> None:
    """Replace `path` with `data`: written beside it, synced, renamed, the directory
    synced, so that a power cut leaves the old file or the new one, whole."""
    if remote() is None:
        write_here(Path(path), data, mode=mode)
        return
    script = (
        'd=$(dirname -- "$1"); mkdir -p -- "$d" && '
        't=$(mktemp -- "$d/.$(basename -- "$1").XXXXXX") || exit 1; '
        'if cat > "$t" && chmod "$2" "$t" && sync -- "$t" && mv -fT -- "$t" "$1"; '
        'then sync -- "$d"; else rm -f -- "$t"; exit 1; fi'
    )
    _sh(script, str(path), f"{mode:o}", input=data, label=f"writing {path}")


def unlink(path: str | Path) -> None:
    if remote() is None:
        Path(path).unlink(missing_ok=True)
    else:
        _sh('rm -f -- "$1"', str(path), label=f"rm {path}")


def make_dirs(path: str | Path, mode: int = 0o755) -> None:
    if remote() is None:
        Path(path).mkdir(mode=mode, parents=True, exist_ok=True)
    else:
        _sh('mkdir -p -m "$2" -- "$1"', str(path), f"{mode:o}", label=f"mkdir {path}")


@dataclass(frozen=True)
class Owner:
    """Who may change a path: its kind, its owner, its permission bits, and who we are."""

    kind: str  # "directory", "symlink" or "other"
    uid: int
    mode: int
    our_uid: int


def owner(path: str | Path) -> Owner | None:
    """None when `path` does not exist (a dangling link exists)."""
    if remote() is None:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return None
        kind = (
            "symlink"
            if stat.S_ISLNK(st.st_mode)
            else "directory"
            if stat.S_ISDIR(st.st_mode)
            else "other"
        )
        return Owner(kind, st.st_uid, stat.S_IMODE(st.st_mode), os.geteuid())
    script = (
        'if ! [ -e "$1" ] && ! [ -L "$1" ]; then echo missing; exit 0; fi; '
        'if [ -L "$1" ]; then k=symlink; elif [ -d "$1" ]; then k=directory; else k=other; fi; '
        'echo "$k $(stat -c "%u %a" -- "$1") $(id -u)"'
    )
    result = _sh(script, str(path), label=f"stat {path}")
    if result.stdout.strip() == "missing":
        return None
    try:
        kind, uid, mode, ours = result.stdout.split()
        return Owner(kind, int(uid), int(mode, 8), int(ours))
    except ValueError:
        raise NixError(f"{remote()}: cannot read the owner of {path}: {result.stderr}") from None


def ensure_private(*dirs: str | Path) -> None:
    """Make sure that no one but us and root can change what is in each of `dirs`, in
    order, creating the missing ones (mode 0700): each is a directory (not a link) of
    ours or root's that only its owner may write, and each of its ancestors, as named and
    as resolved, is root's or ours and writable by others only when sticky (/tmp).
    Anything else is refused with one line (`InputError`): another user could swap what
    the run writes, reads or deletes there. As OpenSSH's StrictModes, for a tool that
    runs as root and deletes generations."""
    if remote() is None:
        problems = (_private_here(Path(d)) for d in dirs)
        problem = next((p for p in problems if p is not None), None)
    else:
        problem = _private_there(dirs)
    if problem is not None:
        raise InputError(f"state directory: {named(problem)}; refusing to use it")


def _private_here(directory: Path) -> str | None:
    directory = Path(os.path.abspath(directory))
    us = os.geteuid()
    parent = directory.parent
    for chain in (parent, Path(os.path.realpath(parent))):
        for ancestor in [*reversed(chain.parents), chain]:
            try:
                st = os.lstat(ancestor)
            except FileNotFoundError:
                os.mkdir(ancestor, 0o755)
                st = os.lstat(ancestor)
            problem = _ancestor_problem(str(ancestor), st.st_uid, st.st_mode, us)
            if problem is not None:
                return problem
    try:
        st = os.lstat(directory)
    except FileNotFoundError:
        os.mkdir(directory, 0o700)
        st = os.lstat(directory)
    return _private_problem(str(directory), st.st_uid, st.st_mode, us)


def _ancestor_problem(path: str, uid: int, mode: int, us: int) -> str | None:
    if uid not in (0, us):
        return f"{path} belongs to another user (uid {uid})"
    if stat.S_ISDIR(mode) and mode & 0o022 and not mode & stat.S_ISVTX:
        return f"{path} is writable by others (mode {stat.S_IMODE(mode):o})"
    return None


def _private_problem(path: str, uid: int, mode: int, us: int) -> str | None:
    if stat.S_ISLNK(mode):
        return f"{path} is a symbolic link"
    if not stat.S_ISDIR(mode):
        return f"{path} is not a directory"
    if uid not in (0, us):
        return f"{path} belongs to another user (uid {uid})"
    if mode & 0o022:
        return f"{path} is writable by others (mode {stat.S_IMODE(mode):o}); chmod go-w it"
    return None


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


def _private_there(dirs: tuple[str | Path, ...]) -> str | None:
    label = f"checking {dirs[0]}" if dirs else "checking"
    out = _sh(_PRIVATE, *map(str, dirs), label=label).stdout.strip()
    return None if out == "ok" else out or f"{dirs[0]}: the check printed nothing"


@dataclass(frozen=True)
class Usage:
    """A filesystem's size and what is in use on it, in bytes."""

    size: int
    used: int


_STATFS = 'stat -f -c "%b %f %S" -- "$1"'


def _usage(line: str, path: str | Path) -> Usage:
    try:
        blocks, free, block_size = (int(word) for word in line.split())
    except ValueError:
        raise NixError(f"{remote()}: stat -f {path} printed {line.strip()!r}") from None
    return Usage(blocks * block_size, (blocks - free) * block_size)


def usage(path: str | Path) -> Usage:
    """The filesystem holding `path` (statvfs: blocks in use, free ones reserved for root
    counted as free)."""
    if remote() is None:
        st = os.statvfs(path)
        return Usage(st.f_blocks * st.f_frsize, (st.f_blocks - st.f_bfree) * st.f_frsize)
    return _usage(_sh(_STATFS, str(path), label=f"stat -f {path}").stdout, path)


def disk_usage(paths: Iterable[str]) -> int:
    """Allocated bytes of everything under `paths`, each inode counted once (du)."""
    paths = list(paths)
    if remote() is None:
        return _disk_usage_here(paths)
    if not paths:
        return 0
    # du counts each inode once over all its arguments; missing ones are only warned of.
    script = "du -s -B1 -c --files0-from=- 2>/dev/null | tail -n 1"
    listed = "".join(f"{p}\0" for p in paths)
    out = _sh(script, input=listed, label=f"du of {len(paths)} paths").stdout
    try:
        return int(out.split()[0])
    except (ValueError, IndexError):
        raise NixError(f"{remote()}: du printed {out.strip()!r}, not a total") from None


def _disk_usage_here(paths: list[str]) -> int:
    seen: set[tuple[int, int]] = set()
    total = 0
    for top in paths:
        stack = [top]
        while stack:
            p = stack.pop()
            try:
                st = os.lstat(p)
            except FileNotFoundError:
                continue
            key = (st.st_dev, st.st_ino)
            if key in seen:
                continue
            seen.add(key)
            total += st.st_blocks * 512
            if os.path.isdir(p) and not os.path.islink(p):
                stack.extend(os.path.join(p, name) for name in os.listdir(p))
    return total


class UsageStream:
    """Bytes in use on the host's filesystem holding `path`, every `interval` seconds, to
    `each`, from one long-running ssh command (a command per sample would be too slow)."""

    def __init__(self, path: str | Path, interval: float, each: Callable[[int], None]) -> None:
        loop = f"while {_STATFS}; do sleep {interval:g}; done"
        self._proc = process.start(
            process.on_remote(["sh", "-c", loop, "sh", str(path)]), errors=False
        )
        self._path = path
        self._each = each
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            try:
                self._each(_usage(line, self._path).used)
            except NixError:
                return

    def close(self) -> None:
        process.finish(self._proc, grace=5.0)
        self._thread.join()


class Held(Exception):  # noqa: N818 (a state, not a failure of ours)
    """Another process holds the lock; its pid@host."""

    def __init__(self, holder: str) -> None:
        super().__init__(holder)
        self.holder = holder


class HostLock:
    """An exclusive `flock` on `file` on the host, held by a command that runs there until
    we close its input: whether we exit, are killed, or lose the connection, it ends and
    the lock goes with it. The holder's pid is written into the file."""

    def __init__(self, file: Path) -> None:
        self.file = file
        self._proc: process.Running | None = None

    def __enter__(self) -> "HostLock":
        # A link or anything but a file in the lock's place is refused (exit 76), never
        # opened: its target would be overwritten with our pid.
        script = (
            'if [ -L "$1" ] || { [ -e "$1" ] && ! [ -f "$1" ]; }; then exit 76; fi; '
            'exec 9>>"$1" || exit 1; if ! flock -n 9; then cat -- "$1"; exit 75; fi; '
            'echo "$$@$(uname -n)" > "$1"; echo locked; exec cat > /dev/null'
        )
        proc = process.start(
            process.on_remote(["sh", "-c", script, "sh", str(self.file)]), feed=True
        )
        assert proc.stdout is not None and proc.stderr is not None
        first = proc.stdout.readline().strip()
        if first == "locked":
            self._proc = proc
            return self
        rest = proc.stdout.read()
        code = proc.wait()
        if code == 75:
            raise Held((first + rest).strip() or "unknown")
        if code == 76:
            raise _through_link(self.file, "lock it")
        reason = process.last_error_line(proc.stderr.read())
        raise NixError(f"{remote()}: cannot lock {self.file}: exit code {code}: {reason}")

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._proc is not None:
            process.finish(self._proc)
            self._proc = None
