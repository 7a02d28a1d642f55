"""Parsers for every closure format Nix and its tools write: text or JSON in, `Closure` out.

Pure: nothing here runs nix or reads the store (adapters/nixstore/sources.py does). Each
reader returns a `Closure` (or `PathInfo`s, or `Derivation`s). Bad input raises
`InputError`, or `ClosureError` when the content is inconsistent, with one line naming the
file and the problem. One module per format, each owning its parser:

- `pathinfo`: `nix path-info --json` of every Nix version, read and written;
- `graph`: nix-closure-graph JSON (`{"nodes", "edges"}` with human-readable sizes);
- `registration`: `closureInfo`'s `registration` file (`nix-store --dump-db`);
- `narinfo`: `.narinfo` files of a binary cache;
- `derivation`: `nix derivation show` JSON of every Nix version;
- `fixed_output`: store paths of fixed outputs, from their hashes;
- `checks`: what they all check (sizes, store paths, JSON syntax).

The store database `db.sqlite` is read by sources.py.
"""

from adapters.nixstore.formats.checks import check_size, load_json
from adapters.nixstore.formats.derivation import Derivation, parse_derivations
from adapters.nixstore.formats.fixed_output import fixed_hash, fixed_output_path, nix32
from adapters.nixstore.formats.graph import read_closure_graph
from adapters.nixstore.formats.narinfo import read_narinfo
from adapters.nixstore.formats.pathinfo import (
    JsonShape,
    dump_path_info_json,
    parse_path_info,
    read_path_info_json,
)
from adapters.nixstore.formats.registration import read_registration

__all__ = [
    "Derivation",
    "JsonShape",
    "check_size",
    "dump_path_info_json",
    "fixed_hash",
    "fixed_output_path",
    "load_json",
    "nix32",
    "parse_derivations",
    "parse_path_info",
    "read_closure_graph",
    "read_narinfo",
    "read_path_info_json",
    "read_registration",
]
