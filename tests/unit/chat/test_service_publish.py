"""Persist, then acknowledge, then publish, as separate steps.

A sender's acknowledgement (its RECEIPT) is delivered before its message is published, by
the service itself rather than by whichever callback the event loop happens to run first;
and a publication that stalls (a slow broker, a slow socket) never holds up later commits.
"""

from __future__ import annotations

import asyncio
import sqlite3

from ieum_chat.broker.memory import MemoryBroker
from ieum_chat.chat.envelope import channel_for, unpack
from ieum_chat.chat.requests import SendRequest, parse_send_request
from ieum_chat.errors import Unauthorized
from ieum_chat.store import Message
from tests.unit.chat.conftest import ChatFactory


def _text(i: int) -> SendRequest:
    return parse_send_request(
        b'{"type":"TEXT","content":"m%d","tempId":"t%d"}' % (i, i), max_text_length=4000
    )


async def test_every_message_is_acknowledged_before_it_is_published(
    make_chat: ChatFactory,
) -> None:
    broker = MemoryBroker()
    events: list[tuple[str, int]] = []
    async with make_chat(broker, message_burst=100) as chat:
        await broker.subscribe(
            channel_for(chat.couple.id),
            lambda _channel, payload: events.append(("publish", unpack(payload)[0])),
        )

        def acknowledge(future: asyncio.Future[Message]) -> None:
            events.append(("ack", future.result().seq))

        futures = [
            await chat.service.accept(chat.a, chat.couple.id, _text(i), acknowledge=acknowledge)
            for i in range(50)
        ]
        await asyncio.gather(*futures)
    # close() published everything queued
    assert sorted(seq for kind, seq in events if kind == "publish") == list(range(1, 51))
    for seq in range(1, 51):
        assert events.index(("ack", seq)) < events.index(("publish", seq))


class _StalledBroker(MemoryBroker):
    """A broker whose publish does not return until released (a backend that hangs)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.published: list[bytes] = []

    async def publish(self, channel: str, payload: bytes) -> None:
        await self.release.wait()
        self.published.append(payload)


async def test_a_stalled_publication_does_not_hold_up_commits(make_chat: ChatFactory) -> None:
    broker = _StalledBroker()
    async with make_chat(broker) as chat:
        try:
            for i in range(5):
                # Each commit resolves although nothing has been published yet.
                message = await asyncio.wait_for(
                    await chat.service.accept(chat.a, chat.couple.id, _text(i)), timeout=30
                )
                assert message.seq == i + 1
            assert broker.published == []
        finally:
            broker.release.set()
    assert [unpack(p)[0] for p in broker.published] == [1, 2, 3, 4, 5]


async def test_a_failed_commit_is_acknowledged_with_its_error(make_chat: ChatFactory) -> None:
    acknowledged: list[BaseException | None] = []
    async with make_chat() as chat:
        await chat.service.member_couple(chat.a.id, chat.couple.id)  # membership cached
        # The couple goes away between the check and the commit: the store refuses it.
        with sqlite3.connect(chat.url.removeprefix("sqlite:///")) as conn:
            conn.execute("DELETE FROM couples WHERE id = ?", [chat.couple.id.hex])
        future = chat.service.try_accept(
            chat.a,
            chat.couple.id,
            _text(0),
            acknowledge=lambda f: acknowledged.append(f.exception()),
        )
        assert future is not None
        await asyncio.gather(future, return_exceptions=True)
    assert len(acknowledged) == 1
    assert isinstance(acknowledged[0], Unauthorized)


async def test_events_after_close_are_published_at_once(make_chat: ChatFactory) -> None:
    """The presence backend reports its last transitions while the node shuts down, after
    the publisher stopped: they must neither wait for it nor pile up."""
    broker = MemoryBroker()
    seen: list[bytes] = []
    async with make_chat(broker) as chat:
        couple_id = chat.couple.id
        await broker.subscribe(channel_for(couple_id), lambda _c, payload: seen.append(payload))
    for i in range(300):  # more than the publisher's queue holds
        await asyncio.wait_for(
            chat.service.pipeline.publish(couple_id, b"0\nevent %d" % i), timeout=30
        )
    assert len(seen) == 300
