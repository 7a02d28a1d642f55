"""The closure of a target that is not built yet, from its derivation.

`nix derivation show -r` names every output the target could need. Paths the local store
or a binary cache has come with exact sizes and references; the others (the system's glue,
anything no cache built) are estimated from the old version of the same package, and
flagged as estimates so the planner counts build scratch for them (docs/model.md).

Input sources (a derivation's `inputSrcs`: files and trees evaluation added to the store,
such as a flake's nixpkgs, or `./dir` in an expression) are in the closure where an
output references them, as anything is. Nix finds an output's references by scanning it
for the hashes of the derivation's inputs after the build, so the derivation cannot tell;
an output that must be built is taken to reference
- every source its derivation's environment or arguments name, because a builder learns
  where a path is only from those, and a path it keeps (the nixpkgs in registry.json and
  NIX_PATH, a tree linked into /etc) is named there; but not the script it runs (the
  builder, an argument that is a source alone: stdenv's default-builder.sh); and
- every source with the name of one its old version referenced.
A source named only to be read (a package's local `src`, a patch) is counted all the same:
the estimate errs over, never under. A source's size is exact from the local store, else
from a cache's narinfo, else estimated from the old version of the same name (logged at
debug level, source by source).

A cache that cannot be reached (Nix's "unable to download": connection refused, no such
host, a timeout) is skipped with its reason, recorded in the `sizing_report` of the block
(or logged as a warning), and the paths it would have sized are estimated.
"""

import contextvars
import logging
import os
import re
import statistics
import urllib.parse
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from adapters.nixstore import nix
from adapters.nixstore.formats.checks import load_json
from adapters.nixstore.formats.derivation import Derivation, parse_derivations
from adapters.nixstore.host import LOCAL
from adapters.nixstore.sources import read_source
from solver.closure import Closure, PathInfo
from solver.errors import BudgetSolveError, InputError, NixError
from solver.storepath import StorePath

logger = logging.getLogger(__name__)

# A package no cache has and no old version resembles: assume a mid-sized one.
FALLBACK_BYTES = 1 << 20


@dataclass
class SizingReport:
    """What sizing a target could not ask: each cache that could not be reached, with
    the reason (its paths were estimated instead)."""

    unreachable: dict[str, str] = field(default_factory=dict)


_report: contextvars.ContextVar[SizingReport | None] = contextvars.ContextVar(
    "sizing_report", default=None
)


@contextmanager
def sizing_report() -> Iterator[SizingReport]:
    """Within the block, unreachable caches are recorded in the report yielded (for the
    verdict to name) instead of logged as warnings."""
    report = SizingReport()
    token = _report.set(report)
    try:
        yield report
    finally:
        _report.reset(token)


def _unreachable(url: str, reason: str) -> None:
    report = _report.get()
    if report is not None:
        report.unreachable.setdefault(url, reason)
    else:
        logger.warning("cache %s unreachable, its paths estimated: %s", url, reason)


