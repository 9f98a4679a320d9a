"""Many owners' deadlines on one loop timer: never early, in order, one call per add, and a
removed owner is not called."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from ieum_chat.gateway.deadlines import Deadlines

TICK = 0.01


class Calls(list[tuple[str, float]]):
    """(owner, time.monotonic()) of each call, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = asyncio.Event()


class Owner:
    def __init__(self, name: str, calls: Calls) -> None:
        self.name = name
        self.calls = calls
        self.then: object = None  # run at the deadline, before recording it

    def on_deadline(self) -> None:
        if callable(self.then):
            self.then()
        self.calls.append((self.name, time.monotonic()))
        self.calls.changed.set()


async def until(calls: Calls, count: int) -> None:
    async with asyncio.timeout(5):
        while len(calls) < count:
            calls.changed.clear()
            await calls.changed.wait()


async def test_a_key_is_the_first_tick_at_or_after_the_deadline() -> None:
    wheel = Deadlines(tick=0.25)
    far = 1000.0 + time.monotonic() // 1
    owners = [Owner("x", Calls()) for _ in range(3)]
    keys = [
        wheel.add(owner, far + when) for owner, when in zip(owners, (1.0, 1.01, 1.25), strict=True)
    ]
    assert [k * 0.25 - far for k in keys] == [1.0, 1.25, 1.25]


async def test_owners_are_called_once_in_order_and_never_early() -> None:
    wheel = Deadlines(tick=TICK)
    calls = Calls()
    now = time.monotonic()
    due = {"c": now + 0.09, "a": now + 0.03, "b": now + 0.06}
    for name, when in due.items():
        wheel.add(Owner(name, calls), when)
    await until(calls, 3)
    await asyncio.sleep(5 * TICK)
    assert [name for name, _ in calls] == ["a", "b", "c"]
    assert all(at >= due[name] for name, at in calls)
    assert len(wheel) == 0


async def test_a_removed_owner_is_not_called() -> None:
    wheel = Deadlines(tick=TICK)
    calls = Calls()
    now = time.monotonic()
    gone, kept = Owner("gone", calls), Owner("kept", calls)
    key = wheel.add(gone, now + 0.02)
    wheel.add(kept, now + 0.04)
    wheel.remove(gone, key)
    await until(calls, 1)
    await asyncio.sleep(5 * TICK)
    assert [name for name, _ in calls] == ["kept"]


async def test_an_owner_removed_by_another_in_the_same_tick_is_not_called() -> None:
    wheel = Deadlines(tick=1.0)  # both in one bucket
    calls = Calls()
    when = time.monotonic()
    first, second = Owner("1", calls), Owner("2", calls)
    keys = {first: wheel.add(first, when), second: wheel.add(second, when)}
    # Whichever goes first removes the other, as a session closing its partner would.
    first.then = lambda: wheel.remove(second, keys[second])
    second.then = lambda: wheel.remove(first, keys[first])
    await until(calls, 1)
    await asyncio.sleep(0.05)
    assert len(calls) == 1


async def test_an_owner_that_adds_itself_back_for_a_past_time_is_called_on_later_turns() -> None:
    """Each firing ends: a deadline already past, added during a firing, waits for the next
    tick instead of running in the same loop."""
    wheel = Deadlines(tick=TICK)
    calls = Calls()
    owner = Owner("again", calls)
    started = time.monotonic()
    readded: list[int] = []

    def again() -> None:
        if len(calls) < 2:
            readded.append(wheel.add(owner, started))  # already past

    owner.then = again
    first = wheel.add(owner, started)
    await until(calls, 3)
    # Each time on the tick after the one being fired: in the same tick's bucket, it would
    # have been called again within that firing.
    assert readded == [first + 1, first + 2]


async def test_an_owner_that_raises_does_not_stop_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    wheel = Deadlines(tick=1.0)
    calls = Calls()
    when = time.monotonic()
    bad = Owner("bad", calls)

    def boom() -> None:
        raise RuntimeError("boom")

    bad.then = boom
    for owner in (Owner("x", calls), bad, Owner("y", calls)):
        wheel.add(owner, when)
    with caplog.at_level(logging.ERROR, logger="ieum_chat.gateway.deadlines"):
        await until(calls, 2)
        await asyncio.sleep(0.05)
    assert sorted(name for name, _ in calls) == ["x", "y"]
    assert "deadline of" in caplog.text
    assert "RuntimeError: boom" in caplog.text
    later = Calls()
    wheel.add(Owner("later", later), time.monotonic())  # the wheel still fires
    await until(later, 1)


async def test_keys_left_by_removed_owners_stay_bounded() -> None:
    """Sessions that come and go, each with its own far deadline (a token's expiry): the
    keys their empty buckets leave behind are dropped, not kept until their time."""
    wheel = Deadlines(tick=TICK)
    calls = Calls()
    far = time.monotonic() + 3600
    staying = Owner("staying", calls)
    wheel.add(staying, far + 1)
    for i in range(10_000):
        owner = Owner(str(i), calls)
        wheel.remove(owner, wheel.add(owner, far + i * TICK))
    assert len(wheel) == 1
    assert len(wheel._keys) <= 2 * len(wheel._buckets) + 64
    assert calls == []


def test_the_tick_must_be_positive() -> None:
    with pytest.raises(ValueError, match="tick"):
        Deadlines(tick=0)
