"""The client's handling of incoming frames, without a server: exactly-once in-order
delivery of messages and their changes, resync on a gap, backpressure by refusal and resume,
errors mapped to sends and changes, changes written through the outbox."""

from __future__ import annotations

import asyncio
import dataclasses
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
    MessageDeleted,
    MessageEdited,
    ReactionChanged,
    ReadReceipt,
    RoomView,
    SendError,
    SystemEvent,
    UploadResult,
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


# -- the stream holds changes too: every payload with a seq goes through the sequencer -----

USER = uuid.uuid4()


def change(
    kind: str, seq: int | None, message_id: uuid.UUID, sub: str = "topic-1", **extra: Any
) -> Frame:
    body: dict[str, Any] = {
        "type": kind,
        "coupleId": str(COUPLE),
        "messageId": str(message_id),
        "userId": str(USER),
        "tempId": None,
        **extra,
    }
    if seq is not None:
        body["seq"] = seq
    return Frame("MESSAGE", (("subscription", sub),), orjson.dumps(body))


def edit(seq: int, message_id: uuid.UUID, content: str = "edited") -> Frame:
    return change(
        "MESSAGE_EDITED", seq, message_id, content=content, editedAt="2024-01-11T10:11:00"
    )


def react(seq: int, message_id: uuid.UUID, op: str = "add") -> Frame:
    return change("REACTION", seq, message_id, emoji="👍", op=op)


def deleted(message_id: uuid.UUID, seq: int | None = None, sub: str = "events-1") -> Frame:
    return change("MESSAGE_DELETED", seq, message_id, sub, deletedAt="2024-01-11T10:12:00")


def sequenced_client(**kwargs: Any) -> ChatClient:
    c = client(resume_after_seq=0, view=RoomView(), **kwargs)
    c._events_sub = "events-1"
    return c


def first_id(c: ChatClient) -> uuid.UUID:
    assert c.view is not None
    return c.view.messages()[0].id


async def test_changes_are_delivered_once_in_order_and_applied() -> None:
    c = sequenced_client()
    c._on_frame(chat(1))
    target = first_id(c)
    for frame in (edit(2, target), react(3, target), edit(2, target), react(3, target)):
        c._on_frame(frame)
    events = drain(c)
    assert [type(e) for e in events] == [ChatMessage, MessageEdited, ReactionChanged]
    assert c.last_seq == 3
    assert c.stats.duplicates_dropped == 2
    assert c.stats.gaps == 0
    assert c.view is not None
    held = c.view.get(target)
    assert held is not None
    assert (held.content, held.reactions) == ("edited", (("👍", (USER,)),))


async def test_a_gap_after_a_change_resyncs() -> None:
    c = sequenced_client()
    c._on_frame(chat(1))
    c._on_frame(react(3, first_id(c)))  # 2 (a read mark, say) is missing
    assert c.stats.gaps == 1
    assert c._resync
    assert c.last_seq == 1


async def test_a_live_delete_for_me_has_no_seq_and_is_applied_at_once() -> None:
    c = sequenced_client(max_events=1)
    c._on_frame(chat(1))  # fills the application's queue
    target = first_id(c)
    c._on_frame(deleted(target))
    assert c.stats.events_dropped == 1  # the application did not get it...
    assert c.view is not None
    assert target not in c.view  # ...but the view did
    assert c.last_seq == 1
    assert c.stats.gaps == 0


async def test_a_replayed_delete_takes_the_messages_place() -> None:
    c = sequenced_client()
    c._on_frame(chat(1))
    c._on_frame(deleted(uuid.uuid4(), seq=2, sub="topic-1"))
    c._on_frame(chat(3))
    events = drain(c)
    assert [type(e) for e in events] == [ChatMessage, MessageDeleted, ChatMessage]
    assert c.last_seq == 3
    assert c.stats.gaps == 0


async def test_an_unknown_kind_with_a_seq_is_stepped_over() -> None:
    c = sequenced_client()
    c._on_frame(chat(1))
    poll = {"type": "POLL", "coupleId": str(COUPLE), "seq": 2}
    c._on_frame(Frame("MESSAGE", (("subscription", "topic-1"),), orjson.dumps(poll)))
    c._on_frame(chat(3))
    assert c.last_seq == 3
    assert c.stats.gaps == 0
    assert [e.seq for e in drain(c) if isinstance(e, ChatMessage)] == [1, 3]


async def test_a_broken_change_is_skipped_not_resynced_forever() -> None:
    c = sequenced_client()
    c._on_frame(chat(1))
    c._on_frame(change("REACTION", 2, first_id(c), emoji="👍", op="toggle"))
    c._on_frame(chat(3))
    assert c.last_seq == 3
    assert c.stats.gaps == 0


