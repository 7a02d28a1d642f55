"""What names a NixOS system to build: a flake and its configuration, `-I` entries, and
the old nixpkgs (a tree, a flake.lock's locked input, or a release revision), each
checked here before anything runs."""

import json
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Self

from adapters.files import read_text
from adapters.nixstore.host import Host
from solver.errors import InputError


@dataclass(frozen=True)
class Flake:
    """`FLAKE#HOST`, as nixos-rebuild takes it."""

    ref: str
    # The configuration's name: nixosConfigurations.NAME.
    name: str

    @classmethod
    def parse(cls, text: str, host: Host) -> Self:
        """`FLAKE#NAME`, or `FLAKE` alone for the name of `host` (this machine, or a
        --target-host), as nixos-rebuild takes it."""
        ref, sep, name = text.partition("#")
        if not sep:
            name = host.hostname()
        if not ref or not name:
            raise InputError(f"--flake {text!r}: expected FLAKE[#HOST], e.g. /etc/nixos#myhost")
        if "://" not in ref and ":" not in ref.split("/", 1)[0] and ref.startswith(("/", ".")):
            ref = local_flake_ref(ref)
        return cls(ref, name)


def local_flake_ref(path: str) -> str:
    """A local flake path as the nix command line reads it, for `builtins.getFlake`
    (which would take it as `path:`): inside a git repository, `git+file://ROOT` (with
    `?dir=SUB` below its root, `shallow=1` for a shallow clone), where untracked files
    are invisible and `self.rev` is set; elsewhere `path:ABS`. So the system evaluated is
    the one `nixos-rebuild --flake PATH` builds (Nix's parseFlakeRefWithFragment)."""
    absolute = os.path.abspath(path)
    root, subdir = absolute, ""
    while True:
        if os.path.exists(os.path.join(root, ".git")):
            query = [f"dir={subdir}"] if subdir else []
            if os.path.exists(os.path.join(root, ".git", "shallow")):
                query.append("shallow=1")
            return f"git+file://{root}" + (f"?{'&'.join(query)}" if query else "")
        if root == "/":
            return f"path:{absolute}"
        subdir = os.path.basename(root) + (f"/{subdir}" if subdir else "")
        root = os.path.dirname(root)


def old_nixpkgs_from_revision(revision: str) -> dict[str, Any]:
    """The nixpkgs of a NixOS release revision (`nixos-version --json`), as
    `builtins.fetchTree` attributes."""
    if len(revision) != 40 or any(c not in "0123456789abcdef" for c in revision):
        raise InputError(f"nixos-version: {revision!r} is not a nixpkgs git revision")
    return {"type": "github", "owner": "NixOS", "repo": "nixpkgs", "rev": revision}


# A flake.lock is a few kilobytes; one of megabytes is something else, and a FIFO or
# /dev/zero put in its place is never read to the end.
MAX_LOCK_BYTES: Final = 4 << 20
# Input lookups while resolving `follows`: real locks need a handful; more is a loop.
MAX_LOCK_STEPS: Final = 256


def old_nixpkgs_at(path: Path) -> str | dict[str, Any]:
    """`--old-nixpkgs PATH`, checked here before anything runs: a nixpkgs tree (its
    absolute path) or a flake.lock (its locked nixpkgs input). Every problem is an
    InputError that starts with the path."""
    try:
        mode = path.stat().st_mode
    except (OSError, ValueError) as e:  # ValueError: a NUL in the path
        raise InputError(f"{path}: {getattr(e, 'strerror', None) or e}") from e
    if stat.S_ISDIR(mode):
        return _nixpkgs_tree(path)
    if not stat.S_ISREG(mode):
        raise InputError(f"{path}: neither a nixpkgs directory nor a flake.lock")
    return old_nixpkgs_from_lock(_read_lock(path), source=str(path))


def _nixpkgs_tree(path: Path) -> str:
    # The step module imports it (`import oldSrc {}`), and nixpkgs reads its directories.
    try:
        names = os.listdir(path)
        if "default.nix" not in names:
            raise InputError(f"{path}: a directory without default.nix, not a nixpkgs tree")
        with (path / "default.nix").open("rb"):
            pass
    except OSError as e:
        raise InputError(f"{path}: cannot read the nixpkgs tree ({e.strerror or e})") from e
    return str(path.absolute())


def _read_lock(path: Path) -> str:
    # Without waiting for a writer, should a FIFO have taken the file's place; capped.
    text = read_text(path, MAX_LOCK_BYTES, what="flake.lock")
    if not text.strip():
        raise InputError(f"{path}: empty, not a flake.lock")
    return text


def old_nixpkgs_from_lock(
    lock_text: str, input_name: str = "nixpkgs", *, source: str = "flake.lock"
) -> dict[str, Any]:
    """The locked nixpkgs input of a flake.lock, as `builtins.fetchTree` attributes."""
    try:
        lock = json.loads(lock_text)
    except json.JSONDecodeError as e:
        raise InputError(f"{source}: not a flake.lock (malformed JSON: {e})") from e
    except RecursionError:
        raise InputError(f"{source}: not a flake.lock (JSON nested too deeply)") from None
    nodes = lock.get("nodes") if isinstance(lock, dict) else None
    root = lock.get("root", "root") if isinstance(lock, dict) else None
    if not isinstance(nodes, dict) or not isinstance(root, str):
        raise InputError(f"{source}: not a flake.lock (no `nodes` object)")
    if not isinstance(nodes.get(root), dict):
        raise InputError(f"{source}: not a flake.lock (no root node {root!r})")
    node = _lock_input(nodes, root, input_name)
    if node is None:
        raise InputError(
            f"{source}: no locked input {input_name!r} (the root has no such input, or its "
            "`follows` leads nowhere)"
        )
    locked = nodes[node].get("locked")
    if (
        not isinstance(locked, dict)
        or not isinstance(locked.get("type"), str)
        or not all(isinstance(v, str | int) for v in locked.values())
    ):
        raise InputError(
            f"{source}: no locked input {input_name!r} (its node {node!r} has no `locked` "
            "attributes with a `type`)"
        )
    return {k: v for k, v in locked.items() if k != "lastModified"}


def _lock_input(nodes: dict[str, Any], root: str, input_name: str) -> str | None:
    """The node the root's input leads to, through `follows` paths (which start at the
    root, as Nix reads them); None where it leads nowhere."""
    steps = 0

    def resolve(path: list[Any]) -> str | None:
        nonlocal steps
        node = root
        for name in path:
            steps += 1
            if steps > MAX_LOCK_STEPS:
                return None
            inputs = nodes[node].get("inputs")
            target = (
                inputs.get(name) if isinstance(inputs, dict) and isinstance(name, str) else None
            )
            if isinstance(target, list):
                target = resolve(target)
            if not isinstance(target, str) or not isinstance(nodes.get(target), dict):
                return None
            node = target
        return node

    return resolve([input_name])


def split_include(include: Sequence[str]) -> tuple[str | None, list[str]]:
    """`-I` entries as nixos-rebuild takes them: the `nixos-config=PATH` one (which must
    exist) and the others, passed on to Nix."""
    configuration = None
    rest = []
    for entry in include:
        name, sep, value = entry.partition("=")
        if name == "nixos-config" and sep:
            configuration = value
        else:
            rest.append(entry)
    if configuration is not None and not Path(configuration).exists():
        raise InputError(f"-I nixos-config={configuration}: no such file")
    return configuration, rest
