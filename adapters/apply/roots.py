"""The GC roots an apply run owns, under its state directory.

- `roots/`: while a step builds; dropped before every collection.
- `keep/`: the target, and what the first step needs and has on disk, from before the plan
  until that step (or the run) is done.
- `drvs/`: the start's and the target's derivations, for the whole run.
"""

from pathlib import Path

from adapters.nixstore import profiles
from adapters.nixstore.host import Host


class Roots:
    def __init__(self, host: Host, state: Path) -> None:
        self.host = host
        self.state = state

    def build(self, name: str) -> Path:
        """The out-link of a build, dropped before the next collection."""
        return self.state / "roots" / name

    def drop_builds(self) -> None:
        self.host.unlink_links(self.state / "roots")

    def keep(self, name: str, path: str) -> None:
        profiles.add_indirect_root(self.host, self.state / "keep" / name, path)

    def drop_keeps(self, prefix: str = "") -> None:
        self.host.unlink_links(self.state / "keep", prefix)

    def keep_drv(self, name: str, drv: str | None) -> str | None:
        """Root a derivation for the whole run."""
        if drv is not None:
            profiles.add_indirect_root(self.host, self.state / "drvs" / name, drv)
        return drv

    def drop_drvs(self) -> None:
        self.host.unlink_links(self.state / "drvs")

    def temporary(self) -> list[str]:
        """Directories whose roots the plan does not count: they go before step 1."""
        return [str(self.state / "roots"), str(self.state / "drvs")]
