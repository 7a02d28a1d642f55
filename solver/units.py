"""Human byte sizes: `9G`, `9GiB`, `9.5G`, `512M`, `9000000000`. Binary units throughout."""

import re
from decimal import Decimal, InvalidOperation

from solver.errors import InputError

_UNITS = {"": 0, "K": 1, "M": 2, "G": 3, "T": 4, "P": 5}
_SIZE = re.compile(r"^\s*(?P<num>[0-9]*\.?[0-9]+)\s*(?P<unit>[KMGTP]?)(?:i?B)?\s*$", re.IGNORECASE)
_BYTES_WORD = re.compile(r"^\s*(?P<num>[0-9]+)\s*(?:B|bytes?)\s*$", re.IGNORECASE)

# Anything above this is a typo, not a disk (1 EiB).
MAX_BYTES = 1 << 60


def parse_size(text: str) -> int:
    """Parse a human size into bytes; G means GiB, as Nix and df -h use it."""
    if not isinstance(text, str):
        text = str(text)
    m = _BYTES_WORD.match(text)
    if m:
        value = Decimal(m["num"])
    else:
        m = _SIZE.match(text)
        if not m:
            raise InputError(f"invalid size {text!r}: expected bytes or a number with K, M, G or T")
        try:
            value = Decimal(m["num"]) * (1024 ** _UNITS[m["unit"].upper()])
        except InvalidOperation as e:  # pragma: no cover - the regex admits only decimals
            raise InputError(f"invalid size {text!r}") from e
    result = int(value.to_integral_value(rounding="ROUND_HALF_UP"))
    if result > MAX_BYTES:
        raise InputError(f"size {text!r} is absurdly large (over 1 EiB)")
    return result


def format_size(n: int | float) -> str:
    """Format bytes the way `nix path-info -h` does: 1.5 GiB, 304.0 KiB, 12 B."""
    sign = "-" if n < 0 else ""
    value = float(abs(n))
    if value < 1024:
        return f"{sign}{int(value)} B"
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        value /= 1024
        if value < 1024 or unit == "PiB":
            return f"{sign}{value:.1f} {unit}"
    raise AssertionError("unreachable")  # pragma: no cover
