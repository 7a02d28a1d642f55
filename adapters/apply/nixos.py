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
import stat
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Final, Self

from adapters.apply.builder import Target
from adapters.files import read_text, write_atomic
from adapters.nixstore import host, nix
from adapters.nixstore.estimate import closure_from_derivation
from solver.closure import Closure
from solver.components import Change, Component
from solver.errors import InputError
from solver.instance import Problem
from solver.plan import Generation, State
from solver.storepath import StorePath

HERE: Final = Path(__file__).parent
STEP_NIX: Final = HERE / "nixos-step.nix"
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
class Flake:
    """`FLAKE#HOST`, as nixos-rebuild takes it."""

    ref: str
    host: str

    @classmethod
    def parse(cls, text: str, default_host: str | None = None) -> Self:
        """`FLAKE#HOST`, or `FLAKE` alone for the name of the host the block is on (this
        machine's, or a --target-host's), as nixos-rebuild takes it."""
        ref, sep, name = text.partition("#")
        if not sep:
            name = default_host if default_host is not None else host.hostname()
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


def _flake_args(flake: Flake, file: Path = FLAKE_NIX) -> list[str]:
    """`file` (by default `nixos-flake.nix`: the flake's system with the step module) and
    the arguments that name the flake's configuration."""
    return [str(file), "--argstr", "flake", flake.ref, "--argstr", "host", flake.host]


def _include_flags(include: Sequence[str]) -> list[str]:
    """`-I ENTRY` for each of `include`."""
    return [arg for entry in include for arg in ("-I", entry)]


def _classic_args(include: Sequence[str]) -> list[str]:
    """`<nixpkgs/nixos>`'s system, with our nixos-config wrapping the user's."""
    flags = _include_flags(include)
    return ["<nixpkgs/nixos>", "-A", "system", *flags, "-I", f"nixos-config={CONFIG_NIX}"]


def flake_build_argv(flake: Flake, out_link: Path, substituters: Sequence[str] = ()) -> list[str]:
    """`nix build` of the flake's system extended with the step module."""
    return nix.build_flake_file_argv(_flake_args(flake), out_link, substituters)


def classic_build_argv(
    out_link: Path, include: Sequence[str] = (), substituters: Sequence[str] = ()
) -> list[str]:
    """`nix-build '<nixpkgs/nixos>' -A system` with our nixos-config wrapping the user's."""
    return nix.build_file_argv(_classic_args(include), out_link, substituters)


