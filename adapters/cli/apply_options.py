"""The options of `budget-solve apply`, declared once, and the groups the command reads
them in: which system and where, the flags Nix is given, how the run goes, what it says."""

from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Self, TypeVar

import click

from adapters.apply.nixos import Activation, BootedSystem
from adapters.cli.options import (
    NIX_UNSIGNED_MAX,
    NON_VITAL_OPTION,
    QUIET_OPTION,
    RESERVE_OPTION,
    TIME_LIMIT_OPTION,
    WORKERS_OPTION,
    Host,
    LimitOrAuto,
    MaxJobs,
    NixSettingName,
    NixSettingValue,
    Whole,
)
from adapters.nixstore.builds import NixFlags


@dataclass(frozen=True)
class SystemOptions:
    """Which system is upgraded, on which host, to what, and how NixOS activates it."""

    profile: Path | None
    target: str | None
    target_host: str | None
    build_host: str | None
    sudo: bool
    substituter: tuple[str, ...]
    nixos: bool
    flake: str | None
    include: tuple[str, ...]
    old_nixpkgs: str | None
    activation: str
    booted_system: str


@dataclass(frozen=True)
class NixOptions:
    """What passes through to every Nix build, fetch and evaluation."""

    nix_option: tuple[tuple[str, str], ...]
    max_jobs: int | str | None
    cores: int | None
    fallback: bool
    show_trace: bool

    def passed(self) -> tuple[str, ...]:
        """The flags as Nix takes them, in the order nixos-rebuild passes them."""
        out = [arg for name, value in self.nix_option for arg in ("--option", name, value)]
        if self.max_jobs is not None:
            out += ["--max-jobs", str(self.max_jobs)]
        if self.cores is not None:
            out += ["--cores", str(self.cores)]
        out += ["--fallback"] * self.fallback + ["--show-trace"] * self.show_trace
        return tuple(out)

    def flags(self) -> NixFlags:
        return NixFlags(self.passed())


@dataclass(frozen=True)
class RunOptions:
    """The budget, how the planner works under it, and what the run does."""

    limit: int | str | None
    plan: Path | None
    reserve: int
    non_vital: tuple[str, ...]
    time_limit: float
    workers: int | None
    rollback_to_start: bool
    plain_first: bool
    keep_rollback: bool
    dry_run: bool


@dataclass(frozen=True)
class OutputOptions:
    """What the run says and asks, and how."""

    yes: bool
    ask: bool
    quiet: bool
    as_json: bool
    no_nom: bool


Group = TypeVar("Group")


def _take(kind: type[Group], given: dict[str, Any]) -> Group:
    """The options of group `kind`, taken out of `given`."""
    return kind(**{f.name: given.pop(f.name) for f in fields(kind)})  # type: ignore[arg-type]


@dataclass(frozen=True)
class ApplyOptions:
    """Every option of `apply`, by group."""

    system: SystemOptions
    nix: NixOptions
    run: RunOptions
    output: OutputOptions

    @classmethod
    def parse(cls, given: dict[str, Any]) -> Self:
        """The groups of click's keyword arguments; each option is in exactly one."""
        rest = dict(given)
        parsed = cls(
            _take(SystemOptions, rest),
            _take(NixOptions, rest),
            _take(RunOptions, rest),
            _take(OutputOptions, rest),
        )
        if rest:
            raise TypeError(f"apply options in no group: {sorted(rest)}")
        return parsed


# What passes through to Nix (`NixOptions`): the same on `plan`, which evaluates.
NIX_OPTIONS = (
    click.option(
        "--option",
        "nix_option",
        type=(NixSettingName(), NixSettingValue()),
        multiple=True,
        metavar="NAME VALUE",
        help="Passed to every Nix build, fetch and evaluation, as nixos-rebuild does. Repeatable.",
    ),
    click.option(
        "-j",
        "--max-jobs",
        type=MaxJobs(),
        metavar="N|auto",
        help="Passed to Nix: builds at once (or auto).",
    ),
    click.option(
        "--cores",
        type=Whole(0, NIX_UNSIGNED_MAX),
        metavar="N",
        help="Passed to Nix: cores per build (0: all).",
    ),
    click.option(
        "--fallback", is_flag=True, help="Passed to Nix: build what a cache fails to give."
    ),
    click.option("--show-trace", is_flag=True, help="Passed to Nix: evaluation traces on errors."),
)

