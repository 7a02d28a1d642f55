"""A fleet as its study file describes it: hosts, their distinct closures, the update."""

import hashlib
from dataclasses import dataclass, field

from solver.closure import Closure
from solver.whatif.scenario import Edit


@dataclass(frozen=True)
class Host:
    name: str
    disk: int
    closure: str  # key of its distinct closure
    ssh: str | None = None  # [USER@]HOST, for `fleet --apply`
    target: str | None = None  # its own target for `fleet --apply`, else the fleet's


@dataclass(frozen=True)
class Apply:
    """What `fleet --apply` upgrades on each host: a profile there, to a target here."""

    profile: str
    target: str | None


@dataclass
class Fleet:
    name: str
    hosts: list[Host]
    closures: dict[str, Closure]  # by key
    labels: dict[str, str]  # key -> profile name or source
    changes: list[Edit]
    overhead: int = 0
    reserve: int = 0
    max_steps: int = 3
    seed: int = 0
    notes: list[str] = field(default_factory=list)
    apply: Apply | None = None

    def budget(self, host: Host) -> int:
        """The store's share of the host's disk: what the overhead leaves."""
        return max(0, host.disk - self.overhead)


def fingerprint(closure: Closure) -> str:
    """Identical closures, whatever file they came from, get the same key."""
    h = hashlib.sha256()
    for info in sorted(closure.infos(), key=lambda i: i.path):
        h.update(f"{info.path} {info.nar_size} {' '.join(sorted(info.references))}\n".encode())
    h.update(" ".join(sorted(closure.roots)).encode())
    return h.hexdigest()[:16]
