"""Nix verbs that build, fetch, copy, evaluate and switch: each takes the host it runs on
and the user's pass-through flags (`NixFlags`) as values, as nixos-rebuild-ng passes
`remote` and its build flags."""

import json
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from adapters.nixstore import process
from adapters.nixstore.host import LOCAL, Host
from adapters.nixstore.nix import NIX_STORE, invalid_paths, lines
from adapters.nixstore.ssh import Ssh
from adapters.nixstore.versions import NIX
from solver.errors import NixError

# Evaluating a flake needs the flakes feature too, on every Nix that has it.
FLAKES: Final = ("nix", "--extra-experimental-features", "nix-command flakes")


@dataclass(frozen=True)
class NixFlags:
    """What every build, fetch and evaluation is given besides its own arguments: the
    user's pass-through flags (`--option NAME VALUE`, `--max-jobs N`, `--cores N`,
    `--fallback`, `--show-trace`, as nixos-rebuild passes them), and where builds' logs
    go, line by line (`log`; None: nowhere), in Nix's internal JSON for a log monitor
    with `json_log`."""

    passed: tuple[str, ...] = ()
    log: Callable[[str], None] | None = None
    json_log: bool = False

    def build_argv(self, substituters: Iterable[str] = ()) -> list[str]:
        """The flags of a build or a fetch: `--option substituters URLS` when any are
        given, the pass-through flags, and the log format."""
        urls = " ".join(substituters)
        options = ["--option", "substituters", urls] if urls else []
        log_format = ["--log-format", "internal-json", "-v"] if self.json_log else []
        return [*options, *self.passed, *log_format]


@contextmanager
def logged(
    passed: Sequence[str], sink: Callable[[str], None] | None, *, monitor: Sequence[str] | None
) -> Iterator[NixFlags]:
    """The flags of the block's builds: their log to `sink`, or with `monitor` (`nom
    --json`: `log_monitor()`), in Nix's internal JSON to that program instead, which
    draws the builds on stderr while the block runs."""
    if sink is None or monitor is None:
        yield NixFlags(tuple(passed), sink)
        return
    with process.monitored(monitor) as feed:
        yield NixFlags(tuple(passed), feed, json_log=True)


def log_monitor() -> list[str] | None:
    """nix-output-monitor's `nom --json`, when it is installed."""
    nom = shutil.which("nom")
    return [nom, "--json"] if nom else None


def copy_to(
    to: Ssh | None,
    paths: Sequence[str],
    flags: NixFlags,
    *,
    derivation: bool = False,
    source: Ssh | None = None,
) -> None:
    """`nix copy` the closures of `paths` from this store to `to`'s over SSH (None: to
    this store, from `source`); what the host has already is not sent again. Run here.

    `derivation`: `paths` are derivations, and what goes is their closures (the
    derivations and sources they need), not their outputs. `source`: from that host's
    store instead of this one's; the destination then fetches from its own substituters
    what they have, and only the rest passes through here."""
    if not paths:
        return
    argv = [*NIX, "copy", *(["--derivation"] * derivation)]
    if to is not None:
        argv += ["--to", to.store_uri]
    if source is not None:
        argv += ["--from", source.store_uri, "--substitute-on-destination"]
    LOCAL.run([*argv, *paths], check=True, log=flags.log)


def ship(host: Host, paths: Sequence[str], flags: NixFlags, *, derivation: bool = False) -> None:
    """To another host: copy there what this machine has of `paths` (with `derivation`,
    the closures of derivations); the host fetches the rest from its substituters.
    Nothing to do here."""
    if not isinstance(host, Ssh) or not paths:
        return
    here = set(paths) - set(invalid_paths(LOCAL, paths))
    copy_to(host, [p for p in paths if p in here], flags, derivation=derivation)


@contextmanager
def built_on(
    builder: Ssh, drv: str, flags: NixFlags, *, substituters: Iterable[str] = ()
) -> Iterator[str]:
    """`drv` built on `builder` (its derivation closure copied there first), as
    nixos-rebuild --build-host does; within the block, its output, kept there by a GC
    root in a temporary directory of that host's, removed after."""
    copy_to(builder, [drv], flags, derivation=True)
    made = builder.run(["mktemp", "-d", "-t", "budget-solve-build.XXXXXX"], check=True)
    directory = made.stdout.strip()
    try:
        root = Path(directory) / "result"
        yield realise_path(builder, drv, flags, root=root, substituters=substituters)
    finally:
        builder.run(["rm", "-rf", "--", directory], check=False)


def build_generation(
    host: Host,
    expression: Path,
    name: str,
    paths: Iterable[str],
    *,
    out_link: Path,
    paths_file: Path,
    flags: NixFlags,
    substituters: Iterable[str] = (),
) -> str:
    """Build an intermediate generation referencing `paths` with `expression` (a `.nix`
    file taking `name` and `pathsFile`, a JSON list); `out_link` roots it.

    The list goes through a file: thousands of paths would overflow the argument list.
    """
    host.write_atomic(paths_file, json.dumps(sorted(paths)))
    if host.address is not None:
        # The expression is ours: the host gets a copy beside the list.
        shipped = paths_file.parent / expression.name
        host.write_atomic(shipped, expression.read_text())
        expression = shipped
    argv = [
        "nix-build",
        str(expression),
        "--argstr",
        "name",
        name,
        "--argstr",
        "pathsFile",
        str(paths_file.absolute()),
        "--out-link",
        str(out_link),
        *flags.build_argv(substituters),
    ]
    outputs = lines(host.run(argv, check=True, log=flags.log).stdout)
    if not outputs:
        raise NixError(f"nix-build of {name} printed no output path")
    return outputs[-1]


