"""A plain Nix profile: intermediate generations are built from `generation.nix`."""

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from adapters.apply.builder import Target, generation_entries
from adapters.nixstore import nix
from adapters.nixstore.estimate import read_target
from solver.closure import Closure
from solver.instance import Problem
from solver.plan import Generation

GENERATION_NIX: Final = Path(__file__).with_name("generation.nix")


class ProfileBuilder:
    """A plain Nix profile: intermediate generations are built from `generation.nix`."""

    reboots = False

    def __init__(
        self, profile: Path, target: str, substituters: Sequence[str] = (), *, state: Path
    ) -> None:
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
        return nix.build_generation(
            GENERATION_NIX,
            name,
            spec["entries"],
            out_link=out_link,
            paths_file=self.state / "steps" / f"{name}.json",
            substituters=self.substituters,
        )

    def realise(self, drv: str, out_link: Path) -> str:
        return nix.realise_path(drv, root=out_link, substituters=self.substituters)

    def activate(self, path: str) -> None:
        nix.set_profile(self.profile, path)
