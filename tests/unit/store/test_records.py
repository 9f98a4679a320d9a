from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime

import pytest
from mypy import api as mypy_api

from ieum_chat import ids
from ieum_chat._build import compiled_modules
from ieum_chat.store import records
from ieum_chat.store.records import Media, Message, NewMessage


def _message() -> Message:
    new = NewMessage(
        id=uuid.uuid4(),
        couple_id=uuid.uuid4(),
        sender_id=uuid.uuid4(),
        type="TEXT",
        content="hi",
        image_url=None,
        temp_id="t-1",
        created_at=datetime(2024, 5, 1, 12, 30),
    )
    return new.numbered(3)


def test_a_numbered_message_keeps_every_field_of_the_new_one() -> None:
    values: dict[str, object] = {
        "id": uuid.uuid4(),
        "couple_id": uuid.uuid4(),
        "sender_id": uuid.uuid4(),
        "type": "VIDEO",
        "content": "caption",
        "image_url": "https://cdn/x.jpg",
        "temp_id": "t-9",
        "created_at": datetime(2024, 5, 1, 12, 30, 1, 250000),
        "reply_to_id": uuid.uuid4(),
        "media_url": "https://cdn/v.mp4",
        "media": Media(thumbnail_url="https://cdn/t.jpg", duration_ms=1500, size=10),
    }
    # A field added to NewMessage must be listed here, so that the loop below checks it.
    assert set(values) == {f.name for f in dataclasses.fields(NewMessage)}
    new = NewMessage(**values)  # type: ignore[arg-type]

    stored = new.numbered(7)

    for name, value in values.items():
        assert getattr(stored, name) == value, name
    assert (stored.seq, stored.is_read, stored.read_at) == (7, False, None)
    assert (stored.edited_at, stored.unsent_at, stored.reactions) == (None, None, ())
    assert isinstance(stored, Message)


def test_a_record_compares_hashes_and_is_replaced_by_its_fields() -> None:
    message = _message()
    twin = dataclasses.replace(message)
    assert twin == message
    assert twin is not message
    assert hash(twin) == hash(message)
    edited = dataclasses.replace(message, content="bye")
    assert edited != message
    assert (edited.content, edited.seq, edited.id) == ("bye", 3, message.id)


def test_a_record_field_is_read_only() -> None:
    """mypy refuses an assignment to a record's field anywhere but its ``__init__``; where the
    records are compiled, so does the running program (see ``ieum_chat._build``)."""
    program = (
        "from ieum_chat.store.records import Message\ndef f(m: Message) -> None:\n    m.seq = 2\n"
    )
    out, _, status = mypy_api.run(
        ["--config-file=", "--no-incremental", "--follow-imports=silent", "-c", program]
    )
    assert status == 1
    assert 'Cannot assign to final attribute "seq"' in out
    message = _message()
    if "ieum_chat.store.records" in compiled_modules():
        with pytest.raises(AttributeError, match="not writable"):
            message.seq = 2  # type: ignore[misc]
        assert message.seq == 3


def test_a_message_id_is_time_ordered_and_any_other_row_id_random() -> None:
    assert records.new_message_id is ids.new_ordered_id
    assert records.new_id is ids.new_id
