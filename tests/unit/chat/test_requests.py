from __future__ import annotations

import uuid

import orjson
import pytest

from ieum_chat.chat.requests import (
    Claims,
    MessageType,
    parse_read_request,
    parse_send_request,
    parse_typing_request,
)
from ieum_chat.errors import ErrorCode, SendFailed

TYPES = "'type' must be one of TEXT, IMAGE, STICKER, AUDIO, VIDEO, FILE"


def body(**fields: object) -> bytes:
    return orjson.dumps(fields)


def test_text_message_is_accepted_and_unknown_fields_ignored() -> None:
    req = parse_send_request(body(type="TEXT", content="안녕하세요!", tempId="t-1", extra=[1]))
    assert req.type is MessageType.TEXT
    assert req.content == "안녕하세요!"
    assert req.temp_id == "t-1"
    assert req.image_url is None


def test_image_and_sticker() -> None:
    img = parse_send_request(body(type="IMAGE", imageUrl="https://cdn.example/a.png"))
    assert img.image_url == "https://cdn.example/a.png"
    sticker = parse_send_request(body(type="STICKER", content="heart-01"))
    assert sticker.content == "heart-01"


def test_file_claims_are_kept_for_the_types_that_have_each() -> None:
    claims = {"durationMs": 1500, "thumbnailUrl": "https://cdn.example/t.jpg", "size": 10}
    video = parse_send_request(body(type="VIDEO", mediaUrl="https://cdn.example/v.mp4", **claims))
    assert video.claims == Claims(duration_ms=1500, thumbnail_url="https://cdn.example/t.jpg")
    # Checked on a message without a file too (see test_bad_send_requests), but not kept.
    text = parse_send_request(body(type="TEXT", content="x", **claims))
    assert text.claims == Claims()


def test_text_of_exactly_4000_characters_is_accepted() -> None:
    assert parse_send_request(body(type="TEXT", content="가" * 4000)).content == "가" * 4000


@pytest.mark.parametrize(
    ("raw", "detail", "temp_id"),
    [
        (b"not json", "body is not valid JSON", None),
        (b"[1,2]", "body must be a JSON object", None),
        (b"", "body is not valid JSON", None),
        (body(type="TEXT", content="   ", tempId="t"), "TEXT needs a non-blank 'content'", "t"),
        (body(type="TEXT", tempId="t"), "TEXT needs a non-blank 'content'", "t"),
        (
            body(type="TEXT", content="a" * 4001, tempId="t"),
            "'content' is longer than 4000 characters",
            "t",
        ),
        (body(type="IMAGE", tempId="t"), "IMAGE needs 'imageUrl'", "t"),
        (
            body(type="IMAGE", imageUrl="ftp://x/y", tempId="t"),
            "'imageUrl' must be an http(s) URL",
            "t",
        ),
        (body(type="STICKER", tempId="t"), "STICKER needs 'content' (the sticker id)", "t"),
        (
            body(type="GIF", content="x", tempId="t"),
            TYPES,
            "t",
        ),
        (
            body(content="x", tempId="t"),
            TYPES,
            "t",
        ),
        (body(type="TEXT", content=5, tempId="t"), "'content' must be a string", "t"),
        (body(type="TEXT", content="x", tempId=5), "'tempId' must be a string", None),
        (
            body(type="TEXT", content="x", tempId="x" * 65),
            "'tempId' must have 1 to 64 characters",
            None,
        ),
        (
            body(type=["TEXT"], content="x", tempId="t"),
            TYPES,
            "t",
        ),
        # what the schema documents of a media field holds whatever the type carrying it
        (
            body(type="TEXT", content="x", size=-1, tempId="t"),
            f"'size' must be a whole number from 0 to {2**53}",
            "t",
        ),
        (
            body(type="STICKER", content="s", durationMs="2s", tempId="t"),
            f"'durationMs' must be a whole number from 0 to {2**31 - 1}",
            "t",
        ),
        (
            body(type="TEXT", content="x", fileName="a" * 256, tempId="t"),
            "'fileName' has at most 255 characters",
            "t",
        ),
        (
            body(type="AUDIO", mediaUrl="https://x/a.m4a", thumbnailUrl=7, tempId="t"),
            "'thumbnailUrl' must be a string",
            "t",
        ),
    ],
)
def test_bad_send_requests(raw: bytes, detail: str, temp_id: str | None) -> None:
    with pytest.raises(SendFailed) as info:
        parse_send_request(raw)
    assert info.value.detail == detail
    assert info.value.temp_id == temp_id
    payload = info.value.payload()
    assert payload["code"] == ErrorCode.SEND_FAILED.value
    assert payload["message"] == "메시지 전송에 실패했습니다."
    assert payload.get("tempId") == temp_id


def test_read_requests() -> None:
    ids = [uuid.uuid4(), uuid.uuid4()]
    assert parse_read_request(body(messageIds=[str(i) for i in ids])).message_ids == tuple(ids)
    assert parse_read_request(body(upToSeq=7)).up_to_seq == 7


@pytest.mark.parametrize(
    "raw",
    [
        body(),
        body(messageIds=["a"], upToSeq=1),
        body(upToSeq=-1),
        body(upToSeq=True),
        body(upToSeq="3"),
        body(messageIds="abc"),
        body(messageIds=[1, 2]),
        body(messageIds=["not-a-uuid"]),
        body(messageIds=[str(uuid.uuid4())] * 1001),
        b"{",
    ],
)
def test_bad_read_requests(raw: bytes) -> None:
    with pytest.raises(SendFailed):
        parse_read_request(raw)


def test_typing_requests() -> None:
    assert parse_typing_request(b'{"typing": true}') is True
    assert parse_typing_request(b'{"typing": false}') is False
    for raw in (b"{}", b'{"typing": 1}', b'{"typing": "yes"}', b"true"):
        with pytest.raises(SendFailed):
            parse_typing_request(raw)
