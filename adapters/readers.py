"""Readers for every closure format Nix and its tools write, and `read_source` to pick one.

Each reader returns a `Closure` (or `PathInfo`s). Bad input raises `InputError`, or
`ClosureError` when the content is inconsistent, with one line naming the file and the
problem. Formats:

- `nix path-info --json`: a list (Nix <= 2.18, Lix), an object keyed by path (2.19+,
  nulls for absent fields from 2.23), `{"version": 2, "storeDir", "info"}` (2.33
  `--json-format 2`, base names); `exportReferencesGraph` JSON is the list shape.
- nix-closure-graph JSON (`{"nodes", "edges"}` with human-readable sizes).
- `closureInfo`'s `registration` file, the format of `nix-store --dump-db`.
- `.narinfo` files of a binary cache.
- The store database `db.sqlite`.
"""

import json
import logging
import os
import sqlite3
import time
import urllib.parse
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from adapters import nix
from solver.closure import MAX_NAR_SIZE, Closure, PathInfo
from solver.errors import ClosureError, InputError
from solver.storepath import StorePath
from solver.units import parse_size

logger = logging.getLogger(__name__)

JsonShape = Literal["list", "2.19", "v2"]

# How many invalid paths an error message lists before it says "and N more".
_NAMED_IN_ERRORS = 3


def _some(paths: list[str]) -> str:
    shown = ", ".join(paths[:_NAMED_IN_ERRORS])
    more = len(paths) - _NAMED_IN_ERRORS
    return f"{shown} and {more} more" if more > 0 else shown


def _check_size(value: object, path: str, source: str, field: str = "narSize") -> int:
    if value is None:
        raise ClosureError(f"{source}: {path} has no {field}")
    if isinstance(value, bool) or not isinstance(value, int):
        raise ClosureError(f"{source}: {path} has a non-integer {field} ({value!r})")
    if value < 0:
        raise ClosureError(f"{source}: {path} has a negative {field} ({value})")
    if value > MAX_NAR_SIZE:
        raise ClosureError(f"{source}: {path} has an absurd {field} ({value} bytes)")
    return value


def _int_text(text: str, path: str, source: str, field: str) -> int:
    """A size written as decimal text (registration, narinfo)."""
    stripped = text.strip()
    digits = stripped.removeprefix("-")
    if not digits.isascii() or not digits.isdigit():
        raise ClosureError(f"{source}: {path} has a non-integer {field} ({stripped!r})")
    return _check_size(int(stripped), path, source, field)


def _store_path(path: object, source: str) -> str:
    if not isinstance(path, str):
        raise ClosureError(f"{source}: expected a store path, got {path!r}")
    try:
        StorePath.parse(path)
    except InputError as e:
        raise ClosureError(f"{source}: {e}") from e
    return path


def _join(store_dir: str, name: str) -> str:
    """A full store path from a reference that is either full or a base name."""
    return name if name.startswith("/") else f"{store_dir}/{name}"


# --- nix path-info --json ------------------------------------------------------------------


