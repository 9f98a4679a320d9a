"""Threat: one couple's messages failing other couples' messages in the same group commit.

The chat service commits the pending messages of many couples in one database transaction,
and accepts a SEND from a member whose membership it has cached. A member of couple P keeps
its socket open while P is deleted in the database, then keeps sending. Its messages can no
longer be stored; the messages of other couples committed in the same batch must be stored
and acknowledged all the same. Each of P's SENDs gets an UNAUTHORIZED error payload with its
own tempId (as any SEND by a non-member does), and no RECEIPT; or, once the server has read
the deletion from the directory feed (within about a second), P's session gets the SYSTEM
event COUPLE_DISSOLVED, then ERROR COUPLE_DISSOLVED, and what it had not answered by then is
never acknowledged.

A real server on SQLite and on PostgreSQL (the two append paths: the store's transaction and
the server-side function).
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import Iterator

import asyncpg  # type: ignore[import-untyped]
import httpx
from websockets.exceptions import ConnectionClosedOK

from ieum_chat.config import Settings
from tests.support.server import ServerProcess
from tests.support.stomp_client import StompTestClient, frame_json

Couple = dict[str, str]

SENDS = 40  # per sender, pipelined: enough for the writer to batch several senders together
OTHERS = 3  # couples sending beside P


def same_writer(pool: Iterator[Couple], first: Couple, count: int) -> list[Couple]:
    """``count`` couples committed by the same writer task as ``first`` (couples are spread
    over the writers by id), so that their messages share batches with first's."""
    writers = Settings.model_fields["write_concurrency"].default
    lane = uuid.UUID(first["couple"]).int % writers
    return [c for c in pool if uuid.UUID(c["couple"]).int % writers == lane][:count]


async def delete_couple(database_url: str, couple_id: str) -> None:
    """Delete the couple and its messages behind the server's back, as an operator would."""
    statements = ("DELETE FROM messages WHERE couple_id = $1", "DELETE FROM couples WHERE id = $1")
    if database_url.startswith("sqlite"):
        path = database_url.removeprefix("sqlite:///")
        with sqlite3.connect(path, timeout=10) as conn:
            for statement in statements:  # SQLAlchemy stores a UUID as 32 hex digits there
                conn.execute(statement.replace("$1", "?"), (uuid.UUID(couple_id).hex,))
        conn.close()
        return
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            for statement in statements:
                await conn.execute(statement, uuid.UUID(couple_id))
    finally:
        await conn.close()


async def member(server: ServerProcess, couple: Couple) -> StompTestClient:
    """Member ``a`` of the couple, subscribed to its errors and to the couple's topic (which
    makes the server cache the membership)."""
    client = await StompTestClient.connected(server.ws_url, couple["ta"])
    await client.subscribe("/user/queue/errors")
    await client.subscribe(f"/topic/couple/{couple['couple']}")
    return client


async def send_all(
    client: StompTestClient, couple: Couple, tag: str, *, may_end: bool = False
) -> list[str]:
    """The tempIds sent. With ``may_end`` (P's session), the server may end the session before
    or while they are written, once it has read the deletion: what was not written by then is
    not sent."""
    temp_ids = [f"{tag}-{i}" for i in range(SENDS)]
    for written, temp_id in enumerate(temp_ids):
        try:
            await client.send(
                "SEND",
                {"destination": f"/app/chat/{couple['couple']}", "receipt": f"r-{temp_id}"},
                {"type": "TEXT", "content": f"hello from {tag}", "tempId": temp_id},
            )
        except ConnectionClosedOK:
            if not may_end:
                raise
            return temp_ids[:written]
    return temp_ids


class Outcomes:
    """What one sender's session received: RECEIPT ids, error payloads, chat tempIds, the
    couple's SYSTEM events."""

    def __init__(self) -> None:
        self.receipts: set[str] = set()
        self.errors: list[dict[str, str]] = []
        self.delivered: list[str] = []
        self.events: list[str] = []
        self.ended: str | None = None  # the code of the ERROR frame that ended the session


async def outcomes(client: StompTestClient, answers: int, deliveries: int) -> Outcomes:
    """Read until ``answers`` SENDs are answered (RECEIPT or error) and ``deliveries`` chat
    messages have arrived on the couple's topic (reading them all lets the socket close)."""
    seen = Outcomes()
    while len(seen.receipts) + len(seen.errors) < answers or len(seen.delivered) < deliveries:
        frame = await client.next_frame(timeout=20)
        if frame.command == "ERROR":
            seen.ended = frame.get("message")
            return seen
        if frame.command == "RECEIPT":
            seen.receipts.add(str(frame.get("receipt-id")))
            continue
        assert frame.command == "MESSAGE", f"unexpected {frame}"
        body = frame_json(frame)
        if body.get("type") == "ERROR":
            seen.errors.append(body)
        elif body.get("type") == "SYSTEM":
            seen.events.append(body["event"])
        else:
            seen.delivered.append(body["tempId"])
    return seen


async def history(server: ServerProcess, couple: Couple) -> list[str]:
    """The tempIds stored in the couple's history (REST)."""
    async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as http:
        response = await http.get(
            f"/chat/rooms/{couple['couple']}/messages",
            params={"limit": 100},
            headers={"Authorization": f"Bearer {couple['ta']}"},
        )
    assert response.status_code == 200, response.text
    return sorted(m["tempId"] for m in response.json()["messages"])


async def test_a_deleted_couple_fails_only_its_own_messages(
    server: ServerProcess, database_url: str, couple_pool: Iterator[Couple]
) -> None:
    deleted = next(couple_pool)
    others = same_writer(couple_pool, deleted, OTHERS)
    assert len(others) == OTHERS

    orphan = await member(server, deleted)
    senders = [await member(server, couple) for couple in others]
    await delete_couple(database_url, deleted["couple"])

    everyone = [
        (orphan, deleted, "gone"),
        *((s, c, f"c{i}") for i, (s, c) in enumerate(zip(senders, others, strict=True))),
    ]
    sent = await asyncio.gather(
        *(
            send_all(client, couple, tag, may_end=couple is deleted)
            for client, couple, tag in everyone
        )
    )
    orphaned, *rest = await asyncio.gather(
        outcomes(orphan, SENDS, 0), *(outcomes(client, SENDS, SENDS) for client in senders)
    )

    for seen, temp_ids in zip(rest, sent[1:], strict=True):
        assert seen.ended is None
        assert seen.events == []
        assert seen.errors == [], f"another couple's SENDs failed: {seen.errors[:3]}"
        assert seen.receipts == {f"r-{t}" for t in temp_ids}
        assert seen.delivered == temp_ids
    assert orphaned.receipts == set()
    assert orphaned.delivered == []  # nothing of P's was published
    assert {e["code"] for e in orphaned.errors} <= {"UNAUTHORIZED"}
    refused = sorted(e["tempId"] for e in orphaned.errors)
    if orphaned.ended is None:
        assert refused == sorted(sent[0])  # each SEND answered, with its tempId
        assert orphaned.events == []
    else:
        assert orphaned.ended == "COUPLE_DISSOLVED"
        assert orphaned.events == ["COUPLE_DISSOLVED"]
        assert set(refused) <= set(sent[0])

    for couple, temp_ids in zip(others, sent[1:], strict=True):
        assert await history(server, couple) == sorted(temp_ids)
    for client, _, _ in everyone:
        await client.close()
