"""Real disk usage: statvfs of the store's filesystem, sampled while a step runs, and the
calibration of NAR sizes against it (block rounding, compression, hard-link dedup)."""

import math
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import TypedDict

from adapters.nixstore.host import Host
from solver.closure import Closure
from solver.plan import Plan
from solver.search import Result
from solver.units import format_size


def used_bytes(host: Host, path: str | Path) -> int:
    """Bytes in use on the filesystem holding `path`."""
    return host.usage(path).used


def size_bytes(host: Host, path: str | Path) -> int:
    """Size of the filesystem holding `path` (`--limit auto`)."""
    return host.usage(path).size


class CalibrationDocument(TypedDict):
    """`Calibration` in JSON (`apply --json`, the journal)."""

    ratio: float
    other_bytes: int
    tolerance_bytes: int


@dataclass(frozen=True)
class Calibration:
    """Real bytes = other + ratio * model bytes, within `tolerance`."""

    ratio: float
    other: int
    tolerance: int

    @classmethod
    def measure(
        cls,
        host: Host,
        store_dir: str,
        closure: Closure,
        model_store_bytes: int,
        *,
        garbage_bytes: int = 0,
    ) -> "Calibration":
        """From what `closure` (the store's live part) takes on disk. `garbage_bytes`: on
        disk now, but collected before the plan starts."""
        nar = closure.size()
        du = host.disk_usage(list(closure))
        # Small files round up to whole blocks; compression and dedup shrink. Never < 1/4.
        ratio = max(0.25, du / nar) if nar else 1.0
        used = used_bytes(host, store_dir) - garbage_bytes
        other = max(0, used - int(ratio * model_store_bytes))
        # Nix's own bookkeeping while it builds (temporary roots, .tmp files, directory
        # blocks of the new generation) is not in any NAR: allow 1 MiB plus 1% for it.
        tolerance = (1 << 20) + int(0.01 * (other + ratio * model_store_bytes))
        return cls(ratio, other, tolerance)

    def to_real(self, model_bytes: int) -> int:
        return self.other + int(self.ratio * model_bytes) + self.tolerance

    def to_json(self) -> CalibrationDocument:
        """The one JSON form, in `apply --json` and in the journal."""
        return {"ratio": self.ratio, "other_bytes": self.other, "tolerance_bytes": self.tolerance}

    def to_model(self, real_bytes: int) -> int:
        """The budget in NAR bytes that keeps real usage under `real_bytes`."""
        return max(0, int((real_bytes - self.other - self.tolerance) / self.ratio))

    def limit_for(self, model_bytes: int) -> int:
        """The smallest --limit whose budget (`to_model`) holds `model_bytes`: the limit
        to give for a plan of that peak."""
        real = self.other + self.tolerance + math.ceil(self.ratio * model_bytes)
        while self.to_model(real) < model_bytes:  # float rounding: a byte or a few
            real += 1
        return real

    def stored(self, model_bytes: int) -> int:
        """What the filesystem holds with `model_bytes` in the store, Nix's room aside."""
        return self.other + int(self.ratio * model_bytes)

    def explained(self, limit: int) -> str:
        """One line: what of --limit the store may use, and why not all of it."""
        return (
            f"--limit {format_size(limit)} counts the whole filesystem: the store may use "
            f"{format_size(self.to_model(limit), decimals=2)} of NAR bytes ("
            f"{format_size(self.other)} of other files, {format_size(self.tolerance)} kept for "
            f"Nix's own files, store paths take {self.ratio:.2f}x their NAR size on disk)"
        )

    def in_limit_terms(self, result: Result, limit: int) -> Result:
        """`result` (planned in NAR bytes under `to_model(limit)`) in the terms of --limit:
        the filesystem's used bytes. Peaks and bounds include Nix's working room, as the
        budget does; a budget that works becomes the --limit that gives it."""
        plan = None
        if result.plan is not None:
            steps = tuple(
                replace(
                    s,
                    peak_bytes=self.to_real(s.peak_bytes),
                    store_bytes_after=self.stored(s.store_bytes_after),
                    store_bytes_before=self.stored(s.store_bytes_before),
                )
                for s in result.plan.steps
            )
            plan = Plan(result.plan.generations, steps)
        least = result.min_feasible_budget
        least = self.limit_for(least) if least is not None else None
        floor = result.min_budget_lower_bound
        # An exact smallest budget stays exact.
        floor = least if result.min_budget_proven else floor and self.to_real(floor)
        return replace(
            result,
            budget=limit,
            plan=plan,
            min_feasible_budget=least,
            min_budget_lower_bound=floor,
            peak_floor=self.to_real(result.peak_floor),
            one_step_peak=self.limit_for(result.one_step_peak),
            peak_bound=self.to_real(result.peak_bound),
        )


class PeakSampler:
    """Samples the usage of the filesystem holding `path` on `host` while the block runs
    (`Host.usage_samples`); `.peak` is the highest seen."""

    def __init__(
        self,
        host: Host,
        path: str | Path,
        interval: float = 0.01,
        on_sample: Callable[[int], None] | None = None,
    ) -> None:
        self.host = host
        self.path = path
        self.on_sample = on_sample
        self.interval = interval
        self.peak = used_bytes(host, path)
        self._samples: AbstractContextManager[None] | None = None

    def _seen(self, used: int) -> None:
        self.peak = max(self.peak, used)
        if self.on_sample is not None:
            self.on_sample(used)

    def __enter__(self) -> "PeakSampler":
        self._samples = self.host.usage_samples(self.path, self.interval, self._seen)
        self._samples.__enter__()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._samples is not None:
            self._samples.__exit__(kind, exc, tb)
            self._samples = None
        self.peak = max(self.peak, used_bytes(self.host, self.path))
