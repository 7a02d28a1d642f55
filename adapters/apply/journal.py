"""The executor's journal: which plan, which step, what we created. Written atomically
(write, fsync, rename, fsync the directory), so a power cut leaves the old or the new one."""

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from solver.errors import InputError

VERSION = 1


def write_atomic(path: Path, text: str) -> None:
    """Replace `path` with `text` so that a crash leaves either the old or the new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class Journal:
    """A small JSON document on disk; every `update` is durable before it returns."""

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path = path
        self.data = data

    @classmethod
    def load(cls, path: Path) -> "Journal | None":
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise InputError(f"{path}: journal is not valid JSON (line {e.lineno})") from e
        if not isinstance(data, dict) or data.get("version") != VERSION:
            raise InputError(f"{path}: not a budget-solve journal of version {VERSION}")
        return cls(path, data)

    @classmethod
    def create(cls, path: Path, data: dict[str, Any]) -> "Journal":
        journal = cls(path, {"version": VERSION, **data})
        journal.save()
        return journal

    def save(self) -> None:
        write_atomic(self.path, json.dumps(self.data, indent=1, sort_keys=True) + "\n")

    def update(self, **changes: Any) -> None:
        self.data.update(changes)
        self.save()

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
