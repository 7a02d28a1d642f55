import pytest

from solver.errors import InputError
from solver.units import format_size, parse_size


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
    ],
)
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "G", "9X", "-1G", "nine", "9 G B", "1.2.3G", "9E", "2000P"])
def test_parse_size_rejects(text):
    with pytest.raises(InputError):
        parse_size(text)


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
