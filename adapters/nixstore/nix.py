"""One typed function per nix verb. Every call goes through `process.run`.

The environment is inherited as it is: NIX_STORE_DIR, NIX_STATE_DIR, NIX_CONF_DIR and
NIX_REMOTE select the store exactly as they do for the nix commands a user types.
"""

import atexit
import contextvars
import functools
import hashlib
import json
import os
import shlex
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from adapters.nixstore import formats, host, process
from solver.closure import Closure, PathInfo
from solver.errors import InputError, NixError

# `nix path-info` is an experimental command on every Nix up to now (2.8 through 2.3x).
NIX: Final = ("nix", "--extra-experimental-features", "nix-command")
# Evaluating a flake needs the flakes feature too, on every Nix that has it.
FLAKES: Final = ("nix", "--extra-experimental-features", "nix-command flakes")
NIX_STORE: Final = ("nix-store",)
JSON: Final = ("--json",)
RECURSIVE: Final = ("--recursive",)

DEFAULT_STORE_DIR: Final = "/nix/store"
DEFAULT_STATE_DIR: Final = "/nix/var/nix"


@contextmanager
def build_log(
    sink: Callable[[str], None] | None, *, monitor: Sequence[str] | None = None
) -> Iterator[None]:
    """Within the block, every build, fetch and activation streams its log to `sink`; with
    `monitor` (`nom --json`: `log_monitor()`), builds log in Nix's internal JSON to that
    program instead, which draws the build on stderr."""
    if sink is None or monitor is None:
        with process.streaming(sink):
            yield
        return
    token = _log_format.set(("--log-format", "internal-json", "-v"))
    try:
        with process.monitored(monitor) as feed, process.streaming(feed):
            yield
    finally:
        _log_format.reset(token)


def log_monitor() -> list[str] | None:
    """nix-output-monitor's `nom --json`, when it is installed."""
    nom = shutil.which("nom")
    return [nom, "--json"] if nom else None


_log_format: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar(
    "log_format", default=()
)


# The store protocol `nix copy` speaks to each host, by address, as it was last named:
# `ssh` (the host runs `nix-store --serve`), or `ssh-ng` for ssh-ng://ADDRESS
# (`nix-daemon --stdio`).
_PROTOCOLS: dict[str, str] = {}


def _split_host(host: str, what: str | None = "host") -> tuple[str | None, str]:
    """The protocol a host is named with (None: none) and its SSH address, checked as
    `check_host` says; the errors name the value as `what` does."""
    named, sep, address = host.partition("://")
    shown = f"{what} {host!r}" if what else repr(host)
    scheme = named if sep else None
    if not sep:
        address = host
    elif scheme not in ("ssh", "ssh-ng") or not address or "/" in address:
        raise InputError(
            f"{shown}: expected [USER@]HOST, ssh://[USER@]HOST or ssh-ng://[USER@]HOST"
        )
    problem = _address_problem(address)
    if problem is not None:
        raise InputError(f"{shown}: {problem}")
    return scheme, address


def _address_problem(address: str) -> str | None:
    user, at, name = address.rpartition("@")
    if not address:
        return "a host address may not be empty"
    # ssh takes a destination that starts with `-` for an option (-oProxyCommand=...
    # runs a command here); a user is the start of the destination.
    if address.startswith("-"):
        return "a host address may not start with '-'"
    # A blank would be a second word on the host's side and in the logs; a newline or an
    # escape a second line or a terminal command wherever the address is printed.
    if any(c.isspace() or not c.isprintable() for c in address):
        return "a host address may not contain whitespace or control characters"
    if at and not user:
        return "no user before '@'"
    if not name:
        return "no host after '@'"
    if name.startswith("-"):
        return "a host name may not start with '-'"
    return None


def check_host(host: str, what: str | None = "host") -> str:
    """The SSH address `host` names (`[USER@]HOST`, `ssh://[USER@]HOST` or
    `ssh-ng://[USER@]HOST`), refused with a one-line InputError that calls it `what` (an
    option's name; None: the value alone) wherever ssh could read it as anything but its
    destination. Nothing is recorded (`host_address` does that)."""
    return _split_host(host, what)[1]


def host_address(host: str) -> str:
    """`[USER@]HOST`, `ssh://[USER@]HOST` or `ssh-ng://[USER@]HOST` as an SSH address, checked
    (`check_host`); the protocol (`ssh` when none is named) is kept for the copies to
    that address."""
    scheme, address = _split_host(host)
    _PROTOCOLS[address] = scheme or "ssh"
    return address


