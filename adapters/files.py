"""Files that survive a crash: written beside their place, synced, renamed, and the
directory synced, so a power cut leaves either the old file or the new one, whole."""

import os
import stat
import tempfile
from pathlib import Path

from solver.errors import InputError


def write_atomic(path: Path, data: str | bytes, *, mode: int = 0o644) -> None:
    """Replace `path` with `data` (text is written as UTF-8)."""
    path = Path(path)
    parent = path.parent
    parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_text(path: Path, limit: int, *, what: str = "file") -> str:
    """The UTF-8 text of the regular file `path`, refused in one line (`InputError`, which
    starts with the path) when it is missing, not a regular file (a FIFO or /dev/zero is
    never waited on nor read to its end), larger than `limit` bytes, or not UTF-8."""
    path = Path(path)
    try:
        # O_NONBLOCK: a FIFO in the file's place must not hang the run.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except (OSError, ValueError) as e:  # ValueError: a NUL in the path
        raise InputError(f"{path}: {getattr(e, 'strerror', None) or e}") from None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise InputError(f"{path}: not a regular file")
        try:
            raw = f.read(limit + 1)
        except OSError as e:
            raise InputError(f"{path}: {e.strerror or e}") from None
    if len(raw) > limit:
        raise InputError(f"{path}: over {limit:,} bytes, too large for a {what}")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 text (byte {e.start}), not a {what}") from None
