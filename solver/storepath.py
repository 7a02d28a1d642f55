"""Store path names: hash, name, and the pname/version split of `builtins.parseDrvName`."""

from dataclasses import dataclass
from typing import Self

from solver.errors import InputError

# Nix's base-32 alphabet omits e, o, u and t.
NIX_BASE32 = frozenset("0123456789abcdfghijklmnpqrsvwxyz")
HASH_LEN = 32
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-._?=")


def parse_drv_name(name: str) -> tuple[str, str]:
    """Split a name like parseDrvName: at the first `-` not followed by a letter."""
    for i, ch in enumerate(name):
        if ch == "-" and i + 1 < len(name) and not name[i + 1].isalpha():
            return name[:i], name[i + 1 :]
    return name, ""


def split_output(version: str) -> tuple[str, str]:
    """Split an output suffix (`-bin`, `-man`, `-lib`...) off a version: ("2.38.1", "bin")."""
    head, sep, tail = version.rpartition("-")
    if sep and head and tail.isalpha():
        return head, tail
    return version, ""


@dataclass(frozen=True, slots=True)
class StorePath:
    """A parsed store path `/nix/store/<hash>-<name>`."""

    store_dir: str
    hash: str
    name: str

    @classmethod
    def parse(cls, path: str) -> Self:
        store_dir, slash, base = path.rpartition("/")
        if not slash or not store_dir.startswith("/"):
            raise InputError(f"not a store path: {path!r}")
        hash_part, dash, name = base.partition("-")
        if (
            len(hash_part) != HASH_LEN
            or not dash
            or not set(hash_part) <= NIX_BASE32
            or not name
            or name.startswith(".")
            or not set(name) <= _NAME_CHARS
        ):
            raise InputError(f"not a store path: {path!r}")
        return cls(store_dir, hash_part, name)

    @property
    def path(self) -> str:
        return f"{self.store_dir}/{self.hash}-{self.name}"

    @property
    def pname(self) -> str:
        return parse_drv_name(self.name)[0]

    @property
    def version(self) -> str:
        """The version without an output suffix."""
        return split_output(parse_drv_name(self.name)[1])[0]

    @property
    def output(self) -> str:
        """The output suffix (`bin`, `man`, ...) or "" for the default output."""
        return split_output(parse_drv_name(self.name)[1])[1]

    @property
    def key(self) -> str:
        """What old and new versions of one package have in common: pname plus output."""
        return f"{self.pname}-{self.output}" if self.output else self.pname

    @property
    def is_derivation(self) -> bool:
        return self.name.endswith(".drv")
