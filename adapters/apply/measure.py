"""Real disk usage: statvfs of the store's filesystem, sampled while a step runs, and the
calibration of NAR sizes against it (block rounding, compression, hard-link dedup)."""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from adapters.nixstore import host
from adapters.ticker import Ticker
from solver.closure import Closure


def used_bytes(path: str | Path) -> int:
    """Bytes in use on the filesystem holding `path`."""
    return host.usage(path).used


def size_bytes(path: str | Path) -> int:
    """Size of the filesystem holding `path` (`--limit auto`)."""
    return host.usage(path).size


def disk_usage(paths: list[str]) -> int:
    """Allocated bytes of everything under `paths`, each inode counted once (like du)."""
    return host.disk_usage(paths)


@dataclass(frozen=True)
class Calibration:
    """Real bytes = other + ratio * model bytes, within `tolerance`."""

    ratio: float
    other: int
    tolerance: int

    @classmethod
    def measure(
        cls,
        store_dir: str,
        closure: Closure,
        model_store_bytes: int,
        *,
        garbage_bytes: int = 0,
    ) -> "Calibration":
        """From what `closure` (the store's live part) takes on disk. `garbage_bytes`: on
        disk now, but collected before the plan starts."""
        nar = closure.size()
        du = disk_usage(list(closure))
        # Small files round up to whole blocks; compression and dedup shrink. Never < 1/4.
        ratio = max(0.25, du / nar) if nar else 1.0
        used = used_bytes(store_dir) - garbage_bytes
        other = max(0, used - int(ratio * model_store_bytes))
        # Nix's own bookkeeping while it builds (temporary roots, .tmp files, directory
        # blocks of the new generation) is not in any NAR: allow 1 MiB plus 1% for it.
        tolerance = (1 << 20) + int(0.01 * (other + ratio * model_store_bytes))
        return cls(ratio, other, tolerance)

    def to_real(self, model_bytes: int) -> int:
        return self.other + int(self.ratio * model_bytes) + self.tolerance

    def to_model(self, real_bytes: int) -> int:
        """The budget in NAR bytes that keeps real usage under `real_bytes`."""
        return max(0, int((real_bytes - self.other - self.tolerance) / self.ratio))


class PeakSampler:
    """Samples filesystem usage in a thread; `.peak` is the highest seen. On another host
    (`nix.on_host`) the samples come from one command running there (host.UsageStream)."""

    def __init__(
        self,
        path: str | Path,
        interval: float = 0.01,
        on_sample: Callable[[int], None] | None = None,
    ) -> None:
        self.path = path
        self.on_sample = on_sample
        self.interval = interval
        self.peak = used_bytes(path)
        self._ticker = Ticker(interval, lambda: self._seen(used_bytes(self.path)))
        self._stream: host.UsageStream | None = None

    def _seen(self, used: int) -> None:
        self.peak = max(self.peak, used)
        if self.on_sample is not None:
            self.on_sample(used)

    def __enter__(self) -> "PeakSampler":
        if host.remote() is not None:
            self._stream = host.UsageStream(self.path, max(self.interval, 0.05), self._seen)
        else:
            self._ticker.__enter__()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._stream is not None:
            self._stream.close()
        else:
            self._ticker.__exit__(kind, exc, tb)
        self.peak = max(self.peak, used_bytes(self.path))