def load_json(text: str | bytes, source: str) -> Any:
    """Parse JSON text; a syntax error names the line and column."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(
            f"{source}: malformed JSON at line {e.lineno}, column {e.colno}: {e.msg}"
        ) from e
    except UnicodeDecodeError as e:
        raise InputError(f"{source}: not UTF-8 text") from e


def _entries(data: object, source: str) -> tuple[list[tuple[str, object]], str | None]:
    """(full path, entry or None) pairs of any path-info shape, and the store dir if given."""
    if isinstance(data, list):
        pairs: list[tuple[str, object]] = []
        for number, item in enumerate(data):
            if not isinstance(item, dict):
                raise InputError(f"{source}: entry {number} is not an object")
            if "path" not in item:
                raise InputError(f"{source}: entry {number} has no path")
            path = _store_path(item["path"], source)
            # Nix <= 2.18 lists paths it does not have as {"path": ..., "valid": false}.
            pairs.append((path, None if item.get("valid") is False else item))
        return pairs, None
    if not isinstance(data, dict):
        raise InputError(f"{source}: expected a JSON list or object, got {type(data).__name__}")
    if "nodes" in data and "edges" in data:
        raise InputError(f"{source}: this is a closure graph (nodes/edges), not path-info JSON")
    for wrapper in ("closure", "graph"):
        # exportReferencesGraph under __structuredAttrs: {"closure": [...]} in .attrs.json.
        if isinstance(data.get(wrapper), list):
            return _entries(data[wrapper], source)
    version = data.get("version")
    if "info" in data or version is not None:
        if version not in (None, 1, 2):
            raise InputError(f"{source}: unsupported path-info JSON version {version!r}")
        info = data.get("info")
        if not isinstance(info, dict):
            raise InputError(f"{source}: version {version} path-info JSON has no info object")
        store_dir = data.get("storeDir")
        if not isinstance(store_dir, str) or not store_dir.startswith("/"):
            raise InputError(f"{source}: path-info JSON with an info object needs a storeDir")
        store_dir = store_dir.rstrip("/")
        return [(_store_path(_join(store_dir, k), source), v) for k, v in info.items()], store_dir
    pairs = []
    for key, value in data.items():
        if key == "storeDir" and isinstance(value, str):
            continue
        if not isinstance(key, str) or not key.startswith("/"):
            raise InputError(f"{source}: unexpected key {key!r}: expected store paths as keys")
        pairs.append((_store_path(key, source), value))
    return pairs, None


def parse_path_info(data: object, source: str, *, known_only: bool = False) -> list[PathInfo]:
    """`PathInfo`s from parsed `nix path-info --json` output of any Nix version.

    Paths the store does not have are an error, or skipped with `known_only`.
    """
    pairs, given_store_dir = _entries(data, source)
    invalid = [path for path, entry in pairs if entry is None]
    if known_only:
        pairs = [(path, entry) for path, entry in pairs if entry is not None]
    elif invalid:
        raise ClosureError(f"{source}: not valid in the store (not built?): {_some(invalid)}")
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
                _check_size(entry.get("narSize"), path, source),
                tuple(_join(store_dir, r) for r in refs),
                _join(store_dir, deriver) if deriver else None,
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
    return Closure(parse_path_info(data, source), source=source)


# --- nix-closure-graph ---------------------------------------------------------------------


def read_closure_graph(data: str | bytes | object, source: str) -> Closure:
    """A closure from nix-closure-graph JSON: nodes keyed by path, human sizes, edges from->to.

    Sizes like "1.3 KiB" are rounded by the tool that wrote them; they are converted with
    binary units and are not estimates (the path exists, its size is known to ~3 digits).
    """
    if isinstance(data, str | bytes):
        data = load_json(data, source)
    if not isinstance(data, dict):
        raise InputError(f"{source}: expected a JSON object with nodes and edges")
    nodes, edges = data.get("nodes"), data.get("edges")
    if not isinstance(nodes, dict) or not isinstance(edges, list):
        raise InputError(f"{source}: expected a JSON object with nodes and edges")
    refs: dict[str, list[str]] = {path: [] for path in nodes}
    for number, edge in enumerate(edges):
        if not isinstance(edge, dict) or not isinstance(edge.get("from"), str):
            raise InputError(f"{source}: edge {number} has no from/to")
        if not isinstance(edge.get("to"), str):
            raise InputError(f"{source}: edge {number} has no from/to")
        if edge["from"] not in refs:
            raise ClosureError(f"{source}: edge {number} starts at {edge['from']}, not a node")
        refs[edge["from"]].append(edge["to"])
    infos = []
    for key, node in nodes.items():
        path = _store_path(key, source)
        props = node.get("props") if isinstance(node, dict) else None
        if not isinstance(props, dict):
            raise InputError(f"{source}: node {path} has no props")
        size = props.get("narSize")
        if isinstance(size, str):
            try:
                size = parse_size(size)
            except InputError as e:
                raise ClosureError(f"{source}: {path} has an unreadable narSize {size!r}") from e
        deriver = props.get("deriver")
        infos.append(
            PathInfo(
                path,
                _check_size(size, path, source),
                tuple(refs[key]),
                deriver if isinstance(deriver, str) and deriver else None,
            )
        )
    return Closure(infos, source=source)


# --- registration (closureInfo, nix-store --dump-db / --load-db) ---------------------------


def read_registration(text: str, source: str) -> Closure:
    """A closure from a `registration` file: per path, the path, NAR hash, NAR size,
    deriver (maybe empty), reference count and the references, one per line."""
    lines = text.splitlines()
    infos = []
    i = 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        start = i

        def field(offset: int, what: str, start: int = start) -> str:
            if start + offset >= len(lines):
                raise InputError(
                    f"{source}: line {start + offset + 1}: file ends where the {what} "
                    f"of {lines[start].strip()} should be"
                )
            return lines[start + offset].strip()

        path = field(0, "store path")
        if not path.startswith("/"):
            raise InputError(f"{source}: line {start + 1}: expected a store path, got {path!r}")
        path = _store_path(path, source)
        hash_line = field(1, "NAR hash")
        if not hash_line or hash_line.startswith("/"):
            # Written without --hash-given (closureInfo before Nix 1.12): no NAR sizes at all.
            raise ClosureError(
                f"{source}: line {start + 2}: {path} has no NAR hash and narSize "
                "(registration written without hashes)"
            )
        size = _int_text(field(2, "narSize"), path, source, "narSize")
        deriver = field(3, "deriver") or None
        count_text = field(4, "reference count")
        if not count_text.isascii() or not count_text.isdigit():
            raise InputError(
                f"{source}: line {start + 5}: expected the reference count of {path}, "
                f"got {count_text!r}"
            )
        count = int(count_text)
        refs = tuple(_store_path(field(5 + k, "reference"), source) for k in range(count))
        infos.append(PathInfo(path, size, refs, deriver))
        i = start + 5 + count
    if not infos:
        raise InputError(f"{source}: empty registration file")
    return Closure(infos, source=source)


# --- narinfo -------------------------------------------------------------------------------


def read_narinfo(text: str, source: str) -> PathInfo:
    """One `.narinfo` file: StorePath, NarSize, References (base names), Deriver."""
    fields: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        key, colon, value = line.partition(":")
        if not colon or not key.strip():
            raise InputError(f"{source}: line {number}: expected 'Key: value', got {line!r}")
        key = key.strip()
        if key in fields and key != "Sig":
            raise InputError(f"{source}: line {number}: {key} given twice")
        fields[key] = value.strip()
    if "StorePath" not in fields:
        raise InputError(f"{source}: no StorePath line (not a .narinfo file?)")
    path = _store_path(fields["StorePath"], source)
    if "NarSize" not in fields:
        raise ClosureError(f"{source}: {path} has no NarSize")
    store_dir = path.rpartition("/")[0]
    refs = tuple(
        _store_path(_join(store_dir, r), source) for r in fields.get("References", "").split()
    )
    deriver = fields.get("Deriver")
    # Nix writes and reads "unknown-deriver" for paths without one.
    if deriver in (None, "", "unknown-deriver"):
        deriver = None
    return PathInfo(
        path,
        _int_text(fields["NarSize"], path, source, "NarSize"),
        refs,
        _join(store_dir, deriver) if deriver else None,
    )


def read_narinfo_dir(directory: str | os.PathLike[str], root: str | None = None) -> Closure:
    """A closure from a binary cache directory (`nix copy --to file://DIR`).

    With `root` (a store path or base name), only its closure, which the cache must hold
    whole; without, every path in the cache, rooted at those nothing references.
    """
    folder = Path(directory)
    source = str(folder)
    if not folder.is_dir():
        raise InputError(f"{source}: no such directory")
    files = sorted(folder.glob("*.narinfo"))
    if not files:
        raise InputError(f"{source}: no .narinfo files (is this a binary cache directory?)")
    infos: dict[str, PathInfo] = {}
    for file in files:
        info = read_narinfo(_read_text(file), str(file))
        infos[info.path] = info
    if root is None:
        return Closure(infos, source=source)
    if not root.startswith("/"):
        root = next((p for p in infos if p.rpartition("/")[2] == root), root)
    if root not in infos:
        raise ClosureError(f"{source}: {root} is not in this cache")
    keep: dict[str, PathInfo] = {}
    stack = [root]
    while stack:
        path = stack.pop()
        if path in keep:
            continue
        keep[path] = infos[path]
        for ref in infos[path].references:
            if ref not in infos:
                raise ClosureError(
                    f"{source}: {path} references {ref}, which the cache does not have"
                )
            stack.append(ref)
    return Closure(keep, [root], source=source)


# --- the store database --------------------------------------------------------------------


class _DbError(InputError):
    """The database could not be opened or read at all (as opposed to a path not in it)."""


_PROBE = "SELECT 1 FROM ValidPaths LIMIT 1"

# Walks Refs from the roots; UNION (not UNION ALL) stops at paths already seen.
_CLOSURE_CTE = """
WITH RECURSIVE closure(id) AS (
    SELECT id FROM ValidPaths WHERE path IN ({roots})
    UNION
    SELECT Refs.reference FROM Refs JOIN closure ON Refs.referrer = closure.id
)
"""


def _open_db(db: Path) -> sqlite3.Connection:
    uri = f"file:{urllib.parse.quote(str(db.absolute()))}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True)
        try:
            conn.execute(_PROBE).fetchall()
        except sqlite3.Error:
            conn.close()
            raise
        return conn
    except sqlite3.Error as first:
        # A live store database is in WAL mode: a read-only reader needs the -shm and -wal
        # files, and cannot create them in a directory it may not write. immutable=1 skips
        # locking and the WAL, so it sees the state of the last checkpoint; Nix checkpoints
        # often, and paths registered since then are missing (fine for sizing, not for GC).
        try:
            conn = sqlite3.connect(f"{uri}&immutable=1", uri=True)
        except sqlite3.Error:
            raise _DbError(f"{db}: cannot open the Nix store database: {first}") from first
        try:
            conn.execute(_PROBE).fetchall()
        except sqlite3.Error as e:
            conn.close()
            raise _DbError(f"{db}: cannot read as a Nix store database: {first}") from e
        logger.debug("%s: opened with immutable=1 after: %s", db, first)
        return conn


def _valid_in(conn: sqlite3.Connection, paths: list[str]) -> set[str]:
    marks = ", ".join("?" * len(paths))
    query = f"SELECT path FROM ValidPaths WHERE path IN ({marks})"
    return {row[0] for row in conn.execute(query, paths)}


def read_db(db_path: str | os.PathLike[str], roots: Iterable[str]) -> Closure:
    """The closure of `roots` read straight from a Nix store database, read-only."""
    db = Path(db_path)
    roots = sorted(set(roots))
    if not roots:
        raise InputError(f"{db}: no store paths to read the closure of")
    if not db.is_file():
        raise InputError(f"{db}: no such file")
    started = time.perf_counter()
    conn = _open_db(db)
    try:
        found = _valid_in(conn, roots)
        missing = [r for r in roots if r not in found]
        if missing:
            raise InputError(
                f"{_some(missing)}: not in the store ({db}): build it first, or pass a "
                "path-info JSON file or a narinfo directory"
            )
        # One pass over the closure; each row carries its reference ids as "3,17,42".
        rows = conn.execute(
            _CLOSURE_CTE.format(roots=", ".join("?" * len(roots)))
            + "SELECT v.id, v.path, v.narSize, v.deriver, "
            "(SELECT group_concat(reference) FROM Refs WHERE referrer = v.id) "
            "FROM closure JOIN ValidPaths v ON v.id = closure.id",
            roots,
        ).fetchall()
    except sqlite3.Error as e:
        raise _DbError(f"{db}: cannot read the Nix store database: {e}") from e
    finally:
        conn.close()
    paths = {row[0]: row[1] for row in rows}
    source = str(db)
    infos = [
        PathInfo(
            path,
            _check_size(nar_size, path, source),
            tuple(paths[int(r)] for r in refs.split(",")) if refs else (),
            deriver or None,
        )
        for _, path, nar_size, deriver, refs in rows
    ]
    closure = Closure(infos, roots, source=str(db))
    logger.debug(
        "%s: %d paths in the closure of %s in %.3f s",
        db,
        len(closure),
        _some(roots),
        time.perf_counter() - started,
    )
    return closure


# --- dispatch ------------------------------------------------------------------------------


def _read_text(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{file}: not a text file") from e
    except FileNotFoundError as e:
        raise InputError(f"{file}: no such file") from e
    except OSError as e:
        raise InputError(f"{file}: cannot read: {e.strerror}") from e


def read_file(path: str | os.PathLike[str]) -> Closure:
    """A closure from a saved file, whatever its format: the content decides."""
    file = Path(path)
    source = str(file)
    text = _read_text(file)
    head = text.lstrip()
    if not head:
        raise InputError(f"{source}: empty file")
    if head[0] in "[{":
        data = load_json(text, source)
        if isinstance(data, dict) and "nodes" in data and "edges" in data:
            return read_closure_graph(data, source)
        return read_path_info_json(data, source)
    if head.startswith("StorePath:"):
        return Closure([read_narinfo(text, source)], source=source)
    if head.startswith("/"):
        return read_registration(text, source)
    raise InputError(
        f"{source}: unrecognised format (expected path-info JSON, a closure graph, "
        "a registration file or a .narinfo)"
    )


def _top_level_store_path(spec: str, store_dir: str) -> str | None:
    """`spec` as a store path if it is one, or a link (./result, /run/current-system) to one."""
    candidates = [os.path.normpath(spec)]
    if os.path.lexists(spec):
        candidates.append(os.path.realpath(spec))
    for candidate in candidates:
        parent, _, base = candidate.rpartition("/")
        if parent == store_dir and base:
            return candidate
    return None


def _db_readable(db: Path) -> bool:
    return db.is_file() and os.access(db, os.R_OK)


def _live_closure(paths: list[str], source: str) -> Closure:
    """The closure of valid `paths`: from the database when we can read it, else nix."""
    db = nix.state_db_path()
    if _db_readable(db):
        try:
            return read_db(db, paths)
        except _DbError as e:
            logger.debug("falling back to nix path-info: %s", e)
    infos = nix.path_info(paths, recursive=True)
    return Closure(infos, paths, source=source)


def _missing(paths: list[str]) -> list[str]:
    db = nix.state_db_path()
    if _db_readable(db):
        try:
            conn = _open_db(db)
        except _DbError as e:
            logger.debug("asking nix-store instead: %s", e)
        else:
            try:
                found = _valid_in(conn, paths)
            except sqlite3.Error as e:
                logger.debug("asking nix-store instead: %s", e)
            else:
                return [p for p in paths if p not in found]
            finally:
                conn.close()
    return nix.invalid_paths(paths)


def _read_derivation(drv: str) -> Closure:
    outputs = nix.query_outputs(drv)
    missing = _missing(outputs)
    if missing:
        raise InputError(
            f"{drv} is not built: {_some(missing)} not in the store; build it, pass a "
            "path-info JSON file or a narinfo directory, or size it from a substituter "
            "(nix path-info --json -r --store URL)"
        )
    return _live_closure(outputs, drv)


def read_source(spec: str) -> Closure:
    """A closure from what the user named: a saved file, a binary cache directory, a store
    path (or a link to one) in the local store, or a `.drv` whose outputs are built."""
    if not spec:
        raise InputError("empty closure source")
    store_dir = nix.store_dir()
    store_path = _top_level_store_path(spec, store_dir)
    if store_path is not None:
        if store_path.endswith(".drv"):
            return _read_derivation(store_path)
        if not os.path.lexists(store_path) and not _db_readable(nix.state_db_path()):
            raise InputError(f"{store_path}: not in the store ({store_dir})")
        return _live_closure([store_path], store_path)
    if os.path.isfile(spec):
        return read_file(spec)
    if os.path.isdir(spec):
        return read_narinfo_dir(spec)
    raise InputError(
        f"cannot read {spec!r}: no such file or directory, and not a path in the Nix store "
        f"({store_dir})"
    )


# --- writing -------------------------------------------------------------------------------


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
