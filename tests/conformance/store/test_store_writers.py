"""The chat service's writers on each store: however many commit at once (several on
PostgreSQL, one on SQLite whatever is asked), each couple's messages get their seqs in the
order they were accepted and are published in that order, every one once; on PostgreSQL a
writer sends its next batch to the store before it answers for the last, and one stopped
meanwhile finishes answering the last before it ends."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence

import pytest
from tests.conformance.store.conftest import CoupleFactory

from ieum_chat.auth import TokenVerifier
from ieum_chat.broker.memory import MemoryBroker
from ieum_chat.chat.envelope import channel_for, unpack
from ieum_chat.chat.requests import parse_send_request
from ieum_chat.chat.service import ChatService
from ieum_chat.config import Settings
from ieum_chat.store import Couple, Database, Message, User
from ieum_chat.store.records import Appended, NewMessage

WRITERS = 3
SENDS = 40  # per couple, both members in turn


def _recorder(seqs: list[int]) -> Callable[[str, bytes], None]:
    return lambda _channel, payload: seqs.append(unpack(payload)[0])


async def test_several_writers_keep_each_couples_order(
    db: Database, make_couple: CoupleFactory
) -> None:
    settings = Settings(
        jwt_secret="ieum-chat-writers-test-secret-0123456789",
        write_concurrency=WRITERS,
        message_rate=100_000,
        message_burst=100_000,
    )
    # Couples go to writers by id: enough of them that every writer has some.
    couples: list[tuple[Couple, User, User]] = []
    while len({c.id.int % WRITERS for c, _, _ in couples}) < WRITERS or len(couples) < 6:
        couples.append(await make_couple())
    broker = MemoryBroker()
    published: dict[uuid.UUID, list[int]] = defaultdict(list)
    for couple, _, _ in couples:
        await broker.subscribe(channel_for(couple.id), _recorder(published[couple.id]))
    service = ChatService(db, broker, settings, TokenVerifier(settings))
    await service.start()
    try:
        futures: dict[uuid.UUID, list[asyncio.Future[Message]]] = defaultdict(list)
        for i in range(SENDS):
            for couple, a, b in couples:
                request = parse_send_request(
                    b'{"type":"TEXT","content":"m%d","tempId":"t%d"}' % (i, i),
                    max_text_length=4000,
                )
                sender = a if i % 2 == 0 else b
                futures[couple.id].append(await service.accept(sender, couple.id, request))
        for couple, _, _ in couples:
            stored = await asyncio.gather(*futures[couple.id])
            assert [m.seq for m in stored] == list(range(1, SENDS + 1))
            assert [m.content for m in stored] == [f"m{i}" for i in range(SENDS)]
    finally:
        await service.close()
    for couple, _, _ in couples:
        assert published[couple.id] == list(range(1, SENDS + 1))


async def test_postgresql_stores_the_next_batch_while_the_last_is_answered(
    db: Database, make_couple: CoupleFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL the database commits the next batch while the writer acknowledges and
    publishes the one it just stored; on SQLite (whose transactions run on a thread of this
    process) one batch is answered before the next is stored. Either way the batches are
    answered one after the other, in order."""
    settings = Settings(jwt_secret="ieum-chat-writers-test-secret-0123456789")
    couple, a, _ = await make_couple()
    broker = MemoryBroker()
    events: list[tuple[str, int]] = []
    await broker.subscribe(
        channel_for(couple.id), lambda _c, payload: events.append(("publish", unpack(payload)[0]))
    )
    store = db.append_messages
    in_store, go_on = asyncio.Event(), asyncio.Event()

    async def append_messages(batch: Sequence[NewMessage]) -> list[Appended]:
        events.append(("store", len(batch)))
        if not in_store.is_set():  # the first batch waits until the rest has queued
            in_store.set()
            await go_on.wait()
        return await store(batch)

    monkeypatch.setattr(db, "append_messages", append_messages)

    def acknowledge(future: asyncio.Future[Message]) -> None:
        events.append(("ack", future.result().seq))

    service = ChatService(db, broker, settings, TokenVerifier(settings))
    await service.start()
    try:
        futures = []
        for i in range(5):
            request = parse_send_request(
                b'{"type":"TEXT","content":"m%d","tempId":"t%d"}' % (i, i), max_text_length=4000
            )
            futures.append(await service.accept(a, couple.id, request, acknowledge=acknowledge))
            if i == 0:
                await asyncio.wait_for(in_store.wait(), timeout=30)
        go_on.set()
        await asyncio.wait_for(asyncio.gather(*futures), timeout=30)
    finally:
        await service.close()
    later = [*(("ack", seq) for seq in range(2, 6)), *(("publish", seq) for seq in range(2, 6))]
    if db.dialect == "postgresql":
        assert events == [("store", 1), ("store", 4), ("ack", 1), ("publish", 1), *later]
    else:
        assert events == [("store", 1), ("ack", 1), ("publish", 1), ("store", 4), *later]


