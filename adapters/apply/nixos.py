"""The NixOS adapter: build a step's system with old packages for what is not upgraded yet.

For step k a module (`nixos-step.nix`) overlays every package the plan keeps at its old
version with the one from the old nixpkgs revision (from the running system's flake.lock or
channel), so whole packages come from one revision or the other and stay substitutable;
only the glue is built. The system is then set as the `system` profile's generation and
activated with `switch-to-configuration`.

On a --target-host every configuration is evaluated here: the host gets each step's
derivation closure (`nix copy --derivation`, small next to the outputs) and realises it,
fetching the packages from its substituters and building only the glue, then switches.
With a build host the derivations go there instead; the built system is copied from it to
the target, which fetches from its own substituters what they have.
"""

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypedDict

from adapters.apply.builder import Target
from adapters.apply.nixos_inputs import Flake
from adapters.files import write_atomic
from adapters.nixstore import builds, nix, profiles
from adapters.nixstore.builds import NixFlags
from adapters.nixstore.estimate import closure_from_derivation
from adapters.nixstore.host import LOCAL, Host
from adapters.nixstore.ssh import Ssh
from solver.closure import Closure
from solver.components import Change, Component
from solver.errors import InputError
from solver.plan import Generation, State
from solver.storepath import StorePath

if TYPE_CHECKING:
    # Annotations only: the model (and numpy) is imported by what builds it.
    from solver.instance import Problem

HERE: Final = Path(__file__).parent
CONFIG_NIX: Final = HERE / "nixos-config.nix"
FLAKE_NIX: Final = HERE / "nixos-flake.nix"
NON_VITAL_NIX: Final = HERE / "nixos-non-vital.nix"
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
class StepConfig:
    """What one intermediate system keeps old, and what it holds back."""

    keep_old: tuple[str, ...]
    old_nixpkgs: str | Mapping[str, Any]
    configuration: str | None = None
    drop: tuple[str, ...] = ()

    def write(self, path: Path) -> Path:
        data: dict[str, Any] = {
            "oldNixpkgs": self.old_nixpkgs,
            "keepOld": list(self.keep_old),
            "drop": list(self.drop),
        }
        if self.configuration is not None:
            data["configuration"] = os.path.abspath(self.configuration)
        write_atomic(path, json.dumps(data, indent=1, sort_keys=True) + "\n")
        return path


def _flake_args(flake: Flake, file: Path = FLAKE_NIX) -> list[str]:
    """`file` (by default `nixos-flake.nix`: the flake's system with the step module) and
    the arguments that name the flake's configuration."""
    return [str(file), "--argstr", "flake", flake.ref, "--argstr", "host", flake.name]


def _include_flags(include: Sequence[str]) -> list[str]:
    """`-I ENTRY` for each of `include`."""
    return [arg for entry in include for arg in ("-I", entry)]


def _classic_args(include: Sequence[str]) -> list[str]:
    """`<nixpkgs/nixos>`'s system, with our nixos-config wrapping the user's."""
    flags = _include_flags(include)
    return ["<nixpkgs/nixos>", "-A", "system", *flags, "-I", f"nixos-config={CONFIG_NIX}"]


def build_system(
    host: Host,
    step: StepConfig,
    flags: NixFlags,
    *,
    step_file: Path,
    out_link: Path,
    flake: Flake | None = None,
    include: Sequence[str] = (),
    substituters: Sequence[str] = (),
) -> str:
    """Build the step's system; its top-level store path."""
    step.write(step_file)
    return builds.build_file(
        host,
        _flake_args(flake) if flake else _classic_args(include),
        flags,
        out_link=out_link,
        flakes=flake is not None,
        substituters=substituters,
        env={STEP_ENV: str(step_file)},
    )


def tagged_non_vital(
    flake: Flake | None, configuration: str | None, include: Sequence[str]
) -> list[str]:
    """The configuration's own `budgetSolve.nonVital` (nixos-module.nix); [] without it."""
    if flake is not None:
        expression = _flake_args(flake, NON_VITAL_NIX)
    else:
        # An argument given, nix-instantiate --eval calls the file's function (2.8 does
        # not call it without one).
        expression = [str(NON_VITAL_NIX), "--arg", "flake", "null", *_include_flags(include)]
        expression += ["-I", f"nixos-config={configuration}"]
    what = f"{flake.ref}#{flake.name}" if flake is not None else configuration
    label = f"reading budgetSolve.nonVital of {what}"
    value = builds.evaluate(LOCAL, expression, flakes=flake is not None, label=label)
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        raise InputError(f"budgetSolve.nonVital: a list of package names, not {value!r:.80}")
    return value


