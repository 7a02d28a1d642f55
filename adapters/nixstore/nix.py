"""Nix verbs that read a store and collect its garbage: one typed function per verb,
each run on the `Host` it is given (adapters/nixstore/host.py). Building, copying and
switching are in builds.py; profiles' links in profiles.py; version differences in
versions.py.

The environment is inherited as it is: NIX_STORE_DIR, NIX_STATE_DIR, NIX_CONF_DIR and
NIX_REMOTE select the store exactly as they do for the nix commands a user types.
"""

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Final

from adapters.nixstore.formats.derivation import Derivation, parse_derivations
from adapters.nixstore.formats.pathinfo import parse_path_info
from adapters.nixstore.formats.registration import read_registration
from adapters.nixstore.host import DEFAULT_STATE_DIR, Host
from adapters.nixstore.versions import (
    NIX,
    config_show_argv,
    json_format,
    show_derivation_argv,
    version,
)
from solver.closure import Closure, PathInfo
from solver.errors import InputError, NixError

NIX_STORE: Final = ("nix-store",)
JSON: Final = ("--json",)
RECURSIVE: Final = ("--recursive",)


class CacheUnreachableError(NixError):
    """`nix path-info --store URL` could not reach the cache: Nix's "unable to download"
    (connection refused, no such host, a timeout, an HTTP error), after its retries."""


def live_closure(host: Host, path: str, *, source: str) -> Closure:
    """The closure of a store path as `host`'s store has it."""
    return Closure(path_info(host, [path], recursive=True), [path], source=source)


def host_closure(host: Host, path: str) -> Closure:
    """The closure of `path` (a store path or a link to one, such as /run/current-system)
    on `host`, as that host's store has it."""
    resolved = host.run(["readlink", "-f", "--", path], check=True).stdout.strip()
    if not is_store_path(host, resolved):
        raise InputError(
            f"{host.named(path)}: not a store path or a link to one (it resolves to "
            f"{resolved or 'nothing'})"
        )
    return live_closure(host, resolved, source=host.named(path))


def in_store(host: Host, path: str) -> bool:
    """Whether `path` lies in the store directory (a store path or a file inside one)."""
    return path.startswith(host.store_dir().rstrip("/") + "/")


def is_store_path(host: Host, path: str) -> bool:
    """Whether `path` is a top-level store path: STORE/NAME, nothing below it."""
    if not in_store(host, path):
        return False
    base = path[len(host.store_dir().rstrip("/")) + 1 :]
    return bool(base) and "/" not in base


def state_db_path() -> Path:
    """This machine's store database: $NIX_STATE_DIR/db/db.sqlite (read here, directly)."""
    return Path(os.environ.get("NIX_STATE_DIR") or DEFAULT_STATE_DIR) / "db" / "db.sqlite"


def lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def path_info(
    host: Host,
    paths: Iterable[str],
    *,
    recursive: bool = True,
    store: str | None = None,
    known_only: bool = False,
) -> list[PathInfo]:
    """`nix path-info --json [--recursive] [--store URL] PATHS`, parsed.

    A path the store does not have is a `ClosureError` naming it (Nix prints it as invalid),
    or a `NixError` when Nix refuses outright, as it does with `--recursive`; a `store`
    that cannot be reached is a `CacheUnreachableError`.
    """
    paths = list(paths)
    if not paths:
        return []
    argv = [*NIX, "path-info", *JSON, *json_format(version(host))]
    if recursive:
        argv += RECURSIVE
    if store is not None:
        argv += ["--store", store]
    argv += paths
    try:
        result = host.run(argv, check=True)
    except NixError as e:
        reason = str(e).partition("unable to download")
        if store is not None and reason[1]:
            raise CacheUnreachableError("".join(reason[1:])) from e
        raise
    source = f"nix path-info {paths[0]}" + (f" (+{len(paths) - 1} more)" if len(paths) > 1 else "")
    if store is not None:
        source += f" --store {store}"
    try:
        data = json.loads(result.stdout)
    except json.JSONDecodeError as e:
        raise NixError(f"{source} printed malformed JSON (line {e.lineno}): {e.msg}") from e
    return parse_path_info(data, source, known_only=known_only)


def closure(host: Host, path: str, store: str | None = None) -> Closure:
    """The closure of one path (a store path or a link to one), from the live store or `store`."""
    infos = path_info(host, [path], recursive=True, store=store)
    root = resolve_store_path(host, path)
    source = f"nix path-info {path}"
    if root is not None and not any(info.path == root for info in infos):
        raise NixError(f"{source}: the output does not list {root} itself")
    return Closure(infos, [root] if root is not None else None, source=source)


def derivation_closure(host: Host, drvs: Iterable[str]) -> Closure:
    """The closure of store derivations as files (`nix-store -qR` and `--dump-db`).

    `nix path-info` cannot be used: it takes a `.drv` to mean its outputs and builds them.
    """
    drvs = sorted(set(drvs))
    requisites = lines(host.run([*NIX_STORE, "--query", "--requisites", *drvs], check=True).stdout)
    dump = host.run([*NIX_STORE, "--dump-db", *requisites], check=True).stdout
    closure = read_registration(dump, "nix-store --dump-db")
    return Closure(closure.infos(), drvs, source="derivations")


