"""Parsers for every closure format Nix and its tools write: text or JSON in, `Closure` out.

Pure: nothing here runs nix or reads the store (adapters/nixstore/sources.py does).

Each reader returns a `Closure` (or `PathInfo`s). Bad input raises `InputError`, or
`ClosureError` when the content is inconsistent, with one line naming the file and the
problem. Formats:

- `nix path-info --json`: a list (Nix <= 2.18, Lix), an object keyed by path (2.19+,
  nulls for absent fields from 2.23), `{"version": 2, "storeDir", "info"}` (2.33
  `--json-format 2`, base names) and `"version": 3` (2.35 `--json-format 3`, which differs
  only in its structured signatures, never read here); `exportReferencesGraph` JSON is the
  list shape.
- nix-closure-graph JSON (`{"nodes", "edges"}` with human-readable sizes).
- `closureInfo`'s `registration` file, the format of `nix-store --dump-db`.
- `.narinfo` files of a binary cache.
- The store database `db.sqlite`.
"""

import base64
import binascii
import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any, Literal

from solver.closure import MAX_NAR_SIZE, Closure, PathInfo
from solver.errors import ClosureError, InputError
from solver.storepath import StorePath
from solver.units import parse_size

logger = logging.getLogger(__name__)

JsonShape = Literal["list", "2.19", "v2"]

# How many invalid paths an error message lists before it says "and N more".
_NAMED_IN_ERRORS = 3


def some_paths(paths: list[str]) -> str:
    shown = ", ".join(paths[:_NAMED_IN_ERRORS])
    more = len(paths) - _NAMED_IN_ERRORS
    return f"{shown} and {more} more" if more > 0 else shown


def check_size(value: object, path: str, source: str, field: str = "narSize") -> int:
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
    if len(digits) > 20:  # beyond any size, and beyond what int() parses quickly
        raise ClosureError(f"{source}: {path} has an absurd {field} ({len(digits)} digits)")
    return check_size(int(stripped), path, source, field)


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
    except RecursionError:
        raise InputError(f"{source}: JSON nested too deeply") from None
    except ValueError as e:  # an integer of thousands of digits
        raise InputError(f"{source}: unreadable JSON: {e}") from None


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
        raise ClosureError(f"{source}: not valid in the store (not built?): {some_paths(invalid)}")
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
                check_size(size, path, source),
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


# --- nix derivation show / nix show-derivation ------------------------------------------


@dataclass(frozen=True)
class Derivation:
    """What the planner needs of a store derivation, whatever JSON shape described it."""

    path: str
    # Output name -> output path (None: not known before the build, content-addressed).
    outputs: dict[str, str | None]
    # Input derivation -> the names of its outputs this one uses.
    input_drvs: dict[str, tuple[str, ...]]
    input_srcs: tuple[str, ...]
    # A fixed-output derivation (fetchurl, fetchgit): its output cannot reference anything.
    fixed: bool = False
    # The input sources its environment or arguments name, but as the script it runs: a
    # builder learns where a path is from those alone, so a source its output keeps a
    # reference to is named there (see estimate.py).
    named_srcs: tuple[str, ...] = ()


def parse_derivations(data: object, source: str, store_dir: str) -> dict[str, Derivation]:
    """The derivations of `nix show-derivation` / `nix derivation show` output, any version.

    Shapes (Nix's doc/manual/source/protocols/json/ and src/libstore-tests/data/):
    - a map of full `.drv` paths to derivations, with `inputDrvs` of output-name lists
      (Nix <= 2.18, Lix) or of `{"outputs": [...], "dynamicOutputs": {...}}` (2.19+);
    - derivation `version` 3: store paths as base names;
    - `version` 4: `inputs.drvs` and `inputs.srcs`; the whole output wrapped as
      `{"version": 4, "derivations": {...}}` with base-name keys.
    Paths given as base names are joined to `store_dir`. From Nix 2.32 a fixed output has
    no `path`: it is taken from the output's environment variable, else computed from its
    hash as Nix does (`fixed_output_path`).
    """
    if isinstance(data, dict) and isinstance(data.get("derivations"), dict):
        data = data["derivations"]
    if not isinstance(data, dict):
        raise InputError(f"{source}: expected an object of derivations")
    out: dict[str, Derivation] = {}
    for key, value in data.items():
        path = _join(store_dir, key)
        if not isinstance(value, dict):
            raise InputError(f"{source}: {path} is not a derivation object")
        out[path] = _derivation(path, value, source, store_dir)
    return out