_OPTIONS = (
    click.option(
        "--profile",
        type=click.Path(path_type=Path),
        help="The profile link whose current generation is the running system "
        "[with --nixos: $NIX_STATE_DIR/profiles/system].",
    ),
    click.option(
        "--target",
        metavar="PATH",
        help="The target's top-level store path (fetched from the substituters) or its .drv.",
    ),
    click.option(
        "--limit",
        type=LimitOrAuto(),
        help="Disk budget, or `auto` for the size of the store's filesystem (on --target-host "
        "when given). Required, except with --plan (which says its own).",
    ),
    click.option(
        "--plan",
        type=click.Path(path_type=Path, dir_okay=False),
        metavar="FILE",
        help="Run this reviewed plan (`budget-solve plan ... --json > FILE`) instead of "
        "planning again, as terraform applies a saved plan: refused with one line when the "
        "current system, the target or --limit is not what it was made for, or when it no "
        "longer fits the disk.",
    ),
    click.option(
        "--target-host",
        type=Host(),
        metavar="[USER@]HOST",
        help="Upgrade another machine over SSH, as nixos-rebuild names it ($NIX_SSHOPTS "
        "applies): --profile is a profile there, and its journal, lock, GC roots, garbage "
        "collection and disk are the host's. The target is read here, and each step copies "
        "there what this machine has of it (`nix copy`); the host substitutes the rest. With "
        "--nixos every step is evaluated here, and the host gets its derivations (`nix copy "
        "--derivation`), realises them and switches. The host needs Nix, sh and coreutils. "
        "Name it ssh-ng://[USER@]HOST for copies through its `nix-daemon --stdio`.",
    ),
    click.option(
        "--build-host",
        type=Host(),
        metavar="[USER@]HOST",
        help="With --nixos: build each step's system on HOST (as its SSH user), then copy it "
        "to the target (`nix copy --from ssh://HOST`; the target fetches from its own "
        "substituters what they have), as nixos-rebuild --build-host. HOST needs Nix and "
        "the substituters.",
    ),
    click.option(
        "--sudo",
        is_flag=True,
        help="With --target-host: run every command on the host as root through `sudo` (it "
        "must not ask for a password), as nixos-rebuild --sudo.",
    ),
    click.option(
        "--substituter",
        multiple=True,
        metavar="URL",
        help="Binary cache to size and fetch the target from [default: nix.conf].",
    ),
    click.option(
        "--nixos",
        is_flag=True,
        help="Upgrade the NixOS system: build each step from the new configuration with the "
        "packages not upgraded yet taken from the old nixpkgs, and activate it.",
    ),
    click.option(
        "--flake",
        metavar="FLAKE[#HOST]",
        help="With --nixos: the new configuration's flake; HOST defaults to the hostname, and "
        "/etc/nixos/flake.nix implies --flake /etc/nixos (as nixos-rebuild).",
    ),
    click.option(
        "-I",
        "include",
        multiple=True,
        metavar="NAME=PATH",
        help="With --nixos (classic): a search path entry, as for nixos-rebuild: "
        "-I nixos-config=/etc/nixos/configuration.nix -I nixpkgs=/path/to/new/nixpkgs.",
    ),
    click.option(
        "--old-nixpkgs",
        metavar="PATH|flake.lock",
        help="With --nixos: the nixpkgs the running system was built from: a nixpkgs tree, or "
        "the flake.lock it was built with (its locked `nixpkgs` input) [default: the revision "
        "`nixos-version --json` names].",
    ),
    click.option(
        "--activation",
        type=click.Choice([a.value for a in Activation]),
        default=Activation.SWITCH.value,
        show_default=True,
        help="With --nixos: how each generation is activated by switch-to-configuration.",
    ),
    click.option(
        "--booted-system",
        type=click.Choice([b.value for b in BootedSystem]),
        default=BootedSystem.PIN.value,
        show_default=True,
        help="With --nixos: /run/booted-system keeps the booted generation until reboot. "
        "`pin` counts it as staying on disk; `reboot` activates each step for the next boot "
        "and stops (exit 4) until you reboot and run the command again; `drop` removes that "
        "GC root (rolling back to the booted system then means rebuilding it).",
    ),
    RESERVE_OPTION,
    NON_VITAL_OPTION,
    click.option(
        "--rollback-to-start",
        is_flag=True,
        help="When a step fails, walk back generation by generation to the start.",
    ),
    *NIX_OPTIONS,
    click.option(
        "--plain-first",
        is_flag=True,
        help="Try the plain upgrade (the whole target at once) first; only when the disk fills "
        "does the staged plan take over, after collecting what the attempt left. Any other "
        "failure stops.",
    ),
    click.option(
        "-y",
        "--yes",
        is_flag=True,
        help="Do not ask before deleting: the starting generation (and with it the rollback to "
        "the running system) and the garbage go without a question. Needed when there is no "
        "terminal to ask on.",
    ),
    click.option(
        "--ask",
        is_flag=True,
        help="Ask before deleting even where --yes is implied; refused without a terminal. "
        "(With a terminal, apply asks anyway unless --yes is given.)",
    ),
    click.option(
        "--keep-rollback",
        is_flag=True,
        help="Keep the generation before the target (the last intermediate one, or the "
        "starting one for a single step) as a rollback. It is on disk during the last step "
        "anyway, so it costs no budget; it stays on disk after the run (the prompt says how "
        "much).",
    ),
    click.option(
        "--dry-run",
        is_flag=True,
        help="Plan (or find where an interrupted run would resume), show it, and stop: "
        "nothing is built, switched or deleted.",
    ),
    click.option(
        "--no-nom",
        is_flag=True,
        help="Print Nix's build log as it comes, even when nix-output-monitor (nom) is "
        "installed; by default the log goes through `nom --json` then.",
    ),
    TIME_LIMIT_OPTION,
    WORKERS_OPTION,
    click.option(
        "--json",
        "as_json",
        is_flag=True,
        help="Print the plan and the measured steps as one JSON object (on a failure: the "
        "error, the exit status and the step that failed).",
    ),
    QUIET_OPTION,
)

Command = TypeVar("Command", bound=Callable[..., Any])


def apply_options(command: Command) -> Command:
    """Declare every option of `apply` on `command`, in the order --help lists them."""
    for option in reversed(_OPTIONS):
        command = option(command)
    return command


def nix_options(command: Command) -> Command:
    """Declare the Nix pass-through options (`NixOptions`) on `command`."""
    for option in reversed(NIX_OPTIONS):
        command = option(command)
    return command
