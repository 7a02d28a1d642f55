"""`nix path-info --json` of every Nix version, read and written.

- Nix <= 2.18 and Lix: a list of objects with `path` (`exportReferencesGraph` JSON is
  this shape too, under `closure`/`graph` with `__structuredAttrs`);
- 2.19: an object keyed by path, `null` for a path the store does not have; from 2.23
  `null` for absent fields as well;
- 2.33 `--json-format 2`: `{"version": 2, "storeDir", "info"}` keyed by base name, with
  base-name references; 2.35 `--json-format 3` differs only in its structured
  signatures, never read here.
"""

import json
from typing import Any, Literal

from adapters.nixstore.formats.checks import (
    check_size,
    join,
    load_json,
    store_path,
)
from adapters.nixstore.formats.graph import read_closure_graph
from solver.closure import Closure, PathInfo
from solver.errors import ClosureError, InputError, some_named

JsonShape = Literal["list", "2.19", "v2"]

# (full path, its entry or None when the store does not have it)
Entries = list[tuple[str, object]]


def _entries(data: object, source: str) -> tuple[Entries, str | None]:
    """The entries of any path-info shape, and the store directory if the JSON names it."""
    if isinstance(data, list):
        return _listed(data, source), None
    if not isinstance(data, dict):
        raise InputError(f"{source}: expected a JSON list or object, got {type(data).__name__}")
    if "nodes" in data and "edges" in data:
        raise InputError(f"{source}: this is a closure graph (nodes/edges), not path-info JSON")
    for wrapper in ("closure", "graph"):
        # exportReferencesGraph under __structuredAttrs: {"closure": [...]} in .attrs.json.
        if isinstance(data.get(wrapper), list):
            return _listed(data[wrapper], source), None
    if "info" in data or data.get("version") is not None:
        return _versioned(data, source)
    return _keyed(data, source), None


def _listed(data: list[Any], source: str) -> Entries:
    """Nix <= 2.18, Lix, exportReferencesGraph: a list of objects with a `path`."""
    pairs: Entries = []
    for number, item in enumerate(data):
        if not isinstance(item, dict):
            raise InputError(f"{source}: entry {number} is not an object")
        if "path" not in item:
            raise InputError(f"{source}: entry {number} has no path")
        path = store_path(item["path"], source)
        # Nix <= 2.18 lists paths it does not have as {"path": ..., "valid": false}.
        pairs.append((path, None if item.get("valid") is False else item))
    return pairs


def _keyed(data: dict[Any, Any], source: str) -> Entries:
    """Nix 2.19 to 2.32: an object keyed by full path."""
    pairs: Entries = []
    for key, value in data.items():
        if key == "storeDir" and isinstance(value, str):
            continue
        if not isinstance(key, str) or not key.startswith("/"):
            raise InputError(f"{source}: unexpected key {key!r}: expected store paths as keys")
        pairs.append((store_path(key, source), value))
    return pairs


def _versioned(data: dict[Any, Any], source: str) -> tuple[Entries, str]:
    """Nix 2.33 on, `--json-format 2` or 3: base names under `info`, one `storeDir`."""
    version = data.get("version")
    # 3 (Nix 2.35) differs from 2 only in its signatures, objects instead of strings.
    if version not in (None, 1, 2, 3):
        raise InputError(f"{source}: unsupported path-info JSON version {version!r}")
    info = data.get("info")
    if not isinstance(info, dict):
        raise InputError(f"{source}: version {version} path-info JSON has no info object")
    store_dir = data.get("storeDir")
    if not isinstance(store_dir, str) or not store_dir.startswith("/"):
        raise InputError(f"{source}: path-info JSON with an info object needs a storeDir")
    store_dir = store_dir.rstrip("/")
    return [(store_path(join(store_dir, k), source), v) for k, v in info.items()], store_dir


