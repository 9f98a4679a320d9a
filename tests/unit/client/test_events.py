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
    ReadReceipt,
    SystemEvent,
    parse_event,
    parse_timestamp,
)

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
    assert parse_event(b'{"type": "REACTION", "emoji": "x"}') is None


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
