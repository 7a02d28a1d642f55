"""What every reader checks: sizes, store paths, JSON syntax.

`MAX_NAR_SIZE` (solver/closure.py) bounds every size read here: a larger one is a
corrupted file, not a store path.
"""

import json
from typing import Any

from solver.closure import MAX_NAR_SIZE
from solver.errors import ClosureError, InputError
from solver.storepath import StorePath


def check_size(value: object, path: str, source: str, field: str = "narSize") -> int:
    """`value` as the size of `path`: an integer from 0 to `MAX_NAR_SIZE`."""
    if value is None:
        raise ClosureError(f"{source}: {path} has no {field}")
    if isinstance(value, bool) or not isinstance(value, int):
        raise ClosureError(f"{source}: {path} has a non-integer {field} ({value!r})")
    if value < 0:
        raise ClosureError(f"{source}: {path} has a negative {field} ({value})")
    if value > MAX_NAR_SIZE:
        raise ClosureError(f"{source}: {path} has an absurd {field} ({value} bytes)")
    return value


def int_text(text: str, path: str, source: str, field: str) -> int:
    """A size written as decimal text (registration, narinfo)."""
    stripped = text.strip()
    digits = stripped.removeprefix("-")
    if not digits.isascii() or not digits.isdigit():
        raise ClosureError(f"{source}: {path} has a non-integer {field} ({stripped!r})")
    if len(digits) > 20:  # beyond any size, and beyond what int() parses quickly
        raise ClosureError(f"{source}: {path} has an absurd {field} ({len(digits)} digits)")
    return check_size(int(stripped), path, source, field)


def store_path(path: object, source: str) -> str:
    """`path`, checked to be a store path (`/<store dir>/<hash>-<name>`)."""
    if not isinstance(path, str):
        raise ClosureError(f"{source}: expected a store path, got {path!r}")
    try:
        StorePath.parse(path)
    except InputError as e:
        raise ClosureError(f"{source}: {e}") from e
    return path


def join(store_dir: str, name: str) -> str:
    """A full store path from a reference that is either full or a base name."""
    return name if name.startswith("/") else f"{store_dir}/{name}"


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
