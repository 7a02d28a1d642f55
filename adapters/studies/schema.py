"""YAML input with line numbers, and the checks a schema needs.

Mappings load as `YamlMapping` (a dict that remembers the line of each key) and sequences as
`YamlSequence` (a list that remembers the line of each item), so every error can name the
file, the line and the key path: `fleet.yaml:12: hosts[3].disk: invalid size '10Q'`.
"""

import difflib
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from adapters.files import read_text
from solver.closure import MAX_NAR_SIZE
from solver.errors import InputError
from solver.units import format_size, parse_size

T = TypeVar("T")


class YamlMapping(dict[str, Any]):
    line: int = 0
    key_lines: dict[str, int]


class YamlSequence(list[Any]):
    line: int = 0
    item_lines: list[int]


# A study file is a few KB; anything far larger is not one.
MAX_BYTES = 1 << 20


# No study file nests deeper; a deeper one is refused at once, not after the parser has
# recursed through it.
MAX_DEPTH = 64


class _Loader(yaml.SafeLoader):
    """Plain data only, and none of YAML's aliases: a few bytes of `*alias` can expand to
    gigabytes ("billion laughs"), and no schema here needs them."""

    depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise InputError(
                f"line {event.start_mark.line + 1}: YAML aliases (*{event.anchor}) are not "
                "allowed here; write the value out"
            )
        if self.depth >= MAX_DEPTH:
            raise InputError(f"invalid YAML: nested too deeply (more than {MAX_DEPTH} levels)")
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _mapping(loader: _Loader, node: yaml.MappingNode) -> YamlMapping:
    out = YamlMapping()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str):
            raise InputError(f"line {key_node.start_mark.line + 1}: keys must be strings")
        if key in out:
            raise InputError(
                f"line {key_node.start_mark.line + 1}: {key!r} is given twice (first on line "
                f"{out.key_lines[key]})"
            )
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = key_node.start_mark.line + 1
    return out


def _sequence(loader: _Loader, node: yaml.SequenceNode) -> YamlSequence:
    out = YamlSequence(loader.construct_object(n, deep=True) for n in node.value)
    out.line = node.start_mark.line + 1
    out.item_lines = [n.start_mark.line + 1 for n in node.value]
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _sequence)


class Where:
    """A place in a YAML file: the file, the key path and the line."""

    def __init__(self, file: str, path: str = "", line: int = 0) -> None:
        self.file, self.path, self.line = file, path, line

    def key(self, mapping: dict[str, Any], key: str) -> "Where":
        line = mapping.key_lines.get(key, mapping.line) if isinstance(mapping, YamlMapping) else 0
        return Where(self.file, f"{self.path}.{key}" if self.path else key, line or self.line)

    def item(self, sequence: list[Any], i: int) -> "Where":
        lines = getattr(sequence, "item_lines", [])
        line = lines[i] if i < len(lines) else self.line
        return Where(self.file, f"{self.path}[{i}]", line)

    def error(self, message: str) -> InputError:
        at = f"{self.file}:{self.line}" if self.line else self.file
        return InputError(f"{at}: {self.path}: {message}" if self.path else f"{at}: {message}")


def load(path: Path) -> tuple[Any, Where]:
    """The document in `path`, and where its top level is."""
    text = read_text(path, MAX_BYTES, what="study file")
    try:
        data = yaml.load(text, Loader=_Loader)  # a SafeLoader: plain data only
    except InputError as e:
        raise InputError(f"{path}: {e}") from None
    except RecursionError:
        raise InputError(f"{path}: invalid YAML: nested too deeply") from None
    except ValueError as e:
        # An integer of thousands of digits: Python refuses to convert it.
        raise InputError(f"{path}: invalid YAML: {str(e).split(';')[0]}") from None
    except yaml.MarkedYAMLError as e:
        line = e.problem_mark.line + 1 if e.problem_mark else 0
        raise InputError(f"{path}:{line}: invalid YAML: {e.problem}") from e
    except yaml.YAMLError as e:
        # A reader's error (a NUL, a control character) says where on a second line.
        raise InputError(f"{path}: invalid YAML: {str(e).splitlines()[0]}") from e
    if _has_surrogates(data):
        # "\ud800" is valid YAML but no text: it could never be printed or written.
        raise InputError(f"{path}: invalid YAML: a lone surrogate escape (\\uD800-\\uDFFF)")
    return data, Where(str(path), "", 1)


