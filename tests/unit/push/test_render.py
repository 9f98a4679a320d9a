"""What pushes and webhooks say, without I/O: the contract's payload, texts by locale, the
hidden preview, webhook ids stable per change, and the signature a receiver recomputes."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

import orjson
import pytest

from ieum_chat.push import render
from ieum_chat.push.webhooks import signature
from ieum_chat.store.records import ChangeKind, Event, Message

SEOUL = ZoneInfo("Asia/Seoul")
AT = datetime(2024, 5, 1, 3, 4, 5)


def message(type_: str = "TEXT", content: str | None = "hi", **kw: object) -> Message:
    fields: dict[str, object] = {
        "id": uuid.uuid4(),
        "couple_id": uuid.uuid4(),
        "sender_id": uuid.uuid4(),
        "seq": 7,
        "type": type_,
        "content": content,
        "image_url": None,
        "is_read": False,
        "read_at": None,
        "created_at": AT,
        "temp_id": "t-1",
    }
    fields.update(kw)
    return Message(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("type_", "content", "locale", "preview"),
    [
        ("TEXT", "밥 먹었어?", None, "밥 먹었어?"),
        ("IMAGE", None, "ko-KR", "사진"),
        ("IMAGE", None, "en-US", "Photo"),
        ("STICKER", "heart-01", "ko", "이모티콘"),
        ("STICKER", "heart-01", "en", "Sticker"),
        ("NOTICE", "100일 축하해요", "en", "100일 축하해요"),
    ],
)
def test_preview_by_type_and_locale(
    type_: str, content: str | None, locale: str | None, preview: str
) -> None:
    msg = message(type_, content)
    note = render.notification(msg, "민지", locale=locale, show_preview=True, unread=3)
    assert note.data == {
        "type": type_,
        "coupleId": str(msg.couple_id),
        "seq": 7,
        "messageId": str(msg.id),
        "senderName": "민지",
        "preview": preview,
        "unreadCount": 3,
    }
    assert (note.title, note.body, note.badge) == ("민지", preview, 3)
    assert note.collapse_key == str(msg.couple_id)


def test_a_long_text_is_cut_and_a_hidden_preview_says_new_message() -> None:
    msg = message("TEXT", "가" * 500)
    note = render.notification(msg, "민지", locale="ko", show_preview=True, unread=1)
    assert len(note.body) == render.PREVIEW_LENGTH
    assert note.body.endswith("…")
    for locale, text in (("ko", "새 메시지"), ("en-GB", "New message")):
        hidden = render.notification(msg, "민지", locale=locale, show_preview=False, unread=1)
        assert (hidden.title, hidden.body, hidden.data["preview"]) == ("이음", text, text)
        assert "가" not in str(hidden)
        assert "민지" not in str(hidden)


def test_a_notification_survives_its_stored_form() -> None:
    note = render.notification(message(), "민지", locale=None, show_preview=True, unread=2)
    stored = orjson.loads(orjson.dumps(render.notification_to_json(note)))
    assert render.notification_from_json(stored) == note


def test_webhook_ids_are_stable_per_change_and_distinct_across_changes() -> None:
    msg = message()
    first = orjson.loads(render.stream_event(msg, SEOUL, {}, {}, as_of=7) or b"")
    again = orjson.loads(render.stream_event(msg, SEOUL, {}, {}, as_of=9) or b"")
    assert first["id"] == again["id"]
    assert first["type"] == "message.created"
    assert first["createdAt"] == "2024-05-01T12:04:05.000"  # in IEUM_TIMEZONE, as on the wire
    assert (first["data"]["asOfSeq"], again["data"]["asOfSeq"]) == (7, 9)
    edit = Event(
        msg.couple_id, 8, ChangeKind.EDIT, msg.sender_id, msg.id, None, AT, {"content": "x"}
    )
    edited = orjson.loads(render.stream_event(edit, SEOUL, {}, {}, as_of=8) or b"")
    assert edited["type"] == "message.edited"
    assert edited["id"] != first["id"]
    react = Event(
        msg.couple_id,
        9,
        ChangeKind.REACT,
        msg.sender_id,
        msg.id,
        None,
        AT,
        {"emoji": "❤️", "op": "add"},
    )
    assert render.stream_event(react, SEOUL, {}, {}, as_of=9) is None
    dissolved = orjson.loads(
        render.couple_dissolved(msg.couple_id, (msg.sender_id, uuid.uuid4()), AT, SEOUL)
    )
    assert dissolved["type"] == "couple.dissolved"
    erased = orjson.loads(render.user_erased(msg.sender_id, AT, SEOUL))
    assert (erased["type"], erased["data"]["userId"]) == ("user.erased", str(msg.sender_id))


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    body = b'{"id":"1"}'
    header = signature("s3cret", body, 1_700_000_000)
    expected = hmac.new(b"s3cret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"
