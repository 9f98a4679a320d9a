"""The bounded event queue between the connection and the application."""

from __future__ import annotations

import asyncio

import pytest

from ieum_chat.client._queue import EventQueue


async def test_bounded_put_never_blocks() -> None:
    queue: EventQueue[int] = EventQueue(2)
    assert queue.put_nowait(1)
    assert queue.put_nowait(2)
    assert not queue.put_nowait(3)
    assert (len(queue), queue.free) == (2, 0)
    assert await queue.get() == 1
    assert queue.put_nowait(3)
    assert [await queue.get(), await queue.get()] == [2, 3]


async def test_get_waits_and_close_drains_then_ends() -> None:
    queue: EventQueue[int] = EventQueue(4)
    getter = asyncio.create_task(queue.get())
    await asyncio.sleep(0.01)
    assert not getter.done()
    queue.put_nowait(7)
    assert await asyncio.wait_for(getter, 1) == 7
    queue.put_nowait(8)
    queue.close()
    assert not queue.put_nowait(9)
    assert await queue.get() == 8
    assert await queue.get() is None


async def test_cancelled_get_loses_nothing() -> None:
    queue: EventQueue[int] = EventQueue(4)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await queue.get()
    queue.put_nowait(1)
    assert await queue.get() == 1


def test_maxsize_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        EventQueue[int](0)
