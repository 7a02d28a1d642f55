"""The builder `apply` runs with, made from its options: a plain profile's, or a NixOS
system's (its configuration, the old nixpkgs, how each step is activated)."""

import os
from pathlib import Path
from typing import Any

import click

from adapters.apply.builder import Builder
from adapters.apply.journal import state_dir_for
from adapters.apply.nixos import Activation, BootedSystem, NixosBuilder, system_profile
from adapters.apply.nixos_inputs import (
    Flake,
    old_nixpkgs_at,
    old_nixpkgs_from_revision,
    split_include,
)
from adapters.apply.profile import ProfileBuilder
from adapters.cli.apply_options import SystemOptions
from adapters.nixstore import nix, profiles
from adapters.nixstore.builds import NixFlags
from adapters.nixstore.host import Host
from adapters.nixstore.ssh import Ssh
from solver.errors import InputError

# Where nixos-rebuild looks for the configuration when none is named.
ETC_NIXOS = Path("/etc/nixos")


def check_hosts(system: SystemOptions) -> None:
    """--sudo and a relative --profile make sense only here, and on a host, respectively."""
    if system.sudo and system.target_host is None:
        raise click.UsageError("--sudo is for --target-host; here, run budget-solve as root")
    profile = system.profile
    if system.target_host is not None and profile is not None and not profile.is_absolute():
        # It would be resolved against this machine's working directory.
        raise click.UsageError(
            f"--profile {profile}: a profile on --target-host {system.target_host} is named "
            "by its absolute path"
        )


def make_builder(host: Host, system: SystemOptions, flags: NixFlags) -> Builder:
    """The builder for the system the options name, on `host`."""
    if system.nixos:
        return nixos_builder(host, system, flags)
    if system.build_host is not None:
        raise click.UsageError(
            "--build-host is for --nixos: a profile's generations are links to "
            "store paths, made where they go"
        )
    for name, value in (
        ("--flake", system.flake),
        ("-I", system.include),
        ("--old-nixpkgs", system.old_nixpkgs),
    ):
        if value:
            raise click.UsageError(f"{name} needs --nixos")
    if system.profile is None or system.target is None:
        raise click.UsageError("give --profile PROFILE and --target PATH (or --nixos)")
    state = state_dir_for(host, profiles.resolve_profile(host, system.profile))
    return ProfileBuilder(
        host, system.profile, system.target, system.substituter, state=state, flags=flags
    )


def nixos_builder(host: Host, system: SystemOptions, flags: NixFlags) -> NixosBuilder:
    if system.profile is not None or system.target is not None:
        raise click.UsageError(
            "--nixos builds the system profile from the configuration: no --profile or --target"
        )
    flake = system.flake
    configuration, rest = split_include(system.include)
    if flake is None and configuration is None:
        # As nixos-rebuild: /etc/nixos/flake.nix makes it a flake, for this hostname.
        if (ETC_NIXOS / "flake.nix").exists():
            flake = str(ETC_NIXOS)
        elif (ETC_NIXOS / "configuration.nix").exists():
            configuration = str(ETC_NIXOS / "configuration.nix")
        else:
            raise click.UsageError("--nixos needs --flake FLAKE[#HOST] or -I nixos-config=PATH")
    old_nixpkgs = system.old_nixpkgs
    old = _old_nixpkgs(old_nixpkgs) if old_nixpkgs is not None else _running_nixpkgs(host)
    build_host = system.build_host
    return NixosBuilder(
        host,
        old_nixpkgs=old,
        state=state_dir_for(host, system_profile(host)),
        # FLAKE alone names the configuration of the host it goes to.
        flake=Flake.parse(flake, host) if flake else None,
        configuration=configuration,
        include=rest,
        substituters=system.substituter,
        activation=Activation(system.activation),
        booted=BootedSystem(system.booted_system),
        run_dir=Path(os.environ.get("BUDGET_SOLVE_RUN_DIR") or "/run"),
        build_host=Ssh.parse(build_host) if build_host is not None else None,
        flags=flags,
    )


def _running_nixpkgs(host: Host) -> dict[str, Any]:
    """The nixpkgs the running system was built from, when NixOS knows it."""
    revision = nix.nixos_revision(host)
    if revision is None:
        raise click.UsageError(
            "--nixos needs --old-nixpkgs (the nixpkgs tree or the flake.lock the running "
            "system was built from): nixos-version --json names no nixpkgs revision here"
        )
    return old_nixpkgs_from_revision(revision)


def _old_nixpkgs(value: str) -> str | dict[str, Any]:
    if not value:
        raise InputError("--old-nixpkgs: an empty path")
    try:
        return old_nixpkgs_at(Path(value))
    except InputError as e:
        raise InputError(f"--old-nixpkgs {e}") from e
