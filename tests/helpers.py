"""Small hand-made closures for tests."""

import hashlib

from solver.closure import Closure, PathInfo
from solver.components import split_components
from solver.instance import Instance, Problem, build_instance
from solver.storepath import NIX_BASE32

STORE = "/nix/store"
_ALPHA = sorted(NIX_BASE32)
GiB = 1 << 30
MiB = 1 << 20


def fake_path(name: str, salt: str = "") -> str:
    digest = hashlib.sha256((salt + name).encode()).digest()
    return f"{STORE}/{''.join(_ALPHA[b % 32] for b in digest[:32])}-{name}"


class SystemBuilder:
    """Build a system closure: packages (name -> size, deps) under a top-level and system-path."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.infos: dict[str, PathInfo] = {}

    def add(self, name: str, size: int, refs: tuple[str, ...] = (), salt: str = "") -> str:
        path = fake_path(name, salt)
        self.infos[path] = PathInfo(path, size, refs)
        return path

    def system(self, packages: list[str], glue_size: int = 0) -> Closure:
        sp = self.add("system-path", glue_size // 2 or 1000, tuple(packages), salt=self.label)
        top = self.add(
            f"nixos-system-host-{self.label}", glue_size // 2 or 1000, (sp,), salt=self.label
        )
        return Closure(self.infos.values(), [top], source=self.label)


def user_story(big: int = 4 * GiB, base: int = 1 * GiB, extra: int = 0) -> tuple[Closure, Closure]:
    """The user's bigPackageA and bigPackageB (seeds/004): both upgraded at once."""
    old, new = SystemBuilder("old"), SystemBuilder("new")
    glibc = old.add("glibc-2.39", base)
    new.add("glibc-2.39", base)
    pkgs_old = [
        old.add("bigPackageA-1.0", big, (glibc,)),
        old.add("bigPackageB-1.0", big, (glibc,)),
    ]
    pkgs_new = [
        new.add("bigPackageA-2.0", big, (glibc,)),
        new.add("bigPackageB-2.0", big, (glibc,)),
    ]
    if extra:
        pkgs_old.append(old.add("games-1.0", extra, (glibc,)))
        pkgs_new.append(new.add("games-1.0", extra, (glibc,)))
    return old.system(pkgs_old), new.system(pkgs_new)


def instance_of(old: Closure, new: Closure, **kwargs: object) -> tuple[Problem, Instance]:
    non_vital = kwargs.pop("non_vital", ())
    split = split_components(old, new, non_vital=non_vital)  # type: ignore[arg-type]
    problem = Problem(old, new, split, **kwargs)  # type: ignore[arg-type]
    return problem, build_instance(problem)


def rebuild_of_1000_paths() -> tuple[Problem, Instance, int]:
    """A generated 1,000-path system with 90 % of its packages rebuilt, at a budget 30 % of
    the way from the lowest peak known (or the larger system) to the one-step need: the
    first plan lands a step above the bound, and single moves of the squeeze settle over
    the budget where its kicks fit."""
    from solver.plan import one_step
    from solver.search.greedy import min_peak_plan
    from solver.synthetic import generate_pair

    pair = generate_pair(1000, 50, changed=0.9, seed=8)
    problem, inst = instance_of(pair.old, pair.new)
    low = max(pair.old.size(), pair.new.size(), min_peak_plan(inst).peak_bytes)
    return problem, inst, low + (one_step(inst).peak_bytes - low) * 3 // 10
