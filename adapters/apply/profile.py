"""A plain Nix profile: intermediate generations are built from `generation.nix`."""

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from adapters.apply.builder import Target, generation_entries
from adapters.nixstore import builds, profiles
from adapters.nixstore.builds import NixFlags
from adapters.nixstore.estimate import read_target
from adapters.nixstore.host import Host
from solver.closure import Closure
from solver.instance import Problem
from solver.plan import Generation

GENERATION_NIX: Final = Path(__file__).with_name("generation.nix")


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

    def adjust(self, problem: Problem, generations: Sequence[Generation]) -> list[Generation]:
        return list(generations)

    def describe(self, problem: Problem, gen: Generation) -> dict[str, Any]:
        return {"entries": generation_entries(problem, gen)}

    def build(self, spec: Mapping[str, Any], name: str, out_link: Path) -> str:
        return builds.build_generation(
            self.host,
            GENERATION_NIX,
            name,
            spec["entries"],
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