def ssh_command(host: str) -> list[str]:
    """`ssh` to `host` as Nix and nixos-rebuild run it: with `$NIX_SSHOPTS`, and never
    asking for a password (no one may be there to type it)."""
    host = host_address(host)
    try:
        options = shlex.split(os.environ.get("NIX_SSHOPTS", ""))
    except ValueError as e:
        raise InputError(f"NIX_SSHOPTS: {e}") from None
    # One connection for all our commands to a host, as nixos-rebuild shares its own:
    # each command is then a session on it, not a new login.
    shared = ["-o", "ControlMaster=auto", "-o", f"ControlPath={_control_dir()}/%C"]
    # The destination last, after every option: `process.on_remote` puts `--` right after
    # it, then the command, as nixos-rebuild-ng does.
    return ["ssh", *options, "-o", "BatchMode=yes", *shared, "-o", "ControlPersist=60", host]


@functools.cache
def _control_dir() -> str:
    """A directory of our own for the shared connections' sockets, removed at exit with
    the connections (`ssh -O exit`)."""
    directory = tempfile.mkdtemp(prefix="budget-solve-ssh-")
    atexit.register(_close_connections, directory)
    return directory


def _close_connections(directory: str) -> None:
    for socket in Path(directory).iterdir():
        process.run(["ssh", "-o", f"ControlPath={socket}", "-O", "exit", "-"], check=False)
    shutil.rmtree(directory, ignore_errors=True)


def on_host(host: str | None, *, sudo: bool = False) -> AbstractContextManager[None]:
    """Within the block, every nix command runs on `host` over SSH (None: here), as root
    through `sudo` there with `sudo`."""
    return process.remote(ssh_command(host) if host is not None else None, sudo=sudo)


def copy_to(
    address: str | None,
    paths: Sequence[str],
    *,
    derivation: bool = False,
    source: str | None = None,
) -> None:
    """`nix copy` the closures of `paths` from this store to `address`'s over SSH (None:
    to this store, from `source`); what the host has already is not sent again. Run
    here, whatever host the block is on.

    `derivation`: `paths` are derivations, and what goes is their closures (the
    derivations and sources they need), not their outputs. `source`: from that host's
    store instead of this one's; the destination then fetches from its own substituters
    what they have, and only the rest passes through here."""
    if not paths:
        return
    argv = [*NIX, "copy", *(["--derivation"] * derivation)]
    if address is not None:
        argv += ["--to", _store_uri(address)]
    if source is not None:
        argv += ["--from", _store_uri(source), "--substitute-on-destination"]
    with on_host(None):
        process.run([*argv, *paths], check=True, stream=True)


def ship(paths: Sequence[str], *, derivation: bool = False) -> None:
    """On another host (the block's): copy there what this machine has of `paths` (with
    `derivation`, the closures of derivations); the host fetches the rest from its
    substituters. Nothing to do here."""
    address = host.remote()
    if address is None or not paths:
        return
    with on_host(None):
        here = set(paths) - set(invalid_paths(paths))
    copy_to(address, [p for p in paths if p in here], derivation=derivation)


def _store_uri(host: str) -> str:
    """The store URI of a host, by the protocol it is named with or was last named with."""
    scheme, address = _split_host(host)
    return f"{scheme or _PROTOCOLS.get(address, 'ssh')}://{address}"


@contextmanager
def built_on(address: str, drv: str, *, substituters: Iterable[str] = ()) -> Iterator[str]:
    """`drv` built on `address` (its derivation closure copied there first), as
    nixos-rebuild --build-host does; within the block, its output, kept there by a GC
    root in a temporary directory of that host's, removed after."""
    copy_to(address, [drv], derivation=True)
    with on_host(address):
        made = process.run(["mktemp", "-d", "-t", "budget-solve-build.XXXXXX"], check=True)
        directory = made.stdout.strip()
    try:
        with on_host(address):
            built = realise_path(drv, root=Path(directory) / "result", substituters=substituters)
        yield built
    finally:
        with on_host(address):
            process.run(["rm", "-rf", "--", directory], check=False)


def live_closure(path: str, *, source: str) -> Closure:
    """The closure of a store path as the store commands run on (here or a host) have it."""
    return Closure(path_info([path], recursive=True), [path], source=source)