def _has_surrogates(data: Any) -> bool:
    stack = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if any("\ud800" <= c <= "\udfff" for c in value):
                return True
        elif isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return False


def mapping(
    value: Any, where: Where, *, required: Iterable[str] = (), optional: Iterable[str] = ()
) -> YamlMapping:
    """`value` as a mapping with exactly the allowed keys."""
    if not isinstance(value, dict):
        raise where.error(f"expected a mapping, got {_kind(value)}")
    required, optional = list(required), list(optional)
    allowed = required + optional
    for key in value:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            known = ", ".join(allowed)
            raise where.key(value, key).error(f"unknown key{hint}; known keys: {known}")
    for key in required:
        if key not in value:
            raise where.error(f"missing key {key!r}")
    if isinstance(value, YamlMapping):
        return value
    out = YamlMapping(value)
    out.key_lines = {}
    return out


def one_of(value: dict[str, Any], where: Where, kinds: Iterable[str]) -> str:
    """The one key of `kinds` that `value` has."""
    kinds = list(kinds)
    present = [k for k in kinds if k in value]
    if len(present) != 1:
        others = [str(k) for k in value if k not in kinds]
        have = " and ".join(present) if present else "none"
        if not present and others:
            have = f"none; {', '.join(map(repr, others))} is not one"
        raise where.error(f"give exactly one of {', '.join(kinds)} (has {have})")
    return present[0]


def string(value: Any, where: Where) -> str:
    if not isinstance(value, str) or not value:
        raise where.error(f"expected a non-empty string, got {_kind(value)}")
    return value


def text(value: Any, where: Where) -> str:
    """A non-empty string without control characters: names and paths are printed in
    reports (an escape would be a terminal command there) and passed on to `apply` (a
    newline would be a second line in its errors)."""
    line = string(value, where)
    if not line.isprintable():
        raise where.error(f"{line!r}: no control characters (newline, tab, escape, NUL)")
    return line


def strings(value: Any, where: Where, *, at_least: int = 0) -> list[str]:
    """A string or a list of (at least `at_least`) strings."""
    if isinstance(value, str):
        return [string(value, where)]
    out = listed(value, where, string)
    if len(out) < at_least:
        raise where.error(f"expected at least {at_least} name(s), got {len(out)}")
    return out


def listed(value: Any, where: Where, item: Callable[[Any, Where], T]) -> list[T]:
    if not isinstance(value, list):
        raise where.error(f"expected a list, got {_kind(value)}")
    return [item(v, where.item(value, i)) for i, v in enumerate(value)]


def integer(
    value: Any, where: Where, *, minimum: int | None = None, maximum: int | None = None
) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise where.error(f"expected an integer, got {_kind(value)}")
    if minimum is not None and value < minimum:
        raise where.error(f"must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise where.error(f"must be at most {maximum:,}, got {value:,}")
    return value


def number(value: Any, where: Where, *, minimum: float = 0.0, maximum: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise where.error(f"expected a number, got {_kind(value)}")
    if not math.isfinite(value):
        raise where.error(f"expected a finite number, got {value}")
    if value < minimum:
        raise where.error(f"must be at least {minimum}, got {value}")
    if value > maximum:
        raise where.error(f"must be at most {maximum:g}, got {value:g}")
    return float(value)


def budget(value: Any, where: Where) -> int:
    """A byte size that something must fit in: more than 0."""
    result = size(value, where)
    if result == 0:
        raise where.error(f"{value!r}: a budget of 0 bytes holds no system")
    return result


def path_size(value: Any, where: Where) -> int:
    """The size of one store path: at most `MAX_NAR_SIZE` (1 TiB)."""
    result = size(value, where)
    if result > MAX_NAR_SIZE:
        raise where.error(
            f"{value!r} is larger than any store path can be ({format_size(MAX_NAR_SIZE)})"
        )
    return result


def size(value: Any, where: Where) -> int:
    """A byte size: 9G, 512M, 1.5GiB or plain bytes."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise where.error(f"expected a size such as 9G or 512M, got {_kind(value)}")
    try:
        result = parse_size(str(value))
    except InputError as e:
        raise where.error(str(e)) from e
    if result < 0:
        raise where.error(f"a size cannot be negative: {value!r}")
    return result


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, int | float):
        return f"a number ({value})"
    return f"{type(value).__name__} {value!r}"