def system_profile(host: Host) -> Path:
    return host.state_dir() / "profiles" / "system"


def activate(host: Host, toplevel: str, activation: Activation, flags: NixFlags) -> None:
    """Make `toplevel` the system profile's generation and activate it."""
    profiles.set_profile(host, system_profile(host), toplevel)
    builds.switch_to_configuration(host, toplevel, activation.value, flags)


def booted_system(host: Host, run_dir: Path = Path("/run")) -> str | None:
    link = run_dir / "booted-system"
    return host.realpath(link) if host.is_symlink(link) else None


def instantiate_system(
    step: StepConfig,
    flags: NixFlags,
    *,
    step_file: Path,
    root: Path,
    flake: Flake | None = None,
    include: Sequence[str] = (),
) -> str:
    """Evaluate the step's system without building it; its top-level derivation."""
    step.write(step_file)
    return builds.instantiate(
        LOCAL,
        _flake_args(flake) if flake else _classic_args(include),
        flags,
        root=root,
        flakes=flake is not None,
        env={STEP_ENV: str(step_file)},
        label=f"evaluating {_named(flake, step)}",
    )


def _named(flake: Flake | None, step: StepConfig) -> str:
    """The configuration as the user named it, for messages."""
    if flake is not None:
        return f"the configuration {flake.ref}#{flake.name}"
    return f"the configuration {step.configuration or '<nixos-config>'}"


def attributes(component: Component) -> list[str]:
    """The nixpkgs attributes a component's packages come from: their pnames."""
    return sorted({StorePath.parse(p).pname for p in component.old + component.new})


def realisable(problem: "Problem", generations: Sequence[Generation]) -> list[Generation]:
    """The generations a NixOS step module can build.

    The module keeps packages old; it cannot hold back what the new configuration adds, nor
    keep what it removes. So additions arrive, and removals leave, in the first step;
    generations that end up equal to the one before are dropped.
    """
    comps = problem.modelled()
    out: list[Generation] = [tuple(generations[0])]
    for gen in generations[1:]:
        fixed = tuple(
            State.NEW if comp.change in (Change.ADD, Change.REMOVE) else state
            for comp, state in zip(comps, gen, strict=True)
        )
        if fixed != out[-1]:
            out.append(fixed)
    return out


def remove_booted_root(host: Host, run_dir: Path) -> list[Path]:
    """Drop the GC root NixOS keeps for /run/booted-system (the user said so)."""
    booted = str(run_dir / "booted-system")
    gcroots = host.state_dir() / "gcroots"
    removed = [gcroots / name for name, to in host.links(gcroots).items() if to == booted]
    for link in removed:
        host.unlink(link)
    return removed


class NixosStep(TypedDict):
    """An intermediate system, as the journal keeps it: the attributes of the packages
    kept at their old version, and of those held back (absent)."""

    keep_old: list[str]
    drop: list[str]


def _parse_nixos_step(spec: Mapping[str, object]) -> NixosStep:
    return {"keep_old": _attributes(spec, "keep_old"), "drop": _attributes(spec, "drop", [])}


def _attributes(spec: Mapping[str, object], key: str, default: object = None) -> list[str]:
    value = spec.get(key, default)
    if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
        raise InputError(f"a NixOS step's {key}: a list of attributes, not {value!r:.80}")
    return value


