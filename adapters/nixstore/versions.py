"""Which Nix a host runs, and the flags and verbs that differ between versions."""

from dataclasses import dataclass
from typing import Final

from adapters.nixstore.host import Host
from solver.errors import NixError

# `nix path-info` is an experimental command on every Nix up to now (2.8 through 2.3x).
NIX: Final = ("nix", "--extra-experimental-features", "nix-command")


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


# The Nix version of each host, asked once each.
_VERSIONS: dict[Host, Version] = {}


def version(host: Host) -> Version:
    """The Nix on PATH of `host` (asked once per host): each host's own, so that one's
    version-dependent flags never go to another's Nix."""
    if host not in _VERSIONS:
        _VERSIONS[host] = parse_version(host.run(["nix", "--version"], check=True).stdout)
    return _VERSIONS[host]


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


def config_show_argv(v: Version) -> list[str]:
    """`nix config show --json` from Nix 2.20 and Lix 2.90 (which warn that `show-config` is
    deprecated), `nix show-config --json` before."""
    current = v.at_least(2, 90) if v.lix else v.at_least(2, 20)
    verb = ["config", "show"] if current else ["show-config"]
    return [*NIX, *verb, "--json"]
