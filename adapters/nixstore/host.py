"""The machine a command runs on, as a value: `Local` (this one) or `Ssh` (another, in
adapters/nixstore/ssh.py), as nixos-rebuild-ng passes `remote` to each verb.

A `Host` runs commands and reads and writes the files and disk that a run changes. The
apply engine touches its journal, its GC roots, the profile's links and the disk's usage
only through one, so one engine runs an upgrade here and one over SSH, and a remote host
needs Nix, sh and coreutils: nothing of ours. Both implementations give the same answers
(tests/e2e/test_host.py checks them side by side).
"""

import errno
import fcntl
import os
import socket
import stat
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from adapters.files import write_atomic as write_here
from adapters.nixstore import process
from adapters.ticker import Ticker
from solver.errors import InputError

DEFAULT_STORE_DIR: Final = "/nix/store"
DEFAULT_STATE_DIR: Final = "/nix/var/nix"


@dataclass(frozen=True)
class Usage:
    """A filesystem's size and what is in use on it, in bytes."""

    size: int
    used: int


@dataclass(frozen=True)
class Owner:
    """Who may change a path: its kind, its owner, its permission bits, and who we are."""

    kind: str  # "directory", "symlink" or "other"
    uid: int
    mode: int
    our_uid: int


class Held(Exception):  # noqa: N818 (a state, not a failure of ours)
    """Another process holds the lock; its pid@host."""

    def __init__(self, holder: str) -> None:
        super().__init__(holder)
        self.holder = holder


class Host(ABC):
    """Where commands run and files are: the operations a run needs, each answered by
    the host itself. Values are frozen and hashable: caches are keyed by them."""

    # `user@host` for messages and for `nix copy`; None for this machine.
    address: str | None

    def named(self, path: str | Path) -> str:
        """`path` as messages name it: `HOST:PATH` on another host."""
        return f"{self.address}:{path}" if self.address is not None else str(path)

    def through_link(self, path: str | Path, what: str) -> InputError:
        return InputError(
            f"{self.named(path)} is a symbolic link or not what budget-solve made there; "
            f"refusing to {what}"
        )

    def store_dir(self) -> str:
        """The store directory Nix uses on the host: its $NIX_STORE_DIR (or the older
        $NIX_STORE), else /nix/store."""
        value = (
            self.environment("NIX_STORE_DIR") or self.environment("NIX_STORE") or DEFAULT_STORE_DIR
        )
        return value.rstrip("/") or "/"

    def state_dir(self) -> Path:
        """Nix's state directory on the host: its $NIX_STATE_DIR, else /nix/var/nix
        (profiles, GC roots and our own state directory are the host's)."""
        return Path(self.environment("NIX_STATE_DIR") or DEFAULT_STATE_DIR)

    @abstractmethod
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
        """`argv` run on the host (as `process.run`); `env` set on its side."""

    @abstractmethod
    def hostname(self) -> str:
        """The host's name, as nixos-rebuild picks a flake's configuration by it."""

    @abstractmethod
    def environment(self, name: str) -> str | None:
        """A variable of the host's environment (None or empty: unset)."""

    @abstractmethod
    def lexists(self, path: str | Path) -> bool: ...

    @abstractmethod
    def existing(self, paths: Iterable[str]) -> list[str]:
        """Those of `paths` that exist (links too), in their order."""

    @abstractmethod
    def is_symlink(self, path: str | Path) -> bool: ...

    @abstractmethod
    def is_dir(self, path: str | Path) -> bool: ...

    @abstractmethod
    def readlink(self, path: str | Path) -> str: ...

    @abstractmethod
    def realpath(self, path: str | Path) -> str:
        """Every link resolved, as os.path.realpath (a missing end is kept as named)."""

    @abstractmethod
    def links(self, directory: str | Path) -> dict[str, str]:
        """The symlinks directly in `directory`, name -> target ({} when it is missing)."""

    @abstractmethod
    def unlink_links(self, directory: str | Path, prefix: str = "") -> None:
        """Remove the symlinks in `directory` whose names start with `prefix`: the links
        themselves, never what they point at. A `directory` that is itself a link is
        refused (`InputError`): what it points at is not ours to empty."""

    @abstractmethod
    def symlink(self, link: str | Path, target: str) -> None:
        """Point `link` at `target`, atomically (a link beside it, renamed over it)."""

    @abstractmethod
    def read_bytes(self, path: str | Path) -> bytes | None:
        """The contents of the regular file `path`, None when it does not exist. A link,
        a directory or a device at `path` is refused (`InputError`)."""

    @abstractmethod
    def write_atomic(self, path: str | Path, data: str, *, mode: int = 0o644) -> None:
        """Replace `path` with `data`: written beside it, synced, renamed, the directory
        synced, so that a power cut leaves the old file or the new one, whole."""

    @abstractmethod
    def unlink(self, path: str | Path) -> None: ...

    @abstractmethod
    def make_dirs(self, path: str | Path, mode: int = 0o755) -> None: ...

    @abstractmethod
    def owner(self, path: str | Path) -> Owner | None:
        """None when `path` does not exist (a dangling link exists)."""

    @abstractmethod
    def private_problem(self, dirs: Sequence[str | Path]) -> str | None:
        """What `ensure_private` refuses in `dirs`, creating the missing ones."""

    def ensure_private(self, *dirs: str | Path) -> None:
        """Make sure that no one but us and root can change what is in each of `dirs`, in
        order, creating the missing ones (mode 0700): each is a directory (not a link) of
        ours or root's that only its owner may write, and each of its ancestors, as named
        and as resolved, is root's or ours and writable by others only when sticky (/tmp).
        Anything else is refused with one line (`InputError`): another user could swap
        what the run writes, reads or deletes there. As OpenSSH's StrictModes, for a tool
        that runs as root and deletes generations."""
        problem = self.private_problem(dirs)
        if problem is not None:
            raise InputError(f"state directory: {self.named(problem)}; refusing to use it")

    @abstractmethod
    def usage(self, path: str | Path) -> Usage:
        """The filesystem holding `path` (statvfs: blocks in use, free ones reserved for
        root counted as free)."""

    @abstractmethod
    def disk_usage(self, paths: Iterable[str]) -> int:
        """Allocated bytes of everything under `paths`, each inode counted once (du)."""

    @abstractmethod
    def usage_samples(
        self, path: str | Path, interval: float, each: Callable[[int], None]
    ) -> AbstractContextManager[None]:
        """Within the block, the bytes in use on the filesystem holding `path` go to
        `each`, about every `interval` seconds."""

    @abstractmethod
    def lock(self, file: Path) -> AbstractContextManager[None]:
        """An exclusive lock on `file`, held for the block; `Held` when another process
        has it. A link or anything but a file in its place is refused (`InputError`)."""