class NixosBuilder:
    """Generations of a NixOS system: the new configuration with some packages kept old."""

    profile: Path

    def __init__(
        self,
        host: Host,
        *,
        old_nixpkgs: str | Mapping[str, Any],
        state: Path,
        flake: Flake | None = None,
        configuration: str | None = None,
        include: Sequence[str] = (),
        substituters: Sequence[str] = (),
        activation: Activation = Activation.SWITCH,
        booted: BootedSystem = BootedSystem.PIN,
        run_dir: Path = Path("/run"),
        build_host: Ssh | None = None,
        flags: NixFlags,
    ) -> None:
        if flake is None and configuration is None:
            raise InputError("give --flake FLAKE#HOST or -I nixos-config=PATH")
        self.host = host
        self.flags = flags
        self.profile = system_profile(host)
        self.old_nixpkgs = old_nixpkgs
        self.state = state
        self.flake = flake
        self.configuration = configuration
        self.include = list(include)
        self.substituters = list(substituters)
        self.booted_policy = booted
        self.activation = Activation.BOOT if booted is BootedSystem.REBOOT else activation
        self.run_dir = run_dir
        self.reboots = booted is BootedSystem.REBOOT
        self._identity: str | None = None
        self._here: tempfile.TemporaryDirectory[str] | None = None
        # Where each step's system is built, when not where it goes.
        self.build_host = build_host

    def _step(self, keep_old: Sequence[str], drop: Sequence[str] = ()) -> StepConfig:
        return StepConfig(tuple(keep_old), self.old_nixpkgs, self.configuration, tuple(drop))

    def non_vital(self) -> list[str]:
        return tagged_non_vital(self.flake, self.configuration, self.include)

    def _evaluated(self, step: StepConfig, name: str) -> str:
        """The step's system evaluated on this machine: its top-level derivation.

        Its step file and GC root go to the state directory here; on another host, whose
        state directory that is, to a directory of this machine's own for the run."""
        where = self.state
        if self.host.address is not None:
            if self._here is None:
                self._here = tempfile.TemporaryDirectory(prefix="budget-solve-eval-")
            where = Path(self._here.name)
        return instantiate_system(
            step,
            self.flags,
            step_file=where / "steps" / f"{name}.json",
            root=where / "roots" / f"{name}.drv",
            flake=self.flake,
            include=self.include,
        )

    def identity(self) -> str:
        if self._identity is None:
            self._identity = self._evaluated(self._step(()), "target-eval")
        return self._identity

    def target(self, old: Closure) -> Target:
        drv = self.identity()
        closure = closure_from_derivation(drv, substituters=self.substituters, like=old)
        return Target(drv, closure.roots[0], closure, drv=drv)

    def adjust(self, problem: "Problem", generations: Sequence[Generation]) -> list[Generation]:
        return realisable(problem, generations)

    def describe(self, problem: "Problem", gen: Generation) -> NixosStep:
        keep: set[str] = set()
        drop: set[str] = set()
        for comp, state in zip(problem.modelled(), gen, strict=True):
            if state == State.OLD and comp.change is Change.UPGRADE:
                keep.update(attributes(comp))
            elif state == State.ABSENT:
                drop.update(attributes(comp))
        return {"keep_old": sorted(keep), "drop": sorted(drop)}

    def build(self, spec: Mapping[str, object], name: str, out_link: Path) -> str:
        parsed = _parse_nixos_step(spec)
        step = self._step(parsed["keep_old"], parsed["drop"])
        if self.host.address is None and self.build_host is None:
            return build_system(
                self.host,
                step,
                self.flags,
                step_file=self.state / "steps" / f"{name}.json",
                out_link=out_link,
                flake=self.flake,
                include=self.include,
                substituters=self.substituters,
            )
        drv = self._evaluated(step, name)
        if self.build_host is None:
            builds.ship(self.host, [drv], self.flags, derivation=True)
        return self.realise(drv, out_link)

    def realise(self, drv: str, out_link: Path) -> str:
        host, flags, subs = self.host, self.flags, self.substituters
        if self.build_host is None:
            return builds.realise_path(host, drv, flags, root=out_link, substituters=subs)
        with builds.built_on(self.build_host, drv, flags, substituters=subs) as built:
            to = host if isinstance(host, Ssh) else None
            builds.copy_to(to, [built], flags, source=self.build_host)
            # There now: this only roots it.
            return builds.realise_path(host, built, flags, root=out_link)

    def activate(self, path: str) -> None:
        activate(self.host, path, self.activation, self.flags)

    def prepare(self) -> None:
        if self.booted_policy is BootedSystem.DROP:
            remove_booted_root(self.host, self.run_dir)

    def pinned(self) -> list[str]:
        booted = self.booted()
        if (
            self.booted_policy is BootedSystem.PIN
            and booted
            and not nix.invalid_paths(self.host, [booted])
        ):
            return [booted]
        return []

    def booted(self) -> str | None:
        return booted_system(self.host, self.run_dir)

    def moved_roots(self) -> list[str]:
        moved = [str(self.run_dir / "current-system")]
        if self.booted_policy is not BootedSystem.PIN:
            # `drop` removes that root; `reboot` moves it with every step's reboot.
            moved.append(str(self.run_dir / "booted-system"))
        return moved
