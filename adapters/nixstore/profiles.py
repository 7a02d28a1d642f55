"""A Nix profile's links: its generations, the current one, and GC roots of our own.

A profile `P` links to a generation link `P-N-link`, which links into the store. All of
it is read and changed on the host the profile lives on.
"""

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from adapters.nixstore.host import Host
from adapters.nixstore.nix import in_store, is_store_path
from solver.errors import InputError, NixError


def add_indirect_root(host: Host, link: Path, path: str) -> None:
    """Keep `path` alive while `link` points at it, as `nix-store --add-root` does.

    The link is made atomically; `gcroots/auto` gets an entry pointing at it, which Nix's
    collector follows and removes once the link is gone.
    """
    host.symlink(link, path)
    auto = host.state_dir() / "gcroots" / "auto"
    name = hashlib.sha256(str(link.absolute()).encode()).hexdigest()[:32]
    host.symlink(auto / name, str(link.absolute()))


def set_profile(host: Host, profile: Path, path: str) -> None:
    """Make `path` the profile's new current generation (`nix-env -p PROFILE --set PATH`)."""
    host.run(["nix-env", "--profile", str(profile), "--set", path], check=True)


def delete_generations(host: Host, profile: Path, numbers: Iterable[int]) -> None:
    """Delete generations of a profile by number; Nix refuses to delete the current one."""
    numbers = sorted(set(numbers))
    if numbers:
        argv = ["nix-env", "--profile", str(profile), "--delete-generations", *map(str, numbers)]
        host.run(argv, check=True)


def generations(host: Host, profile: Path) -> dict[int, str]:
    """The profile's generations, number -> store path, read from its `P-N-link` links."""
    out: dict[int, str] = {}
    prefix = profile.name + "-"
    for name, target in host.links(profile.parent).items():
        if name.startswith(prefix) and name.endswith("-link"):
            number = name[len(prefix) : -len("-link")]
            if number.isdigit():
                out[int(number)] = target
    return out


def current_generation(host: Host, profile: Path) -> int | None:
    """The number of the generation the profile link points at."""
    if not host.is_symlink(profile):
        return None
    name = host.readlink(profile).rsplit("/", 1)[-1]
    number = name[len(profile.name) + 1 : -len("-link")]
    return int(number) if number.isdigit() else None


def resolve_profile(host: Host, profile: Path) -> Path:
    """The profile `profile` names, through links to profiles (`~/.nix-profile`).

    A profile links to a generation link (`P-N-link`), which links into the store. A link
    whose target is itself a profile is followed, so that generations are added to the
    real profile, not beside a link to it.
    """
    path = Path(os.path.abspath(profile))
    for _ in range(40):  # the kernel's own limit on chained links
        if not host.is_symlink(path):
            return path
        target = Path(os.path.normpath(path.parent / host.readlink(path)))
        if not host.is_symlink(target):
            return path  # links straight to a store path (or to nothing): a profile
        after = os.path.normpath(target.parent / host.readlink(target))
        if in_store(host, after):
            return path  # target is a generation link: `path` is the profile
        path = target
    raise NixError(f"{profile}: too many levels of links to a profile")


def profile_system(host: Host, profile: Path) -> str:
    """The store path a profile's current generation is, checked: every problem with it
    is an InputError that names the profile."""
    where = host.named(profile)
    if not host.lexists(profile):
        raise InputError(f"profile {where}: no such profile")
    if not host.is_symlink(profile):
        kind = "a directory" if host.is_dir(profile) else "a file"
        raise InputError(f"profile {where}: {kind}, not a profile (a link to a generation)")
    system = host.realpath(profile)
    if not is_store_path(host, system):
        raise InputError(
            f"profile {where}: links to {system}, which is not a store path in {host.store_dir()}"
        )
    if not host.existing([system]):
        raise InputError(f"profile {where}: its generation {system} is not in the store")
    return system
