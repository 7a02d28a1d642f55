"""Store paths of fixed outputs, computed as Nix's libstore/store-dir-config.cc does, and
the hash formats Nix has written for them (base 16, Nix's base 32, base 64, SRI).

From Nix 2.32, `nix derivation show` leaves the path of a fixed output out; derivation.py
computes it from the hash with `fixed_output_path`.
"""

import base64
import binascii
import hashlib
from typing import Any

from solver.errors import InputError

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