def parse_path_info(data: object, source: str, *, known_only: bool = False) -> list[PathInfo]:
    """`PathInfo`s from parsed `nix path-info --json` output of any Nix version.

    Paths the store does not have are an error, or skipped with `known_only`.
    """
    pairs, given_store_dir = _entries(data, source)
    invalid = [path for path, entry in pairs if entry is None]
    if known_only:
        pairs = [(path, entry) for path, entry in pairs if entry is not None]
    elif invalid:
        raise ClosureError(f"{source}: not valid in the store (not built?): {some_named(invalid)}")
    infos = []
    for path, entry in pairs:
        if not isinstance(entry, dict):
            raise InputError(f"{source}: the entry of {path} is not an object")
        store_dir = given_store_dir or path.rpartition("/")[0]
        refs = entry.get("references")
        if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
            raise ClosureError(f"{source}: {path} has no list of references")
        deriver = entry.get("deriver")
        if deriver is not None and not isinstance(deriver, str):
            raise ClosureError(f"{source}: {path} has a deriver that is not a string")
        infos.append(
            PathInfo(
                path,
                check_size(entry.get("narSize"), path, source),
                tuple(join(store_dir, r) for r in refs),
                join(store_dir, deriver) if deriver else None,
                # Not a Nix field: dump_path_info_json writes it to keep estimates round-trip.
                estimated=entry.get("estimated") is True,
            )
        )
    return infos


def read_path_info_json(data: str | bytes | object, source: str) -> Closure:
    """A closure from `nix path-info --json --recursive` output (text or parsed JSON)."""
    if isinstance(data, str | bytes):
        data = load_json(data, source)
    if isinstance(data, dict) and "nodes" in data and "edges" in data:
        return read_closure_graph(data, source)
    infos = parse_path_info(data, source)
    listed = {info.path for info in infos}
    unlisted = sorted({ref for info in infos for ref in info.references} - listed)
    if unlisted:
        raise ClosureError(
            f"{source}: {some_named(unlisted)} referenced but not listed: saved without "
            "--recursive? `nix path-info --json --recursive PATH > FILE` lists the whole "
            "closure"
        )
    return Closure(infos, source=source)


def _entry(info: PathInfo, deriver: str | None, refs: list[str]) -> dict[str, Any]:
    entry: dict[str, Any] = {"narSize": info.nar_size, "references": refs, "deriver": deriver}
    if info.estimated:
        entry["estimated"] = True
    return entry


def dump_path_info_json(closure: Closure, shape: JsonShape = "2.19") -> str:
    """`closure` as `nix path-info --json -r` would print it: "list" (Nix <= 2.18),
    "2.19" (object keyed by path, nulls for absent fields) or "v2" (--json-format 2)."""
    infos = sorted(closure.infos(), key=lambda i: i.path)
    obj: Any
    if shape == "list":
        obj = []
        for info in infos:
            entry: dict[str, Any] = {"path": info.path}
            entry.update(_entry(info, info.deriver, sorted(info.references)))
            if info.deriver is None:
                del entry["deriver"]  # Nix <= 2.18 leaves absent fields out.
            obj.append(entry)
    elif shape == "2.19":
        obj = {info.path: _entry(info, info.deriver, sorted(info.references)) for info in infos}
    elif shape == "v2":
        store_dir = closure.store_dir
        info_map: dict[str, Any] = {}
        for info in infos:
            parent, _, base = info.path.rpartition("/")
            if parent != store_dir:
                raise InputError(f"{info.path} is not in {store_dir}: v2 JSON has one storeDir")
            entry = _entry(
                info,
                info.deriver.rpartition("/")[2] if info.deriver else None,
                sorted(r.rpartition("/")[2] for r in info.references),
            )
            info_map[base] = {"version": 2, "storeDir": store_dir, "ca": None, **entry}
        obj = {"version": 2, "storeDir": store_dir, "info": info_map}
    else:
        raise InputError(f"unknown path-info JSON shape {shape!r}: expected list, 2.19 or v2")
    return json.dumps(obj, indent=2) + "\n"
