"""Closures: store paths with NAR sizes and references, and the set algebra on them."""

import graphlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from solver.errors import ClosureError
from solver.storepath import StorePath

# A single store path larger than this is a corrupt size field, not a package (1 TiB).
MAX_NAR_SIZE = 1 << 40


@dataclass(frozen=True, slots=True)
class PathInfo:
    """One store path as `nix path-info --json` describes it. Sizes in bytes."""

    path: str
    nar_size: int
    references: tuple[str, ...] = ()
    deriver: str | None = None
    # True when no cache knew the path and its size was guessed (it will be built locally).
    estimated: bool = False

    @property
    def store_path(self) -> StorePath:
        return StorePath.parse(self.path)


class Closure:
    """A set of store paths closed under references, plus the roots it was taken from."""

    __slots__ = ("_infos", "roots", "source")

    def __init__(
        self,
        infos: Iterable[PathInfo] | Mapping[str, PathInfo],
        roots: Iterable[str] | None = None,
        *,
        source: str = "closure",
        check: bool = True,
    ) -> None:
        items = infos.values() if isinstance(infos, Mapping) else infos
        by_path: dict[str, PathInfo] = {}
        for info in items:
            if info.path in info.references:
                # Nix lists self-references; they never change what a closure contains.
                info = PathInfo(
                    info.path,
                    info.nar_size,
                    tuple(r for r in info.references if r != info.path),
                    info.deriver,
                    info.estimated,
                )
            previous = by_path.get(info.path)
            if previous is not None and previous.nar_size != info.nar_size:
                raise ClosureError(
                    f"{source}: {info.path} is listed twice with different sizes "
                    f"({previous.nar_size} and {info.nar_size})"
                )
            by_path[info.path] = info
        self._infos = by_path
        self.source = source
        if check:
            self._check()
        self.roots = tuple(sorted(roots)) if roots is not None else self._unreferenced()
        for root in self.roots:
            if root not in by_path:
                raise ClosureError(f"{source}: root {root} is not in the closure")

    def _check(self) -> None:
        for info in self._infos.values():
            if not isinstance(info.nar_size, int) or isinstance(info.nar_size, bool):
                raise ClosureError(f"{self.source}: {info.path} has a non-integer narSize")
            if info.nar_size < 0:
                raise ClosureError(f"{self.source}: {info.path} has a negative narSize")
            if info.nar_size > MAX_NAR_SIZE:
                raise ClosureError(
                    f"{self.source}: {info.path} has an absurd narSize ({info.nar_size} bytes)"
                )
            for ref in info.references:
                if ref not in self._infos:
                    raise ClosureError(
                        f"{self.source}: {info.path} references {ref}, which is not in the closure"
                    )
        dirs = sorted({path.rpartition("/")[0] for path in self._infos})
        if len(dirs) > 1:
            raise ClosureError(
                f"{self.source}: paths under two store directories, {dirs[0]} and {dirs[1]}"
            )
        # A store path's references are fixed when it is made, so only a path itself can
        # be among them (dropped above): a cycle is a corrupt or hand-made closure.
        graph = {path: info.references for path, info in self._infos.items()}
        try:
            graphlib.TopologicalSorter(graph).prepare()
        except graphlib.CycleError as e:
            cycle = " -> ".join(e.args[1])
            raise ClosureError(f"{self.source}: a reference cycle, {cycle}") from None

    def _unreferenced(self) -> tuple[str, ...]:
        referenced = {r for info in self._infos.values() for r in info.references}
        return tuple(sorted(p for p in self._infos if p not in referenced))

    def __len__(self) -> int:
        return len(self._infos)

    def __contains__(self, path: object) -> bool:
        return path in self._infos

    def __iter__(self) -> Iterator[str]:
        return iter(self._infos)

    def __getitem__(self, path: str) -> PathInfo:
        return self._infos[path]

    def infos(self) -> Iterable[PathInfo]:
        return self._infos.values()

    def size(self, paths: Iterable[str] | None = None) -> int:
        """Sum of NAR sizes of `paths` (each counted once), or of the whole closure."""
        if paths is None:
            return sum(i.nar_size for i in self._infos.values())
        return sum(self._infos[p].nar_size for p in set(paths))

    def reachable(self, starts: Iterable[str]) -> set[str]:
        """Every path reachable from `starts`, the starts included."""
        seen: set[str] = set()
        stack = list(starts)
        infos = self._infos
        while stack:
            p = stack.pop()
            if p in seen:
                continue
            seen.add(p)
            stack.extend(r for r in infos[p].references if r not in seen)
        return seen

    def referring(self, targets: Iterable[str]) -> set[str]:
        """`targets` and every path that reaches one of them (reverse reachability)."""
        referrers: dict[str, list[str]] = {}
        for info in self._infos.values():
            for ref in info.references:
                referrers.setdefault(ref, []).append(info.path)
        seen = set(targets)
        stack = list(seen)
        while stack:
            for parent in referrers.get(stack.pop(), ()):
                if parent not in seen:
                    seen.add(parent)
                    stack.append(parent)
        return seen

    def restrict(self, roots: Iterable[str]) -> "Closure":
        """The closure of `roots` inside this one."""
        roots = list(roots)
        keep = self.reachable(roots)
        # In this closure's order, not the set's: the same input gives the same closure.
        infos = (info for path, info in self._infos.items() if path in keep)
        return Closure(infos, roots, source=self.source, check=False)

    @property
    def store_dir(self) -> str:
        first = self.roots[0] if self.roots else next(iter(self._infos), "/nix/store/x")
        return first.rpartition("/")[0]


def merge(closures: Iterable[Closure], *, source: str = "closure") -> Closure:
    """One closure holding every path of `closures`; sizes of shared paths must agree."""
    infos: list[PathInfo] = []
    roots: list[str] = []
    for c in closures:
        infos.extend(c.infos())
        roots.extend(c.roots)
    return Closure(infos, sorted(set(roots)), source=source, check=False)
