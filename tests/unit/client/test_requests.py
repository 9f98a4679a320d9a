"""The SEND bodies of messages and of changes to sent messages (README "Destinations")."""

from __future__ import annotations

import uuid

import orjson
import pytest

from ieum_chat.client._requests import (
    MAX_TEMP_ID_LENGTH,
    check_temp_id,
    delete_request,
    edit_request,
    react_request,
    send_request,
    unsend_request,
)

MESSAGE = uuid.UUID("990e8400-e29b-41d4-a716-446655440000")


def test_temp_ids_are_generated_or_checked() -> None:
    fresh = check_temp_id(None)
    assert uuid.UUID(fresh).version == 4
    assert check_temp_id(None) != fresh
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
