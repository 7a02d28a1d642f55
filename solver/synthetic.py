"""Generated closures shaped like real NixOS systems, and Nix's hash propagation.

Shape: a core of libraries that most packages reference (glibc at the bottom), packages
with a few private dependencies each, a long tail of sizes with a handful of very large
paths (firmware, kernel, LLVM-sized), and glue on top (top-level, system-path, etc).
"""

import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from solver.closure import Closure, PathInfo
from solver.names import LIBRARIES, PACKAGES
from solver.storepath import NIX_BASE32

STORE = "/nix/store"
_ALPHABET = sorted(NIX_BASE32)


def fake_hash(rng: random.Random) -> str:
    return "".join(rng.choice(_ALPHABET) for _ in range(32))


def _size(rng: random.Random, median: float, sigma: float = 1.6) -> int:
    return max(120, int(rng.lognormvariate(0, sigma) * median))


@dataclass(frozen=True)
class Pair:
    """A current system and an upgrade of it."""

    old: Closure
    new: Closure


def generate_system(
    paths: int, components: int, *, seed: int = 0, name: str = "nixos-system-synthetic-24.05"
) -> Closure:
    """A system closure of about `paths` store paths with `components` top-level packages."""
    rng = random.Random(seed)
    infos: dict[str, PathInfo] = {}

    def add(pname: str, version: str, size: int, refs: Iterable[str]) -> str:
        base = f"{pname}-{version}" if version else pname
        path = f"{STORE}/{fake_hash(rng)}-{base}"
        infos[path] = PathInfo(path, size, tuple(sorted(set(refs))))
        return path

    n_libs = max(3, paths // 12)
    libs: list[str] = [add("glibc", "2.39-52", 30_000_000, [])]
    for i in range(1, n_libs):
        deps = rng.sample(libs, k=min(len(libs), rng.randint(1, 4)))
        lib_name = LIBRARIES[i] if i < len(LIBRARIES) else f"lib{i}"
        libs.append(
            add(
                lib_name,
                f"{rng.randint(0, 9)}.{rng.randint(0, 30)}",
                _size(rng, 400_000),
                [*deps, libs[0]],
            )
        )
    private_total = max(0, paths - n_libs - components - 3)
    per_comp = [0] * components
    for _ in range(private_total):
        per_comp[rng.randrange(components)] += 1
    big = set(rng.sample(range(components), k=min(components, max(1, components // 60))))

    def pkg_name(c: int) -> str:
        return PACKAGES[c] if c < len(PACKAGES) else f"pkg{c}"

    uses: list[set[str]] = []
    for _ in range(components):
        # Popular libraries are referenced far more often: a few low indices dominate.
        wanted = min(len(libs), 1 + int(rng.paretovariate(1.2)))
        uses.append(
            {libs[min(len(libs) - 1, int(rng.expovariate(6.0 / len(libs))))] for _ in range(wanted)}
        )
    referenced = {r for lib in libs for r in infos[lib].references} | set().union(*uses)
    for lib in libs:
        if lib not in referenced:
            uses[rng.randrange(components)].add(lib)
    entries: list[str] = []
    for c, used in enumerate(uses):
        private = [
            add(f"{pkg_name(c)}-dep{p}", f"{rng.randint(1, 5)}.{p}", _size(rng, 150_000), used)
            for p in range(per_comp[c])
        ]
        size = _size(rng, 3_000_000) if c not in big else rng.randint(200, 900) * 1_000_000
        entries.append(
            add(pkg_name(c), f"{rng.randint(1, 20)}.{rng.randint(0, 9)}", size, [*used, *private])
        )
    system_path = add("system-path", "", 40_000, entries)
    etc = add("etc", "", 30_000, rng.sample(entries, k=min(5, len(entries))))
    top = add(name, "", 15_000, [system_path, etc])
    return Closure(infos.values(), [top], source=name)


def _name(path: str) -> str:
    """A store path's name: what follows the hash."""
    return path.rpartition("/")[2].partition("-")[2]


def propagate(
    closure: Closure,
    seeds: Iterable[str],
    *,
    rng: random.Random,
    resize: Callable[[PathInfo], int] = lambda info: info.nar_size,
    rename: Callable[[str], str] = _name,
    references: Mapping[str, tuple[str, ...]] | None = None,
    extra: Sequence[PathInfo] = (),
) -> Closure:
    """Nix's hash propagation: change `seeds` and every path that reaches them, nothing else.

    Each changed path gets a new hash, the name `rename(path)` and the size `resize(info)`.
    `references` gives paths new reference lists (old paths, or new ones from `extra`,
    which are added). The result holds what the (renamed) roots reach.
    """
    references = references or {}
    changed = closure.referring(seeds)
    renamed: dict[str, str] = {}
    for path in sorted(changed):
        store_dir = path.rpartition("/")[0]
        renamed[path] = f"{store_dir}/{fake_hash(rng)}-{rename(path)}"
    out = list(extra)
    for info in closure.infos():
        refs = references.get(info.path, info.references)
        refs = tuple(sorted(renamed.get(r, r) for r in refs))
        if info.path in changed:
            out.append(PathInfo(renamed[info.path], resize(info), refs, None, info.estimated))
        else:
            out.append(info)
    roots = [renamed.get(r, r) for r in closure.roots]
    return Closure(out, roots, source=closure.source, check=False).restrict(roots)


def _bump(name: str) -> str:
    head, sep, version = name.rpartition("-")
    if sep and version[:1].isdigit():
        return f"{head}-{version}.1"
    return name


def generate_upgrade(
    old: Closure, *, changed: float = 0.3, growth: float = 0.03, seed: int = 0
) -> Closure:
    """An update that bumps a fraction of the packages and libraries (with propagation)."""
    rng = random.Random(seed + 7919)
    candidates = sorted(p for p in old if old[p].references or "glibc" not in p)
    seeds = rng.sample(candidates, k=max(1, int(len(candidates) * changed / 3)))

    def resize(info: PathInfo) -> int:
        return max(120, int(info.nar_size * (1 + rng.uniform(-growth, 2 * growth))))

    bumped = {_name(s) for s in seeds}
    return propagate(
        old,
        seeds,
        resize=resize,
        rng=rng,
        rename=lambda path: _bump(_name(path)) if _name(path) in bumped else _name(path),
    )


def generate_pair(paths: int, components: int, *, changed: float = 0.3, seed: int = 0) -> Pair:
    old = generate_system(paths, components, seed=seed)
    return Pair(old, generate_upgrade(old, changed=changed, seed=seed))
