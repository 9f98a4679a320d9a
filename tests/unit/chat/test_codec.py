from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import orjson
import pytest
from asyncpg.pgproto import pgproto  # type: ignore[import-untyped]

from ieum_chat.chat import codec
from ieum_chat.chat.envelope import channel_for, pack, unpack
from ieum_chat.ids import new_ordered_id
from ieum_chat.store.records import MESSAGE_FIELDS, ChangeKind, Event, Media, Message, User

UTC = ZoneInfo("UTC")
SEOUL = ZoneInfo("Asia/Seoul")


def message(**extra: object) -> Message:
    fields: dict[str, object] = {
        "id": uuid.uuid4(),
        "couple_id": uuid.uuid4(),
        "sender_id": uuid.uuid4(),
        "seq": 3,
        "type": "TEXT",
        "content": "안녕",
        "image_url": None,
        "is_read": False,
        "read_at": None,
        "created_at": datetime(2024, 1, 11, 1, 10, 0, 123456),
        "temp_id": "t-1",
    }
    fields.update(extra)
    return Message(**fields)  # type: ignore[arg-type]


def test_timestamps_are_local_without_offset() -> None:
    stamp = datetime(2024, 1, 11, 1, 10, 0)
    assert codec.format_timestamp(stamp, UTC) == "2024-01-11T01:10:00.000"
    assert codec.format_timestamp(stamp, SEOUL) == "2024-01-11T10:10:00.000"


@pytest.mark.parametrize(
    "stamp",
    [
        datetime(2024, 12, 31, 23, 59, 59, 999999),
        datetime(2024, 2, 29, 9, 5, 7, 1000),
        datetime(2024, 10, 1, 0, 0, 0, 999),
        datetime(999, 1, 2, 3, 4, 5, 60000),
        datetime(1, 1, 1),
        datetime(9999, 12, 31, 22, 59, 59, 999999),
    ],
)
def test_timestamps_are_written_as_isoformat_writes_milliseconds(stamp: datetime) -> None:
    assert codec.format_timestamp(stamp, UTC) == stamp.isoformat(timespec="milliseconds")


@pytest.mark.parametrize(
    ("zone", "utc", "local"),
    [
        # New York springs forward at 2:00 local (07:00 UTC) and falls back at 2:00 (06:00 UTC).
        ("America/New_York", datetime(2024, 3, 10, 6, 59, 59, 999000), "2024-03-10T01:59:59.999"),
        ("America/New_York", datetime(2024, 3, 10, 7, 0), "2024-03-10T03:00:00.000"),
        ("America/New_York", datetime(2024, 11, 3, 5, 30), "2024-11-03T01:30:00.000"),
        ("America/New_York", datetime(2024, 11, 3, 6, 30), "2024-11-03T01:30:00.000"),
        # Lord Howe Island moves by half an hour.
        ("Australia/Lord_Howe", datetime(2024, 4, 6, 14, 59), "2024-04-07T01:59:00.000"),
        ("Australia/Lord_Howe", datetime(2024, 4, 6, 15, 0), "2024-04-07T01:30:00.000"),
    ],
)
def test_timestamps_follow_the_zone_across_its_transitions(
    zone: str, utc: datetime, local: str
) -> None:
    assert codec.format_timestamp(utc, ZoneInfo(zone)) == local


def _by_astimezone(stamp: datetime, tz: ZoneInfo) -> str:
    """``stamp`` (naive UTC) in ``tz`` the long way, as the codec must render it."""
    local = stamp.replace(tzinfo=UTC).astimezone(tz).replace(tzinfo=None)
    return local.isoformat(timespec="milliseconds")


@pytest.mark.parametrize("zone", ["America/New_York", "Australia/Lord_Howe", "Asia/Seoul"])
def test_timestamps_agree_with_astimezone_over_a_year(zone: str) -> None:
    tz = ZoneInfo(zone)
    start = datetime(2024, 1, 1)
    for quarter_hour in range(366 * 24 * 4):
        stamp = start + timedelta(minutes=15 * quarter_hour, microseconds=quarter_hour)
        assert codec.format_timestamp(stamp, tz) == _by_astimezone(stamp, tz)


def test_a_zones_offset_kept_for_one_hour_is_not_used_for_another_zone_or_hour() -> None:
    # Lord Howe Island moves from +10:30 to +11:00 at 15:30 UTC, within an hour of UTC;
    # walked backwards, minute by minute, taking turns with New York.
    lord_howe, new_york = ZoneInfo("Australia/Lord_Howe"), ZoneInfo("America/New_York")
    for minute in range(180, -1, -1):
        stamp = datetime(2024, 10, 5, 14, 0) + timedelta(minutes=minute)
        for tz in (lord_howe, new_york, lord_howe):
            assert codec.format_timestamp(stamp, tz) == _by_astimezone(stamp, tz)


def test_message_carries_every_field_of_the_plan_plus_seq() -> None:
    msg = message()
    sender = User(id=msg.sender_id, name="홍길동", profile_image="https://p/1.png")
    data = orjson.loads(codec.message_json(msg, sender, SEOUL))
    assert set(data) >= {
        "id",
        "senderId",
        "senderName",
        "senderProfileImage",
        "content",
        "type",
        "imageUrl",
        "isRead",
        "readAt",
        "createdAt",
        "tempId",
        "seq",
    }
    assert data["senderName"] == "홍길동"
    assert data["createdAt"] == "2024-01-11T10:10:00.123"
    assert data["seq"] == 3
    assert data["readAt"] is None