async def test_changes_refused_by_a_full_queue_are_fetched_again_not_dropped() -> None:
    c = sequenced_client(max_events=2)
    c._on_frame(chat(1))
    target = first_id(c)
    c._on_frame(edit(2, target))
    c._on_frame(react(3, target))  # refused: the view must not get ahead of the stream
    assert c.last_seq == 2
    assert c.stats.overflows == 1
    assert c.stats.events_dropped == 0
    assert c.view is not None
    held = c.view.get(target)
    assert held is not None
    assert held.reactions == ()


async def test_a_read_receipt_with_a_seq_is_sequenced() -> None:
    c = sequenced_client()
    c._on_frame(chat(1))
    target = first_id(c)
    receipt = {
        "type": "READ_RECEIPT",
        "coupleId": str(COUPLE),
        "seq": 2,
        "readerId": str(USER),
        "messageIds": [str(target)],
        "seqs": [1],
        "readAt": "2024-01-11T10:15:00",
    }
    frame = Frame("MESSAGE", (("subscription", "topic-1"),), orjson.dumps(receipt))
    c._on_frame(frame)
    c._on_frame(frame)
    assert [type(e) for e in drain(c)] == [ChatMessage, ReadReceipt]
    assert c.stats.duplicates_dropped == 1
    assert c.view is not None
    held = c.view.get(target)
    assert held is not None
    assert held.is_read


# -- changes of sent messages go through the outbox -----------------------------------------


class Recorder:
    """Stands in for the connection: keeps what the client writes."""

    def __init__(self) -> None:
        self.frames: list[Frame] = []

    async def write(self, frame: Frame) -> None:
        self.frames.append(frame)


async def test_changes_are_written_to_their_destinations_in_order() -> None:
    c = client()
    target = uuid.uuid4()
    calls = [
        asyncio.create_task(c.send_text("hi", temp_id="m1")),
        asyncio.create_task(c.edit(target, "hello", temp_id="e1")),
        asyncio.create_task(c.react(target, "❤️", temp_id="r1")),
        asyncio.create_task(c.unreact(target, "❤️", temp_id="r2")),
        asyncio.create_task(c.unsend(target, temp_id="u1")),
        asyncio.create_task(c.delete_for_me(target)),
    ]
    await asyncio.sleep(0)
    link = Recorder()
    await c._flush(link, 1, 0.0)  # type: ignore[arg-type]
    base = f"/app/chat/{COUPLE}"
    assert [f.get("destination") for f in link.frames] == [
        base,
        f"{base}/edit",
        f"{base}/react",
        f"{base}/react",
        f"{base}/unsend",
        f"{base}/delete",
    ]
    bodies = [orjson.loads(f.body) for f in link.frames]
    assert [b.get("tempId") for b in bodies[:5]] == ["m1", "e1", "r1", "r2", "u1"]
    assert bodies[5]["tempId"]  # generated: it matches an error to the delete
    assert [b.get("op") for b in bodies[2:4]] == ["add", "remove"]
    assert c.pending_sends == 6
    for frame in link.frames:  # every RECEIPT answers its request
        c._on_frame(Frame("RECEIPT", (("receipt-id", frame.get("receipt") or ""),)))
    receipts = await asyncio.gather(*calls)
    assert [r.temp_id for r in receipts[:5]] == ["m1", "e1", "r1", "r2", "u1"]
    assert c.pending_sends == 0


async def test_a_change_is_written_again_after_a_reconnect_with_its_temp_id() -> None:
    c = client()
    call = asyncio.create_task(c.edit(uuid.uuid4(), "hello", temp_id="e1"))
    await asyncio.sleep(0)
    first, second = Recorder(), Recorder()
    await c._flush(first, 1, 0.0)  # type: ignore[arg-type]
    await c._flush(second, 2, 0.0)  # type: ignore[arg-type]  # the RECEIPT was lost
    assert [orjson.loads(f.body)["tempId"] for f in first.frames + second.frames] == ["e1"] * 2
    c._on_frame(Frame("RECEIPT", (("receipt-id", second.frames[0].get("receipt") or ""),)))
    assert (await call).attempts == 2


@pytest.mark.parametrize("code", ["NOT_FOUND", "FORBIDDEN", "WINDOW_EXPIRED", "SEND_FAILED"])
async def test_a_refused_change_raises_send_error(code: str) -> None:
    c = client()
    call = asyncio.create_task(c.unsend(uuid.uuid4(), temp_id="u1"))
    await asyncio.sleep(0)
    await c._flush(Recorder(), 1, 0.0)  # type: ignore[arg-type]
    c._on_frame(error(code, "u1", "no"))
    with pytest.raises(SendError) as info:
        await call
    assert (info.value.code, info.value.temp_id, info.value.transient) == (code, "u1", False)


