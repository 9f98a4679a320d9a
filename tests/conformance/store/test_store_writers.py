"""The chat service's writers on each store: however many commit at once (several on
PostgreSQL, one on SQLite whatever is asked), each couple's messages get their seqs in the
order they were accepted and are published in that order, every one once."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Callable

from tests.conformance.store.conftest import CoupleFactory

from ieum_chat.auth import TokenVerifier
from ieum_chat.broker.memory import MemoryBroker
from ieum_chat.chat.envelope import channel_for, unpack
from ieum_chat.chat.requests import parse_send_request
from ieum_chat.chat.service import ChatService
from ieum_chat.config import Settings
from ieum_chat.store import Couple, Database, Message, User

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