def test_the_codec_renders_every_field_of_message() -> None:
    """message_dict is Message's one JSON converter: a field added to the dataclass and not
    put on the wire (under its camelCase name) fails here, as one the dataclass lacks does.
    ``media`` is put on the wire as its fields (a media message's; other types carry none)."""

    def camel(name: str) -> str:
        head, *rest = name.split("_")
        return head + "".join(part.title() for part in rest)

    # on the wire as what they mean: the message answered (a preview), whether it is unsent
    renamed = {"reply_to_id": "replyTo", "unsent_at": "unsent"}
    media = {camel(f.name) for f in dataclasses.fields(Media)}
    fields = {renamed.get(name, camel(name)) for name in MESSAGE_FIELDS} - {"media"}
    extra = {"senderName", "senderProfileImage", "asOfSeq"}
    audio = codec.message_dict(message(type="AUDIO", media_url="https://x/a.m4a"), None, UTC)
    assert set(audio) == fields | media | extra
    text = codec.message_dict(message(), None, UTC)
    assert set(text) == fields - {"mediaUrl"} | extra
    assert text["asOfSeq"] == text["seq"]  # live: its own seq
    assert codec.message_dict(message(), None, UTC, as_of=9)["asOfSeq"] == 9


def test_a_media_message_carries_what_is_known_of_its_file() -> None:
    known = Media(thumbnail_url="https://x/v.thumb.webp", duration_ms=3000, size=9, width=4)
    video = codec.message_dict(
        message(type="VIDEO", media_url="https://x/v.mp4", media=known), None, UTC
    )
    assert {k: video[k] for k in ("mediaUrl", "thumbnailUrl", "durationMs", "fileName")} == {
        "mediaUrl": "https://x/v.mp4",
        "thumbnailUrl": "https://x/v.thumb.webp",
        "durationMs": 3000,
        "fileName": None,
    }
    assert (video["size"], video["width"], video["height"]) == (9, 4, None)


def test_the_rest_schema_of_a_message_has_the_wire_fields() -> None:
    """REST's OpenAPI model lists the message's fields for the documentation: it names
    exactly what the codec puts on the wire (of a media message: all of them)."""
    from ieum_chat.api.models import MessageOut

    wire = codec.message_dict(message(type="FILE", media_url="https://x/f.pdf"), None, UTC)
    assert set(MessageOut.model_fields) == set(wire)


def test_read_receipt_and_system_payloads() -> None:
    msg = message(is_read=True, read_at=datetime(2024, 1, 11, 1, 15))
    reader = uuid.uuid4()
    read = Event(
        msg.couple_id,
        7,
        ChangeKind.READ,
        reader,
        None,
        None,
        datetime(2024, 1, 11, 1, 15),
        {"messageIds": [str(msg.id)], "seqs": [3]},
    )
    data = orjson.loads(codec.event_json(read, SEOUL))
    assert data == {
        "type": "READ_RECEIPT",
        "coupleId": str(msg.couple_id),
        "seq": 7,
        "readerId": str(reader),
        "messageIds": [str(msg.id)],
        "seqs": [3],
        "readAt": "2024-01-11T10:15:00.000",
    }
    typing = orjson.loads(
        codec.system_json("TYPING", reader, datetime(2024, 1, 1), UTC, typing=True)
    )
    assert typing["type"] == "SYSTEM"
    assert typing["event"] == "TYPING"
    assert typing["typing"] is True
    connected = orjson.loads(codec.system_json("USER_CONNECTED", reader, datetime(2024, 1, 1), UTC))
    assert "typing" not in connected


def test_ids_are_written_as_str_writes_them_whatever_uuid_class_holds_them() -> None:
    # orjson writes uuid.UUID itself; asyncpg reads ids into a subclass of its own.
    plain = uuid.uuid4()
    read = pgproto.UUID(plain.bytes)
    msg = message(id=plain, couple_id=read, sender_id=read)
    wire = orjson.loads(codec.message_json(msg, None, UTC))
    assert (wire["id"], wire["coupleId"], wire["senderId"]) == (str(plain), str(read), str(read))
    assert codec.dumps({"ids": [plain, read]}) == f'{{"ids":["{plain}","{read}"]}}'.encode()
    with pytest.raises(TypeError, match="not JSON serializable: object"):
        codec.dumps({"x": object()})


def test_envelope_round_trip() -> None:
    couple = uuid.uuid4()
    assert channel_for(couple) == f"couple:{couple}"
    # the channel is the id as str() writes it, leading zeros, extremes and asyncpg's class too
    for other in (uuid.UUID(int=1), uuid.UUID(int=(1 << 128) - 1), new_ordered_id()):
        assert channel_for(other) == f"couple:{other}"
        assert channel_for(pgproto.UUID(other.bytes)) == f"couple:{other}"
    assert unpack(pack(42, b'{"a":"\\n"}\n')) == (42, None, b'{"a":"\\n"}\n')
    assert unpack(pack(0, b"")) == (0, None, b"")
    user = uuid.uuid4()
    assert unpack(pack(0, b"{}", audience=user)) == (0, user, b"{}")
    with pytest.raises(ValueError, match="envelope"):
        unpack(b"42")