def _check_cache(url: str) -> None:
    """A `file://` cache must exist before Nix is asked: Nix would make the directory an
    empty cache, and answer that it has nothing."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file" and not os.path.isdir(urllib.parse.unquote(parsed.path)):
        raise nix.CacheUnreachableError(f"{url}: no such directory")


class _Lookup:
    """Exact infos from the local store, then from each cache that can be reached; a
    cache found unreachable is not asked again."""

    def __init__(self, caches: Sequence[str]) -> None:
        self.caches = list(caches)
        # Where each path's info came from: "local" or a cache's URL.
        self.origin: dict[str, str] = {}

    def __call__(self, paths: Iterable[str]) -> dict[str, PathInfo]:
        want = sorted(set(paths))
        found: dict[str, PathInfo] = {}
        if not want:
            return found
        local = set(want) - set(nix.invalid_paths(LOCAL, want))
        found.update((i.path, i) for i in nix.path_info(LOCAL, sorted(local), recursive=False))
        self.origin.update(dict.fromkeys(found, "local"))
        for url in list(self.caches):
            missing = [p for p in want if p not in found]
            if not missing:
                break
            try:
                _check_cache(url)
                infos = nix.path_info(LOCAL, missing, recursive=False, store=url, known_only=True)
            except nix.CacheUnreachableError as e:
                self.caches.remove(url)
                _unreachable(url, str(e))
                continue
            found.update((i.path, i) for i in infos)
            self.origin.update((i.path, url) for i in infos)
        return found


def _old_versions(like: Closure | None, graph: set[str]) -> dict[str, PathInfo]:
    """The old version of each package key (pname and output). Among old paths of one
    key, an unchanged one (the new graph has it) is nobody's old version; of the rest,
    the largest is taken (two `source` trees: the estimate errs over)."""
    by_key: dict[str, list[PathInfo]] = defaultdict(list)
    for info in like.infos() if like is not None else ():
        by_key[StorePath.parse(info.path).key].append(info)
    out = {}
    for key, infos in by_key.items():
        replaced = [i for i in infos if i.path not in graph] or infos
        out[key] = max(replaced, key=lambda i: (i.nar_size, i.path))
    return out


def _key(path: str) -> str:
    return StorePath.parse(path).key


class _Estimate:
    """A size (None: no old version to go by) and references for a path no cache has:
    the old version's, else what its derivation was built from."""

    def __init__(self, drvs: dict[str, Derivation], like: Closure | None) -> None:
        self.drvs = drvs
        self.deriver: dict[str, str] = {}  # output path -> its derivation
        for path, derivation in drvs.items():
            for out in derivation.outputs.values():
                if out is not None:
                    self.deriver[out] = path
        graph = set(self.deriver) | {s for d in drvs.values() for s in d.input_srcs}
        self.old_versions = _old_versions(like, graph)

    def __call__(self, path: str) -> tuple[int | None, tuple[str, ...]]:
        old = self.old_versions.get(_key(path))
        size = old.nar_size if old is not None else None
        parent = self.drvs.get(self.deriver.get(path, ""))
        if parent is None or parent.fixed:
            # A source, or a fixed output (fetchurl, fetchgit): Nix refuses references
            # in a fixed output, and a source's are known wherever it is known.
            return size, ()
        # Candidates: outputs of the direct input derivations, by package key.
        candidates: dict[str, list[str]] = defaultdict(list)
        for input_drv, names in parent.input_drvs.items():
            source = self.drvs.get(input_drv)
            outs = source.outputs if source is not None else {}
            for name in names:
                out = outs.get(name)
                if out is not None:
                    candidates[_key(out)].append(out)
        refs = set(parent.named_srcs)
        if old is not None:
            # Like the old version: the same packages and sources, at their new paths.
            old_keys = {_key(r) for r in old.references}
            refs.update(p for k, ps in candidates.items() if k in old_keys for p in ps)
            refs.update(s for s in parent.input_srcs if _key(s) in old_keys)
        else:
            # A new package: whatever it was built from.
            refs.update(p for ps in candidates.values() for p in ps)
        return size, tuple(sorted(refs))


