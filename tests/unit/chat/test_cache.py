"""The expiring cache: how long an entry is served, the size bound, replacing and forgetting."""

from __future__ import annotations

import pytest

from ieum_chat.chat.cache import TTLCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def served_until(cache: TTLCache[str, int], clock: Clock, key: str, step: float = 0.1) -> float:
    """The first time (in steps) at which ``key`` is no longer served."""
    while cache.get(key) is not None:
        clock.now = round(clock.now + step, 6)
    return clock.now


@pytest.mark.parametrize("put_after", [0.0, 2.0, 4.9, 5.0, 7.5, 13.3])
def test_an_entry_is_served_at_least_half_its_ttl_and_never_its_ttl(put_after: float) -> None:
    clock = Clock()
    cache: TTLCache[str, int] = TTLCache(100, ttl=10.0, clock=clock)
    clock.now += put_after
    put_at = clock.now
    cache.put("k", 1)
    gone = served_until(cache, clock, "k")
    assert 5.0 <= gone - put_at <= 10.0 + 1e-9


def test_a_get_does_not_make_an_entry_live_longer() -> None:
    clock = Clock()
    cache: TTLCache[str, int] = TTLCache(100, ttl=10.0, clock=clock)
    put_at = clock.now
    cache.put("k", 1)
    for i in range(1, 100):
        clock.now = put_at + i / 10
        assert cache.get("k") == 1
    clock.now = put_at + 10.0
    assert cache.get("k") is None


def test_an_idle_cache_forgets_everything_after_its_ttl() -> None:
    clock = Clock()
    cache: TTLCache[str, int] = TTLCache(100, ttl=10.0, clock=clock)
    cache.put("a", 1)
    clock.now += 4.0
    cache.put("b", 2)
    clock.now += 11.0
    assert (cache.get("a"), cache.get("b"), len(cache)) == (None, None, 0)


def test_it_never_holds_more_than_maxsize_and_keeps_the_newest() -> None:
    clock = Clock()
    cache: TTLCache[int, int] = TTLCache(10, ttl=60.0, clock=clock)
    for i in range(1000):
        cache.put(i, i)
        assert len(cache) <= 10
    assert [cache.get(i) for i in range(995, 1000)] == list(range(995, 1000))


def test_put_replaces_and_discard_forgets_in_either_generation() -> None:
    clock = Clock()
    cache: TTLCache[str, int] = TTLCache(100, ttl=10.0, clock=clock)
    cache.put("k", 1)
    clock.now += 6.0  # "k" is in the old generation now
    cache.put("k", 2)
    assert (cache.get("k"), len(cache)) == (2, 1)
    clock.now += 4.5
    assert cache.get("k") == 2  # the second put counts from its own time
    cache.put("j", 3)
    clock.now += 5.0
    cache.discard("j")
    cache.discard("k")
    assert (cache.get("j"), cache.get("k"), len(cache)) == (None, None, 0)
    cache.put("x", 1)
    cache.clear()
    assert (cache.get("x"), len(cache)) == (None, 0)


@pytest.mark.parametrize(("maxsize", "ttl"), [(1, 10.0), (10, 0.0)])
def test_bad_bounds_are_refused(maxsize: int, ttl: float) -> None:
    with pytest.raises(ValueError, match="maxsize"):
        TTLCache(maxsize, ttl)
