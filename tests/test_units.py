import pytest

from solver.errors import InputError
from solver.units import Rounding, format_apart, format_size, parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("9G", 9 * 2**30),
        ("9GiB", 9 * 2**30),
        ("9gib", 9 * 2**30),
        ("9.5G", int(9.5 * 2**30)),
        ("512M", 512 * 2**20),
        ("512MiB", 512 * 2**20),
        ("1K", 1024),
        ("1T", 2**40),
        ("9000000000", 9_000_000_000),
        ("304 bytes", 304),
        ("12B", 12),
        (" 1.3 KiB ", round(1.3 * 1024)),
        ("0", 0),
        # Decimal with a B after the prefix: disk labels and VPS price lists.
        ("10GB", 10_000_000_000),
        ("10 gb", 10_000_000_000),
        ("512MB", 512_000_000),
        ("1.5TB", 1_500_000_000_000),
        ("1kB", 1000),
        # Binary without one, in either case, with a blank or not.
        ("3 G", 3 * 2**30),
        ("512m", 512 * 2**20),
    ],
)
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    "text", ["", "G", "9X", "-1G", "nine", "9 G B", "1.2.3G", "9E", "9Gi", "9GiBB", "9iB"]
)
def test_parse_size_rejects(text):
    with pytest.raises(InputError, match="10GB") as e:
        parse_size(text)
    # One line that lists the accepted forms.
    assert "\n" not in str(e.value) and "GiB" in str(e.value) and "decimal" in str(e.value)


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (int(1.5 * 2**30), "1.5 GiB"),
        (-2048, "-2.0 KiB"),
    ],
)
def test_format_size(n, text):
    assert format_size(n) == text


def test_rounding_never_contradicts():
    """A budget that works rounds up, a bound down: 3.04 GiB known to work never prints
    below a 3.04 GiB that does not."""
    n = int(3.04 * 2**30)
    assert format_size(n, Rounding.UP) == "3.1 GiB"
    assert format_size(n, Rounding.DOWN) == "3.0 GiB"
    assert format_size(3 * 2**30, Rounding.UP) == "3.0 GiB"
    assert format_size(-n, Rounding.UP) == "-3.0 GiB"


def test_format_apart_adds_decimals_before_bytes():
    a, b = int(3.211 * 2**30), int(3.241 * 2**30)
    assert format_apart((a, Rounding.NEAREST), (b, Rounding.DOWN)) == ["3.21 GiB", "3.24 GiB"]
    assert format_apart((a, Rounding.NEAREST), (a + 1, Rounding.NEAREST)) == [
        f"{a:,} B",
        f"{a + 1:,} B",
    ]
    assert format_apart((a, Rounding.UP), (None, Rounding.UP)) == ["3.3 GiB", ""]


def test_parse_size_rejects_absurd_sizes():
    with pytest.raises(InputError, match="over 1 EiB"):
        parse_size("2000P")
