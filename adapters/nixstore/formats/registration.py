"""`closureInfo`'s `registration` file: the format of `nix-store --dump-db` and `--load-db`."""

from adapters.nixstore.formats.checks import int_text, store_path
from solver.closure import Closure, PathInfo
from solver.errors import ClosureError, InputError


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
        path = store_path(path, source)
        hash_line = field(1, "NAR hash")
        if not hash_line or hash_line.startswith("/"):
            # Written without --hash-given (closureInfo before Nix 1.12): no NAR sizes at all.
            raise ClosureError(
                f"{source}: line {start + 2}: {path} has no NAR hash and narSize "
                "(registration written without hashes)"
            )
        size = int_text(field(2, "narSize"), path, source, "narSize")
        deriver = field(3, "deriver") or None
        count_text = field(4, "reference count")
        if not count_text.isascii() or not count_text.isdigit():
            raise InputError(
                f"{source}: line {start + 5}: expected the reference count of {path}, "
                f"got {count_text!r}"
            )
        count = int(count_text)
        refs = tuple(store_path(field(5 + k, "reference"), source) for k in range(count))
        infos.append(PathInfo(path, size, refs, deriver))
        i = start + 5 + count
    if not infos:
        raise InputError(f"{source}: empty registration file")
    return Closure(infos, source=source)