def host_closure(host: str, path: str) -> Closure:
    """The closure of `path` (a store path or a link to one, such as /run/current-system)
    on `host`, as that host's store has it."""
    with on_host(host):
        resolved = process.run(["readlink", "-f", "--", path], check=True).stdout.strip()
        if not is_store_path(resolved):
            raise InputError(
                f"{host}:{path}: not a store path or a link to one (it resolves to "
                f"{resolved or 'nothing'})"
            )
        return live_closure(resolved, source=f"{host}:{path}")


def store_dir() -> str:
    """The store directory Nix uses here: $NIX_STORE_DIR, else /nix/store."""
    # Nix also honours the older NIX_STORE; empty values count as unset, as in Nix.
    value = os.environ.get("NIX_STORE_DIR") or os.environ.get("NIX_STORE") or DEFAULT_STORE_DIR
    return value.rstrip("/") or "/"


def in_store(path: str) -> bool:
    """Whether `path` lies in the store directory (a store path or a file inside one)."""
    return path.startswith(store_dir().rstrip("/") + "/")


def is_store_path(path: str) -> bool:
    """Whether `path` is a top-level store path: STORE/NAME, nothing below it."""
    if not in_store(path):
        return False
    base = path[len(store_dir().rstrip("/")) + 1 :]
    return bool(base) and "/" not in base


def state_dir() -> Path:
    """Nix's state directory on the host commands run on: its $NIX_STATE_DIR, else
    /nix/var/nix (profiles, GC roots and our own state directory are the host's)."""
    return Path(host.environment("NIX_STATE_DIR") or DEFAULT_STATE_DIR)


def state_db_path() -> Path:
    """This machine's store database: $NIX_STATE_DIR/db/db.sqlite (read here, directly)."""
    return Path(os.environ.get("NIX_STATE_DIR") or DEFAULT_STATE_DIR) / "db" / "db.sqlite"


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


class CacheUnreachableError(NixError):
    """`nix path-info --store URL` could not reach the cache: Nix's "unable to download"
    (connection refused, no such host, a timeout, an HTTP error), after its retries."""


def path_info(
    paths: Iterable[str],
    *,
    recursive: bool = True,
    store: str | None = None,
    known_only: bool = False,
) -> list[PathInfo]:
    """`nix path-info --json [--recursive] [--store URL] PATHS`, parsed.

    A path the store does not have is a `ClosureError` naming it (Nix prints it as invalid),
    or a `NixError` when Nix refuses outright, as it does with `--recursive`; a `store`
    that cannot be reached is a `CacheUnreachableError`.
    """
    paths = list(paths)
    if not paths:
        return []
    argv = [*NIX, "path-info", *JSON, *json_format(version())]
    if recursive:
        argv += RECURSIVE
    if store is not None:
        argv += ["--store", store]
    argv += paths
    try:
        result = process.run(argv, check=True)
    except NixError as e:
        reason = str(e).partition("unable to download")
        if store is not None and reason[1]:
            raise CacheUnreachableError("".join(reason[1:])) from e
        raise
    source = f"nix path-info {paths[0]}" + (f" (+{len(paths) - 1} more)" if len(paths) > 1 else "")
    if store is not None:
        source += f" --store {store}"
    try:
        data = json.loads(result.stdout)
    except json.JSONDecodeError as e:
        raise NixError(f"{source} printed malformed JSON (line {e.lineno}): {e.msg}") from e
    return formats.parse_path_info(data, source, known_only=known_only)


def closure(path: str, store: str | None = None) -> Closure:
    """The closure of one path (a store path or a link to one), from the live store or `store`."""
    infos = path_info([path], recursive=True, store=store)
    root = resolve_store_path(path)
    source = f"nix path-info {path}"
    if root is not None and not any(info.path == root for info in infos):
        raise NixError(f"{source}: the output does not list {root} itself")
    return Closure(infos, [root] if root is not None else None, source=source)


def derivation_closure(drvs: Iterable[str]) -> Closure:
    """The closure of store derivations as files (`nix-store -qR` and `--dump-db`).

    `nix path-info` cannot be used: it takes a `.drv` to mean its outputs and builds them.
    """
    drvs = sorted(set(drvs))
    requisites = _lines(
        process.run([*NIX_STORE, "--query", "--requisites", *drvs], check=True).stdout
    )
    dump = process.run([*NIX_STORE, "--dump-db", *requisites], check=True).stdout
    closure = formats.read_registration(dump, "nix-store --dump-db")
    return Closure(closure.infos(), drvs, source="derivations")


