"""Human byte sizes, read as users mean them and printed so that they never mislead.

Reading (`parse_size`): `G`, `GiB`, `M`, `MiB`... are binary (G = 2^30 bytes), as in
Nix's own options and `df -h`; `GB`, `MB`... are decimal (GB = 10^9 bytes), as on disk
labels and VPS price lists; a plain number is bytes. Letters may be in either case, with
a blank before the unit or not: `9G`, `9.5 GiB`, `10GB`, `512m`, `9000000000`.

Printing (`format_size`): binary, one decimal, as `nix path-info -h` prints; rounded up
for a budget that is known to work and down for a bound no plan goes below, so that
a rounded "a plan is known for" is never smaller than a rounded "no plan fits".
"""

import math
import re
from decimal import Decimal
from enum import Enum

from solver.errors import InputError

_PREFIXES = "KMGTP"
_SIZE = re.compile(
    r"^\s*(?P<num>[0-9]*\.?[0-9]+)\s*(?:(?P<prefix>[kmgtp])(?P<unit>ib|b)?|(?P<bytes>b|bytes?))?\s*$",
    re.IGNORECASE,
)
ACCEPTED = (
    "bytes, or a number with K, M, G, T (binary: G = GiB = 2^30 bytes; KiB, MiB, GiB, "
    "TiB the same) or KB, MB, GB, TB (decimal: GB = 10^9 bytes), e.g. 9G, 9.5GiB, 10GB"
)

# Anything above this is a typo, not a disk (1 EiB).
MAX_BYTES = 1 << 60


def parse_size(text: str) -> int:
    """Bytes in a human size: binary with G or GiB, decimal with GB (see the module)."""
    if not isinstance(text, str):
        text = str(text)
    m = _SIZE.match(text)
    if not m:
        raise InputError(f"invalid size {text!r}: give {ACCEPTED}")
    value = Decimal(m["num"])
    if m["prefix"]:
        power = _PREFIXES.index(m["prefix"].upper()) + 1
        decimal = (m["unit"] or "").lower() == "b"
        value *= 1000**power if decimal else 1024**power
    result = int(value.to_integral_value(rounding="ROUND_HALF_UP"))
    if result > MAX_BYTES:
        raise InputError(f"size {text!r} is absurdly large (over 1 EiB)")
    return result


class Rounding(Enum):
    """Which way a printed size may err: NEAREST for a measurement, UP for a budget that
    works (the printed one works too), DOWN for a bound nothing goes below."""

    NEAREST = "nearest"
    UP = "up"
    DOWN = "down"


def format_size(n: int | float, rounding: Rounding = Rounding.NEAREST, decimals: int = 1) -> str:
    """Bytes the way `nix path-info -h` prints them: 1.5 GiB, 304.0 KiB, 12 B."""
    sign = "-" if n < 0 else ""
    value = float(abs(n))
    if value < 1024:
        return f"{sign}{int(value)} B"
    if sign:
        # Rounding the magnitude up makes a negative size smaller, and the reverse.
        rounding = {Rounding.UP: Rounding.DOWN, Rounding.DOWN: Rounding.UP}.get(rounding, rounding)
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        value /= 1024
        if value < 1024 or unit == "PiB":
            return f"{sign}{rounded(value, rounding, decimals)} {unit}"
    raise AssertionError("unreachable")  # pragma: no cover


def rounded(value: float, rounding: Rounding, decimals: int) -> str:
    """`value` with `decimals` decimals, rounded `rounding`'s way."""
    scale = 10**decimals
    if rounding is Rounding.UP:
        # A hair of float error must not turn an exact 3.0 into 3.1.
        value = math.ceil(value * scale - 1e-9) / scale
    elif rounding is Rounding.DOWN:
        value = math.floor(value * scale + 1e-9) / scale
    return f"{value:.{decimals}f}"


def format_apart(*sizes: tuple[int | None, Rounding]) -> list[str]:
    """Sizes printed in one message, with as many decimals as it takes for different
    sizes to read differently ("no plan fits 3.21 GiB; a plan is known for 3.22 GiB"),
    and exact bytes only past three. A size given twice prints alike, rounded its first
    way; None prints as ""."""
    known: dict[int, Rounding] = {}
    for n, rounding in sizes:
        if n is not None:
            known.setdefault(n, rounding)
    for decimals in (1, 2, 3):
        texts = {n: format_size(n, rounding, decimals) for n, rounding in known.items()}
        if len(set(texts.values())) == len(texts):
            break
    else:
        texts = {n: f"{n:,} B" for n in known}
    return [texts[n] if n is not None else "" for n, _ in sizes]
