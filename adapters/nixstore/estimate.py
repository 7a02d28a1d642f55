"""The closure of a target that is not built yet, from its derivation.

`nix derivation show -r` names every output the target could need. Outputs the local store
or a binary cache has come with exact sizes and references; the others (the system's glue,
anything no cache built) are estimated from the old version of the same package, and
flagged as estimates so the planner counts build scratch for them (docs/model.md).
"""

import os
import re
import statistics
from collections.abc import Iterable, Sequence
from pathlib import Path

from adapters.nixstore import formats, nix
from adapters.nixstore.sources import read_source
from solver.closure import Closure, PathInfo
from solver.errors import BudgetSolveError, InputError, NixError
from solver.storepath import StorePath

# A package no cache has and no old version resembles: assume a mid-sized one.
FALLBACK_BYTES = 1 << 20


def _lookup(paths: Iterable[str], substituters: Sequence[str]) -> dict[str, PathInfo]:
    """Exact infos of `paths` from the local store, then from each substituter."""
    want = sorted(set(paths))
    found: dict[str, PathInfo] = {}
    if not want:
        return found
    local = set(want) - set(nix.invalid_paths(want))
    found.update((i.path, i) for i in nix.path_info(sorted(local), recursive=False))
    for url in substituters:
        missing = [p for p in want if p not in found]
        if not missing:
            break
        infos = nix.path_info(missing, recursive=False, store=url, known_only=True)
        found.update((i.path, i) for i in infos)
    return found


def closure_from_derivation(
    drv: str,
    *,
    substituters: Sequence[str] = (),
    like: Closure | None = None,
    drvs: dict[str, formats.Derivation] | None = None,
) -> Closure:
    """The runtime closure of `drv`'s outputs, exact where known and estimated elsewhere.

    `drvs`: the derivation graph when it is at hand (a saved `nix derivation show -r`),
    else Nix is asked for it.
    """
    if drvs is None:
        drvs = nix.show_derivation(drv)
    deriver: dict[str, str] = {}
    for path, derivation in drvs.items():
        for out in derivation.outputs.values():
            if out is not None:
                deriver[out] = path
    top = [o for o in drvs[drv].outputs.values() if o is not None]
    if not top:
        raise NixError(f"{drv}: its outputs' paths are not known before the build")
    known = _lookup(deriver, substituters)
    # References of known paths that no derivation here builds (sources, fixed outputs).
    extra = {r for i in known.values() for r in i.references} - set(known)
    known.update(_lookup(extra, substituters))

    old_by_key: dict[str, PathInfo] = {}
    if like is not None:
        for info in like.infos():
            old_by_key.setdefault(StorePath.parse(info.path).key, info)
    typical = int(statistics.median(i.nar_size for i in known.values())) if known else 0
    fallback = typical or FALLBACK_BYTES

    def estimate(path: str) -> PathInfo:
        sp = StorePath.parse(path)
        parent = drvs.get(deriver.get(path, ""))
        inputs = parent.input_drvs if parent is not None else {}
        # Candidates: outputs of the direct input derivations, by package key.
        candidates: dict[str, str] = {}
        for input_drv, names in inputs.items():
            source = drvs.get(input_drv)
            outs = source.outputs if source is not None else {}
            for name in names:
                out = outs.get(name)
                if out is not None:
                    candidates[StorePath.parse(out).key] = out
        old = old_by_key.get(sp.key)
        if old is not None:
            # Like the old version: the same packages, at their new paths.
            old_keys = {StorePath.parse(r).key for r in old.references}
            refs = tuple(sorted(p for k, p in candidates.items() if k in old_keys))
            size = old.nar_size
        else:
            # A new package: whatever it was built from that is itself a runtime path.
            refs = tuple(sorted(p for p in candidates.values() if p in known or p in deriver))
            size = fallback
        return PathInfo(path, size, refs, deriver.get(path), estimated=True)

    infos: dict[str, PathInfo] = {}
    stack = list(top)
    while stack:
        path = stack.pop()
        if path in infos:
            continue
        info = known.get(path) or estimate(path)
        infos[path] = info
        stack.extend(r for r in info.references if r not in infos)
    return Closure(infos.values(), top, source=drv)


def read_target(
    spec: str, *, like: Closure | None = None, substituters: Sequence[str] | None = None
) -> tuple[Closure, str | None]:
    """The closure of the system to upgrade to, and its derivation when it is one.

    The one rule for every command: what the local store has is read exactly; a `.drv`
    not built here is sized from the caches (`substituters`, else nix.conf's) and
    estimated where no cache has a path; a store path not here is read from the first
    cache that has it.
    """
    caches = list(substituters) if substituters else None
    saved = _saved_derivations(spec)
    if saved is not None:
        top = _root_derivation(saved, spec)
        if caches is None:
            caches = nix.configured_substituters()
        return closure_from_derivation(top, substituters=caches, like=like, drvs=saved), top
    if spec.endswith(".drv") and nix.is_store_path(spec):
        if nix.invalid_paths([spec]):
            raise InputError(f"{spec}: the derivation is not in the store")
        if not nix.invalid_paths(nix.query_outputs(spec)):
            return read_source(spec), spec
        if caches is None:
            caches = nix.configured_substituters()
        return closure_from_derivation(spec, substituters=caches, like=like), spec
    if nix.is_store_path(spec) and nix.invalid_paths([spec]):
        if caches is None:
            caches = nix.configured_substituters()
        errors = []
        for url in caches:
            try:
                return nix.closure(spec, store=url), None
            except BudgetSolveError as e:
                errors.append(str(e))
        detail = f": {errors[-1]}" if errors else " (none is configured; give --substituter URL)"
        raise InputError(f"{spec} is not in the store and no substituter has it{detail}")
    return read_source(spec), None


# The first key of a JSON object: a derivation file's is a `.drv` path or "derivations".
_FIRST_KEY = re.compile(rb'\{\s*"((?:[^"\\]|\\.)*)"')


def _saved_derivations(spec: str) -> dict[str, formats.Derivation] | None:
    """The derivations of a saved `nix derivation show -r` file; None for any other file."""
    if nix.in_store(spec) or not os.path.isfile(spec):
        return None
    try:
        with open(spec, "rb") as f:
            head = f.read(1 << 16).lstrip()
    except OSError:
        return None
    # Only a file that opens like one is parsed here: any other JSON target (a path-info
    # file of thousands of paths) is parsed once, by read_source, not twice.
    first = _FIRST_KEY.match(head)
    if first is None:
        return None
    key = first.group(1)
    if key not in (b"derivations", b"version") and not key.endswith(b".drv"):
        return None
    data = formats.load_json(Path(spec).read_bytes(), spec)
    if not isinstance(data, dict):
        return None
    looks = "derivations" in data or (data and all(str(k).endswith(".drv") for k in data))
    return formats.parse_derivations(data, spec, nix.store_dir()) if looks else None


def _root_derivation(drvs: dict[str, formats.Derivation], source: str) -> str:
    """The derivation no other one in the file depends on: the target."""
    used = {d for info in drvs.values() for d in info.input_drvs}
    roots = sorted(set(drvs) - used)
    if len(roots) != 1:
        named = ", ".join(roots[:3]) or "none"
        raise InputError(
            f"{source}: a saved `nix derivation show -r` of one target has one derivation "
            f"nothing else depends on; found {len(roots)} ({named})"
        )
    return roots[0]
