"""The operations an apply run is made of, on one profile on one host: build or fetch a
generation, switch to it, delete the generations the run owns, collect garbage.

`Operations` holds what they share (the builder, the host, the pass-through flags, the
run's GC roots); the executor (executor.py), the plain upgrade (plain.py) and the resume
policy (resume.py) are written in its terms.
"""

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NotRequired, TypedDict

from adapters.apply.builder import ApplyError, Builder, generation_entries
from adapters.apply.journal import Journal
from adapters.apply.results import Deletions
from adapters.apply.roots import Roots
from adapters.nixstore import builds, nix, profiles
from adapters.nixstore.builds import NixFlags
from adapters.nixstore.host import Host
from solver.errors import InputError, NixError
from solver.instance import Problem
from solver.plan import Generation
from solver.progress import Progress, quiet

log = logging.getLogger(__name__)


class EndSpec(TypedDict):
    """The start or the target of a run, as the journal keeps it: a store path, fetched,
    or built from `drv` where no cache has it. The start also keeps `rebuild`, its
    builder's own step (`Builder.describe`), for a walk back that finds it nowhere."""

    path: str
    drv: str | None
    rebuild: NotRequired[Mapping[str, object]]


def end_spec(path: str, drv: str | None, rebuild: Mapping[str, object] | None = None) -> EndSpec:
    spec: EndSpec = {"path": path, "drv": drv}
    if rebuild is not None:
        spec["rebuild"] = rebuild
    return spec


def _parse_end(spec: Mapping[str, object]) -> EndSpec | None:
    """`spec` as the start's or the target's; None for an intermediate generation (the
    builder's own step, which names no path)."""
    path, drv, rebuild = spec.get("path"), spec.get("drv"), spec.get("rebuild")
    if path is None:
        return None
    if not isinstance(path, str) or not (drv is None or isinstance(drv, str)):
        raise InputError(f"a journal's start or target: a path and a drv, not {spec!r:.80}")
    if rebuild is not None and not isinstance(rebuild, Mapping):
        raise InputError(f"a journal's start: rebuild is a step, not {rebuild!r:.80}")
    return end_spec(path, drv, rebuild)


@dataclass
class Operations:
    """One run's builder and GC roots, and the steps' operations on its profile."""

    builder: Builder
    state: Path
    progress: Progress = quiet
    detail: Progress = quiet
    confirm: Callable[[Deletions], bool] = lambda _: True
    # Keep the generation before the target as the rollback (it is on disk at the last
    # step anyway, so it costs no budget).
    keep_rollback: bool = False
    roots: Roots = field(init=False)

    def __post_init__(self) -> None:
        self.roots = Roots(self.builder.host, self.state)

    @property
    def host(self) -> Host:
        return self.builder.host

    @property
    def flags(self) -> NixFlags:
        return self.builder.flags

    @property
    def profile(self) -> Path:
        return self.builder.profile

    def current(self) -> str:
        """The store path the profile points at now."""
        return self.host.realpath(self.profile)

    def current_generation(self) -> int | None:
        return profiles.current_generation(self.host, self.profile)

    def cleanup(self) -> None:
        """Remove our temporary roots and collect: leftovers of a failed or killed step go."""
        self.roots.drop_builds()
        nix.collect_garbage(self.host)

    def owned(self, journal: Journal) -> set[int]:
        """Generations this run may delete, as the profile shows them: the start, which
        the plan replaces, while it points at the start system; and the ones it created,
        newer than every generation at the start and pointing at a generation of the
        plan. A generation that points elsewhere is someone else's, whatever the journal
        says."""
        owned = set()
        planned = {p for p in journal.paths[1:] if p is not None}
        for number, path in profiles.generations(self.host, self.profile).items():
            system = self.host.realpath(path)
            if number == journal.start_generation and system == journal.paths[0]:
                owned.add(number)
            elif number > journal.newest_generation and system in planned:
                owned.add(number)
        return owned

    def switch(self, journal: Journal, path: str) -> None:
        """Make `path` current, and delete the generation it replaced when the run owns it
        (with `keep_rollback`, the one before the target stays)."""
        before = self.current_generation()
        self.builder.activate(path)
        after = self.current_generation()
        if self.keep_rollback and path == journal.paths[-1]:
            return  # the generation before the target is the rollback
        if before is not None and before != after and before in self.owned(journal):
            profiles.delete_generations(self.host, self.profile, [before])

    def build(self, journal: Journal, i: int, root: str) -> str:
        """Generation i on disk: the start or the target fetched, or an intermediate built."""
        spec = journal.specs[i]
        out_link = self.roots.build(root)
        end = _parse_end(spec)
        if end is None:
            return self.builder.build(spec, f"budget-solve-generation-{i}", out_link)
        path = end["path"]
        built = self.built_there(path, end["drv"], out_link)
        if built is not None:
            return built
        subs = self.builder.substituters
        try:
            return builds.realise_path(
                self.host, path, self.flags, root=out_link, substituters=subs
            )
        except NixError:
            rebuild = end.get("rebuild")
            if rebuild is None:
                raise
            # Gone from the store and from every cache: the same packages, built again
            # (on NixOS, the old ones from --old-nixpkgs), with glue of their own.
            self.progress(f"generation {i} is in no cache: building it again")
            return self.builder.build(rebuild, f"budget-solve-generation-{i}", out_link)

    def built_there(self, path: str, drv: str | None, root: Path) -> str | None:
        """`path` built from `drv`, rooted at `root`, when the host lacks it and has the
        derivation (a NixOS system's glue is in no cache); None when it is to be fetched.
        On another host, what this machine has of both goes there first."""
        builds.ship(self.host, [path], self.flags)
        if not drv:
            return None
        builds.ship(self.host, [drv], self.flags, derivation=True)
        if nix.invalid_paths(self.host, [path]) and not nix.invalid_paths(self.host, [drv]):
            if path not in nix.query_outputs(self.host, drv):
                # Never build what does not give the generation asked for.
                raise ApplyError(f"{drv} does not build {path}; refusing to build it")
            return self.builder.realise(drv, root)
        return None


def closure_of(problem: Problem, gen: Generation) -> set[str]:
    """Every store path generation `gen` holds."""
    entries = generation_entries(problem, gen)
    paths = problem.new.reachable([p for p in entries if p in problem.new])
    return paths | problem.old.reachable([p for p in entries if p in problem.old])


def kept_bytes(problem: Problem, previous: Generation, last: Generation) -> int:
    """NAR bytes that keeping `previous` beside `last` leaves on disk after the run."""
    extra = closure_of(problem, previous) - closure_of(problem, last)
    return sum((problem.old[p] if p in problem.old else problem.new[p]).nar_size for p in extra)
