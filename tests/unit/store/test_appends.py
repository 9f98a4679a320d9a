"""The PostgreSQL append's one parameter (``appends.batch_json``) and the recordset the
statements read it into: both name every field of NewMessage, in its order."""

from __future__ import annotations

import re
import uuid
from datetime import datetime

import orjson

from ieum_chat.store import appends
from ieum_chat.store.records import NEW_MESSAGE_FIELDS, Media, NewMessage


def test_every_field_of_a_new_message_travels_in_the_batch_and_is_read_back_by_name() -> None:
    media = Media(thumbnail_url="https://cdn/t.jpg", duration_ms=1500, size=10)
    new = NewMessage(
        id=uuid.uuid4(),
        couple_id=uuid.uuid4(),
        sender_id=uuid.uuid4(),
        type="VOICE",
        content="hello",
        image_url=None,
        temp_id="t-1",
        created_at=datetime(2026, 12, 6, 19, 0, 1, 123456),
        reply_to_id=uuid.uuid4(),
        media_url="https://cdn/v.m4a",
        media=media,
    )
    [sent] = orjson.loads(appends.batch_json([new]))
    assert list(sent) == list(NEW_MESSAGE_FIELDS)
    expected = {
        name: str(value) if isinstance(value, uuid.UUID) else value
        for name, value in ((name, getattr(new, name)) for name in NEW_MESSAGE_FIELDS)
    }
    expected["created_at"] = "2026-12-06T19:00:01.123456"
    expected["media"] = media.to_json()
    assert sent == expected
    # json_to_recordset's column definitions, and the names its rows are given
    columns = re.search(r"json_to_recordset\(\$1::json\) AS \((.*?)\)\)", appends._BATCH, re.S)
    assert columns is not None
    defined = [part.split()[0] for part in columns.group(1).split(",")]
    assert defined == list(NEW_MESSAGE_FIELDS)
    named = re.search(r"WITH ORDINALITY\s+AS b \((.*?)\)", appends._BATCH, re.S)
    assert named is not None
    assert [part.strip() for part in named.group(1).split(",")] == [*NEW_MESSAGE_FIELDS, "ord"]