async def test_a_temp_id_pending_for_another_request_is_refused() -> None:
    c = client()
    target = uuid.uuid4()
    pending = asyncio.create_task(c.edit(target, "a", temp_id="t"))
    await asyncio.sleep(0)
    with pytest.raises(ValueError, match="another kind"):
        await c.react(target, "👍", temp_id="t")
    again = asyncio.create_task(c.edit(target, "a", temp_id="t"))  # a retry joins it
    await asyncio.sleep(0)
    assert c.pending_sends == 1
    await c.close()
    for task in (pending, again):
        with pytest.raises(ClientClosed):
            await task


# -- media messages: sent as send_image is, through the outbox ------------------------------

MEDIA_URL = "http://chat.example/uploads/c/n.weba"


async def test_media_messages_are_written_once_each_and_again_after_a_reconnect() -> None:
    c = client()
    upload = UploadResult(
        upload_id="u-1",
        kind="VIDEO",
        content_type="video/mp4",
        size=9_000,
        media_url="http://chat.example/uploads/c/v.mp4",
        image_url=None,
        thumbnail_url="http://chat.example/uploads/c/v.webp",
        duration_ms=4_000,
        width=320,
        height=240,
        file_name=None,
    )
    calls = [
        asyncio.create_task(c.send_audio(MEDIA_URL, duration_ms=3_200, temp_id="a1")),
        asyncio.create_task(c.send_video(MEDIA_URL, caption="봐봐", temp_id="v1")),
        asyncio.create_task(c.send_file(MEDIA_URL, file_name="일정.pdf", size=10, temp_id="f1")),
        asyncio.create_task(c.send_upload(upload, "영상", temp_id="u1")),
    ]
    await asyncio.sleep(0)
    first, second = Recorder(), Recorder()
    await c._flush(first, 1, 0.0)  # type: ignore[arg-type]
    await c._flush(second, 2, 0.0)  # type: ignore[arg-type]  # the RECEIPTs were lost
    assert {f.get("destination") for f in first.frames} == {f"/app/chat/{COUPLE}"}
    bodies = [orjson.loads(f.body) for f in first.frames]
    assert bodies == [orjson.loads(f.body) for f in second.frames]
    assert bodies == [
        {"type": "AUDIO", "content": None, "mediaUrl": MEDIA_URL, "durationMs": 3_200}
        | {"tempId": "a1"},
        {"type": "VIDEO", "content": "봐봐", "mediaUrl": MEDIA_URL, "tempId": "v1"},
        {"type": "FILE", "content": None, "mediaUrl": MEDIA_URL, "fileName": "일정.pdf"}
        | {"size": 10, "tempId": "f1"},
        # What the server knows of the upload it fills in itself.
        {"type": "VIDEO", "content": "영상", "mediaUrl": upload.media_url, "tempId": "u1"},
    ]
    for frame in second.frames:
        c._on_frame(Frame("RECEIPT", (("receipt-id", frame.get("receipt") or ""),)))
    receipts = await asyncio.gather(*calls)
    assert [(r.temp_id, r.attempts) for r in receipts] == [
        ("a1", 2),
        ("v1", 2),
        ("f1", 2),
        ("u1", 2),
    ]


async def test_an_image_upload_is_sent_as_an_image() -> None:
    c = client()
    url = "http://chat.example/uploads/c/a.jpg"
    image = UploadResult("u-2", "IMAGE", "image/jpeg", 10, url, url, None, None, 4, 3, None)
    call = asyncio.create_task(c.send_upload(image, temp_id="i1"))
    await asyncio.sleep(0)
    link = Recorder()
    await c._flush(link, 1, 0.0)  # type: ignore[arg-type]
    assert orjson.loads(link.frames[0].body) == {
        "type": "IMAGE",
        "content": None,
        "imageUrl": url,
        "tempId": "i1",
    }
    c._on_frame(Frame("RECEIPT", (("receipt-id", link.frames[0].get("receipt") or ""),)))
    assert (await call).temp_id == "i1"
    with pytest.raises(ValueError, match="kind 'SCROLL'"):
        await c.send_upload(dataclasses.replace(image, kind="SCROLL"))


async def test_a_refused_voice_note_raises_send_error_with_the_servers_reason() -> None:
    c = client()
    call = asyncio.create_task(c.send_audio(MEDIA_URL, duration_ms=60_000, temp_id="a1"))
    await asyncio.sleep(0)
    await c._flush(Recorder(), 1, 0.0)  # type: ignore[arg-type]
    c._on_frame(error("SEND_FAILED", "a1", "durationMs 60000 is not the upload's 3200"))
    with pytest.raises(SendError, match="durationMs") as info:
        await call
    assert (info.value.code, info.value.temp_id, info.value.transient) == (
        "SEND_FAILED",
        "a1",
        False,
    )