def build_system(
    step: StepConfig,
    *,
    step_file: Path,
    out_link: Path,
    flake: Flake | None = None,
    include: Sequence[str] = (),
    substituters: Sequence[str] = (),
) -> str:
    """Build the step's system; its top-level store path."""
    step.write(step_file)
    return nix.build_file(
        _flake_args(flake) if flake else _classic_args(include),
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
    value = nix.evaluate(expression, flakes=flake is not None)
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        raise InputError(f"budgetSolve.nonVital: a list of package names, not {value!r:.80}")
    return value


def system_profile() -> Path:
    return nix.state_dir() / "profiles" / "system"


def activate(toplevel: str, activation: Activation) -> None:
    """Make `toplevel` the system profile's generation and activate it."""
    nix.set_profile(system_profile(), toplevel)
    nix.switch_to_configuration(toplevel, activation.value)


def booted_system(run_dir: Path = Path("/run")) -> str | None:
    link = run_dir / "booted-system"
    return host.realpath(link) if host.is_symlink(link) else None


def instantiate_argv(
    root: Path, flake: Flake | None = None, include: Sequence[str] = ()
) -> list[str]:
    """`nix-instantiate` of the system the step file describes: its top-level `.drv`."""
    if flake:
        return nix.instantiate_argv(_flake_args(flake), root, flakes=True)
    return nix.instantiate_argv(_classic_args(include), root)


def instantiate_system(
    step: StepConfig,
    *,
    step_file: Path,
    root: Path,
    flake: Flake | None = None,
    include: Sequence[str] = (),
) -> str:
    """Evaluate the step's system without building it; its top-level derivation."""
    step.write(step_file)
    return nix.instantiate(
        _flake_args(flake) if flake else _classic_args(include),
        root=root,
        flakes=flake is not None,
        env={STEP_ENV: str(step_file)},
    )


def attributes(component: Component) -> list[str]:
    """The nixpkgs attributes a component's packages come from: their pnames."""
    return sorted({StorePath.parse(p).pname for p in component.old + component.new})


def realisable(problem: Problem, generations: Sequence[Generation]) -> list[Generation]:
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


def remove_booted_root(run_dir: Path) -> list[Path]:
    """Drop the GC root NixOS keeps for /run/booted-system (the user said so)."""
    booted = str(run_dir / "booted-system")
    gcroots = nix.state_dir() / "gcroots"
    removed = [gcroots / name for name, to in host.links(gcroots).items() if to == booted]
    for link in removed:
        host.unlink(link)
    return removed


class NixosBuilder:
    """Generations of a NixOS system: the new configuration with some packages kept old."""

    profile: Path

    def __init__(
        self,
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
        build_host: str | None = None,
    ) -> None:
        if flake is None and configuration is None:
            raise InputError("give --flake FLAKE#HOST or -I nixos-config=PATH")
        self.profile = system_profile()
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
        # Where each step's system is built (`user@host`), when not where it goes.
        self.build_host = build_host

    def _step(self, keep_old: Sequence[str], drop: Sequence[str] = ()) -> StepConfig:
        return StepConfig(tuple(keep_old), self.old_nixpkgs, self.configuration, tuple(drop))

    def non_vital(self) -> list[str]:
        with nix.on_host(None):
            return tagged_non_vital(self.flake, self.configuration, self.include)

    def _evaluated(self, step: StepConfig, name: str) -> str:
        """The step's system evaluated on this machine: its top-level derivation.

        Its step file and GC root go to the state directory here; on another host, whose
        state directory that is, to a directory of this machine's own for the run."""
        where = self.state
        if host.remote() is not None:
            if self._here is None:
                self._here = tempfile.TemporaryDirectory(prefix="budget-solve-eval-")
            where = Path(self._here.name)
        with nix.on_host(None):
            return instantiate_system(
                step,
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
        with nix.on_host(None):
            closure = closure_from_derivation(drv, substituters=self.substituters, like=old)
        return Target(drv, closure.roots[0], closure, drv=drv)

    def adjust(self, problem: Problem, generations: Sequence[Generation]) -> list[Generation]:
        return realisable(problem, generations)

    def describe(self, problem: Problem, gen: Generation) -> dict[str, Any]:
        keep: set[str] = set()
        drop: set[str] = set()
        for comp, state in zip(problem.modelled(), gen, strict=True):
            if state == State.OLD and comp.change is Change.UPGRADE:
                keep.update(attributes(comp))
            elif state == State.ABSENT:
                drop.update(attributes(comp))
        return {"keep_old": sorted(keep), "drop": sorted(drop)}

    def build(self, spec: Mapping[str, Any], name: str, out_link: Path) -> str:
        step = self._step(spec["keep_old"], spec.get("drop", ()))
        address = host.remote()
        if address is None and self.build_host is None:
            return build_system(
                step,
                step_file=self.state / "steps" / f"{name}.json",
                out_link=out_link,
                flake=self.flake,
                include=self.include,
                substituters=self.substituters,
            )
        drv = self._evaluated(step, name)
        if self.build_host is None:
            nix.ship([drv], derivation=True)
        return self.realise(drv, out_link)

    def realise(self, drv: str, out_link: Path) -> str:
        if self.build_host is None:
            return nix.realise_path(drv, root=out_link, substituters=self.substituters)
        with nix.built_on(self.build_host, drv, substituters=self.substituters) as built:
            nix.copy_to(host.remote(), [built], source=self.build_host)
            # There now: this only roots it.
            return nix.realise_path(built, root=out_link)

    def activate(self, path: str) -> None:
        activate(path, self.activation)

    def prepare(self) -> None:
        if self.booted_policy is BootedSystem.DROP:
            remove_booted_root(self.run_dir)

    def pinned(self) -> list[str]:
        booted = self.booted()
        if self.booted_policy is BootedSystem.PIN and booted and not nix.invalid_paths([booted]):
            return [booted]
        return []

    def booted(self) -> str | None:
        return booted_system(self.run_dir)

    def moved_roots(self) -> list[str]:
        moved = [str(self.run_dir / "current-system")]
        if self.booted_policy is not BootedSystem.PIN:
            # `drop` removes that root; `reboot` moves it with every step's reboot.
            moved.append(str(self.run_dir / "booted-system"))
        return moved