def realise_path(
    host: Host, path: str, flags: NixFlags, *, root: Path, substituters: Iterable[str] = ()
) -> str:
    """Fetch (or build) a store path and its closure, rooted at `root` while we work.

    For a `.drv` the result is its (first) output path, built or substituted.
    """
    argv = [
        *NIX_STORE,
        "--realise",
        path,
        "--add-root",
        str(root),
        *flags.build_argv(substituters),
    ]
    result = host.run(argv, check=True, log=flags.log)
    if not path.endswith(".drv"):
        return path
    outputs = lines(result.stdout)
    if not outputs:
        raise NixError(f"nix-store --realise {path} printed no output path")
    return host.realpath(outputs[0])


def build_file_argv(
    expression: Sequence[str], out_link: Path, flags: NixFlags, substituters: Iterable[str] = ()
) -> list[str]:
    """`nix-build EXPRESSION... --out-link LINK`: a classic expression."""
    return ["nix-build", *expression, "--out-link", str(out_link), *flags.build_argv(substituters)]


def build_flake_file_argv(
    expression: Sequence[str], out_link: Path, flags: NixFlags, substituters: Iterable[str] = ()
) -> list[str]:
    """`nix build --impure -f FILE ARGS...`: a file that evaluates a flake."""
    return [
        *FLAKES,
        "build",
        "--impure",
        "--out-link",
        str(out_link),
        # Nix 2.8 has no --print-out-paths; --json names the outputs.
        "--json",
        "-f",
        *expression,
        *flags.build_argv(substituters),
    ]


def _nix_instantiate(flakes: bool) -> list[str]:
    """`nix-instantiate`, with the flakes feature on when `flakes`."""
    return ["nix-instantiate", *(FLAKES[1:] if flakes else ())]


def instantiate_argv(
    expression: Sequence[str], root: Path, flags: NixFlags, *, flakes: bool = False
) -> list[str]:
    """`nix-instantiate EXPRESSION... --add-root ROOT` (with the flakes feature on)."""
    return [*_nix_instantiate(flakes), *expression, "--add-root", str(root), *flags.passed]


def build_file(
    host: Host,
    expression: Sequence[str],
    flags: NixFlags,
    *,
    out_link: Path,
    flakes: bool = False,
    substituters: Iterable[str] = (),
    env: Mapping[str, str] | None = None,
) -> str:
    """Build what `expression` evaluates to (through a flake with `flakes`); its path."""
    argv = (
        build_flake_file_argv(expression, out_link, flags, substituters)
        if flakes
        else build_file_argv(expression, out_link, flags, substituters)
    )
    stdout = host.run(argv, check=True, log=flags.log, env=env).stdout
    if flakes:
        try:
            return str(json.loads(stdout)[0]["outputs"]["out"])
        except (json.JSONDecodeError, LookupError, TypeError) as e:
            raise NixError(f"nix build printed no output path: {stdout[:200]!r}") from e
    printed = lines(stdout)
    if not printed:
        raise NixError(f"{argv[0]} printed no output path")
    return printed[-1]


def instantiate(
    host: Host,
    expression: Sequence[str],
    flags: NixFlags,
    *,
    root: Path,
    flakes: bool = False,
    env: Mapping[str, str] | None = None,
    label: str = "nix-instantiate",
) -> str:
    """Evaluate `expression` without building it; its derivation, rooted at `root`.
    `label`: what errors call the evaluation (the command line is ours, not the user's)."""
    host.make_dirs(root.parent)
    argv = instantiate_argv(expression, root, flags, flakes=flakes)
    printed = lines(host.run(argv, check=True, env=env, label=label).stdout)
    if not printed:
        raise NixError("nix-instantiate printed no derivation")
    return host.realpath(printed[-1])


def evaluate_argv(expression: Sequence[str], *, flakes: bool = False) -> list[str]:
    """`nix-instantiate --eval --json --strict EXPRESSION...` (with the flakes feature on)."""
    return [*_nix_instantiate(flakes), "--eval", "--json", "--strict", *expression]


def evaluate(
    host: Host, expression: Sequence[str], *, flakes: bool = False, label: str = "nix-instantiate"
) -> object:
    """The value of `expression`, through JSON; `label` as for `instantiate`."""
    stdout = host.run(evaluate_argv(expression, flakes=flakes), check=True, label=label).stdout
    try:
        return json.loads(stdout)
    except json.JSONDecodeError as e:
        raise NixError(f"nix-instantiate --eval printed no JSON: {stdout[:200]!r}") from e


def switch_argv(toplevel: str, action: str) -> list[str]:
    return [f"{toplevel}/bin/switch-to-configuration", action]


def switch_to_configuration(host: Host, toplevel: str, action: str, flags: NixFlags) -> None:
    """Run a NixOS system's `switch-to-configuration ACTION` (switch, boot, test)."""
    host.run(switch_argv(toplevel, action), check=True, log=flags.log)
