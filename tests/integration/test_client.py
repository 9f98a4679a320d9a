"""The Python client SDK against a real server, on SQLite and PostgreSQL: chatting, dropped
sockets, a killed server, lost RECEIPTs, token refresh."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from ieum_chat.client import (
    Backoff,
    ChatClient,
    ChatMessage,
    Connected,
    ErrorEvent,
    ReadReceipt,
    SendError,
    SystemEvent,
)
from ieum_chat.stomp import Frame
from tests.support.polling import eventually
from tests.support.server import ServerProcess

Couple = dict[str, str]

FAST: dict[str, Any] = {"backoff": Backoff(0.05, 0.5), "heartbeat": (1.0, 1.0)}


def member(
    server: ServerProcess, couple: Couple, who: str, cls: type[ChatClient] = ChatClient, **kw: Any
) -> ChatClient:
    options: dict[str, Any] = {"resume_after_seq": 0, **FAST, **kw}
    return cls(server.ws_url, lambda: couple[f"t{who}"], couple_id=couple["couple"], **options)


@asynccontextmanager
async def running(*clients: ChatClient) -> AsyncIterator[None]:
    try:
        for client in clients:
            client.start()
        async with asyncio.timeout(30):
            for client in clients:
                await client.wait_ready()
        yield
    finally:
        for client in clients:
            await client.close()


async def next_of(
    client: ChatClient, kind: type[Any] | tuple[type[Any], ...], timeout: float = 15.0
) -> Any:
    """The next event of type ``kind`` (or of one of them), skipping the others (presence,
    Connected, ...)."""
    async with asyncio.timeout(timeout):
        while True:
            event = await client.next_event()
            if isinstance(event, kind):
                return event


async def chat(client: ChatClient, n: int, timeout: float = 15.0) -> list[ChatMessage]:
    return [await next_of(client, ChatMessage, timeout) for _ in range(n)]


def assert_exactly_once_in_order(messages: list[ChatMessage], first: int = 1) -> None:
    seqs = [m.seq for m in messages]
    assert seqs == list(range(first, first + len(messages))), seqs
    temp_ids = Counter(m.temp_id for m in messages)
    assert all(count == 1 for count in temp_ids.values()), temp_ids.most_common(3)


async def test_two_members_chat(server: ServerProcess, couple: Couple) -> None:
    a, b = member(server, couple, "a"), member(server, couple, "b")
    async with running(a, b):
        text = await a.send_text("안녕하세요!")
        image = await a.send_image("https://cdn.example/a.jpg", caption="보세요")
        sticker = await a.send_sticker("bear-01", temp_id="sticker-1")
        assert sticker.temp_id == "sticker-1"
        assert (text.attempts, image.attempts, sticker.attempts) == (1, 1, 1)
        got = await chat(b, 3)
        assert [(m.seq, m.type, m.content) for m in got] == [
            (1, "TEXT", "안녕하세요!"),
            (2, "IMAGE", "보세요"),
            (3, "STICKER", "bear-01"),
        ]
        assert got[1].image_url == "https://cdn.example/a.jpg"
        assert [m.temp_id for m in got] == [text.temp_id, image.temp_id, "sticker-1"]
        assert {m.sender_id for m in got} == {uuid.UUID(couple["a"])} == {a.user_id}
        assert all(m.couple_id == uuid.UUID(couple["couple"]) for m in got)
        assert got[0].created_at.year >= 2024
        assert b.last_seq == 3
        # The sender sees its own messages too, once each.
        assert [m.seq for m in await chat(a, 3)] == [1, 2, 3]


async def test_read_receipts_and_typing(server: ServerProcess, couple: Couple) -> None:
    a, b = member(server, couple, "a"), member(server, couple, "b")
    async with running(a, b):
        for i in range(3):
            await a.send_text(f"m{i}")
        await chat(b, 3)
        last = (await chat(a, 3))[-1]
        await b.mark_read(up_to_seq=2)
        receipt: ReadReceipt = await next_of(a, ReadReceipt)
        assert receipt.seqs == (1, 2)
        assert receipt.reader_id == uuid.UUID(couple["b"])
        await b.mark_read(message_ids=[last.id])
        assert (await next_of(a, ReadReceipt)).message_ids == (last.id,)
        assert await b.typing(True)
        typing: SystemEvent = await next_of(a, SystemEvent)
        while typing.event != "TYPING":
            typing = await next_of(a, SystemEvent)
        assert (typing.user_id, typing.typing) == (uuid.UUID(couple["b"]), True)


async def test_refused_messages_raise_send_error(server: ServerProcess, couple: Couple) -> None:
    a, b = member(server, couple, "a"), member(server, couple, "b")
    async with running(a, b):
        with pytest.raises(SendError) as info:
            await a.send_text("   ", temp_id="blank")
        assert (info.value.code, info.value.temp_id, info.value.transient) == (
            "SEND_FAILED",
            "blank",
            False,
        )
        with pytest.raises(SendError):
            await a.send_image("https://elsewhere.example/x.png")
        error: ErrorEvent = await next_of(a, ErrorEvent)
        assert error.temp_id == "blank"
        assert not error.fatal
        # Nothing was stored: the next message is seq 1.
        await a.send_text("ok")
        assert [m.seq for m in await chat(b, 1)] == [1]
        assert a.pending_sends == 0


async def test_dropped_sockets_resume_without_gap_or_duplicate(
    server: ServerProcess, couple: Couple
) -> None:
    a, b = member(server, couple, "a"), member(server, couple, "b")
    async with running(a, b):
        total = 150

        async def send_all() -> None:
            for i in range(0, total, 10):
                await asyncio.gather(*(a.send_text(f"m{j}") for j in range(i, i + 10)))

        async def reconnected(a_was: int, b_was: int) -> None:
            await eventually(
                lambda: a.stats.connects > a_was and b.stats.connects > b_was, timeout=30
            )

        sender = asyncio.create_task(send_all())
        received: list[ChatMessage] = []
        while len(received) < total:
            received.append(await next_of(b, ChatMessage))
            if len(received) % 40 == 0:
                a_before, b_before = a.stats.connects, b.stats.connects
                await b.reconnect()  # the socket just dies, as on a network failure
                await a.reconnect()
                # Both come back on new sockets before the next drop. Reading on without
                # waiting, the next 40 may all be queued already, read without a loop turn
                # in which the client sees its socket die: its next drop would find the dead
                # socket, do nothing, and no reconnection would follow it.
                await reconnected(a_before, b_before)
        await asyncio.wait_for(sender, 30)
        assert_exactly_once_in_order(received)
        assert a.pending_sends == 0


async def test_server_killed_and_restarted(server: ServerProcess, couple: Couple) -> None:
    a, b = member(server, couple, "a"), member(server, couple, "b")
    async with running(a, b):
        before = [await a.send_text(f"before {i}") for i in range(5)]
        server.stop(signal.SIGKILL)
        # Queued while the server is down: sent (same tempIds) once it is back.
        during = [asyncio.create_task(a.send_text(f"during {i}")) for i in range(5)]
        await asyncio.sleep(0.3)
        assert not any(task.done() for task in during)
        await asyncio.to_thread(server.start)
        receipts = await asyncio.wait_for(asyncio.gather(*during), 30)
        got = await chat(b, 10)
        assert_exactly_once_in_order(got)
        assert [m.temp_id for m in got] == [r.temp_id for r in before + receipts]
        assert b.stats.connects >= 2


class LosingReceipts(ChatClient):
    """Drops the RECEIPTs of its SENDs while ``lose`` is set, as a connection that dies
    between the commit and the RECEIPT would."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lose = True
        self.lost = 0
        self.lost_20 = asyncio.Event()

    def _on_frame(self, frame: Frame) -> None:
        receipt_id = frame.get("receipt-id") or ""
        if self.lose and frame.command == "RECEIPT" and receipt_id.startswith("s-"):
            self.lost += 1
            if self.lost == 20:
                self.lost_20.set()
            return
        super()._on_frame(frame)


