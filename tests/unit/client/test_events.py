"""Parsing the server's JSON into the SDK's typed events (README "Payloads", "Errors")."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from ieum_chat.client import (
    ChatMessage,
    ErrorEvent,
    MalformedEvent,
    MessageDeleted,
    MessageEdited,
    MessageUnsent,
    ReactionChanged,
    ReadReceipt,
    ReplyPreview,
    SystemEvent,
    event_seq,
    parse_event,
    parse_timestamp,
)
from ieum_chat.client._events import payload_seq

MESSAGE: dict[str, Any] = {
    "id": "990e8400-e29b-41d4-a716-446655440000",
    "coupleId": "660e8400-e29b-41d4-a716-446655440000",
    "seq": 17,
    "senderId": "550e8400-e29b-41d4-a716-446655440000",
    "senderName": "홍길동",
    "senderProfileImage": "https://example.com/p.png",
    "content": "안녕하세요!",
    "type": "TEXT",
    "imageUrl": None,
    "isRead": False,
    "readAt": None,
    "createdAt": "2024-01-11T10:10:00.000",
    "tempId": "client-temp-id-12345",
}


def body(data: dict[str, Any]) -> bytes:
    return orjson.dumps(data)


def test_chat_message_every_field() -> None:
    event = parse_event(body(MESSAGE))
    assert event == ChatMessage(
        id=uuid.UUID(MESSAGE["id"]),
        couple_id=uuid.UUID(MESSAGE["coupleId"]),
        seq=17,
        sender_id=uuid.UUID(MESSAGE["senderId"]),
        sender_name="홍길동",
        sender_profile_image="https://example.com/p.png",
        content="안녕하세요!",
        type="TEXT",
        image_url=None,
        is_read=False,
        read_at=None,
        created_at=datetime(2024, 1, 11, 10, 10, 0),
        temp_id="client-temp-id-12345",
    )


def test_chat_message_is_frozen() -> None:
    event = parse_event(body(MESSAGE))
    with pytest.raises(AttributeError):
        event.seq = 3  # type: ignore[union-attr,misc]


def test_read_message_and_image() -> None:
    data = {
        **MESSAGE,
        "type": "IMAGE",
        "content": None,
        "imageUrl": "https://cdn.example.com/a.jpg",
        "isRead": True,
        "readAt": "2024-01-11T10:15:00.5",
        "tempId": None,
    }
    event = parse_event(body(data))
    assert isinstance(event, ChatMessage)
    assert (event.type, event.image_url, event.content) == ("IMAGE", data["imageUrl"], None)
    assert event.is_read
    assert event.read_at == datetime(2024, 1, 11, 10, 15, 0, 500000)
    assert event.temp_id is None


MEDIA: dict[str, Any] = {
    "mediaUrl": None,
    "thumbnailUrl": None,
    "durationMs": None,
    "fileName": None,
    "size": None,
    "width": None,
    "height": None,
}


def media_of(event: ChatMessage) -> dict[str, object]:
    """The media fields that are set."""
    fields = ("media_url", "thumbnail_url", "duration_ms", "file_name", "size", "width", "height")
    return {name: getattr(event, name) for name in fields if getattr(event, name) is not None}


UPLOADS = "http://chat.example/uploads/c"


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        (
            {"type": "IMAGE", "imageUrl": f"{UPLOADS}/a.jpg", "mediaUrl": f"{UPLOADS}/a.jpg"}
            | {"thumbnailUrl": f"{UPLOADS}/a.webp", "size": 120_000}
            | {"width": 1600, "height": 1200},
            {"media_url": f"{UPLOADS}/a.jpg", "thumbnail_url": f"{UPLOADS}/a.webp"}
            | {"size": 120_000, "width": 1600, "height": 1200},
        ),
        (
            {"type": "AUDIO", "mediaUrl": f"{UPLOADS}/n.weba", "durationMs": 3250, "size": 5120},
            {"media_url": f"{UPLOADS}/n.weba", "duration_ms": 3250, "size": 5120},
        ),
        (
            {"type": "VIDEO", "mediaUrl": f"{UPLOADS}/v.mp4", "thumbnailUrl": f"{UPLOADS}/v.webp"}
            | {"durationMs": 61_000, "size": 9_000_000, "width": 1280, "height": 720},
            {"media_url": f"{UPLOADS}/v.mp4", "thumbnail_url": f"{UPLOADS}/v.webp"}
            | {"duration_ms": 61_000, "size": 9_000_000, "width": 1280, "height": 720},
        ),
        (
            {"type": "FILE", "mediaUrl": f"{UPLOADS}/f.pdf", "fileName": "여행 일정표.pdf"}
            | {"size": 48_213},
            {"media_url": f"{UPLOADS}/f.pdf", "file_name": "여행 일정표.pdf", "size": 48_213},
        ),
    ],
    ids=["image", "audio", "video", "file"],
)
def test_media_messages_carry_their_file(wire: dict[str, Any], expected: dict[str, Any]) -> None:
    event = parse_event(body({**MESSAGE, "content": None, **MEDIA, **wire}))
    assert isinstance(event, ChatMessage)
    assert event.type == wire["type"]
    assert media_of(event) == expected


def test_messages_without_media_keys_have_none() -> None:
    event = parse_event(body(MESSAGE))
    assert isinstance(event, ChatMessage)
    assert media_of(event) == {}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("mediaUrl", 5),
        ("thumbnailUrl", ["x"]),
        ("durationMs", "3200"),
        ("durationMs", 3.5),
        ("fileName", 1),
        ("size", True),
        ("width", "1600"),
        ("height", {}),
    ],
)
def test_broken_media_fields_keep_the_messages_seq(field: str, value: object) -> None:
    data = {**MESSAGE, **MEDIA, "type": "AUDIO", "mediaUrl": "https://cdn.example/n.m4a"}
    with pytest.raises(MalformedEvent, match=field) as caught:
        parse_event(body({**data, field: value}))
    assert caught.value.seq == MESSAGE["seq"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-11T10:10:00", datetime(2024, 1, 11, 10, 10)),
        ("2024-01-11T10:10:00.123", datetime(2024, 1, 11, 10, 10, 0, 123000)),
        ("2024-01-11T10:10:00.123456", datetime(2024, 1, 11, 10, 10, 0, 123456)),
    ],
)
def test_timestamps_are_local_without_offset(text: str, expected: datetime) -> None:
    assert parse_timestamp(text) == expected
    assert parse_timestamp(text).tzinfo is None


def test_timestamps_take_the_servers_zone_when_given() -> None:
    seoul = ZoneInfo("Asia/Seoul")
    event = parse_event(body(MESSAGE), seoul)
    assert isinstance(event, ChatMessage)
    assert event.created_at == datetime(2024, 1, 11, 10, 10, tzinfo=seoul)
    assert event.created_at.utcoffset() is not None


def test_read_receipt() -> None:
    ids = [str(uuid.uuid4()), str(uuid.uuid4())]
    event = parse_event(
        body(
            {
                "type": "READ_RECEIPT",
                "readerId": MESSAGE["senderId"],
                "messageIds": ids,
                "seqs": [16, 17],
                "readAt": "2024-01-11T10:15:00.000",
            }
        )
    )
    assert event == ReadReceipt(
        reader_id=uuid.UUID(MESSAGE["senderId"]),
        message_ids=tuple(uuid.UUID(i) for i in ids),
        seqs=(16, 17),
        read_at=datetime(2024, 1, 11, 10, 15),
    )


@pytest.mark.parametrize(
    ("event", "typing"), [("TYPING", True), ("TYPING", False), ("USER_CONNECTED", None)]
)
def test_system_events(event: str, typing: bool | None) -> None:
    data: dict[str, Any] = {
        "type": "SYSTEM",
        "event": event,
        "userId": MESSAGE["senderId"],
        "timestamp": "2024-01-11T10:10:00.000",
    }
    if typing is not None:
        data["typing"] = typing
    assert parse_event(body(data)) == SystemEvent(
        event, uuid.UUID(MESSAGE["senderId"]), datetime(2024, 1, 11, 10, 10), typing
    )


def test_notices_and_couple_events_have_no_user() -> None:
    notice = parse_event(
        body({**MESSAGE, "type": "NOTICE", "senderId": None, "senderName": "이음"})
    )
    assert isinstance(notice, ChatMessage)
    assert (notice.type, notice.sender_id, notice.sender_name) == ("NOTICE", None, "이음")
    dissolved = {
        "type": "SYSTEM",
        "event": "COUPLE_DISSOLVED",
        "timestamp": "2024-01-11T10:10:00.000",
        "coupleId": MESSAGE["coupleId"],
    }
    assert parse_event(body(dissolved)) == SystemEvent(
        "COUPLE_DISSOLVED", None, datetime(2024, 1, 11, 10, 10)
    )


def test_error_payload() -> None:
    event = parse_event(
        body(
            {
                "type": "ERROR",
                "code": "SEND_FAILED",
                "message": "메시지 전송에 실패했습니다.",
                "tempId": "t-1",
                "detail": "TEXT needs a non-blank 'content'",
            }
        )
    )
    assert event == ErrorEvent(
        "SEND_FAILED", "메시지 전송에 실패했습니다.", "TEXT needs a non-blank 'content'", "t-1"
    )
    assert isinstance(event, ErrorEvent)
    assert not event.fatal


def test_unknown_payload_type_is_ignored() -> None:
    assert parse_event(b'{"type": "POLL", "question": "x"}') is None
    # ...but its seq is read: it holds a place in the stream the client must step over.
    assert parse_event(b'{"type": "POLL", "seq": 9}') is None
    assert payload_seq(b'{"type": "POLL", "seq": 9}') == 9
    assert payload_seq(b'{"type": "POLL", "seq": true}') is None
    assert payload_seq(b"[9]") is None


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b'"text"'])
def test_not_a_json_object(raw: bytes) -> None:
    with pytest.raises(MalformedEvent) as info:
        parse_event(raw)
    assert info.value.seq is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", "not-a-uuid"),
        ("createdAt", "yesterday"),
        ("isRead", "no"),
        ("content", 5),
        ("type", None),
    ],
)
def test_broken_chat_message_keeps_its_seq(field: str, value: object) -> None:
    with pytest.raises(MalformedEvent) as info:
        parse_event(body({**MESSAGE, field: value}))
    assert info.value.seq == 17


@pytest.mark.parametrize("seq", ["17", 1.5, True, None])
def test_seq_must_be_an_integer(seq: object) -> None:
    with pytest.raises(MalformedEvent):
        parse_event(body({**MESSAGE, "seq": seq}))


def test_broken_read_receipt() -> None:
    with pytest.raises(MalformedEvent):
        parse_event(
            body(
                {
                    "type": "READ_RECEIPT",
                    "readerId": MESSAGE["senderId"],
                    "messageIds": ["nope"],
                    "seqs": [1],
                    "readAt": "2024-01-11T10:15:00",
                }
            )
        )


# -- the message lifecycle: what a message became, and the changes as stream entries -------

USER = "550e8400-e29b-41d4-a716-446655440000"
OTHER = "770e8400-e29b-41d4-a716-446655440000"
TARGET = "880e8400-e29b-41d4-a716-446655440000"


def change(kind: str, seq: int | None = 21, **fields: Any) -> bytes:
    data: dict[str, Any] = {
        "type": kind,
        "coupleId": MESSAGE["coupleId"],
        "messageId": TARGET,
        "userId": USER,
        "tempId": "t-9",
        **fields,
    }
    if seq is not None:
        data["seq"] = seq
    return body(data)


def test_a_message_from_before_the_lifecycle_has_its_defaults() -> None:
    event = parse_event(body(MESSAGE))
    assert isinstance(event, ChatMessage)
    assert (event.reply_to, event.edited_at, event.unsent, event.reactions) == (
        None,
        None,
        False,
        (),
    )


def test_chat_message_with_reply_edit_and_reactions() -> None:
    data = {
        **MESSAGE,
        "replyTo": {
            "messageId": TARGET,
            "senderId": OTHER,
            "type": "TEXT",
            "preview": "그래?",
            "unsent": False,
        },
        "editedAt": "2024-01-11T10:12:00.000",
        "unsent": False,
        "reactions": [
            {"emoji": "❤️", "userIds": [USER, OTHER]},
            {"emoji": "👍", "userIds": [OTHER]},
        ],
    }
    event = parse_event(body(data))
    assert isinstance(event, ChatMessage)
    assert event.reply_to == ReplyPreview(
        uuid.UUID(TARGET), uuid.UUID(OTHER), "TEXT", "그래?", False
    )
    assert event.edited_at == datetime(2024, 1, 11, 10, 12)
    assert event.reactions == (
        ("❤️", (uuid.UUID(USER), uuid.UUID(OTHER))),
        ("👍", (uuid.UUID(OTHER),)),
    )


def test_tombstone_and_a_reply_to_an_erased_message() -> None:
    data = {
        **MESSAGE,
        "content": None,
        "unsent": True,
        "reactions": [],
        "replyTo": {
            "messageId": TARGET,
            "senderId": None,
            "type": None,
            "preview": None,
            "unsent": True,
        },
    }
    event = parse_event(body(data))
    assert isinstance(event, ChatMessage)
    assert (event.content, event.unsent, event.reactions) == (None, True, ())
    assert event.reply_to == ReplyPreview(uuid.UUID(TARGET), None, None, None, True)


def test_message_edited() -> None:
    event = parse_event(change("MESSAGE_EDITED", content="고침", editedAt="2024-01-11T10:12:00"))
    assert event == MessageEdited(
        couple_id=uuid.UUID(MESSAGE["coupleId"]),
        seq=21,
        message_id=uuid.UUID(TARGET),
        user_id=uuid.UUID(USER),
        temp_id="t-9",
        content="고침",
        edited_at=datetime(2024, 1, 11, 10, 12),
    )
    erased = parse_event(change("MESSAGE_EDITED", content=None, editedAt="2024-01-11T10:12:00"))
    assert isinstance(erased, MessageEdited)
    assert erased.content is None


def test_message_unsent() -> None:
    event = parse_event(change("MESSAGE_UNSENT", unsentAt="2024-01-11T10:13:00.000"))
    assert event == MessageUnsent(
        uuid.UUID(MESSAGE["coupleId"]),
        21,
        uuid.UUID(TARGET),
        uuid.UUID(USER),
        "t-9",
        datetime(2024, 1, 11, 10, 13),
    )


@pytest.mark.parametrize(("op", "added"), [("add", True), ("remove", False)])
def test_reaction(op: str, added: bool) -> None:
    event = parse_event(change("REACTION", emoji="👍", op=op))
    assert event == ReactionChanged(
        uuid.UUID(MESSAGE["coupleId"]),
        21,
        uuid.UUID(TARGET),
        uuid.UUID(USER),
        "t-9",
        "👍",
        added,
    )
    assert event_seq(event) == 21


def test_message_deleted_live_has_no_seq_and_in_a_replay_has_one() -> None:
    live = parse_event(change("MESSAGE_DELETED", None, deletedAt="2024-01-11T10:14:00"))
    assert live == MessageDeleted(
        uuid.UUID(MESSAGE["coupleId"]),
        uuid.UUID(TARGET),
        uuid.UUID(USER),
        datetime(2024, 1, 11, 10, 14),
    )
    assert event_seq(live) is None
    replayed = parse_event(change("MESSAGE_DELETED", 7, deletedAt="2024-01-11T10:14:00"))
    assert isinstance(replayed, MessageDeleted)
    assert event_seq(replayed) == 7


def test_read_receipt_with_its_seq() -> None:
    event = parse_event(
        body(
            {
                "type": "READ_RECEIPT",
                "coupleId": MESSAGE["coupleId"],
                "seq": 30,
                "readerId": USER,
                "messageIds": [TARGET],
                "seqs": [29],
                "readAt": "2024-01-11T10:15:00.000",
            }
        )
    )
    assert isinstance(event, ReadReceipt)
    assert (event.seq, event.seqs) == (30, (29,))
    assert event_seq(event) == 30


def test_events_outside_the_stream_have_no_seq() -> None:
    assert event_seq(SystemEvent("TYPING", uuid.UUID(USER), datetime(2024, 1, 1), True)) is None
    assert event_seq(ErrorEvent("SEND_FAILED", "x")) is None
    assert event_seq(ReadReceipt(uuid.UUID(USER), (), (), datetime(2024, 1, 1))) is None


@pytest.mark.parametrize(
    "data",
    [
        pytest.param({"type": "REACTION", "op": "toggle", "emoji": "👍"}, id="unknown-op"),
        pytest.param({"type": "REACTION", "op": "add", "emoji": 5}, id="emoji-not-a-string"),
        pytest.param({"type": "MESSAGE_EDITED", "content": 1, "editedAt": "x"}, id="edit"),
        pytest.param({"type": "MESSAGE_UNSENT", "unsentAt": None}, id="unsent-at"),
        pytest.param({"type": "MESSAGE_DELETED", "deletedAt": "never"}, id="deleted-at"),
    ],
)
def test_a_broken_change_keeps_its_seq(data: dict[str, Any]) -> None:
    kind = data.pop("type")
    with pytest.raises(MalformedEvent) as info:
        parse_event(change(kind, 12, **data))
    assert info.value.seq == 12
    assert kind in str(info.value)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("replyTo", "someone"),
        ("replyTo", {"messageId": "nope", "unsent": False}),
        ("reactions", {"👍": []}),
        ("reactions", [{"emoji": "👍", "userIds": ["nope"]}]),
        ("reactions", [{"emoji": "👍"}]),
        ("unsent", "yes"),
        ("editedAt", "later"),
    ],
)
def test_broken_lifecycle_fields_keep_the_messages_seq(field: str, value: object) -> None:
    with pytest.raises(MalformedEvent) as info:
        parse_event(body({**MESSAGE, field: value}))
    assert info.value.seq == 17
