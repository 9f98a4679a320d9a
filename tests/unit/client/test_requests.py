"""The SEND bodies of messages and of changes to sent messages (README "Destinations")."""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson
import pytest

from ieum_chat.client._requests import (
    MAX_TEMP_ID_LENGTH,
    check_temp_id,
    delete_request,
    edit_request,
    media_fields,
    react_request,
    send_request,
    unsend_request,
)

MESSAGE = uuid.UUID("990e8400-e29b-41d4-a716-446655440000")


def test_temp_ids_are_generated_or_checked() -> None:
    fresh = check_temp_id(None)
    assert uuid.UUID(fresh).version == 7  # time-ordered: see ieum_chat.ids
    time.sleep(0.002)
    later = check_temp_id(None)
    assert later != fresh
    assert later > fresh  # as text, in the order they were made
    assert check_temp_id("x" * MAX_TEMP_ID_LENGTH) == "x" * MAX_TEMP_ID_LENGTH
    for bad in ("", "x" * (MAX_TEMP_ID_LENGTH + 1)):
        with pytest.raises(ValueError, match="temp_id"):
            check_temp_id(bad)


def test_a_message_names_what_it_answers_only_when_it_answers() -> None:
    plain = send_request("TEXT", "hi", None, "t1")
    assert plain.suffix == ""
    assert orjson.loads(plain.body) == {
        "type": "TEXT",
        "content": "hi",
        "imageUrl": None,
        "tempId": "t1",
    }
    reply = send_request("TEXT", "hi", None, "t2", reply_to=str(MESSAGE))
    assert orjson.loads(reply.body)["replyTo"] == str(MESSAGE)


def test_an_image_keeps_its_body() -> None:
    image = send_request("IMAGE", "보세요", "https://cdn.example/a.jpg", "t1")
    assert orjson.loads(image.body) == {
        "type": "IMAGE",
        "content": "보세요",
        "imageUrl": "https://cdn.example/a.jpg",
        "tempId": "t1",
    }


def test_media_messages_name_their_file_and_only_the_details_given() -> None:
    url = "http://chat.example/uploads/c/n.weba"
    audio = send_request("AUDIO", None, None, "t1", media=media_fields(url))
    assert audio.suffix == ""
    assert orjson.loads(audio.body) == {
        "type": "AUDIO",
        "content": None,
        "mediaUrl": url,
        "tempId": "t1",
    }
    video = send_request(
        "VIDEO",
        "봐봐",
        None,
        "t2",
        reply_to=MESSAGE,
        media=media_fields(url, duration_ms=61_000, thumbnail_url="http://chat.example/t.webp"),
    )
    assert orjson.loads(video.body) == {
        "type": "VIDEO",
        "content": "봐봐",
        "mediaUrl": url,
        "durationMs": 61_000,
        "thumbnailUrl": "http://chat.example/t.webp",
        "tempId": "t2",
        "replyTo": str(MESSAGE),
    }
    file = send_request(
        "FILE", None, None, "t3", media=media_fields(url, file_name="일정.pdf", size=48_213)
    )
    body = orjson.loads(file.body)
    assert (body["fileName"], body["size"]) == ("일정.pdf", 48_213)
    assert "imageUrl" not in body


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"media_url": ""}, "media_url"),
        ({"media_url": "u", "duration_ms": -1}, "durationMs"),
        ({"media_url": "u", "duration_ms": 1.5}, "durationMs"),
        ({"media_url": "u", "size": True}, "size"),
        ({"media_url": "u", "file_name": ""}, "file_name"),
    ],
)
def test_media_details_are_checked(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        media_fields(**kwargs)


def test_changes() -> None:
    edit = edit_request(MESSAGE, "고침", "t1")
    assert (edit.suffix, orjson.loads(edit.body)) == (
        "/edit",
        {"messageId": str(MESSAGE), "content": "고침", "tempId": "t1"},
    )
    unsend = unsend_request(str(MESSAGE), "t2")
    assert (unsend.suffix, orjson.loads(unsend.body)) == (
        "/unsend",
        {"messageId": str(MESSAGE), "tempId": "t2"},
    )
    delete = delete_request(MESSAGE, "t3")
    assert (delete.suffix, orjson.loads(delete.body)) == (
        "/delete",
        {"messageId": str(MESSAGE), "tempId": "t3"},
    )
    add = react_request(MESSAGE, "❤️", "t4", add=True)
    remove = react_request(MESSAGE, "❤️", "t5", add=False)
    assert (add.suffix, orjson.loads(add.body)) == (
        "/react",
        {"messageId": str(MESSAGE), "emoji": "❤️", "op": "add", "tempId": "t4"},
    )
    assert orjson.loads(remove.body)["op"] == "remove"


def test_a_message_id_must_be_a_uuid_and_an_emoji_given() -> None:
    with pytest.raises(ValueError, match="hexadecimal"):
        edit_request("not-an-id", "x", "t")
    with pytest.raises(ValueError, match="emoji"):
        react_request(MESSAGE, "", "t", add=True)
