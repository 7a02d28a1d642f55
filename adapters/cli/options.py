"""Options, types and exit codes the commands share."""

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from adapters.apply.measure import size_bytes
from adapters.nixstore import nix
from adapters.nixstore.host import named
from solver.errors import InputError
from solver.units import parse_size

EXIT_OK, EXIT_FAILED, EXIT_INPUT, EXIT_INFEASIBLE, EXIT_REBOOT = 0, 1, 2, 3, 4
EXIT_INTERRUPTED = 130

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


class Finite(click.FloatRange):
    """A float in a range that is also a real number: no nan, no inf."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
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
WORKERS_OPTION = click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="CP-SAT worker threads [default: CPU count, at most 8].",
)
QUIET_OPTION = click.option("-q", "--quiet", is_flag=True, help="No progress messages on stderr.")


class LimitOrAuto(Size):
    """A byte size, or `auto`, the string: the command measures the filesystem that holds
    the store where it plans (`filesystem_limit`: here, or on a --target-host)."""

    name = "SIZE|auto"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value == "auto":
            return "auto"
        return super().convert(value, param, ctx)


def filesystem_limit(host: str | None) -> int:
    """`--limit auto`: the size of the filesystem that holds the store, here or on `host`."""
    store = nix.store_dir()
    with nix.on_host(host):
        where = named(store)
        try:
            size = size_bytes(store)
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
        metavar="OUT.png",
        callback=plot_path,
        help=text,
    )