def resolve_store_path(path: str) -> str | None:
    """The top-level store path `path` is or lies in, following links such as ./result."""
    sdir = store_dir()
    candidates = [path]
    if not path.startswith(sdir + "/") and os.path.lexists(path):
        candidates.append(os.path.realpath(path))
    for candidate in candidates:
        if candidate.startswith(sdir + "/"):
            base = candidate[len(sdir) + 1 :].split("/", 1)[0]
            if base:
                return f"{sdir}/{base}"
    return None


def invalid_paths(paths: Iterable[str]) -> list[str]:
    """The `paths` that are not valid in the local store (`nix-store --check-validity`)."""
    paths = list(paths)
    if not paths:
        return []
    result = process.run([*NIX_STORE, "--check-validity", "--print-invalid", *paths], check=True)
    return _lines(result.stdout)


def query_outputs(drv: str) -> list[str]:
    """The output paths of a store derivation (`nix-store -q --outputs DRV`)."""
    result = process.run([*NIX_STORE, "--query", "--outputs", drv], check=True)
    outputs = _lines(result.stdout)
    if not outputs:
        raise NixError(f"nix-store --query --outputs {drv} printed no output paths")
    return outputs


def realise(drv: str) -> list[str]:
    """Build or substitute a derivation; its output paths (`nix-store --realise DRV`).

    No GC root is added: the caller registers the result (a profile) before collecting.
    """
    result = process.run([*NIX_STORE, "--realise", drv], check=True)
    outputs = _lines(result.stdout)
    if not outputs:
        raise NixError(f"nix-store --realise {drv} printed no output paths")
    return outputs


def parse_gc_roots(text: str) -> dict[str, str]:
    """Parse `nix-store --gc --print-roots`: each line `LINK -> TARGET`.

    Newer Nix (2.34; not 2.26) prints LINK in double quotes, with `"` and `\\` escaped by
    a backslash (C++'s `std::quoted`): `"/nix/var/nix/profiles/system-1-link" -> /nix/store/…`;
    older versions print it bare. Runtime roots are left out: `{censored}` (another
    user's process, shown when not root), `{temp:PID}`, `{memory:N}`, `{lsof}` and
    `/proc/PID/...` name no link a plan could remove and one such name may pin many paths,
    so they do not fit a link -> target map.
    """
    roots: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith('"'):
            link, rest = _unquote(line)
            arrow, target = (" -> ", rest[4:]) if rest.startswith(" -> ") else ("", "")
        else:
            # The target is a store path and holds no " -> "; a link name might.
            link, arrow, target = line.rpartition(" -> ")
        if not arrow or not link or not target.startswith("/"):
            raise NixError(f"nix-store --gc --print-roots: cannot read line {number}: {line!r}")
        if link.startswith("{") or link.startswith("/proc/"):
            continue
        roots[link] = target
    return roots


def _unquote(line: str) -> tuple[str, str]:
    """A `std::quoted` string at the start of `line` (after its opening quote), and the
    rest of the line; ("", line) when it is not closed."""
    out = []
    i = 1
    while i < len(line):
        c = line[i]
        if c == "\\" and i + 1 < len(line):
            out.append(line[i + 1])
            i += 2
            continue
        if c == '"':
            return "".join(out), line[i + 1 :]
        out.append(c)
        i += 1
    return "", line


def gc_roots() -> dict[str, str]:
    """The garbage collector's roots, link -> store path (`nix-store --gc --print-roots`)."""
    result = process.run([*NIX_STORE, "--gc", "--print-roots"], check=True)
    return parse_gc_roots(result.stdout)


# -- building and switching generations (`budget-solve apply`) ------------------------------


def substituter_flags(substituters: Iterable[str]) -> list[str]:
    """`--option substituters URLS` when any are given, and the user's pass-through flags
    (`nix.build_options`): every build, fetch and evaluation takes both."""
    urls = " ".join(substituters)
    options = ["--option", "substituters", urls] if urls else []
    return options + list(_passed.get()) + list(_log_format.get())


_passed: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("passed", default=())


