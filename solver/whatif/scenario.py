"""What-if targets: the current closure changed the way a nixpkgs update changes it.

Every change goes through Nix's hash propagation: a path that changes gets a new hash, and
so does every path that references it, directly or not; nothing else changes. So bumping
openssl changes openssl and everything above it, bumping glibc is a mass rebuild, and
adding a package changes the glue (`system-path` and up) that now references it.
"""

import difflib
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from solver.closure import Closure, PathInfo
from solver.components import is_glue
from solver.errors import InputError
from solver.storepath import StorePath
from solver.synthetic import fake_hash, propagate

# The smallest path the changes produce: a NAR of an empty regular file is 120 bytes.
MIN_NAR_BYTES = 120


class ScenarioError(InputError):
    """A change that does not apply to the closure it is given."""


@dataclass(frozen=True)
class Growth:
    """How a size changes: `factor` times the old size, plus `delta` bytes."""

    factor: float = 1.0
    delta: int = 0

    def apply(self, size: int) -> int:
        return max(MIN_NAR_BYTES, round(size * self.factor) + self.delta)


@dataclass(frozen=True)
class Bump:
    """A new version (or just a rebuild) of packages: they and all above them change."""

    names: tuple[str, ...]
    grow: Growth = Growth()
    version: str | None = None


@dataclass(frozen=True)
class Add:
    """A package added to the system (to `system-path`), referencing `references`."""

    name: str
    size: int
    references: tuple[str, ...] = ()


@dataclass(frozen=True)
class Remove:
    """Packages taken out of the system; what nothing else needs leaves the closure."""

    names: tuple[str, ...]


@dataclass(frozen=True)
class GrowAll:
    """Everything rebuilt and resized: a new stdenv, a new compiler."""

    grow: Growth = field(default_factory=Growth)


Edit = Bump | Add | Remove | GrowAll


class _Index:
    """Paths of a closure by pname."""

    def __init__(self, closure: Closure) -> None:
        self.closure = closure
        self.by_pname: dict[str, list[str]] = defaultdict(list)
        for path in closure:
            self.by_pname[StorePath.parse(path).pname].append(path)

    def paths(self, name: str, what: str) -> list[str]:
        found = self.by_pname.get(name)
        if found:
            return sorted(found)
        close = difflib.get_close_matches(name, list(self.by_pname), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ScenarioError(f"{what}: no package {name!r} in the current closure{hint}")

    def main_output(self, name: str, what: str) -> str:
        paths = self.paths(name, what)
        plain = [p for p in paths if not StorePath.parse(p).output]
        return (plain or paths)[0]


def _parents(closure: Closure, paths: Iterable[str]) -> dict[str, list[str]]:
    """Glue paths that reference each of `paths` directly: where a package is 'installed'."""
    wanted = set(paths)
    out: dict[str, list[str]] = defaultdict(list)
    for info in closure.infos():
        sp = StorePath.parse(info.path)
        if info.path in closure.roots or is_glue(sp, info.nar_size, bool(info.references)):
            for ref in info.references:
                if ref in wanted:
                    out[ref].append(info.path)
    return out


def _install_point(closure: Closure) -> str:
    """Where added packages go: `system-path` if the system has one, else the first root."""
    for path in sorted(closure):
        if StorePath.parse(path).name == "system-path":
            return path
    return closure.roots[0]


def apply_change(closure: Closure, change: Edit, rng: random.Random, what: str) -> Closure:
    """One change, with hash propagation."""
    index = _Index(closure)
    if isinstance(change, Bump):
        seeds = [p for name in change.names for p in index.paths(name, what)]
        version = change.version
        bumped = set(seeds)

        def rename(path: str) -> str:
            sp = StorePath.parse(path)
            if version is None or path not in bumped:
                return sp.name
            return f"{sp.pname}-{version}" + (f"-{sp.output}" if sp.output else "")

        return propagate(
            closure,
            seeds,
            rng=rng,
            resize=lambda info: (
                change.grow.apply(info.nar_size) if info.path in bumped else info.nar_size
            ),
            rename=rename,
        )
    if isinstance(change, GrowAll):
        grow = change.grow
        return propagate(closure, list(closure), rng=rng, resize=lambda i: grow.apply(i.nar_size))
    if isinstance(change, Add):
        sp = StorePath.parse(f"{closure.store_dir}/{'0' * 32}-{change.name}")
        if sp.pname in index.by_pname:
            raise ScenarioError(f"{what}: {sp.pname!r} is already in the current closure")
        refs = tuple(sorted(index.main_output(n, what) for n in change.references))
        new = PathInfo(f"{closure.store_dir}/{fake_hash(rng)}-{change.name}", change.size, refs)
        parent = _install_point(closure)
        references = {parent: (*closure[parent].references, new.path)}
        return propagate(closure, [parent], rng=rng, references=references, extra=[new])
    if isinstance(change, Remove):
        targets = {p for name in change.names for p in index.paths(name, what)}
        parents = _parents(closure, targets)
        if not parents:
            name = ", ".join(change.names)
            raise ScenarioError(f"{what}: {name} is not installed at the top of the system")
        referrers = sorted({g for gs in parents.values() for g in gs})
        references = {
            g: tuple(r for r in closure[g].references if r not in targets) for g in referrers
        }
        return propagate(closure, referrers, rng=rng, references=references)
    raise TypeError(f"unknown change {change!r}")


def apply_changes(closure: Closure, changes: Sequence[Edit], *, seed: int = 0) -> Closure:
    """The target: `changes` applied in order, each with hash propagation."""
    rng = random.Random(seed)
    out = closure
    for i, change in enumerate(changes):
        out = apply_change(out, change, rng, f"changes[{i}]")
    return Closure(out.infos(), out.roots, source=f"{closure.source} (changed)", check=False)
