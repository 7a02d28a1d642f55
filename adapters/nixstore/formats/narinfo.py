"""`.narinfo` files of a binary cache (`nix copy --to file://DIR`)."""

from adapters.nixstore.formats.checks import int_text, join, store_path
from solver.closure import PathInfo
from solver.errors import ClosureError, InputError


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
    path = store_path(fields["StorePath"], source)
    if "NarSize" not in fields:
        raise ClosureError(f"{source}: {path} has no NarSize")
    store_dir = path.rpartition("/")[0]
    refs = tuple(
        store_path(join(store_dir, r), source) for r in fields.get("References", "").split()
    )
    deriver = fields.get("Deriver")
    # Nix writes and reads "unknown-deriver" for paths without one.
    if deriver in (None, "", "unknown-deriver"):
        deriver = None
    return PathInfo(
        path,
        int_text(fields["NarSize"], path, source, "NarSize"),
        refs,
        join(store_dir, deriver) if deriver else None,
    )
