"""Text from users and from Nix, made safe for one line of a terminal."""


def one_line(text: str) -> str:
    """`text` as one line that does nothing to a terminal: every character that is not
    printable (a newline, an escape, a byte that was not UTF-8) written as Python writes
    it in a string, `\\n`, `\\x1b`, `\\udcff`."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
