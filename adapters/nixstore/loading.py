"""Turn command-line sources into a planning problem: closures, components, pinned paths."""

import logging
import os
from collections.abc import Sequence

from adapters.nixstore import nix
from adapters.nixstore.estimate import closure_from_derivation
from adapters.nixstore.sources import read_source
from solver.closure import Closure, merge
from solver.components import split_components
from solver.errors import InputError, NixError
from solver.instance import Problem

log = logging.getLogger(__name__)


def is_live(spec: str) -> bool:
    """A source that names something in the local store (a store path or a link to one)."""
    store = nix.store_dir()
    return os.path.realpath(spec).startswith(store.rstrip("/") + "/")


def live_pinned(old: Closure, new: Closure, *, ignore_under: str | None = None) -> Closure | None:
    """Closures of the GC roots other than the two systems: they stay whatever we do.

    Roots whose link lies under `ignore_under` (our own temporary roots) do not count.
    """
    ours = set(old.roots) | set(new.roots)
    targets = sorted(
        {
            target
            for link, target in nix.gc_roots().items()
            if target not in ours and not (ignore_under and link.startswith(ignore_under))
        }
    )
    if not targets:
        return None
    log.debug("pinned by %d other GC roots", len(targets))
    return Closure(nix.path_info(targets, recursive=True), targets, source="GC roots")


def keep_closure(paths: Sequence[str], old: Closure, new: Closure, live: bool) -> Closure | None:
    """Closures of `--keep` paths, from the known closures or, on a live store, from Nix."""
    parts = []
    for path in paths:
        real = os.path.realpath(path) if os.path.islink(path) else path
        if real in old:
            parts.append(old.restrict([real]))
        elif real in new:
            parts.append(new.restrict([real]))
        elif live or is_live(real):
            try:
                parts.append(Closure(nix.path_info([real], recursive=True), [real], source=path))
            except NixError as e:
                raise InputError(f"--keep {path}: not in either closure, and {e}") from e
        else:
            raise InputError(
                f"--keep {path}: not in the current or the target closure, and not in a local store"
            )
    return merge(parts, source="--keep") if parts else None


def load_problem(
    current: str,
    target: str,
    *,
    non_vital: Sequence[str] = (),
    couple: Sequence[Sequence[str]] = (),
    keep: Sequence[str] = (),
    reserve: int = 0,
    gc_roots: bool = True,
    target_store: str | None = None,
) -> Problem:
    """Read both systems and everything that pins paths, and split them into components."""
    old = read_source(current)
    if target.endswith(".drv") and nix.invalid_paths(nix.query_outputs(target)):
        # Not built yet: sizes from the caches, estimates (like the old versions) elsewhere.
        caches = [target_store] if target_store else nix.configured_substituters()
        new = closure_from_derivation(target, substituters=caches, like=old)
    elif target_store:
        # A target that is not built here yet is sized from a binary cache's narinfo files.
        new = nix.closure(target, store=target_store)
    else:
        new = read_source(target)
    live = is_live(current)
    pinned = [
        p
        for p in (
            live_pinned(old, new) if live and gc_roots else None,
            keep_closure(keep, old, new, live),
        )
        if p is not None
    ]
    split = split_components(old, new, non_vital=non_vital, couple=couple)
    return Problem(
        old, new, split, pinned=merge(pinned, source="pinned") if pinned else None, reserve=reserve
    )