@contextmanager
def build_options(flags: Sequence[str]) -> Iterator[None]:
    """Within the block, builds, fetches and evaluations also get `flags` (`--option NAME
    VALUE`, `--max-jobs N`, `--cores N`, `--fallback`, `--show-trace`), as nixos-rebuild
    passes them through."""
    token = _passed.set(tuple(flags))
    try:
        yield
    finally:
        _passed.reset(token)


def build_generation(
    expression: Path,
    name: str,
    paths: Iterable[str],
    *,
    out_link: Path,
    paths_file: Path,
    substituters: Iterable[str] = (),
) -> str:
    """Build an intermediate generation referencing `paths` with `expression` (a `.nix`
    file taking `name` and `pathsFile`, a JSON list); `out_link` roots it.

    The list goes through a file: thousands of paths would overflow the argument list.
    """
    host.write_atomic(paths_file, json.dumps(sorted(paths)))
    if host.remote() is not None:
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
        *substituter_flags(substituters),
    ]
    outputs = _lines(process.run(argv, check=True, stream=True).stdout)
    if not outputs:
        raise NixError(f"nix-build of {name} printed no output path")
    return outputs[-1]


def realise_path(path: str, *, root: Path, substituters: Iterable[str] = ()) -> str:
    """Fetch (or build) a store path and its closure, rooted at `root` while we work.

    For a `.drv` the result is its (first) output path, built or substituted.
    """
    argv = [
        *NIX_STORE,
        "--realise",
        path,
        "--add-root",
        str(root),
        *substituter_flags(substituters),
    ]
    result = process.run(argv, check=True, stream=True)
    if not path.endswith(".drv"):
        return path
    outputs = _lines(result.stdout)
    if not outputs:
        raise NixError(f"nix-store --realise {path} printed no output path")
    return host.realpath(outputs[0])


def add_indirect_root(link: Path, path: str) -> None:
    """Keep `path` alive while `link` points at it, as `nix-store --add-root` does.

    The link is made atomically; `gcroots/auto` gets an entry pointing at it, which Nix's
    collector follows and removes once the link is gone.
    """
    host.symlink(link, path)
    auto = state_dir() / "gcroots" / "auto"
    name = hashlib.sha256(str(link.absolute()).encode()).hexdigest()[:32]
    host.symlink(auto / name, str(link.absolute()))


def set_profile(profile: Path, path: str) -> None:
    """Make `path` the profile's new current generation (`nix-env -p PROFILE --set PATH`)."""
    process.run(["nix-env", "--profile", str(profile), "--set", path], check=True)


def delete_generations(profile: Path, numbers: Iterable[int]) -> None:
    """Delete generations of a profile by number; Nix refuses to delete the current one."""
    numbers = sorted(set(numbers))
    if numbers:
        argv = ["nix-env", "--profile", str(profile), "--delete-generations", *map(str, numbers)]
        process.run(argv, check=True)


def generations(profile: Path) -> dict[int, str]:
    """The profile's generations, number -> store path, read from its `P-N-link` links."""
    out: dict[int, str] = {}
    prefix = profile.name + "-"
    for name, target in host.links(profile.parent).items():
        if name.startswith(prefix) and name.endswith("-link"):
            number = name[len(prefix) : -len("-link")]
            if number.isdigit():
                out[int(number)] = target
    return out


def current_generation(profile: Path) -> int | None:
    """The number of the generation the profile link points at."""
    if not host.is_symlink(profile):
        return None
    name = host.readlink(profile).rsplit("/", 1)[-1]
    number = name[len(profile.name) + 1 : -len("-link")]
    return int(number) if number.isdigit() else None


def dead_paths() -> list[str]:
    """`nix-store --gc --print-dead`: what a collection would delete now (deletes nothing)."""
    return _lines(process.run([*NIX_STORE, "--gc", "--print-dead"], check=True).stdout)


def resolve_profile(profile: Path) -> Path:
    """The profile `profile` names, through links to profiles (`~/.nix-profile`).

    A profile links to a generation link (`P-N-link`), which links into the store. A link
    whose target is itself a profile is followed, so that generations are added to the
    real profile, not beside a link to it.
    """
    path = Path(os.path.abspath(profile))
    for _ in range(40):  # the kernel's own limit on chained links
        if not host.is_symlink(path):
            return path
        target = Path(os.path.normpath(path.parent / host.readlink(path)))
        if not host.is_symlink(target):
            return path  # links straight to a store path (or to nothing): a profile
        after = os.path.normpath(target.parent / host.readlink(target))
        if in_store(after):
            return path  # target is a generation link: `path` is the profile
        path = target
    raise NixError(f"{profile}: too many levels of links to a profile")


