"""A background thread that does one thing at a fixed interval while a block runs: the
disk sampler of `apply` and the progress spinner both run on it."""

import threading
from collections.abc import Callable
from types import TracebackType


class Ticker:
    """Calls `tick` every `interval` seconds, from `delay` seconds after entry until exit."""

    def __init__(self, interval: float, tick: Callable[[], None], *, delay: float = 0.0) -> None:
        self.interval = interval
        self.tick = tick
        self.delay = delay
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        if self._stop.wait(self.delay):
            return
        while not self._stop.is_set():
            self.tick()
            self._stop.wait(self.interval)

    def __enter__(self) -> "Ticker":
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
