"""A plain Nix profile: intermediate generations are built from `generation.nix`."""

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final, TypedDict

from adapters.apply.builder import Target, generation_entries
from adapters.nixstore import builds, profiles
from adapters.nixstore.builds import NixFlags
from adapters.nixstore.estimate import read_target
from adapters.nixstore.host import Host
from solver.closure import Closure
from solver.errors import InputError
from solver.plan import Generation

if TYPE_CHECKING:
    # Annotations only: the model (and numpy) is imported by what builds it.
    from solver.instance import Problem

GENERATION_NIX: Final = Path(__file__).with_name("generation.nix")


class ProfileStep(TypedDict):
    """An intermediate generation of a profile, as the journal keeps it: the store paths
    its links point at."""

    entries: list[str]


def _parse_profile_step(spec: Mapping[str, object]) -> ProfileStep:
    entries = spec.get("entries")
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        raise InputError(f"a profile's step names its entries (store paths), not {entries!r:.80}")
    return {"entries": entries}


class ProfileBuilder:
    """A plain Nix profile: intermediate generations are built from `generation.nix`."""

    reboots = False

    def __init__(
        self,
        host: Host,
        profile: Path,
        target: str,
        substituters: Sequence[str] = (),
        *,
        state: Path,
        flags: NixFlags,
    ) -> None:
        self.host = host
        self.flags = flags
        self.profile = profile
        self.state = state
        self.substituters = list(substituters)
        self._target = target

    def prepare(self) -> None:
        pass

    def pinned(self) -> list[str]:
        return []

    def booted(self) -> str | None:
        return None

    def moved_roots(self) -> list[str]:
        return []

    def non_vital(self) -> list[str]:
        return []

    def identity(self) -> str:
        return self._target

    def target(self, old: Closure) -> Target:
        closure, drv = read_target(self._target, like=old, substituters=self.substituters)
        return Target(self._target, closure.roots[0], closure, drv=drv)

    def adjust(self, problem: "Problem", generations: Sequence[Generation]) -> list[Generation]:
        return list(generations)

    def describe(self, problem: "Problem", gen: Generation) -> ProfileStep:
        return {"entries": generation_entries(problem, gen)}

    def build(self, spec: Mapping[str, object], name: str, out_link: Path) -> str:
        entries = _parse_profile_step(spec)["entries"]
        # On another host: what this machine has of the entries goes there first.
        builds.ship(self.host, entries, self.flags)
        return builds.build_generation(
            self.host,
            GENERATION_NIX,
            name,
            entries,
            out_link=out_link,
            paths_file=self.state / "steps" / f"{name}.json",
            flags=self.flags,
            substituters=self.substituters,
        )

    def realise(self, drv: str, out_link: Path) -> str:
        return builds.realise_path(
            self.host, drv, self.flags, root=out_link, substituters=self.substituters
        )

    def activate(self, path: str) -> None:
        profiles.set_profile(self.host, self.profile, path)
