"""The parts of a study file that scenarios and fleets share: the current system
(`current:`) and the changes applied to it (`changes:`)."""

import os
import random
from pathlib import Path
from typing import Any

from adapters.files import read_text
from adapters.nixstore.sources import read_source
from adapters.studies import schema as y
from solver.closure import MAX_NAR_SIZE, Closure
from solver.errors import BudgetSolveError, InputError
from solver.synthetic import generate_system
from solver.units import format_size, parse_size
from solver.whatif import diffclosures
from solver.whatif.scenario import Add, Bump, Edit, GrowAll, Growth, Remove, apply_change

# `nix store diff-closures` of a whole system is kilobytes; this is far beyond any.
MAX_DIFF_BYTES = 16 << 20

CHANGE_KINDS = ("bump", "add", "remove", "grow_all", "diff")


# Bounds that keep a study file from asking for hours of work or gigabytes of memory.
MAX_GROWTH_PERCENT = 100_000.0
MAX_GENERATED_PATHS = 200_000

# What Nix allows in a store path's name (nix/src/libstore/path.cc, checkName).
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-._?=")


def growth(value: Any, where: y.Where) -> Growth:
    """`3%`, `-1.5%`, `+2M`, `-512K`: a relative or an absolute change of size."""
    text = str(value).strip() if isinstance(value, str | int | float) else None
    if text is None or isinstance(value, bool):
        raise where.error("expected a growth such as 3%, -1%, +2M or -512K")
    if text.endswith("%"):
        try:
            percent = float(text[:-1])
        except ValueError:
            raise where.error(f"invalid percentage {text!r}") from None
        # A package can shrink to nothing, not below; a 1000-fold growth is no update.
        if not -100 < percent <= MAX_GROWTH_PERCENT:
            raise where.error(f"{text}: a growth between -100% and +{MAX_GROWTH_PERCENT:g}%")
        return Growth(1 + percent / 100)
    sign = -1 if text.startswith("-") else 1
    try:
        delta = parse_size(text.lstrip("+-"))
    except InputError as e:
        raise where.error(f"{e} (or a percentage such as 3%)") from e
    if delta > MAX_NAR_SIZE:
        raise where.error(
            f"{text}: a growth of at most {format_size(MAX_NAR_SIZE)} a path (no path is larger)"
        )
    return Growth(delta=sign * delta)


def name_part(value: Any, where: y.Where, what: str) -> str:
    """A package's name or version as a store path spells it: letters, digits, `+-._?=`."""
    # A number in YAML (`version: 3.0`) is the version as written.
    text = str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
    text = y.string(text, where)
    if not set(text) <= _NAME_CHARS or text.startswith("."):
        raise where.error(
            f"{text!r}: a {what} in a store path has only letters, digits and + - . _ ? = "
            "(and does not start with a dot)"
        )
    return text


def apply_checked(
    closure: Closure, change: Edit, rng: random.Random, where: y.Where, label: str = ""
) -> Closure:
    """`closure` with `change` applied; an error names the change's line (and `label`, the
    closure's name, when there are several), as does a path grown past `MAX_NAR_SIZE`."""
    prefix = f"{label}: " if label else ""
    try:
        out = apply_change(closure, change, rng, where.path)
    except InputError as e:  # ScenarioError too
        raise where.error(prefix + str(e).removeprefix(f"{where.path}: ")) from e
    largest = max(out.infos(), key=lambda i: i.nar_size, default=None)
    if largest is not None and largest.nar_size > MAX_NAR_SIZE:
        raise where.error(
            f"{prefix}grows {largest.path} to {largest.nar_size:,} bytes, larger than any "
            f"store path can be ({MAX_NAR_SIZE:,} bytes, {format_size(MAX_NAR_SIZE)})"
        )
    return out


def read_current(value: Any, where: y.Where, base: Path) -> Closure:
    """A `current:` value: a source the planner reads, or `{generate: {...}}`."""
    if isinstance(value, str):
        try:
            return read_source(_relative(value, base))
        except BudgetSolveError as e:
            raise where.error(str(e)) from e
    spec = y.mapping(value, where, required=["generate"])
    gen = y.mapping(
        spec["generate"], where.key(spec, "generate"), optional=["paths", "components", "seed"]
    )
    at = where.key(spec, "generate")
    paths = y.integer(
        gen.get("paths", 1000), at.key(gen, "paths"), minimum=20, maximum=MAX_GENERATED_PATHS
    )
    comps = y.integer(gen.get("components", max(10, paths // 20)), at.key(gen, "components"))
    if not 1 <= comps <= paths // 2:
        raise at.key(gen, "components").error(f"must be between 1 and {paths // 2}")
    seed = y.integer(gen.get("seed", 0), at.key(gen, "seed"))
    return generate_system(paths, comps, seed=seed)


def _relative(path: str, base: Path) -> str:
    p = Path(os.path.expanduser(path))
    return str(p if p.is_absolute() or path.startswith("/nix/store") else base / p)


def parse_change(
    value: Any, where: y.Where, base: Path, current: Closure, notes: list[str]
) -> list[Edit]:
    """One item of `changes:` (a `diff` item gives several); skipped names go to `notes`."""
    if not isinstance(value, dict):
        raise where.error(f"a change is a mapping with one of: {', '.join(CHANGE_KINDS)}")
    kind = y.one_of(value, where, CHANGE_KINDS)
    if kind == "bump":
        m = y.mapping(value, where, required=["bump"], optional=["version", "grow"])
        names = y.strings(m["bump"], where.key(m, "bump"), at_least=1)
        vw = where.key(m, "version")
        version = name_part(m["version"], vw, "version") if "version" in m else None
        grow = growth(m["grow"], where.key(m, "grow")) if "grow" in m else Growth()
        return [Bump(tuple(names), grow, version)]
    if kind == "add":
        m = y.mapping(value, where, required=["add", "size"], optional=["references"])
        name = name_part(m["add"], where.key(m, "add"), "name")
        refs = y.strings(m.get("references", []), where.key(m, "references"))
        return [Add(name, y.path_size(m["size"], where.key(m, "size")), tuple(refs))]
    if kind == "remove":
        m = y.mapping(value, where, required=["remove"])
        return [Remove(tuple(y.strings(m["remove"], where.key(m, "remove"), at_least=1)))]
    if kind == "grow_all":
        m = y.mapping(value, where, required=["grow_all"])
        return [GrowAll(growth(m["grow_all"], where.key(m, "grow_all")))]
    m = y.mapping(value, where, required=["diff"], optional=["block"])
    file = Path(_relative(y.string(m["diff"], where.key(m, "diff")), base))
    block = y.integer(m["block"], where.key(m, "block"), minimum=0) if "block" in m else None
    try:
        text = read_text(file, MAX_DIFF_BYTES, what="diff-closures output")
    except InputError as e:
        raise where.key(m, "diff").error(str(e)) from None
    try:
        translated = diffclosures.read(text, current, block=block)
    except InputError as e:
        raise where.key(m, "diff").error(str(e)) from e
    if translated.skipped:
        shown = ", ".join(translated.skipped[:5])
        more = f" and {len(translated.skipped) - 5} more" if len(translated.skipped) > 5 else ""
        notes.append(f"{file.name}: not in the current closure, skipped: {shown}{more}")
    return translated.changes
