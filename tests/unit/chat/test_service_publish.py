"""Persist, then acknowledge, then publish, as separate steps.

A sender's acknowledgement (its RECEIPT) is delivered before its message is published, by
the service itself rather than by whichever callback the event loop happens to run first,
and in the same loop turn; a publication that fails does not stop the writer.
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


async def test_every_message_is_acknowledged_then_published_in_the_same_loop_turn(
    make_chat: ChatFactory,
) -> None:
    """No hop between the acknowledgement and the publication: what the sockets queue for
    both leaves in the same write (a sender's RECEIPT with its own copy of the message)."""
    broker = MemoryBroker()
    events: list[tuple[str, int]] = []
    async with make_chat(broker, message_burst=100) as chat:
        await broker.subscribe(
            channel_for(chat.couple.id),
            lambda _channel, payload: events.append(("publish", unpack(payload)[0])),
        )
        loop = asyncio.get_running_loop()

        def acknowledge(future: asyncio.Future[Message]) -> None:
            seq = future.result().seq
            events.append(("ack", seq))
            loop.call_soon(events.append, ("next turn", seq))

        futures = [
            await chat.service.accept(chat.a, chat.couple.id, _text(i), acknowledge=acknowledge)
            for i in range(50)
        ]
        await asyncio.gather(*futures)
        await asyncio.sleep(0)
    assert sorted(seq for kind, seq in events if kind == "publish") == list(range(1, 51))
    for seq in range(1, 51):
        assert events.index(("ack", seq)) < events.index(("publish", seq))
        assert events.index(("publish", seq)) < events.index(("next turn", seq))


class _FaultyBroker(MemoryBroker):
    """A broker whose publish fails with a bug (not a BrokerError) for the first payloads."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def publish(self, channel: str, payload: bytes) -> None:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("a bug in the broker")
        await super().publish(channel, payload)


async def test_a_publication_that_fails_stops_neither_the_writer_nor_the_batch(
    make_chat: ChatFactory,
) -> None:
    broker = _FaultyBroker(failures=1)
    seen: list[int] = []
    async with make_chat(broker, message_burst=100) as chat:
        await broker.subscribe(
            channel_for(chat.couple.id), lambda _c, payload: seen.append(unpack(payload)[0])
        )
        first = [await chat.service.accept(chat.a, chat.couple.id, _text(i)) for i in range(3)]
        assert [m.seq for m in await asyncio.gather(*first)] == [1, 2, 3]
        later = await asyncio.wait_for(
            await chat.service.accept(chat.a, chat.couple.id, _text(3)), timeout=30
        )
        assert later.seq == 4
    # The failed item (the first published) is dropped: its clients catch up by seq.
    assert seen == [2, 3, 4]


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
    the writers stopped: they must neither wait for them nor pile up."""
    broker = MemoryBroker()
    seen: list[bytes] = []
    async with make_chat(broker) as chat:
        couple_id = chat.couple.id
        await broker.subscribe(channel_for(couple_id), lambda _c, payload: seen.append(payload))
    for i in range(300):
        await asyncio.wait_for(
            chat.service.pipeline.publish(couple_id, b"0\nevent %d" % i), timeout=30
        )
    assert len(seen) == 300
