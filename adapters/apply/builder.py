"""What the apply engine asks of a kind of system: the `Builder` protocol and `Target`."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from adapters.nixstore.builds import NixFlags
from adapters.nixstore.host import Host
from solver.closure import Closure
from solver.components import Change
from solver.errors import BudgetSolveError
from solver.plan import Generation, State

if TYPE_CHECKING:
    # Annotations only: the model (and numpy) is imported by what builds it.
    from solver.instance import Problem


class ApplyError(BudgetSolveError):
    """The run failed; the profile still points at the last good generation. `step`:
    the step that failed, when one did."""

    def __init__(self, message: str, *, step: int | None = None) -> None:
        super().__init__(message)
        self.step = step


def generation_entries(problem: "Problem", gen: Generation) -> list[str]:
    """Top-level paths of a generation: each component's old or new entries, or none."""
    paths: set[str] = set()
    for comp in problem.split.components:
        if comp.change is Change.SAME and comp.vital:
            paths.update(comp.old)
    for comp, state in zip(problem.modelled(), gen, strict=True):
        if state == State.OLD:
            paths.update(comp.old)
        elif state == State.NEW:
            paths.update(comp.new)
    return sorted(paths)


@dataclass(frozen=True)
class Target:
    """The system the plan ends at."""

    name: str  # what the user named: with the profile, it identifies the plan in the journal
    path: str  # the top-level store path the last step makes current
    closure: Closure
    drv: str | None = None  # builds the target where no substituter has it


class Builder(Protocol):
    """How one kind of system describes, builds and switches to its generations."""

    # The host the profile is on, where generations are built, switched to and collected.
    host: Host
    # The user's pass-through flags and where builds log.
    flags: NixFlags
    profile: Path
    substituters: list[str]

    def identity(self) -> str:
        """What names the target, cheaply: a rerun with the same identity resumes."""
        ...

    def target(self, old: Closure) -> Target:
        """The target's top-level path and its closure, exact or estimated."""
        ...

    def adjust(self, problem: "Problem", generations: Sequence[Generation]) -> list[Generation]:
        """The planned generations as this kind of system can build them."""
        ...

    def describe(self, problem: "Problem", gen: Generation) -> Mapping[str, object]:
        """An intermediate generation, as JSON the journal keeps and `build` reads: the
        builder's own step type (`ProfileStep`, `NixosStep`), opaque to the executor."""
        ...

    def build(self, spec: Mapping[str, object], name: str, out_link: Path) -> str:
        """Build the generation `spec` (from `describe`, read back from the journal)
        describes, on `host`; its top-level store path."""
        ...

    def realise(self, drv: str, out_link: Path) -> str:
        """Build the derivation `drv` (on `host`, or wherever this builder builds) so that
        its output is on `host`, rooted at `out_link`; the output."""
        ...

    def activate(self, path: str) -> None:
        """Make `path` the profile's new current generation."""
        ...

    # What the running system holds (NixOS: /run/booted-system).
    reboots: bool  # stop after each step until the machine runs the new generation

    def prepare(self) -> None:
        """Before planning or resuming: drop what the user allowed to drop."""
        ...

    def pinned(self) -> list[str]:
        """Paths that stay on disk throughout, besides other GC roots."""
        ...

    def booted(self) -> str | None:
        """The generation the machine runs, when that pins it."""
        ...

    def moved_roots(self) -> list[str]:
        """GC root links that follow the current generation as the steps switch (NixOS:
        /run/current-system): they pin nothing the plan must keep."""
        ...

    def non_vital(self) -> list[str]:
        """Packages the system's own configuration tags as non-vital (NixOS:
        `budgetSolve.nonVital`); `--non-vital` adds more."""
        ...
