"""Which real Nix the real-store tests run.

`system` is the Nix on PATH (Debian bookworm's nix-bin: 2.8). The newer ones are Debian
trixie's (2.26) and sid's (2.34), which `.ci/nix-versions.sh` puts in Debian roots under
$BUDGET_SOLVE_NIX_CACHE (default /var/cache/budget-solve/nix), each with a bin/ of
wrappers; a Nix is named by its release, major.minor, as its `nix --version` says.

$BUDGET_SOLVE_NIX picks one (`system`, `2.26`, `2.34`): every Nix test runs on it alone.
Unset, the tests run the matrix: every Nix test on the newest Nix there is (what users
run), and the tests marked `every_nix` on each of the others as well. A Nix that is asked
for and not set up fails the session under CI and skips its tests elsewhere.
"""

import functools
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

CACHE = Path(os.environ.get("BUDGET_SOLVE_NIX_CACHE") or "/var/cache/budget-solve/nix")
# What .ci/nix-versions.sh makes, and so what CI's matrix must have besides `system`.
SUITES = ("trixie", "sid")
SYSTEM = "system"
SETUP_HINT = "run .ci/nix-versions.sh as root to set up Nix 2.26 and 2.34"


@dataclass(frozen=True)
class Nix:
    """One Nix: its name in the matrix, its wrappers' directory (None: PATH's own), its
    release as `nix --version` prints it."""

    name: str
    bin: Path | None
    release: str

    @property
    def key(self) -> tuple[int, ...]:
        return tuple(int(p) for p in self.release.split(".") if p.isdigit())

    def program(self, name: str) -> str:
        """The absolute path of one of its programs (`nix-daemon`, say)."""
        if self.bin is not None:
            return str(self.bin / name)
        found = shutil.which(name)
        if found is None:
            raise LookupError(f"{name} is not on PATH")
        return found

    def path(self, rest: str) -> str:
        """A PATH with this Nix's programs before `rest`."""
        return rest if self.bin is None else f"{self.bin}{os.pathsep}{rest}"


def _release(version_line: str) -> str:
    """`nix (Nix) 2.34.8` -> `2.34.8`."""
    return version_line.split()[-1] if version_line.split() else ""


def _minor(release: str) -> str:
    return ".".join(release.split(".")[:2])


@functools.cache
def available() -> dict[str, Nix]:
    """Every Nix set up here, by name; the newest last."""
    found: dict[str, Nix] = {}
    if shutil.which("nix") is not None:
        out = subprocess.run(["nix", "--version"], capture_output=True, text=True, check=False)
        if out.returncode == 0:
            found[SYSTEM] = Nix(SYSTEM, None, _release(out.stdout))
    for root in sorted(CACHE.iterdir()) if CACHE.is_dir() else ():
        wrappers = root / "bin"
        if not (root / "complete").is_file() or not (wrappers / "nix").is_file():
            continue
        release = _release((root / "version").read_text())
        found.setdefault(_minor(release), Nix(_minor(release), wrappers, release))
    return dict(sorted(found.items(), key=lambda item: item[1].key))


def under_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def chosen() -> str | None:
    """$BUDGET_SOLVE_NIX (None: the matrix)."""
    return os.environ.get("BUDGET_SOLVE_NIX") or None


@dataclass(frozen=True)
class Selection:
    """The Nix every Nix test runs on (`primary`), the others `every_nix` tests also run
    on, and what is not here of what was asked for: `missing` says so. A missing Nix
    fails the session under CI; elsewhere a chosen one's tests skip, and a matrix runs on
    what there is."""

    primary: str
    others: tuple[str, ...]
    missing: str | None


@functools.cache
def selection() -> Selection:
    here = available()
    name = chosen()
    if name is not None:
        if name in here:
            return Selection(name, (), None)
        have = ", ".join(f"{n} ({nix.release})" for n, nix in here.items()) or "none"
        hint = "apt-get install nix-bin" if name == SYSTEM else SETUP_HINT
        return Selection(
            name, (), f"BUDGET_SOLVE_NIX={name}: that Nix is not set up (here: {have}); {hint}"
        )
    if not here:
        return Selection(SYSTEM, (), "Nix is not installed: apt-get install nix-bin")
    names = list(here)
    absent = [s for s in SUITES if not (CACHE / s / "complete").is_file()]
    missing = None
    if absent:
        missing = (
            f"the Nix version matrix lacks Debian {' and '.join(absent)}'s Nix under {CACHE}: "
            f"{SETUP_HINT}"
        )
    elif SYSTEM not in here:
        missing = "the Nix version matrix lacks the Nix on PATH: apt-get install nix-bin"
    return Selection(names[-1], tuple(names[:-1]), missing)


def describe() -> str:
    """One line for the test session's header."""
    chosen_one = selection()
    here = available()

    def named(name: str) -> str:
        return f"{name} ({here[name].release})" if name in here else name

    line = f"nix: {named(chosen_one.primary)}"
    if chosen_one.others:
        line += f"; every_nix tests also on {', '.join(map(named, chosen_one.others))}"
    if chosen_one.missing:
        line += f"; {chosen_one.missing}"
    return line