@dataclass(frozen=True)
class Local(Host):
    """This machine, through `os` and `subprocess`."""

    address: None = None

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
        return process.run(
            argv, check=check, env=env, input=input, timeout=timeout, log=log, label=label
        )

    def hostname(self) -> str:
        return socket.gethostname()

    def environment(self, name: str) -> str | None:
        return os.environ.get(name) or None

    def lexists(self, path: str | Path) -> bool:
        return os.path.lexists(path)

    def existing(self, paths: Iterable[str]) -> list[str]:
        return [p for p in paths if os.path.lexists(p)]

    def is_symlink(self, path: str | Path) -> bool:
        return os.path.islink(path)

    def is_dir(self, path: str | Path) -> bool:
        return os.path.isdir(path)

    def readlink(self, path: str | Path) -> str:
        return os.readlink(path)

    def realpath(self, path: str | Path) -> str:
        return os.path.realpath(path)

    def links(self, directory: str | Path) -> dict[str, str]:
        directory = Path(directory)
        if not directory.is_dir():
            return {}
        return {p.name: os.readlink(p) for p in directory.iterdir() if p.is_symlink()}

    def unlink_links(self, directory: str | Path, prefix: str = "") -> None:
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(directory, flags)
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                raise self.through_link(directory, "delete links in it") from None
            raise
        try:
            with os.scandir(fd) as entries:
                names = [e.name for e in entries if e.is_symlink() and e.name.startswith(prefix)]
            for name in names:
                # unlinkat: the entry itself goes, whatever it points at.
                os.unlink(name, dir_fd=fd)
        finally:
            os.close(fd)

    def symlink(self, link: str | Path, target: str) -> None:
        link = Path(link)
        link.parent.mkdir(parents=True, exist_ok=True)
        tmp = link.with_name(f".{link.name}.tmp")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(target)
        os.replace(tmp, link)

    def read_bytes(self, path: str | Path) -> bytes | None:
        # O_NONBLOCK: a FIFO put in the file's place must not hang the run.
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(path, flags)
        except FileNotFoundError:
            return None
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise self.through_link(path, "read it") from None
            raise
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise self.through_link(path, "read it")
            return f.read()

    def write_atomic(self, path: str | Path, data: str, *, mode: int = 0o644) -> None:
        write_here(Path(path), data, mode=mode)

    def unlink(self, path: str | Path) -> None:
        Path(path).unlink(missing_ok=True)

    def make_dirs(self, path: str | Path, mode: int = 0o755) -> None:
        Path(path).mkdir(mode=mode, parents=True, exist_ok=True)

    def owner(self, path: str | Path) -> Owner | None:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return None
        if stat.S_ISLNK(st.st_mode):
            kind = "symlink"
        else:
            kind = "directory" if stat.S_ISDIR(st.st_mode) else "other"
        return Owner(kind, st.st_uid, stat.S_IMODE(st.st_mode), os.geteuid())

    def private_problem(self, dirs: Sequence[str | Path]) -> str | None:
        problems = (_private_here(Path(d)) for d in dirs)
        return next((p for p in problems if p is not None), None)

    def usage(self, path: str | Path) -> Usage:
        st = os.statvfs(path)
        return Usage(st.f_blocks * st.f_frsize, (st.f_blocks - st.f_bfree) * st.f_frsize)

    def disk_usage(self, paths: Iterable[str]) -> int:
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

    @contextmanager
    def usage_samples(
        self, path: str | Path, interval: float, each: Callable[[int], None]
    ) -> Iterator[None]:
        with Ticker(interval, lambda: each(self.usage(path).used)):
            yield

    @contextmanager
    def lock(self, file: Path) -> Iterator[None]:
        # A non-blocking exclusive flock: the kernel drops it when the process dies, however
        # it dies, so a killed run never leaves a stale lock; the pid only names the holder.
        # O_NOFOLLOW: a link put in the lock's place must not have its file truncated.
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
        try:
            fd = os.open(file, flags, 0o600)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise self.through_link(file, "lock it") from None
            raise
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise self.through_link(file, "lock it")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    holder = os.read(fd, 32).decode("ascii", "replace").strip()
                    raise Held(holder or "unknown") from None
                raise
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            yield
        finally:
            os.close(fd)


LOCAL: Final = Local()


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
