"""Where closures come from: saved files, binary cache directories, the store database,
and the live store, and `read_source` to pick one from what the user named.

Bad input raises `InputError` (or `ClosureError`) with one line naming the source.
"""

import logging
import os
import sqlite3
import time
import urllib.parse
from collections.abc import Iterable
from pathlib import Path

from adapters.files import read_text
from adapters.nixstore import nix
from adapters.nixstore.formats.checks import check_size, load_json
from adapters.nixstore.formats.graph import read_closure_graph
from adapters.nixstore.formats.narinfo import read_narinfo
from adapters.nixstore.formats.pathinfo import read_path_info_json
from adapters.nixstore.formats.registration import read_registration
from adapters.nixstore.host import LOCAL
from solver.closure import Closure, PathInfo
from solver.errors import ClosureError, InputError, some_named

# A saved closure of 25,000 paths is some 30 MB of JSON; a file far larger is not one.
MAX_FILE_BYTES = 1 << 30

logger = logging.getLogger(__name__)


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
                f"{some_named(missing)}: not in the store ({db}): build it first, or pass a "
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
            check_size(nar_size, path, source),
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
        some_named(roots),
        time.perf_counter() - started,
    )
    return closure


# --- dispatch ------------------------------------------------------------------------------


def _read_text(file: Path) -> str:
    return read_text(file, MAX_FILE_BYTES, what="closure file")


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


def _top_level_store_path(spec: str) -> str | None:
    """`spec` as a store path if it is one, or a link (./result, /run/current-system) to one."""
    candidates = [os.path.normpath(spec)]
    if os.path.lexists(spec):
        candidates.append(os.path.realpath(spec))
    return next((c for c in candidates if nix.is_store_path(LOCAL, c)), None)


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
    infos = nix.path_info(LOCAL, paths, recursive=True)
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
    return nix.invalid_paths(LOCAL, paths)


def _read_derivation(drv: str) -> Closure:
    outputs = nix.query_outputs(LOCAL, drv)
    missing = _missing(outputs)
    if missing:
        raise InputError(
            f"{drv} is not built: {some_named(missing)} not in the store; build it, pass a "
            "path-info JSON file or a narinfo directory, or size it from a substituter "
            "(nix path-info --json -r --store URL)"
        )
    return _live_closure(outputs, drv)


def check_source(spec: str, option: str) -> None:
    """`spec`, given as `option`, names something that exists: checked for every input
    before any is read, so that the error names the one that is missing."""
    if spec and _top_level_store_path(spec) is None and not os.path.exists(spec):
        hint = " (not on NixOS? give --current SRC)" if spec == "/run/current-system" else ""
        raise InputError(
            f"{option} {spec!r}: no such file or directory, and not a path in the Nix store "
            f"({LOCAL.store_dir()}){hint}"
        )


def read_source(spec: str) -> Closure:
    """A closure from what the user named: a saved file, a binary cache directory, a store
    path (or a link to one) in the local store, or a `.drv` whose outputs are built."""
    if not spec:
        raise InputError("empty closure source")
    store_dir = LOCAL.store_dir()
    store_path = _top_level_store_path(spec)
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
    if os.path.exists(spec):
        raise InputError(f"{spec}: not a regular file or a directory")
    raise InputError(
        f"cannot read {spec!r}: no such file or directory, and not a path in the Nix store "
        f"({store_dir})"
    )
