"""The NixOS adapter: build a step's system with old packages for what is not upgraded yet.

For step k a module (`nixos-step.nix`) overlays every package the plan keeps at its old
version with the one from the old nixpkgs revision (from the running system's flake.lock or
channel), so whole packages come from one revision or the other and stay substitutable;
only the glue is built. The system is then set as the `system` profile's generation and
activated with `switch-to-configuration`.
"""

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Final, Self

from adapters import nix, process
from adapters.journal import write_atomic
from solver.errors import InputError, NixError

HERE: Final = Path(__file__).parent
STEP_NIX: Final = HERE / "nixos-step.nix"
CONFIG_NIX: Final = HERE / "nixos-config.nix"
FLAKE_NIX: Final = HERE / "nixos-flake.nix"
FLAKES: Final = ("nix", "--extra-experimental-features", "nix-command flakes")
STEP_ENV: Final = "BUDGET_SOLVE_STEP"


class Activation(Enum):
    SWITCH = "switch"
    BOOT = "boot"


class BootedSystem(Enum):
    """What to do about /run/booted-system, which pins the booted generation until reboot."""

    PIN = "pin"  # count its closure as pinned: safe, but the old system stays on disk
    DROP = "drop"  # remove the root (the user said so): rollback needs a rebuild
    REBOOT = "reboot"  # stop after each step; rerun after rebooting into it


@dataclass(frozen=True)
class Flake:
    """`FLAKE#HOST`, as nixos-rebuild takes it."""

    ref: str
    host: str

    @classmethod
    def parse(cls, text: str) -> Self:
        ref, sep, host = text.partition("#")
        if not sep or not ref or not host:
            raise InputError(f"--flake {text!r}: expected FLAKE#HOST, e.g. /etc/nixos#myhost")
        if "://" not in ref and ":" not in ref.split("/", 1)[0] and ref.startswith(("/", ".")):
            ref = f"path:{os.path.abspath(ref)}"
        return cls(ref, host)


def old_nixpkgs_from_lock(lock_text: str, input_name: str = "nixpkgs") -> dict[str, Any]:
    """The locked nixpkgs input of a flake.lock, as `builtins.fetchTree` attributes."""
    try:
        lock = json.loads(lock_text)
        nodes = lock["nodes"]
        node_name = nodes[lock.get("root", "root")]["inputs"][input_name]
        if isinstance(node_name, list):  # a `follows` path
            node_name = node_name[-1]
        locked = dict(nodes[node_name]["locked"])
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise InputError(f"flake.lock: no locked input {input_name!r} ({e})") from e
    locked.pop("lastModified", None)
    return locked


@dataclass(frozen=True)
class Step:
    """What one intermediate system keeps old."""

    keep_old: tuple[str, ...]
    old_nixpkgs: str | Mapping[str, Any]
    configuration: str | None = None

    def write(self, path: Path) -> Path:
        data: dict[str, Any] = {"oldNixpkgs": self.old_nixpkgs, "keepOld": list(self.keep_old)}
        if self.configuration is not None:
            data["configuration"] = os.path.abspath(self.configuration)
        write_atomic(path, json.dumps(data, indent=1, sort_keys=True) + "\n")
        return path


def flake_build_argv(flake: Flake, out_link: Path) -> list[str]:
    """`nix build` of the flake's system extended with the step module."""
    return [
        *FLAKES,
        "build",
        "--impure",
        "--out-link",
        str(out_link),
        # Nix 2.8 has no --print-out-paths; --json names the outputs.
        "--json",
        "-f",
        str(FLAKE_NIX),
        "--argstr",
        "flake",
        flake.ref,
        "--argstr",
        "host",
        flake.host,
    ]


def classic_build_argv(out_link: Path, include: Sequence[str] = ()) -> list[str]:
    """`nix-build '<nixpkgs/nixos>' -A system` with our nixos-config wrapping the user's."""
    flags = [arg for path in include for arg in ("-I", path)]
    return [
        "nix-build",
        "<nixpkgs/nixos>",
        "-A",
        "system",
        *flags,
        "-I",
        f"nixos-config={CONFIG_NIX}",
        "--out-link",
        str(out_link),
    ]


def build_system(
    step: Step,
    *,
    step_file: Path,
    out_link: Path,
    flake: Flake | None = None,
    include: Sequence[str] = (),
) -> str:
    """Build the step's system; its top-level store path."""
    step.write(step_file)
    argv = flake_build_argv(flake, out_link) if flake else classic_build_argv(out_link, include)
    result = process.run(argv, check=True, env={STEP_ENV: str(step_file)})
    if flake:
        try:
            return str(json.loads(result.stdout)[0]["outputs"]["out"])
        except (json.JSONDecodeError, LookupError, TypeError) as e:
            raise NixError(f"nix build printed no system path: {result.stdout[:200]!r}") from e
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    if not lines:
        raise NixError(f"{argv[0]} printed no system path")
    return lines[-1].strip()


def system_profile() -> Path:
    return nix.state_dir() / "profiles" / "system"


def switch_argv(toplevel: str, activation: Activation) -> list[str]:
    return [f"{toplevel}/bin/switch-to-configuration", activation.value]


def activate(toplevel: str, activation: Activation) -> None:
    """Make `toplevel` the system profile's generation and activate it."""
    nix.set_profile(system_profile(), toplevel)
    process.run(switch_argv(toplevel, activation), check=True)


def booted_system(run_dir: Path = Path("/run")) -> str | None:
    link = run_dir / "booted-system"
    return os.path.realpath(link) if link.is_symlink() else None
