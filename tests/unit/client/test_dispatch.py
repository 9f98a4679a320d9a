"""The client's handling of incoming frames, without a server: exactly-once in-order
delivery, resync on a gap, backpressure by refusal and resume, errors mapped to sends."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import orjson
import pytest

from ieum_chat.client import (
    ChatClient,
    ChatMessage,
    ClientClosed,
    ErrorEvent,
    Event,
    SendError,
    SystemEvent,
)
from ieum_chat.client._link import ServerError
from ieum_chat.stomp import Frame

COUPLE = uuid.uuid4()
SENDER = uuid.uuid4()


def client(**kwargs: Any) -> ChatClient:
    c = ChatClient("ws://127.0.0.1:1/ws/chat", lambda: "token", couple_id=COUPLE, **kwargs)
    c._topic_sub = "topic-1"
    c._topic_live = True
    c._errors_sub = "errors-1"
    return c


def chat(seq: int, sub: str = "topic-1", temp_id: str | None = None) -> Frame:
    body = {
        "id": str(uuid.uuid4()),
        "coupleId": str(COUPLE),
        "seq": seq,
        "senderId": str(SENDER),
        "senderName": "a",
        "senderProfileImage": None,
        "content": f"m{seq}",
        "type": "TEXT",
        "imageUrl": None,
        "isRead": False,
        "readAt": None,
        "createdAt": "2024-01-11T10:10:00.000",
        "tempId": temp_id,
    }
    return Frame("MESSAGE", (("subscription", sub),), orjson.dumps(body))


def error(code: str, temp_id: str | None, detail: str = "") -> Frame:
    body = {"type": "ERROR", "code": code, "message": "x", "tempId": temp_id, "detail": detail}
    return Frame("MESSAGE", (("subscription", "errors-1"),), orjson.dumps(body))


def drain(c: ChatClient) -> list[Event]:
    items: list[Event] = []
    while len(c._events):
        items.append(c._events._items.popleft())
    return items


async def test_in_order_exactly_once() -> None:
    c = client(resume_after_seq=0)
    for seq in (1, 2, 2, 1, 3):
        c._on_frame(chat(seq))
    delivered = drain(c)
    assert [m.seq for m in delivered if isinstance(m, ChatMessage)] == [1, 2, 3]
    assert c.last_seq == 3
    assert c.stats.duplicates_dropped == 2


async def test_gap_drops_and_resubscribes_from_the_last_seq() -> None:
    c = client(resume_after_seq=0)
    c._on_frame(chat(1))
    c._on_frame(chat(3))
    assert c.stats.gaps == 1
    assert c._resync
    assert c._wake.is_set()
    c._on_frame(chat(2))  # the old subscription is no longer trusted
    assert [m.seq for m in drain(c) if isinstance(m, ChatMessage)] == [1]
    assert c.last_seq == 1


async def test_messages_of_a_replaced_subscription_are_ignored() -> None:
    c = client(resume_after_seq=0)
    c._on_frame(chat(1, sub="topic-0"))
    assert drain(c) == []


async def test_a_slow_application_gets_refused_messages_again_later() -> None:
    c = client(resume_after_seq=0, max_events=4)
    for seq in range(1, 7):
        c._on_frame(chat(seq))
    assert c.last_seq == 4  # 5 and 6 were refused: the server still has them
    assert c.stats.overflows == 1
    assert c._overflowed
    assert not c._topic_live
    assert not c._resync
    assert (await c.next_event()).seq == 1  # type: ignore[union-attr]
    assert not c._resync  # 3 left: above half the queue
    assert (await c.next_event()).seq == 2  # type: ignore[union-attr]
    assert c._resync  # caught up: resubscribe after seq 4


async def test_non_chat_events_are_dropped_when_full_and_counted() -> None:
    c = client(resume_after_seq=0, max_events=1)
    c._on_frame(chat(1))
    typing = {
        "type": "SYSTEM",
        "event": "TYPING",
        "userId": str(SENDER),
        "timestamp": "2024-01-11T10:10:00",
        "typing": True,
    }
    c._on_frame(Frame("MESSAGE", (("subscription", "topic-1"),), orjson.dumps(typing)))
    assert c.stats.events_dropped == 1
    assert isinstance(drain(c)[0], ChatMessage)
    c._on_frame(Frame("MESSAGE", (("subscription", "topic-1"),), orjson.dumps(typing)))
    assert isinstance(drain(c)[0], SystemEvent)


async def test_unreadable_chat_message_is_skipped_not_resynced_forever() -> None:
    c = client(resume_after_seq=0)
    c._on_frame(Frame("MESSAGE", (("subscription", "topic-1"),), b'{"seq": 1, "senderId": 5}'))
    assert c.last_seq == 1
    c._on_frame(chat(2))
    assert [m.seq for m in drain(c) if isinstance(m, ChatMessage)] == [2]
    assert c.stats.gaps == 0


async def test_receipt_completes_the_send() -> None:
    c = client()
    entry = c._outbox.add("t1", b"{}")
    c._outbox.mark_written(entry, 0, "s-1")
    c._receipts["s-1"] = "t1"
    c._flow.on_write()
    c._on_frame(Frame("RECEIPT", (("receipt-id", "s-1"),)))
    receipt = await entry.future
    assert (receipt.temp_id, receipt.attempts) == ("t1", 1)
    assert c.stats.receipts == 1
    assert c._flow.inflight == 0


async def test_permanent_error_fails_the_send() -> None:
    c = client()
    entry = c._outbox.add("t1", b"{}")
    c._outbox.mark_written(entry, 0, "s-1")
    c._receipts["s-1"] = "t1"
    c._on_frame(error("SEND_FAILED", "t1", "TEXT needs a non-blank 'content'"))
    with pytest.raises(SendError) as info:
        await entry.future
    assert (info.value.code, info.value.temp_id, info.value.transient) == (
        "SEND_FAILED",
        "t1",
        False,
    )
    assert "s-1" not in c._receipts
    assert isinstance(drain(c)[0], ErrorEvent)  # the application sees it too


@pytest.mark.parametrize(
    ("code", "detail"),
    [("RATE_LIMITED", "slow down"), ("SEND_FAILED", "the message could not be stored")],
)
async def test_transient_error_retries_then_gives_up(code: str, detail: str) -> None:
    c = client(max_send_retries=2)
    entry = c._outbox.add("t1", b"{}")
    for attempt in range(3):
        c._outbox.mark_written(entry, 0, f"s-{attempt}")
        c._receipts[f"s-{attempt}"] = "t1"
        c._on_frame(error(code, "t1", detail))
        if attempt < 2:
            assert not entry.future.done()
            assert entry.written_on is None  # to be written again, same tempId
            assert entry.not_before > asyncio.get_running_loop().time()
    with pytest.raises(SendError) as info:
        await entry.future
    assert info.value.transient
    assert c.stats.retries == 2


async def test_error_frame_ends_the_session() -> None:
    c = client()
    body = orjson.dumps({"type": "ERROR", "code": "TOKEN_EXPIRED", "message": "expired"})
    with pytest.raises(ServerError) as info:
        c._on_frame(Frame("ERROR", (("message", "TOKEN_EXPIRED"),), body))
    assert info.value.event.code == "TOKEN_EXPIRED"
    assert info.value.event.fatal


async def test_send_validates_temp_id_and_close_fails_pending() -> None:
    c = client()
    with pytest.raises(ValueError, match="temp_id"):
        await c.send_text("x", temp_id="")
    with pytest.raises(ValueError, match="temp_id"):
        await c.send_text("x", temp_id="x" * 65)
    pending = asyncio.create_task(c.send_text("hello", temp_id="t"))
    await asyncio.sleep(0)
    assert c.pending_sends == 1
    await c.close()
    with pytest.raises(ClientClosed, match="closed"):
        await pending
