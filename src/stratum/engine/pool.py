"""A small pool of daemon worker threads, grown on demand.

concurrent.futures' pool joins its (non-daemon) threads at interpreter exit, so one step handler
that ignores a shutdown would keep the server process alive. Here a shutdown waits a bounded
time, and threads still busy after it die with the process.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("stratum.engine")


class WorkerPool:
    def __init__(self, name: str, max_workers: int) -> None:
        self.name = name
        self.max_workers = max(1, max_workers)
        self._queue: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...]] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = 0  # threads blocked on the queue and not yet promised to a submitted task
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        with self._lock:
            if self._closed:
                return
            if self._idle > 0:
                self._idle -= 1
            elif len(self._threads) < self.max_workers:
                thread = threading.Thread(target=self._work, name=f"{self.name}-{len(self._threads) + 1}",
                                          daemon=True)
                self._threads.append(thread)
                thread.start()
        self._queue.put((fn, args))

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            fn, args = item
            if self._closed:
                continue  # shutting down: queued work is dropped (the engine resumes it after a restart)
            try:
                fn(*args)
            except Exception:
                log.exception("%s: task %s failed", self.name, getattr(fn, "__name__", fn))
            with self._lock:
                self._idle += 1

    def shutdown(self, timeout: float) -> None:
        """Stop taking work; wait up to ``timeout`` seconds for the running tasks."""
        with self._lock:
            self._closed = True
            threads = list(self._threads)
        for _ in threads:
            self._queue.put(None)
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
