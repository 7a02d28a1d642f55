"""A plain Nix profile: intermediate generations are built from `generation.nix`."""

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from adapters.apply.builder import ApplyError, Target, generation_entries
from adapters.nixstore import nix
from adapters.nixstore.estimate import closure_from_derivation
from adapters.nixstore.sources import read_source
from solver.closure import Closure
from solver.errors import BudgetSolveError, InputError
from solver.instance import Problem
from solver.plan import Generation

GENERATION_NIX: Final = Path(__file__).with_name("generation.nix")


class ProfileBuilder:
    """A plain Nix profile: intermediate generations are built from `generation.nix`."""

    reboots = False

    def __init__(self, profile: Path, target: str, substituters: Sequence[str] = ()) -> None:
        self.profile = profile
        self.substituters = list(substituters)
        self._target = target

    def prepare(self) -> None:
        pass

    def pinned(self) -> list[str]:
        return []

    def booted(self) -> str | None:
        return None

    def identity(self) -> str:
        return self._target

    def target(self, old: Closure) -> Target:
        name = self._target
        if name.endswith(".drv"):
            if nix.invalid_paths([name]):
                raise InputError(f"--target {name}: the derivation is not in the store")
            closure = closure_from_derivation(name, substituters=self.substituters, like=old)
            return Target(name, closure.roots[0], closure, drv=name)
        if not nix.invalid_paths([name]):
            return Target(name, name, read_source(name))
        errors = []
        for url in self.substituters:
            try:
                return Target(name, name, nix.closure(name, store=url))
            except BudgetSolveError as e:
                errors.append(str(e))
        detail = f": {errors[-1]}" if errors else " (give --substituter URL)"
        raise ApplyError(f"{name} is not in the store and no substituter has it{detail}")

    def adjust(self, problem: Problem, generations: Sequence[Generation]) -> list[Generation]:
        return list(generations)

    def describe(self, problem: Problem, gen: Generation) -> dict[str, Any]:
        return {"entries": generation_entries(problem, gen)}

    def build(self, spec: Mapping[str, Any], name: str, out_link: Path) -> str:
        return nix.build_generation(
            GENERATION_NIX, name, spec["entries"], out_link=out_link, substituters=self.substituters
        )

    def activate(self, path: str) -> None:
        nix.set_profile(self.profile, path)
