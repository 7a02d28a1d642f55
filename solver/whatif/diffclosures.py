"""`nix store diff-closures` output, read as a scenario's changes.

Each line is `name: OLD → NEW, DELTA`, `name: OLD → NEW` or `name: DELTA`. Versions are
comma-separated; `∅` means absent (an addition or a removal) and `ε` an empty version.
Older Nix signs growth (`+12.3 KiB`), newer Nix prints it bare; both wrap deltas in ANSI
colours (red for growth, green for shrinkage) when writing to a terminal.
"""

import json
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from solver.closure import Closure
from solver.errors import InputError
from solver.storepath import StorePath
from solver.whatif.scenario import Add, Bump, Edit, Growth, Remove

ANSI = re.compile(r"\x1b\[[0-9;]*m")
DELTA = re.compile(r"^([+-]?)(\d+(?:\.\d+)?)\s*(bytes|B|KiB|MiB|GiB|TiB)$")
UNITS = {"bytes": 1, "B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}
ARROW = "→"
ABSENT = "∅"
EMPTY = "ε"
# An added package with no size delta printed: assume a small one.
ADDED_FALLBACK_BYTES = 1 << 20


@dataclass(frozen=True)
class DiffLine:
    """One package's change. `old` or `new` empty: absent on that side; None: not printed."""

    name: str
    old: tuple[str, ...] | None
    new: tuple[str, ...] | None
    delta: int | None

    @property
    def added(self) -> bool:
        return self.old == () and bool(self.new)

    @property
    def removed(self) -> bool:
        return self.new == () and bool(self.old)


def _versions(text: str) -> tuple[str, ...]:
    text = text.strip()
    if text == ABSENT:
        return ()
    return tuple("" if v.strip() == EMPTY else v.strip() for v in text.split(","))


def parse_delta(text: str) -> int | None:
    m = DELTA.match(text.strip())
    if not m:
        return None
    sign, number, unit = m.groups()
    value = round(float(number) * UNITS[unit])
    return -value if sign == "-" else value


def parse_line(line: str) -> DiffLine | None:
    """One diff-closures line, or None when the line is not one."""
    line = ANSI.sub("", line).strip()
    name, sep, rest = line.partition(": ")
    if not sep or not name or " " in name:
        return None
    if ARROW in rest:
        before, _, after = rest.partition(ARROW)
        # Versions are comma-separated too: the delta is the last field, if it is one.
        fields = [f.strip() for f in after.split(",")]
        delta = parse_delta(fields[-1]) if len(fields) > 1 else None
        if delta is not None:
            fields = fields[:-1]
        return DiffLine(name, _versions(before), _versions(",".join(fields)), delta)
    delta = parse_delta(rest)
    return DiffLine(name, None, None, delta) if delta is not None else None


def parse(text: str) -> list[DiffLine]:
    """Every package line of a diff-closures output (other lines are skipped)."""
    return [d for d in map(parse_line, text.splitlines()) if d is not None]


def blocks(text: str) -> list[str]:
    """Outputs one after another: a log of upgrades, one block per commit.

    Blocks start at `#### ` header lines where there are any (a commit message may hold
    blank lines), else they are separated by blank lines.
    """
    lines = text.splitlines()
    if any(line.startswith("#### ") for line in lines):
        out: list[list[str]] = []
        for i, line in enumerate(lines):
            starts = line.startswith("#### ") and (i == 0 or not lines[i - 1].startswith("#### "))
            if starts or not out:
                out.append([])
            out[-1].append(line)
        return ["\n".join(b) for b in out if any(s.strip() for s in b)]
    return [b for b in re.split(r"\n\s*\n", text) if b.strip()]


@dataclass(frozen=True)
class Translated:
    changes: list[Edit]
    skipped: list[str]  # names the closure does not have (and that are not additions)


def to_changes(lines: Sequence[DiffLine], closure: Closure) -> Translated:
    """The diff's version changes and size deltas, as changes to `closure`."""
    sizes: dict[str, int] = defaultdict(int)
    for info in closure.infos():
        sizes[StorePath.parse(info.path).pname] += info.nar_size
    base = "glibc" if "glibc" in sizes else None
    changes: list[Edit] = []
    skipped: list[str] = []
    for d in lines:
        if d.added:
            if d.name in sizes:
                skipped.append(d.name)
                continue
            size = d.delta if d.delta and d.delta > 0 else ADDED_FALLBACK_BYTES
            version = d.new[-1] if d.new and d.new[-1] else ""
            name = f"{d.name}-{version}" if version else d.name
            changes.append(Add(name, size, (base,) if base else ()))
            continue
        if d.name not in sizes:
            skipped.append(d.name)
            continue
        if d.removed:
            changes.append(Remove((d.name,)))
            continue
        total = sizes[d.name]
        factor = max(0.0, (total + (d.delta or 0)) / total) if total else 1.0
        bumped = d.new[-1] if d.new else None
        changes.append(Bump((d.name,), Growth(factor), bumped or None))
    return Translated(changes, skipped)


def parse_json(data: object) -> list[DiffLine]:
    """`nix store diff-closures --json`: Nix's `{name: {"versionsBefore": "1.2, 1.3",
    "versionsAfter": "1.4", "sizeDelta": N}}` (versions as the text prints them, and only
    when they changed), or Lix's `{"packages": {...}, "schema": "lix-closure-diff-v1"}`
    with lists of versions."""
    if isinstance(data, dict) and isinstance(data.get("packages"), dict):
        data = data["packages"]
    if not isinstance(data, dict):
        raise InputError("diff-closures JSON: expected an object of packages")
    lines = []
    for name, entry in data.items():
        if not isinstance(entry, dict):
            raise InputError(f"diff-closures JSON: {name}: expected an object")
        delta = entry.get("sizeDelta")
        if delta is not None and (isinstance(delta, bool) or not isinstance(delta, int)):
            raise InputError(f"diff-closures JSON: {name}: sizeDelta is not an integer")
        lines.append(
            DiffLine(
                name,
                _json_versions(entry.get("versionsBefore"), name),
                _json_versions(entry.get("versionsAfter"), name),
                delta,
            )
        )
    return lines


def _json_versions(value: object, name: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return _versions(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise InputError(f"diff-closures JSON: {name}: versions are neither text nor a list")


def read(text: str, closure: Closure, *, block: int | None = None) -> Translated:
    """Changes from a diff-closures text (or one block of a log of them), or its JSON."""
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as e:
            raise InputError(f"diff-closures JSON is malformed: {e}") from None
        lines = parse_json(data)
        if not lines:
            raise InputError("the diff-closures JSON names no package")
        return to_changes(lines, closure)
    if block is not None:
        parts = blocks(text)
        if not 0 <= block < len(parts):
            raise InputError(f"block {block}: the diff has blocks 0 to {len(parts) - 1}")
        text = parts[block]
    lines = parse(text)
    if not lines:
        raise InputError("no `name: old → new, delta` lines in the diff-closures text")
    return to_changes(lines, closure)