def profile_system(profile: Path) -> str:
    """The store path a profile's current generation is, checked: every problem with it
    is an InputError that names the profile."""
    where = host.named(profile)
    if not host.lexists(profile):
        raise InputError(f"profile {where}: no such profile")
    if not host.is_symlink(profile):
        kind = "a directory" if host.is_dir(profile) else "a file"
        raise InputError(f"profile {where}: {kind}, not a profile (a link to a generation)")
    system = host.realpath(profile)
    if not is_store_path(system):
        raise InputError(
            f"profile {where}: links to {system}, which is not a store path in {store_dir()}"
        )
    if not host.existing([system]):
        raise InputError(f"profile {where}: its generation {system} is not in the store")
    return system


def collect_garbage() -> None:
    """`nix-store --gc`: delete every path no GC root reaches (also invalid leftovers)."""
    process.run([*NIX_STORE, "--gc"], check=True)


@dataclass(frozen=True)
class Version:
    """`nix --version`: which implementation, and its release as a tuple of numbers."""

    lix: bool
    release: tuple[int, ...]

    def at_least(self, *release: int) -> bool:
        return self.release >= release


def parse_version(text: str) -> Version:
    """`nix (Nix) 2.24.9`, `nix (Lix, like Nix) 2.91.1`, `nix (Determinate Nix 3.6.0) 2.29.0`."""
    words = text.split()
    numbers = next((w for w in reversed(words) if w[:1].isdigit()), "")
    release = []
    for part in numbers.split("."):
        digits = part[: len(part) - len(part.lstrip("0123456789"))]
        if not digits:
            break
        release.append(int(digits))
        if len(digits) < len(part):
            break  # "0pre20251101": the rest is not part of the release
    if not release:
        raise NixError(f"nix --version printed no version: {text.strip()[:80]!r}")
    return Version("Lix" in text, tuple(release))


# The Nix version of each host commands ran on (None: this machine), asked once each.
_VERSIONS: dict[str | None, Version] = {}


def version() -> Version:
    """The Nix on PATH of the host commands run on (asked once per host): each host's own,
    so that one's version-dependent flags never go to another's Nix."""
    where = host.remote()
    if where not in _VERSIONS:
        _VERSIONS[where] = parse_version(process.run(["nix", "--version"], check=True).stdout)
    return _VERSIONS[where]


def forget_versions() -> None:
    """Ask every host for its version again (a test changes the Nix on PATH)."""
    _VERSIONS.clear()


def json_format(v: Version) -> list[str]:
    """`--json-format 1` where `nix path-info` has it (Nix 2.33, which deprecates `--json`
    alone; Lix and older Nix refuse the flag): the object keyed by path of 2.19 on."""
    return ["--json-format", "1"] if not v.lix and v.at_least(2, 33) else []


def show_derivation_argv(v: Version, drv: str) -> list[str]:
    """`nix derivation show` from Nix 2.15 (and in Lix), `nix show-derivation` before."""
    verb = ["derivation", "show"] if v.lix or v.at_least(2, 15) else ["show-derivation"]
    return [*NIX, *verb, "--recursive", drv]


def show_derivation(drv: str) -> dict[str, formats.Derivation]:
    """Every derivation needed to build `drv` (`nix derivation show -r`), in any version's
    JSON, normalised to full store paths."""
    argv = show_derivation_argv(version(), drv)
    result = process.run(argv, check=True)
    what = " ".join(argv[3:5]) if argv[3] == "derivation" else argv[3]
    try:
        data = json.loads(result.stdout)
    except json.JSONDecodeError as e:
        raise NixError(f"nix {what} {drv} printed malformed JSON: {e.msg}") from e
    try:
        drvs = formats.parse_derivations(data, f"nix {what}", store_dir())
    except InputError as e:
        raise NixError(str(e)) from e
    if drv not in drvs:
        raise NixError(f"nix {what} {drv} does not describe {drv}")
    return drvs


def config_show_argv(v: Version) -> list[str]:
    """`nix config show --json` from Nix 2.20 and Lix 2.90 (which warn that `show-config` is
    deprecated), `nix show-config --json` before."""
    current = v.at_least(2, 90) if v.lix else v.at_least(2, 20)
    verb = ["config", "show"] if current else ["show-config"]
    return [*NIX, *verb, "--json"]


