"""The I/O shell of a session: the handler task, the bounded queues both ways, and the timers
(run on the event loop with short intervals)."""

from __future__ import annotations

import asyncio
import json

import pytest

from ieum_chat.sockjs import (
    Attach,
    Channel,
    Handler,
    RemoteProtocolError,
    Request,
    SessionClosed,
    SessionInfo,
    SessionState,
    SockJSOptions,
)
from ieum_chat.sockjs._registry import SessionRegistry


def info(session_id: str = "s1") -> SessionInfo:
    return SessionInfo("xhr-polling", session_id, Request("POST", "/0/s1/xhr", {}, {}))


async def echo(channel: Channel) -> None:
    async for message in channel:
        await channel.send(message)


class Receiver:
    """What a receiving request does, by hand."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.wake = asyncio.Event()
        assert channel.attach(self.wake) is Attach.ATTACHED

    async def frame(self, timeout: float = 2.0) -> str:
        async with asyncio.timeout(timeout):
            while True:
                self.wake.clear()
                frame = self.channel.next_frame()
                if frame is not None:
                    return frame.data
                await self.wake.wait()


def open_channel(handler: Handler, **options: float) -> tuple[SessionRegistry, Channel]:
    registry = SessionRegistry(SockJSOptions(**options))  # type: ignore[arg-type]
    return registry, registry.create(info(), handler)


async def test_echo_through_the_channel() -> None:
    registry, channel = open_channel(echo)
    receiver = Receiver(channel)
    assert await receiver.frame() == "o"
    await channel.deliver(["one", "two"])
    assert await receiver.frame() == 'a["one","two"]'
    await channel.close(3000, "Go away!")
    assert channel.closed
    assert await receiver.frame() == 'c[3000,"Go away!"]'
    await registry.aclose()


async def test_handler_returning_closes_the_session_normally() -> None:
    async def done(channel: Channel) -> None:
        await channel.send("bye")

    registry, channel = open_channel(done)
    receiver = Receiver(channel)
    assert await receiver.frame() == "o"
    assert await receiver.frame() == 'a["bye"]'
    assert await receiver.frame() == 'c[1000,"Normal closure"]'
    await registry.aclose()


async def test_handler_failure_closes_with_1011(caplog: pytest.LogCaptureFixture) -> None:
    async def broken(channel: Channel) -> None:
        raise RuntimeError("boom")

    registry, channel = open_channel(broken)
    receiver = Receiver(channel)
    assert await receiver.frame() == "o"
    assert await receiver.frame() == 'c[1011,"Internal error"]'
    assert "handler failed" in caplog.text
    await registry.aclose()


async def test_heartbeats_while_attached() -> None:
    registry, channel = open_channel(echo, heartbeat_interval=0.05)
    receiver = Receiver(channel)
    assert await receiver.frame() == "o"
    assert await receiver.frame(timeout=1.0) == "h"
    assert await receiver.frame(timeout=1.0) == "h"
    await registry.aclose()


async def test_detached_session_expires_and_is_forgotten() -> None:
    seen: list[str | None] = []
    ended = asyncio.Event()

    async def record(channel: Channel) -> None:
        seen.append(await channel.receive())
        ended.set()

    registry, channel = open_channel(record, disconnect_delay=0.05)
    receiver = Receiver(channel)
    assert await receiver.frame() == "o"
    channel.detach()
    assert registry.get("s1") is channel
    await asyncio.wait_for(ended.wait(), 2)
    assert channel.gone
    assert channel.state is SessionState.CLOSED
    assert registry.get("s1") is None
    assert len(registry) == 0
    assert seen == [None]
    await registry.aclose()


async def test_interrupted_receiver_ends_the_session_for_the_handler() -> None:
    seen: list[str | None] = []

    async def record(channel: Channel) -> None:
        seen.append(await channel.receive())

    registry, channel = open_channel(record)
    receiver = Receiver(channel)
    assert await receiver.frame() == "o"
    channel.detach(interrupted=True)
    await asyncio.sleep(0.01)
    assert seen == [None]
    again = Receiver(channel)
    assert await again.frame() == 'c[1002,"Connection interrupted"]'
    await registry.aclose()


async def test_a_consumer_that_stops_reading_is_closed() -> None:
    outcome: list[str] = []
    ended = asyncio.Event()

    async def flood(channel: Channel) -> None:
        try:
            for _ in range(100):
                await channel.send("x" * 10)
        except SessionClosed as exc:
            outcome.append(str(exc))
        ended.set()

    registry, channel = open_channel(flood, max_pending=50, send_timeout=0.05)
    receiver = Receiver(channel)
    assert await receiver.frame() == "o"
    # The receiver takes nothing more: the handler's sends fill the buffer, then time out.
    await asyncio.wait_for(ended.wait(), 2)
    assert outcome == ["slow consumer"]
    assert json.loads((await receiver.frame())[1:]) == ["x" * 10] * 5
    assert await receiver.frame() == 'c[1013,"Slow consumer"]'
    await registry.aclose()


async def test_a_full_buffer_waits_for_the_receiver() -> None:
    sent: list[int] = []

    async def burst(channel: Channel) -> None:
        for i in range(20):
            await channel.send(str(i) * 10)
            sent.append(i)

    registry, channel = open_channel(burst, max_pending=30, send_timeout=5.0)
    receiver = Receiver(channel)
    assert await receiver.frame() == "o"
    received: list[str] = []
    while len(received) < 20:
        received.extend(json.loads((await receiver.frame())[1:]))
    assert received == [str(i) * 10 for i in range(20)]
    assert sent == list(range(20))
    await registry.aclose()


async def test_inbound_queue_is_bounded() -> None:
    release = asyncio.Event()
    got: list[str] = []

    async def slow(channel: Channel) -> None:
        await release.wait()
        async for message in channel:
            got.append(message)

    registry, channel = open_channel(slow, max_inbound=2)
    receiver = Receiver(channel)
    assert await receiver.frame() == "o"
    delivering = asyncio.create_task(channel.deliver(["1", "2", "3", "4"]))
    await asyncio.sleep(0.02)
    assert not delivering.done()  # the sending request waits for room
    release.set()
    await asyncio.wait_for(delivering, 1)
    await asyncio.sleep(0.01)
    assert got == ["1", "2", "3", "4"]
    await registry.aclose()


async def test_messages_after_close_are_dropped() -> None:
    registry, channel = open_channel(echo)
    Receiver(channel)
    await channel.close()
    await channel.deliver(["late"])
    assert await channel.receive() is None
    with pytest.raises(SessionClosed):
        await channel.send("late")
    await registry.aclose()


async def test_registry_bounds_sessions_and_closes_them_all() -> None:
    registry = SessionRegistry(SockJSOptions(max_sessions=2))
    started = asyncio.Event()

    async def forever(channel: Channel) -> None:
        started.set()
        await asyncio.Event().wait()

    first = registry.create(info("a"), forever)
    registry.create(info("b"), forever, listed=False)
    with pytest.raises(RemoteProtocolError) as exc:
        registry.create(info("c"), forever)
    assert exc.value.status == 503
    assert registry.get("a") is first
    assert registry.get("b") is None  # WebSocket sessions are not listed
    Receiver(first).channel.next_frame()  # open: the handler starts
    await asyncio.wait_for(started.wait(), 1)
    await registry.aclose()
    assert len(registry) == 0
    assert first.gone
