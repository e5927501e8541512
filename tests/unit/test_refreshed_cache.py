"""RefreshedCache: answered from memory within its TTL, renewed in the background past half of it,
read in the caller's thread past all of it, and never keeping a read an invalidation overtook."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

from stratum.store import refreshed
from stratum.store.refreshed import RefreshedCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(refreshed, "time", SimpleNamespace(monotonic=fake))
    return fake


def _wait_for(condition: object, timeout: float = 5.0) -> None:
    deadline = time.perf_counter() + timeout
    while not condition():  # type: ignore[operator]
        assert time.perf_counter() < deadline, "the background refresh did not happen"
        time.sleep(0.005)


def test_young_values_come_from_memory_and_old_ones_are_read_on_the_callers_thread(clock: Clock) -> None:
    cache: RefreshedCache[str, int] = RefreshedCache(lambda: 2.0)
    reads: list[str] = []

    def load() -> int:
        reads.append(threading.current_thread().name)
        return len(reads)

    assert cache.get("k", load) == 1
    clock.now += 0.9  # under half the TTL: no read at all
    assert cache.get("k", load) == 1
    clock.now += 5.0  # past the TTL (nobody asked meanwhile): read before answering
    assert cache.get("k", load) == 2
    assert reads == [threading.current_thread().name] * 2


def test_past_half_the_ttl_the_value_is_answered_and_renewed_in_the_background(clock: Clock) -> None:
    cache: RefreshedCache[str, int] = RefreshedCache(lambda: 2.0)
    release = threading.Event()
    reads: list[str] = []

    def load() -> int:
        reads.append(threading.current_thread().name)
        if len(reads) > 1:
            release.wait(5)
        return len(reads)

    assert cache.get("k", load) == 1
    clock.now += 1.5
    assert cache.get("k", load) == 1  # answered at once, the read runs elsewhere
    assert cache.get("k", load) == 1  # one refresh at a time
    release.set()
    _wait_for(lambda: cache._entries["k"][1] == 2)
    assert len(reads) == 2 and reads[1].startswith("stratum-cache-refresh")
    assert cache.get("k", load) == 2
    clock.now += 1.0  # the renewed value's age counts from its own read
    assert cache.get("k", load) == 2 and len(reads) == 2


def test_a_read_an_invalidation_overtook_is_not_kept(clock: Clock) -> None:
    cache: RefreshedCache[str, str] = RefreshedCache(lambda: 2.0)
    started, release = threading.Event(), threading.Event()
    values = iter(["old", "stale", "new"])

    def load() -> str:
        value = next(values)
        if value == "stale":
            started.set()
            release.wait(5)
        return value

    assert cache.get("k", load) == "old"
    clock.now += 1.5
    cache.get("k", load)
    assert started.wait(5)
    cache.invalidate(lambda key, _value: key == "k")  # a local write, while the refresh reads
    release.set()
    _wait_for(lambda: "k" not in cache._refreshing)
    assert "k" not in cache._entries
    assert cache.get("k", load) == "new"


def test_invalidation_matches_keys_and_values_and_none_is_optional(clock: Clock) -> None:
    cache: RefreshedCache[str, str | None] = RefreshedCache(lambda: 60.0, keep_none=False)
    assert cache.get("a", lambda: "account-1") == "account-1"
    assert cache.get("b", lambda: "account-2") == "account-2"
    assert cache.get("missing", lambda: None) is None
    assert "missing" not in cache._entries  # asked again next time
    cache.invalidate(lambda _key, value: value == "account-2")
    assert set(cache._entries) == {"a"}
    cache.invalidate()
    assert cache._entries == {}


def test_a_failed_refresh_leaves_the_value_until_it_expires(clock: Clock) -> None:
    cache: RefreshedCache[str, int] = RefreshedCache(lambda: 2.0)
    assert cache.get("k", lambda: 1) == 1
    clock.now += 1.5
    calls = [0]

    def failing() -> int:
        calls[0] += 1
        raise RuntimeError("database unavailable")

    assert cache.get("k", failing) == 1
    _wait_for(lambda: "k" not in cache._refreshing)
    clock.now += 1.0  # now expired: the caller reads, and sees the failure
    with pytest.raises(RuntimeError):
        cache.get("k", failing)
    assert calls[0] == 2
