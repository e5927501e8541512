"""A background service that does one thing every few seconds in a thread of its own (alarm
evaluation, the logs' retention sweep...): started and stopped with the server, a failing round
logged and the next one run all the same."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("stratum.background")


class Periodic:
    def __init__(self, name: str, interval: float, step: Callable[[], object]) -> None:
        self.name = name
        self.interval = interval
        self._step = step
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._step()
            except Exception:
                log.exception("%s failed", self.name)
