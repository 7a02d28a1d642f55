"""Files and disk of the machine a run changes: this one, or another over SSH.

Inside `nix.on_host(HOST)` every function here acts on HOST, with one ssh command that
runs POSIX sh and coreutils there; outside it, on this machine through `os`. The apply
engine reads and writes its journal, its GC roots, the profile's links and the disk's
usage only through these, so one engine runs an upgrade here and one over SSH, and the
host needs Nix, sh and coreutils: nothing of ours.
"""

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
from solver.errors import NixError


def remote() -> str | None:
    """The host commands run on now (`user@host`), None for this machine."""
    ssh = process.current_remote()
    return ssh[-1] if ssh is not None else None


def hostname() -> str:
    """The host's name, as nixos-rebuild picks a flake's configuration by it."""
    if remote() is None:
        return socket.gethostname()
    return _sh("uname -n", label="uname -n").stdout.strip()


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
    """Remove the symlinks in `directory` whose names start with `prefix`."""
    directory = Path(directory)
    if remote() is None:
        if directory.is_dir():
            for link in directory.iterdir():
                if link.is_symlink() and link.name.startswith(prefix):
                    link.unlink()
        return
    script = (
        'cd -- "$1" 2>/dev/null || exit 0; for f in "$2"* ".$2"*; do '
        'case "$f" in "$2"*) if [ -L "$f" ]; then rm -f -- "$f"; fi;; esac; done'
    )
    _sh(script, str(directory), prefix, label=f"removing links {directory}/{prefix}*")


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
    """The file's contents, None when it does not exist."""
    if remote() is None:
        try:
            return Path(path).read_bytes()
        except FileNotFoundError:
            return None
    result = _sh('[ -e "$1" ] || exit 3; cat -- "$1"', str(path), check=False, label="cat")
    if result.returncode == 3:
        return None
    if result.returncode != 0:
        raise OSError(f"{remote()}:{path}: {process.last_error_line(result.stderr)}")
    return result.stdout.encode("utf-8")


def write_atomic(path: str | Path, data: str, *, mode: int = 0o644) -> None:
    """Replace `path` with `data`: written beside it, synced, renamed, the directory
    synced, so that a power cut leaves the old file or the new one, whole."""
    if remote() is None:
        write_here(Path(path), data, mode=mode)
        return
    script = (
        'd=$(dirname -- "$1"); mkdir -p -- "$d" && '
        't=$(mktemp -- "$d/.$(basename -- "$1").XXXXXX") || exit 1; '
        'if cat > "$t" && chmod "$2" "$t" && sync -- "$t" && mv -f -- "$t" "$1"; '
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
        script = (
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
        reason = process.last_error_line(proc.stderr.read())
        raise NixError(f"{remote()}: cannot lock {self.file}: exit code {code}: {reason}")

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._proc is not None:
            process.finish(self._proc)
            self._proc = None
