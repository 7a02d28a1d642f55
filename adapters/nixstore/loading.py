"""Turn command-line sources into a planning problem: closures, components, pinned paths."""

import logging
import os
from collections.abc import Sequence

from adapters.nixstore import nix
from adapters.nixstore.estimate import read_target
from adapters.nixstore.host import LOCAL, Host
from adapters.nixstore.sources import check_source, read_source
from solver.closure import Closure, merge
from solver.errors import InputError, NixError
from solver.instance import Problem

log = logging.getLogger(__name__)


def is_live(spec: str) -> bool:
    """A source that names something in the local store (a store path or a link to one)."""
    return nix.in_store(LOCAL, os.path.realpath(spec))


def live_pinned(
    host: Host,
    old: Closure,
    new: Closure,
    *,
    ignore_links: Sequence[str] = (),
    ignore_under: Sequence[str] = (),
    ignore_targets: Sequence[str] = (),
) -> Closure | None:
    """Closures of the GC roots: what stays on disk whatever a plan does.

    Every root counts, whatever it points at, except the links in `ignore_links` (the
    generation the plan replaces, links the upgrade moves itself) and links under a
    directory of `ignore_under` (temporary roots of our own), and with `ignore_targets`
    roots pointing at those paths. A root that keeps the current system, another
    generation of the profile say, keeps it throughout.
    """
    skip = {os.path.abspath(link) for link in ignore_links}
    dirs = [d.rstrip("/") + "/" for d in ignore_under]
    targets = sorted(
        {
            target
            for link, target in nix.gc_roots(host).items()
            if os.path.abspath(link) not in skip
            and not any(link.startswith(d) for d in dirs)
            and target not in ignore_targets
        }
    )
    if not targets:
        return None
    log.debug("pinned by %d GC roots", len(targets))
    # A root at a derivation keeps the derivation file and its inputs, not its outputs.
    drvs = [t for t in targets if t.endswith(".drv")]
    paths = [t for t in targets if not t.endswith(".drv")]
    parts = [nix.derivation_closure(host, drvs)] if drvs else []
    if paths:
        parts.append(Closure(nix.path_info(host, paths, recursive=True), paths, source="GC roots"))
    return merge(parts, source="GC roots")


def keep_closure(
    host: Host, paths: Sequence[str], old: Closure, new: Closure, live: bool
) -> Closure | None:
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
                parts.append(
                    Closure(nix.path_info(host, [real], recursive=True), [real], source=path)
                )
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
    substituters: Sequence[str] = (),
    offline: bool = False,
    host: Host = LOCAL,
) -> Problem:
    """Read both systems and everything that pins paths, and split them into components.

    `host`: the current system, its GC roots and `keep` are on that host (`current` names
    a path there; another host is read over SSH); the target is read here. The target is sized from
    `target_store` and `substituters` where given, else from nix.conf's substituters; with
    `offline`, from none (what the local store lacks is estimated).
    """
    check_source(target, "--target")
    if host.address is None:
        check_source(current, "--current")
    old = nix.host_closure(host, current) if host.address is not None else read_source(current)
    caches = [*([target_store] if target_store else []), *substituters]
    new, _ = read_target(target, like=old, substituters=caches or None, offline=offline)
    live = host.address is not None or is_live(current)
    pinned = [
        p
        for p in (
            # Planning only: roots at either system (the profile's current generation,
            # /run/current-system, `result` links) are taken to move with the upgrade.
            live_pinned(host, old, new, ignore_targets=[*old.roots, *new.roots])
            if live and gc_roots
            else None,
            keep_closure(host, keep, old, new, live),
        )
        if p is not None
    ]
    return Problem.of(
        old,
        new,
        non_vital=non_vital,
        couple=couple,
        pinned=merge(pinned, source="pinned") if pinned else None,
        reserve=reserve,
    )