def closure_from_derivation(
    drv: str,
    *,
    substituters: Sequence[str] = (),
    like: Closure | None = None,
    drvs: dict[str, Derivation] | None = None,
) -> Closure:
    """The runtime closure of `drv`'s outputs, exact where known and estimated elsewhere.

    `drvs`: the derivation graph when it is at hand (a saved `nix derivation show -r`),
    else Nix is asked for it. Only the paths the closure reaches are looked up, a level of
    references at a time.
    """
    if drvs is None:
        drvs = nix.show_derivation(LOCAL, drv)
    top = [o for o in drvs[drv].outputs.values() if o is not None]
    if not top:
        raise NixError(f"{drv}: its outputs' paths are not known before the build")
    estimate = _Estimate(drvs, like)
    deriver = estimate.deriver
    lookup = _Lookup(substituters)
    exact: dict[str, PathInfo] = {}
    guessed: dict[str, tuple[int | None, tuple[str, ...]]] = {}
    frontier = list(top)
    while frontier:
        batch = sorted(set(frontier) - exact.keys() - guessed.keys())
        found = lookup(batch)
        frontier = []
        for path in batch:
            info = found.get(path)
            if info is not None:
                exact[path] = info
                references: Iterable[str] = info.references
            else:
                guessed[path] = estimate(path)
                references = guessed[path][1]
            if path not in deriver:
                how = lookup.origin.get(path) or (
                    "its old version" if guessed[path][0] is not None else "nowhere: a guess"
                )
                logger.debug("source %s: size from %s", path, how)
            frontier.extend(references)
    typical = int(statistics.median(i.nar_size for i in exact.values())) if exact else 0
    fallback = typical or FALLBACK_BYTES
    infos = list(exact.values())
    infos += [
        PathInfo(path, fallback if size is None else size, refs, deriver.get(path), estimated=True)
        for path, (size, refs) in guessed.items()
    ]
    return Closure(infos, top, source=drv)


def read_target(
    spec: str,
    *,
    like: Closure | None = None,
    substituters: Sequence[str] | None = None,
    offline: bool = False,
) -> tuple[Closure, str | None]:
    """The closure of the system to upgrade to, and its derivation when it is one.

    The one rule for every command: what the local store has is read exactly; a `.drv`
    not built here is sized from the caches (`substituters`, else nix.conf's; none when
    `offline`) and estimated where no cache has a path; a store path not here is read
    from the first cache that has it.
    """

    def caches() -> list[str]:
        if offline:
            return []
        return list(substituters) if substituters else nix.configured_substituters(LOCAL)

    saved = _saved_derivations(spec)
    if saved is not None:
        top = _root_derivation(saved, spec)
        return closure_from_derivation(top, substituters=caches(), like=like, drvs=saved), top
    if spec.endswith(".drv") and nix.is_store_path(LOCAL, spec):
        if nix.invalid_paths(LOCAL, [spec]):
            raise InputError(f"{spec}: the derivation is not in the store")
        if not nix.invalid_paths(LOCAL, nix.query_outputs(LOCAL, spec)):
            return read_source(spec), spec
        return closure_from_derivation(spec, substituters=caches(), like=like), spec
    if nix.is_store_path(LOCAL, spec) and nix.invalid_paths(LOCAL, [spec]):
        if offline:
            raise InputError(f"{spec} is not in the store, and --offline asks no cache for it")
        urls = caches()
        errors = []
        for url in urls:
            try:
                _check_cache(url)
                return nix.closure(LOCAL, spec, store=url), None
            except nix.CacheUnreachableError as e:
                _unreachable(url, str(e))
                errors.append(str(e))
            except BudgetSolveError as e:
                errors.append(str(e))
        detail = f": {errors[-1]}" if errors else " (none is configured; give --substituter URL)"
        raise InputError(f"{spec} is not in the store and no substituter has it{detail}")
    return read_source(spec), None


# The first key of a JSON object: a derivation file's is a `.drv` path or "derivations".
_FIRST_KEY = re.compile(rb'\{\s*"((?:[^"\\]|\\.)*)"')


def _saved_derivations(spec: str) -> dict[str, Derivation] | None:
    """The derivations of a saved `nix derivation show -r` file; None for any other file."""
    if nix.in_store(LOCAL, spec) or not os.path.isfile(spec):
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
    data = load_json(Path(spec).read_bytes(), spec)
    if not isinstance(data, dict):
        return None
    looks = "derivations" in data or (data and all(str(k).endswith(".drv") for k in data))
    return parse_derivations(data, spec, LOCAL.store_dir()) if looks else None


def _root_derivation(drvs: dict[str, Derivation], source: str) -> str:
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