@pytest.mark.parametrize(
    "backend", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
async def test_a_writer_stopped_while_storing_answers_the_batch_before_first(
    db: Database, make_couple: CoupleFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL a writer stores the next batch while it answers the last. Stopped
    (cancelled, as at shutdown) while that next batch is being stored, it still finishes
    answering the last one, then ends: that batch's messages are published, none is lost."""
    settings = Settings(jwt_secret="ieum-chat-writers-test-secret-0123456789")
    couple, a, _ = await make_couple()
    broker = MemoryBroker()
    published: list[int] = []
    await broker.subscribe(channel_for(couple.id), _recorder(published))
    store, read = db.append_messages, db.messages_by_id
    stored_calls: list[int] = []
    in_store, go_on, never = asyncio.Event(), asyncio.Event(), asyncio.Event()
    answering, release = asyncio.Event(), asyncio.Event()

    async def append_messages(batch: Sequence[NewMessage]) -> list[Appended]:
        stored_calls.append(len(batch))
        if len(stored_calls) == 2:  # the reply's batch waits until the next has queued
            in_store.set()
            await go_on.wait()
        elif len(stored_calls) == 3:  # the next batch is stored until the writer stops
            await never.wait()
        return await store(batch)

    async def messages_by_id(ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Message]:
        if in_store.is_set():  # answering the reply's batch: its quote is read again
            answering.set()
            await release.wait()
        return await read(ids)

    monkeypatch.setattr(db, "append_messages", append_messages)
    monkeypatch.setattr(db, "messages_by_id", messages_by_id)

    def send(body: bytes) -> Awaitable[asyncio.Future[Message]]:
        return service.accept(a, couple.id, parse_send_request(body, max_text_length=4000))

    service = ChatService(db, broker, settings, TokenVerifier(settings))
    await service.start()
    try:
        quoted = await (await send(b'{"type":"TEXT","content":"q","tempId":"q"}'))
        reply = f'{{"type":"TEXT","content":"r","tempId":"r","replyTo":"{quoted.id}"}}'
        answered = await send(reply.encode())
        await asyncio.wait_for(in_store.wait(), timeout=30)
        await send(b'{"type":"TEXT","content":"n","tempId":"n"}')
        go_on.set()
        await asyncio.wait_for(answering.wait(), timeout=30)
        assert (await answered).seq == 2  # acknowledged; its publication waits for the read
        (writer,) = [t for t in asyncio.all_tasks() if t.get_name() == "chat-writer-0"]
        writer.cancel()
        await asyncio.sleep(0.2)
        assert not writer.done()  # it waits for the batch it was answering
        release.set()
        await asyncio.wait_for(asyncio.wait([writer]), timeout=30)
        assert writer.cancelled()
        assert published == [1, 2]
    finally:
        release.set()
        await service.close(grace=1.0)