def resolve_store_path(host: Host, path: str) -> str | None:
    """The top-level store path `path` is or lies in, following links such as ./result
    (read here: a path the command line names)."""
    sdir = host.store_dir()
    candidates = [path]
    if not path.startswith(sdir + "/") and os.path.lexists(path):
        candidates.append(os.path.realpath(path))
    for candidate in candidates:
        if candidate.startswith(sdir + "/"):
            base = candidate[len(sdir) + 1 :].split("/", 1)[0]
            if base:
                return f"{sdir}/{base}"
    return None


def invalid_paths(host: Host, paths: Iterable[str]) -> list[str]:
    """The `paths` that are not valid in `host`'s store (`nix-store --check-validity`)."""
    paths = list(paths)
    if not paths:
        return []
    result = host.run([*NIX_STORE, "--check-validity", "--print-invalid", *paths], check=True)
    return lines(result.stdout)


def query_outputs(host: Host, drv: str) -> list[str]:
    """The output paths of a store derivation (`nix-store -q --outputs DRV`)."""
    result = host.run([*NIX_STORE, "--query", "--outputs", drv], check=True)
    outputs = lines(result.stdout)
    if not outputs:
        raise NixError(f"nix-store --query --outputs {drv} printed no output paths")
    return outputs


def realise(host: Host, drv: str) -> list[str]:
    """Build or substitute a derivation; its output paths (`nix-store --realise DRV`).

    No GC root is added: the caller registers the result (a profile) before collecting.
    """
    result = host.run([*NIX_STORE, "--realise", drv], check=True)
    outputs = lines(result.stdout)
    if not outputs:
        raise NixError(f"nix-store --realise {drv} printed no output paths")
    return outputs


def parse_gc_roots(text: str) -> dict[str, str]:
    """Parse `nix-store --gc --print-roots`: each line `LINK -> TARGET`.

    Newer Nix (2.34; not 2.26) prints LINK in double quotes, with `"` and `\\` escaped by
    a backslash (C++'s `std::quoted`): `"/nix/var/nix/profiles/system-1-link" -> /nix/store/…`;
    older versions print it bare. Runtime roots are left out: `{censored}` (another
    user's process, shown when not root), `{temp:PID}`, `{memory:N}`, `{lsof}` and
    `/proc/PID/...` name no link a plan could remove and one such name may pin many paths,
    so they do not fit a link -> target map.
    """
    roots: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith('"'):
            link, rest = _unquote(line)
            arrow, target = (" -> ", rest[4:]) if rest.startswith(" -> ") else ("", "")
        else:
            # The target is a store path and holds no " -> "; a link name might.
            link, arrow, target = line.rpartition(" -> ")
        if not arrow or not link or not target.startswith("/"):
            raise NixError(f"nix-store --gc --print-roots: cannot read line {number}: {line!r}")
        if link.startswith("{") or link.startswith("/proc/"):
            continue
        roots[link] = target
    return roots


def _unquote(line: str) -> tuple[str, str]:
    """A `std::quoted` string at the start of `line` (after its opening quote), and the
    rest of the line; ("", line) when it is not closed."""
    out = []
    i = 1
    while i < len(line):
        c = line[i]
        if c == "\\" and i + 1 < len(line):
            out.append(line[i + 1])
            i += 2
            continue
        if c == '"':
            return "".join(out), line[i + 1 :]
        out.append(c)
        i += 1
    return "", line


def gc_roots(host: Host) -> dict[str, str]:
    """The garbage collector's roots, link -> store path (`nix-store --gc --print-roots`)."""
    result = host.run([*NIX_STORE, "--gc", "--print-roots"], check=True)
    return parse_gc_roots(result.stdout)


def dead_paths(host: Host) -> list[str]:
    """`nix-store --gc --print-dead`: what a collection would delete now (deletes nothing)."""
    return lines(host.run([*NIX_STORE, "--gc", "--print-dead"], check=True).stdout)


def collect_garbage(host: Host) -> None:
    """`nix-store --gc`: delete every path no GC root reaches (also invalid leftovers)."""
    host.run([*NIX_STORE, "--gc"], check=True)


def show_derivation(host: Host, drv: str) -> dict[str, Derivation]:
    """Every derivation needed to build `drv` (`nix derivation show -r`), in any version's
    JSON, normalised to full store paths."""
    argv = show_derivation_argv(version(host), drv)
    result = host.run(argv, check=True)
    what = " ".join(argv[3:5]) if argv[3] == "derivation" else argv[3]
    try:
        data = json.loads(result.stdout)
    except json.JSONDecodeError as e:
        raise NixError(f"nix {what} {drv} printed malformed JSON: {e.msg}") from e
    try:
        drvs = parse_derivations(data, f"nix {what}", host.store_dir())
    except InputError as e:
        raise NixError(str(e)) from e
    if drv not in drvs:
        raise NixError(f"nix {what} {drv} does not describe {drv}")
    return drvs


def configured_substituters(host: Host) -> list[str]:
    """The substituters nix.conf names (`nix config show`)."""
    result = host.run(config_show_argv(version(host)), check=True)
    try:
        value = json.loads(result.stdout)["substituters"]["value"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return []
    return [str(v) for v in value] if isinstance(value, list) else []


def nixos_revision(host: Host) -> str | None:
    """The nixpkgs revision the running NixOS was built from (`nixos-version --json`);
    None where that is not known (not NixOS, or built from a tree without git)."""
    try:
        result = host.run(["nixos-version", "--json"], check=True)
    except (NixError, OSError):
        return None
    try:
        value = json.loads(result.stdout).get("nixpkgsRevision")
    except (json.JSONDecodeError, AttributeError):
        return None
    return value if isinstance(value, str) and value else None