async def test_lost_receipt_is_resent_with_the_same_temp_id_and_stored_once(
    server: ServerProcess, couple: Couple
) -> None:
    a = member(server, couple, "a", LosingReceipts)
    b = member(server, couple, "b")
    assert isinstance(a, LosingReceipts)
    async with running(a, b):
        sends = [asyncio.create_task(a.send_text(f"m{i}", temp_id=f"t{i}")) for i in range(20)]
        first = await chat(b, 20)  # stored and broadcast...
        await asyncio.wait_for(a.lost_20.wait(), 15)  # ...but the sender never heard back
        assert not any(task.done() for task in sends)
        a.lose = False
        await a.reconnect()
        receipts = await asyncio.wait_for(asyncio.gather(*sends), 30)
        assert [r.attempts for r in receipts] == [2] * 20
        assert a.stats.resent == 20
        await a.send_text("after", temp_id="after")
        after = await chat(b, 1)
        assert_exactly_once_in_order(first + after)
        assert [m.temp_id for m in first + after] == [f"t{i}" for i in range(20)] + ["after"]
    # A fresh client replaying from seq 0 sees the same: each tempId once, consecutive seqs.
    fresh = member(server, couple, "b")
    async with running(fresh):
        replay = await chat(fresh, 21)
        assert_exactly_once_in_order(replay)


