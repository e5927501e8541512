"""Values read from the database, kept in memory for a few seconds and read again before they expire.

Credentials, principal policies and endpoint routes are looked up on nearly every request. Reading
one takes 0.2-1 ms, more while another thread holds the GIL or SQLite is busy, and it happened on
the event loop whenever a cached value had expired: every request in flight waited for it (an
InvokeEndpoint stream read them every 1-2 s). Here a value is answered from memory for ``ttl``
seconds, and once it is half that old the request that finds it also has it read again in a
background thread: under steady traffic it is renewed before it expires and the database is not
read on a request's path. A value is never answered older than ``ttl`` (what another server
changes is seen as soon as before); after a quiet spell the first request reads it itself. A
local change invalidates entries at once, and a read begun before an invalidation is not kept.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

log = logging.getLogger("stratum.store.refreshed")

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

_refresher: concurrent.futures.ThreadPoolExecutor | None = None
_refresher_lock = threading.Lock()


def _submit(work: Callable[[], None]) -> None:
    global _refresher
    if _refresher is None:
        with _refresher_lock:
            if _refresher is None:
                # One thread: refreshes are small reads, and one at a time keeps them from
                # competing with the event loop for the GIL.
                _refresher = concurrent.futures.ThreadPoolExecutor(max_workers=1,
                                                                   thread_name_prefix="stratum-cache-refresh")
    _refresher.submit(work)


class RefreshedCache(Generic[K, V]):
    def __init__(self, ttl: Callable[[], float], *, keep_none: bool = True, max_entries: int = 10_000) -> None:
        self._ttl = ttl
        self.keep_none = keep_none  # False: a None from load() is not cached (asked again next time)
        self.max_entries = max_entries
        self._entries: dict[K, tuple[float, V]] = {}  # key -> (when its read began, value)
        self._refreshing: set[K] = set()
        self._lock = threading.Lock()
        # Bumped by each invalidation: a value read before it is not stored after it.
        self._epoch = 0

    def get(self, key: K, load: Callable[[], V]) -> V:
        """The cached value of ``key``, or ``load()``'s (which runs in the caller's thread when
        there is no value young enough, and in the background to renew one)."""
        now = time.monotonic()
        hit = self._entries.get(key)
        if hit is not None:
            age = now - hit[0]
            ttl = self._ttl()
            if age < ttl:
                if age >= ttl / 2 and key not in self._refreshing:
                    self._refresh(key, load)
                return hit[1]
        epoch = self._epoch
        value = load()
        self._store(key, value, now, epoch)
        return value

    def invalidate(self, match: Callable[[K, V], bool] | None = None) -> None:
        """Forget the entries ``match(key, value)`` is true of (every entry when None)."""
        with self._lock:
            self._epoch += 1
            if match is None:
                self._entries.clear()
            else:
                for key in [k for k, (_at, v) in self._entries.items() if match(k, v)]:
                    del self._entries[key]

    def _store(self, key: K, value: V, read_at: float, epoch: int) -> None:
        with self._lock:
            if epoch != self._epoch:
                return
            if value is None and not self.keep_none:
                self._entries.pop(key, None)  # gone since it was cached: not answered any more
                return
            if len(self._entries) >= self.max_entries and key not in self._entries:
                self._entries.clear()
            self._entries[key] = (read_at, value)

    def _refresh(self, key: K, load: Callable[[], V]) -> None:
        with self._lock:
            if key in self._refreshing:
                return
            self._refreshing.add(key)
            epoch = self._epoch

        def run() -> None:
            started = time.monotonic()
            try:
                value = load()
            except Exception:  # the value is read again on the request's path when it expires
                log.warning("refreshing cached %r failed", key, exc_info=True)
                return
            finally:
                with self._lock:
                    self._refreshing.discard(key)
            self._store(key, value, started, epoch)

        try:
            _submit(run)
        except RuntimeError:  # the interpreter is shutting down: no new threads
            with self._lock:
                self._refreshing.discard(key)