def _derivation(path: str, value: dict[str, Any], source: str, store_dir: str) -> Derivation:
    env = value.get("env", {})
    if not isinstance(env, dict):
        raise InputError(f"{source}: {path}: env is not an object")
    name = value.get("name")
    if not isinstance(name, str) or not name:
        # Nix <= 2.18 has no "name" field; the file's own name is "<hash>-<name>.drv".
        name = path.rpartition("/")[2].partition("-")[2].removesuffix(".drv")
    outputs: dict[str, str | None] = {}
    fixed = False
    raw_outputs = value.get("outputs", {})
    if not isinstance(raw_outputs, dict):
        raise InputError(f"{source}: {path}: outputs is not an object")
    for output, spec in raw_outputs.items():
        if not isinstance(spec, dict):
            raise InputError(f"{source}: {path}: output {output} is not an object")
        fixed = fixed or bool(spec.get("hash"))
        outputs[output] = _output_path(path, name, output, spec, env, source, store_dir)
    inputs = value.get("inputs")
    if isinstance(inputs, dict):  # version 4
        raw_drvs, raw_srcs = inputs.get("drvs", {}), inputs.get("srcs", [])
    else:
        raw_drvs, raw_srcs = value.get("inputDrvs", {}), value.get("inputSrcs", [])
    if not isinstance(raw_drvs, dict) or not isinstance(raw_srcs, list):
        raise InputError(f"{source}: {path}: malformed inputs")
    input_drvs: dict[str, tuple[str, ...]] = {}
    for drv, used in raw_drvs.items():
        # A list of output names, or {"outputs": [...], "dynamicOutputs": {...}}: outputs
        # of outputs (dynamic derivations) are not known before the build.
        names = used.get("outputs", []) if isinstance(used, dict) else used
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise InputError(f"{source}: {path}: malformed outputs of input {drv}")
        input_drvs[_join(store_dir, drv)] = tuple(names)
    srcs = tuple(_join(store_dir, s) for s in raw_srcs if isinstance(s, str))
    return Derivation(path, outputs, input_drvs, srcs, fixed, _named(srcs, value, env))


def _named(srcs: tuple[str, ...], value: dict[str, Any], env: dict[str, Any]) -> tuple[str, ...]:
    """The `srcs` whose hash part appears in the derivation's environment (`__json` too,
    with structured attributes) or arguments. The script it runs is left out: the builder
    (its variable) and an argument that is a source's path alone (stdenv's
    `-e .../default-builder.sh`, `args = [ ./build.sh ]`)."""
    if not srcs:
        return ()
    args = value.get("args")
    scripts = set(srcs)
    words = (
        [a for a in args if isinstance(a, str) and a not in scripts]
        if isinstance(args, list)
        else []
    )
    words += [v for k, v in env.items() if k != "builder" and isinstance(v, str)]
    text = "\0".join(words)
    return tuple(s for s in srcs if s.rpartition("/")[2][:32] in text)


def _output_path(
    drv: str,
    name: str,
    output: str,
    spec: dict[str, Any],
    env: dict[str, Any],
    source: str,
    store_dir: str,
) -> str | None:
    """An output's store path: given, in its environment variable, or computed from its
    fixed hash; None when it is not known before the build (content-addressed)."""
    where = spec.get("path")
    if isinstance(where, str) and where:
        return _join(store_dir, where)
    if not spec.get("hash"):
        return None
    # Nix 2.32 and later: "hash" and "method" but no "path"; the environment still has it.
    value = env.get(output)
    if (
        isinstance(value, str)
        and value.startswith(store_dir + "/")
        and "/" not in value[len(store_dir) + 1 :]
    ):
        return value
    method, algo, digest = fixed_hash(spec, f"{source}: {drv}: output {output}")
    return fixed_output_path(
        store_dir, name if output == "out" else f"{name}-{output}", method, algo, digest
    )


# --- store paths of fixed outputs (Nix's libstore/store-dir-config.cc) ---------------------

# Nix's base-32 alphabet (no e, o, u, t), most significant digit first in the text.
_NIX32 = "0123456789abcdfghijklmnpqrsvwxyz"
_HASH_SIZES = {"md5": 16, "sha1": 20, "sha256": 32, "sha512": 64}
# How the contents are hashed: what `method` says, and its prefix in older `hashAlgo`.
_METHODS = {"flat": "flat", "nar": "nar", "recursive": "nar", "text": "text", "git": "git"}
_PREFIXES = (("r:", "nar"), ("text:", "text"), ("git:", "git"))


