"""Options and types the commands share."""

import logging
import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar

import click

from adapters.apply.measure import size_bytes
from adapters.nixstore import ssh
from adapters.nixstore.host import Host as Machine
from solver.errors import InputError
from solver.units import Rounding, format_size, parse_size

SRC_HELP = (
    "a store path (read from the live store), a saved `nix path-info --json` file (any Nix "
    "version), a closure-graph or registration file, or a directory of .narinfo files"
)


class Size(click.ParamType):  # type: ignore[type-arg]
    """A byte size: 9G, 9GiB, 9.5G, 512M or plain bytes (binary units)."""

    name = "SIZE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_size(value)
        except InputError as e:
            self.fail(str(e), param, ctx)


def couples(values: Sequence[str]) -> list[list[str]]:
    groups = []
    for value in values:
        names = [n.strip() for n in value.split(",") if n.strip()]
        if len(names) < 2:
            raise InputError(f"--couple {value!r}: name at least two components, comma-separated")
        groups.append(names)
    return groups


# Options that planning and `apply` share.
RESERVE_OPTION = click.option(
    "--reserve",
    type=Size(),
    default="0",
    show_default=True,
    help="Space kept free at every step (min-free, SQLite WAL, the reserved file).",
)
NON_VITAL_OPTION = click.option(
    "--non-vital",
    multiple=True,
    metavar="NAME",
    help="A package the plan may remove for a while and add back later. Repeatable.",
)


def _shown(value: str) -> str:
    """`value` quoted for a one-line message, cut short when it is long."""
    return repr(value if len(value) <= 40 else value[:40] + "...")


# ASCII only: int(), float() and str.isdigit() also take other scripts' digits ("٣"),
# underscores ("1_000") and surrounding spaces, which Nix reads differently or not at all.
_WHOLE: Final = re.compile(r"[0-9]+")
_DECIMAL: Final = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


class Whole(click.ParamType):  # type: ignore[type-arg]
    """A whole number in ASCII decimal digits, from `minimum` to `maximum`."""

    name = "INTEGER"

    def __init__(self, minimum: int, maximum: int) -> None:
        self.minimum, self.maximum = minimum, maximum

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str) and _WHOLE.fullmatch(value):
            # Compared by length first: int() refuses strings of over 4,300 digits.
            digits = value.lstrip("0") or "0"
            number = int(digits) if len(digits) <= len(str(self.maximum)) else self.maximum + 1
        else:
            self.fail(f"{_shown(str(value))} is not a whole number in decimal digits", param, ctx)
        if not self.minimum <= number <= self.maximum:
            self.fail(
                f"{_shown(str(value))} is not in the range {self.minimum} to {self.maximum}",
                param,
                ctx,
            )
        return number


# Nix reads --max-jobs and --cores into `unsigned int` settings.
NIX_UNSIGNED_MAX: Final = 2**32 - 1


class MaxJobs(Whole):
    """Nix's --max-jobs: `auto` or an unsigned int."""

    name = "N|auto"

    def __init__(self) -> None:
        super().__init__(0, NIX_UNSIGNED_MAX)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value == "auto":
            return "auto"
        if isinstance(value, str) and not _WHOLE.fullmatch(value):
            self.fail(
                f"{_shown(value)} is not auto or a whole number in decimal digits", param, ctx
            )
        return super().convert(value, param, ctx)


# A Nix setting's name, as nix.conf spells them (`connect-timeout`, `extra-substituters`).
_SETTING_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class NixSettingName(click.ParamType):  # type: ignore[type-arg]
    """The NAME of `--option NAME VALUE`: never an option itself, never two words."""

    name = "NAME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str) or not _SETTING_NAME.fullmatch(value):
            self.fail(f"{_shown(str(value))} is not a Nix setting name", param, ctx)
        return value


class NixSettingValue(click.ParamType):  # type: ignore[type-arg]
    """The VALUE of `--option NAME VALUE`: one line, as nix.conf holds it."""

    name = "VALUE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str) or any(c in value for c in "\0\n\r"):
            self.fail(f"{_shown(str(value))}: a setting's value is one line of text", param, ctx)
        return value