def configured_substituters() -> list[str]:
    """The substituters nix.conf names (`nix config show`)."""
    result = process.run(config_show_argv(version()), check=True)
    try:
        value = json.loads(result.stdout)["substituters"]["value"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return []
    return [str(v) for v in value] if isinstance(value, list) else []


# -- evaluating and building systems from expressions (NixOS) -------------------------------


def build_file_argv(
    expression: Sequence[str], out_link: Path, substituters: Iterable[str] = ()
) -> list[str]:
    """`nix-build EXPRESSION... --out-link LINK`: a classic expression."""
    return ["nix-build", *expression, "--out-link", str(out_link), *substituter_flags(substituters)]


def build_flake_file_argv(
    expression: Sequence[str], out_link: Path, substituters: Iterable[str] = ()
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
        *substituter_flags(substituters),
    ]


def _nix_instantiate(flakes: bool) -> list[str]:
    """`nix-instantiate`, with the flakes feature on when `flakes`."""
    return ["nix-instantiate", *(FLAKES[1:] if flakes else ())]


def instantiate_argv(expression: Sequence[str], root: Path, *, flakes: bool = False) -> list[str]:
    """`nix-instantiate EXPRESSION... --add-root ROOT` (with the flakes feature on)."""
    return [*_nix_instantiate(flakes), *expression, "--add-root", str(root), *_passed.get()]


def build_file(
    expression: Sequence[str],
    *,
    out_link: Path,
    flakes: bool = False,
    substituters: Iterable[str] = (),
    env: Mapping[str, str] | None = None,
) -> str:
    """Build what `expression` evaluates to (through a flake with `flakes`); its path."""
    argv = (
        build_flake_file_argv(expression, out_link, substituters)
        if flakes
        else build_file_argv(expression, out_link, substituters)
    )
    stdout = process.run(argv, check=True, stream=True, env=env).stdout
    if flakes:
        try:
            return str(json.loads(stdout)[0]["outputs"]["out"])
        except (json.JSONDecodeError, LookupError, TypeError) as e:
            raise NixError(f"nix build printed no output path: {stdout[:200]!r}") from e
    lines = _lines(stdout)
    if not lines:
        raise NixError(f"{argv[0]} printed no output path")
    return lines[-1]


def instantiate(
    expression: Sequence[str],
    *,
    root: Path,
    flakes: bool = False,
    env: Mapping[str, str] | None = None,
) -> str:
    """Evaluate `expression` without building it; its derivation, rooted at `root`."""
    root.parent.mkdir(parents=True, exist_ok=True)
    stdout = process.run(instantiate_argv(expression, root, flakes=flakes), check=True, env=env)
    lines = _lines(stdout.stdout)
    if not lines:
        raise NixError("nix-instantiate printed no derivation")
    return os.path.realpath(lines[-1])


def evaluate_argv(expression: Sequence[str], *, flakes: bool = False) -> list[str]:
    """`nix-instantiate --eval --json --strict EXPRESSION...` (with the flakes feature on)."""
    return [*_nix_instantiate(flakes), "--eval", "--json", "--strict", *expression]


def evaluate(expression: Sequence[str], *, flakes: bool = False) -> object:
    """The value of `expression`, through JSON."""
    stdout = process.run(evaluate_argv(expression, flakes=flakes), check=True).stdout
    try:
        return json.loads(stdout)
    except json.JSONDecodeError as e:
        raise NixError(f"nix-instantiate --eval printed no JSON: {stdout[:200]!r}") from e


def switch_argv(toplevel: str, action: str) -> list[str]:
    return [f"{toplevel}/bin/switch-to-configuration", action]


def switch_to_configuration(toplevel: str, action: str) -> None:
    """Run a NixOS system's `switch-to-configuration ACTION` (switch, boot, test)."""
    process.run(switch_argv(toplevel, action), check=True, stream=True)


def nixos_revision() -> str | None:
    """The nixpkgs revision the running NixOS was built from (`nixos-version --json`);
    None where that is not known (not NixOS, or built from a tree without git)."""
    try:
        result = process.run(["nixos-version", "--json"], check=True)
    except (NixError, OSError):
        return None
    try:
        value = json.loads(result.stdout).get("nixpkgsRevision")
    except (json.JSONDecodeError, AttributeError):
        return None
    return value if isinstance(value, str) and value else None