def nix32(data: bytes) -> str:
    """`data` in Nix's base 32, as store path hashes are written."""
    length = (len(data) * 8 - 1) // 5 + 1
    chars = []
    for n in range(length - 1, -1, -1):
        byte, bit = divmod(n * 5, 8)
        value = data[byte] >> bit
        if byte + 1 < len(data):
            value |= data[byte + 1] << (8 - bit)
        chars.append(_NIX32[value & 0x1F])
    return "".join(chars)


def _from_nix32(text: str, size: int) -> bytes | None:
    out = bytearray(size)
    for n, char in enumerate(reversed(text)):
        digit = _NIX32.find(char)
        if digit < 0:
            return None
        byte, bit = divmod(n * 5, 8)
        out[byte] |= (digit << bit) & 0xFF
        carry = digit >> (8 - bit)
        if byte + 1 < size:
            out[byte + 1] |= carry
        elif carry:
            return None
    return bytes(out)


def _digest(text: str, algo: str) -> bytes | None:
    """A hash written in base 16, Nix's base 32 or base 64 (what its length says)."""
    size = _HASH_SIZES[algo]
    try:
        if len(text) == 2 * size:
            return bytes.fromhex(text)
        if len(text) == (size * 8 - 1) // 5 + 1:
            return _from_nix32(text, size)
        data = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (ValueError, binascii.Error):
        return None
    return data if len(data) == size else None


def fixed_hash(spec: dict[str, Any], where: str) -> tuple[str, str, bytes]:
    """(method, algorithm, digest) of a fixed output in any JSON shape Nix has written:
    `"hash": "<hex>"` with `"hashAlgo": "r:sha256"` (Nix <= 2.31, Lix) or with `"method"`
    (2.32), `"hash": {"algorithm", "format", "hash"}` (2.33 pre-releases) and the SRI
    `"hash": "sha256-<base64>"` with `"method"` (2.33 on)."""
    raw = spec.get("hash")
    algo = spec.get("hashAlgo")
    method = spec.get("method")
    if isinstance(algo, str):
        for prefix, meaning in _PREFIXES:
            if algo.startswith(prefix):
                algo, method = algo.removeprefix(prefix), method or meaning
    if isinstance(raw, dict):
        algo, raw = raw.get("algorithm"), raw.get("hash")
    elif isinstance(raw, str) and algo is None:
        head, sep, tail = raw.partition("-") if "-" in raw else raw.partition(":")
        if sep and head in _HASH_SIZES:
            algo, raw = head, tail
    if not isinstance(algo, str) or algo not in _HASH_SIZES or not isinstance(raw, str):
        raise InputError(f"{where}: unreadable fixed-output hash {spec.get('hash')!r}")
    digest = _digest(raw, algo)
    if digest is None:
        raise InputError(f"{where}: unreadable {algo} hash {raw!r}")
    if method is None:
        method = "flat"  # Nix <= 2.31 with a plain "sha256": flat, the prefix-less default
    if method not in _METHODS:
        raise InputError(f"{where}: unknown content-addressing method {method!r}")
    return _METHODS[method], algo, digest


def _make_store_path(store_dir: str, kind: str, digest: bytes, name: str) -> str:
    text = f"{kind}:sha256:{digest.hex()}:{store_dir}:{name}"
    full = hashlib.sha256(text.encode()).digest()
    short = bytearray(20)  # Nix's compressHash: the digest folded onto 20 bytes by XOR
    for i, byte in enumerate(full):
        short[i % 20] ^= byte
    return f"{store_dir}/{nix32(bytes(short))}-{name}"


def fixed_output_path(store_dir: str, name: str, method: str, algo: str, digest: bytes) -> str:
    """The store path of a fixed output, as Nix's makeFixedOutputPath makes it (a fixed
    output has no references): NAR with SHA-256 is a "source" path of that hash; text
    (SHA-256 only) a "text" path; anything else an "output:out" path of the hash of
    `fixed:out:<r:|git:|><algo>:<hex>:`."""
    if method == "text":
        if algo != "sha256":
            raise InputError(f"{name}: text hashing needs sha256, not {algo}")
        return _make_store_path(store_dir, "text", digest, name)
    if method == "nar" and algo == "sha256":
        return _make_store_path(store_dir, "source", digest, name)
    prefix = {"flat": "", "nar": "r:", "git": "git:"}[method]
    inner = hashlib.sha256(f"fixed:out:{prefix}{algo}:{digest.hex()}:".encode()).digest()
    return _make_store_path(store_dir, "output:out", inner, name)


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