async def test_token_provider_is_called_per_connect_and_auth_failure_retried(
    server: ServerProcess, couple: Couple
) -> None:
    calls: list[str] = []

    async def tokens() -> str:
        calls.append("x")
        return "not-a-jwt" if len(calls) == 1 else couple["ta"]

    client = ChatClient(server.ws_url, tokens, couple_id=couple["couple"], **FAST)
    async with running(client):
        error: ErrorEvent = await next_of(client, ErrorEvent)
        assert (error.code, error.fatal) == ("AUTH_FAILED", True)
        await next_of(client, Connected)  # backed off, then connected with a fresh token
        assert len(calls) == 2
        await client.reconnect()
        await next_of(client, Connected)
        assert len(calls) == 3


async def test_not_a_member_is_reported(
    server: ServerProcess, couple: Couple, couple_pool: Any
) -> None:
    other = next(couple_pool)
    client = ChatClient(server.ws_url, lambda: couple["ta"], couple_id=other["couple"], **FAST)
    client.start()
    try:
        error: ErrorEvent = await next_of(client, ErrorEvent)
        assert error.code == "UNAUTHORIZED"
        assert not client.connected
    finally:
        await client.close()


async def test_live_start_and_slow_reader_catch_up(server: ServerProcess, couple: Couple) -> None:
    """``resume_after_seq=None`` starts live; an application that stops reading gets the
    messages it missed later, in order, without the queue growing past its bound."""
    a = member(server, couple, "a")
    async with running(a):
        await a.send_text("history")
        b = member(server, couple, "b", resume_after_seq=None, max_events=8)
        async with running(b):
            for i in range(40):
                await a.send_text(f"live {i}")
            await asyncio.sleep(0.3)  # b reads nothing meanwhile
            assert len(b._events) <= 8
            got = await chat(b, 40)
            assert [m.content for m in got] == [f"live {i}" for i in range(40)]
            assert_exactly_once_in_order(got, first=2)
            assert b.stats.overflows >= 1


async def test_a_client_that_knew_no_seq_misses_nothing_across_its_first_drop(
    server: ServerProcess, couple: Couple
) -> None:
    """Started live-only (no seq known), it learns where its stream starts from the
    SUBSCRIBE's RECEIPT; a message sent while it is away arrives when it is back."""
    gate = asyncio.Event()
    gate.set()

    async def token() -> str:
        await gate.wait()
        return couple["ta"]

    a = ChatClient(server.ws_url, token, couple_id=couple["couple"], **FAST)
    async with running(a):
        gate.clear()  # the next connection waits for its token
        await a.reconnect()
        async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as http:
            sent = await http.post(
                f"/chat/rooms/{couple['couple']}/messages",
                headers={"Authorization": f"Bearer {couple['tb']}"},
                json={"type": "TEXT", "content": "while you were away", "tempId": "away-1"},
            )
        assert sent.status_code == 201, sent.text
        gate.set()
        message = await next_of(a, ChatMessage)
        assert (message.content, message.temp_id) == ("while you were away", "away-1")
        assert a.last_seq == message.seq