class Host(click.ParamType):  # type: ignore[type-arg]
    """An SSH host, `[USER@]HOST`, `ssh://[USER@]HOST` or `ssh-ng://[USER@]HOST`, checked as
    every host value is (`ssh.check_host`): nothing ssh could read as an option of its
    own or as a second line."""

    name = "[USER@]HOST"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        text = str(value)
        try:
            ssh.check_host(text, None)
        except InputError as e:
            self.fail(str(e), param, ctx)
        return text


class Finite(click.FloatRange):
    """A float in a range that is also a real number in ASCII decimal digits: no nan, no
    inf, no other scripts' digits."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not _DECIMAL.fullmatch(value):
            self.fail(f"{_shown(value)} is not a finite decimal number", param, ctx)
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


TIME_LIMIT_OPTION = click.option(
    "--time-limit",
    type=Finite(min=0.1, max=86_400),
    default=60.0,
    show_default=True,
    help="Seconds the optimiser may spend; the best plan so far is printed.",
)
# More is a typo, not a machine: each CP-SAT worker holds a copy of the model.
MAX_WORKERS: Final = 1024
WORKERS_OPTION = click.option(
    "--workers",
    type=Whole(1, MAX_WORKERS),
    default=None,
    help="CP-SAT worker threads [default: 1: the same plan every run]. More run CP-SAT's "
    "parallel portfolio against the wall clock: sometimes a proof sooner on large "
    "models, but two runs may differ.",
)


def _quiet(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    """-q silences warnings too (a cache that cannot be reached, say), unless --debug;
    the level comes back when the command ends, on an error too (the outermost context
    closes then; this command's does not when a later option is wrong)."""
    root = logging.getLogger()
    top = ctx.find_root()
    if value and not (top.obj or {}).get("debug") and root.level < logging.ERROR:
        level = root.level
        root.setLevel(logging.ERROR)
        top.call_on_close(lambda: root.setLevel(level))
    return value


QUIET_OPTION = click.option(
    "-q",
    "--quiet",
    is_flag=True,
    callback=_quiet,
    help="No progress messages or warnings on stderr; errors still say what failed.",
)


class LimitOrAuto(Size):
    """A byte size, or `auto`, the string: the command measures the filesystem that holds
    the store where it plans (`filesystem_limit`: here, or on a --target-host)."""

    name = "SIZE|auto"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value == "auto":
            return "auto"
        size = super().convert(value, param, ctx)
        if size == 0:
            self.fail(f"{_shown(str(value))}: a budget of 0 bytes holds no system", param, ctx)
        return size


def check_reserve(limit: int, reserve: int) -> None:
    """--reserve is kept free out of --limit: it must leave some of the budget to the store."""
    if reserve >= limit:
        raise InputError(
            f"--reserve {format_size(reserve)} leaves nothing of --limit {format_size(limit)} "
            "for the store: the reserve is kept free out of the budget"
        )


def over_the_disk(limit: int, size: int, where: str) -> str:
    """What a --limit above the size of the store's filesystem is: `plan` notes it,
    `apply` refuses it."""
    return (
        f"--limit {format_size(limit)} is more than the filesystem of {where} holds "
        f"({format_size(size, Rounding.DOWN, 2)})"
    )


def filesystem_limit(host: Machine) -> int:
    """`--limit auto`: the size of the filesystem that holds the store on `host`."""
    store = host.store_dir()
    where = host.named(store)
    try:
        size = size_bytes(host, store)
    except OSError as e:
        raise InputError(
            f"--limit auto: cannot measure the filesystem of {where}: {e.strerror}"
        ) from e
    if size <= 0:
        # Some filesystems (procfs, some overlays and FUSE mounts) report no blocks.
        raise InputError(
            f"--limit auto: the filesystem of {where} reports a size of 0; give the budget as a "
            "size, for example --limit 9G"
        )
    return size


Command = TypeVar("Command", bound=Callable[..., Any])


def plot_path(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    if value is not None and not value.parent.is_dir():
        raise click.BadParameter(f"no directory {value.parent} for {value}", ctx, param)
    return value


def plot_option(text: str) -> Callable[[Command], Command]:
    """`--plot OUT.png`, checked before any work is done."""
    return click.option(
        "--plot",
        type=click.Path(path_type=Path, dir_okay=False),
        metavar="OUT.png|svg|pdf",
        callback=plot_path,
        help=text,
    )
