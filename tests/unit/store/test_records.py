from __future__ import annotations

import dataclasses
import pickle
import time
import uuid
from datetime import datetime

import pytest
from mypy import api as mypy_api

from ieum_chat._build import compiled_modules
from ieum_chat.store import records
from ieum_chat.store.records import Media, Message, NewMessage, new_id, new_message_id


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


def test_a_new_id_is_a_random_version_4_uuid_like_any_other() -> None:
    """new_id() builds the UUID from its integer where UUID's layout is the known one (it is
    on the Pythons this runs on); the id must behave as uuid4()'s does in every way."""
    assert records._LAYOUT_KNOWN
    ids = [new_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for made in ids[:200]:
        assert type(made) is uuid.UUID
        assert (made.version, made.variant) == (4, uuid.RFC_4122)
        assert made.is_safe is uuid.SafeUUID.unknown
        parsed = uuid.UUID(str(made))
        assert parsed == made
        assert hash(parsed) == hash(made)
        assert pickle.loads(pickle.dumps(made)) == made
        assert uuid.UUID(bytes=made.bytes) == made
    # Every bit but the six fixed ones varies: none is stuck at 0 or 1 over 2000 ids.
    fixed = (0xF000 << 64) | (0xC000 << 48)
    ones = zeros = 0
    for made in ids:
        ones |= made.int
        zeros |= ~made.int & ((1 << 128) - 1)
    assert ones & ~fixed == zeros & ~fixed == ((1 << 128) - 1) & ~fixed


def test_a_new_message_id_is_a_version_7_uuid_that_sorts_by_the_millisecond_it_was_made() -> None:
    """new_message_id(): the Unix time in milliseconds in its first 48 bits, then version 7,
    random bits, the RFC 4122 variant, random bits; a UUID like any other in every other way."""
    before = time.time_ns() // 1_000_000
    first = [new_message_id() for _ in range(1000)]
    time.sleep(0.003)
    later = [new_message_id() for _ in range(1000)]
    after = time.time_ns() // 1_000_000
    ids = first + later
    assert len(set(ids)) == len(ids)
    for made in ids:
        assert type(made) is uuid.UUID
        assert (made.version, made.variant) == (7, uuid.RFC_4122)
        assert before <= made.int >> 80 <= after
        assert made.is_safe is uuid.SafeUUID.unknown
    for made in ids[:200]:
        parsed = uuid.UUID(str(made))
        assert parsed == made
        assert hash(parsed) == hash(made)
        assert pickle.loads(pickle.dumps(made)) == made
    # Made milliseconds apart, as the store's index and an id's text both order them.
    assert max(first) < min(later)
    assert max(str(m) for m in first) < min(str(m) for m in later)
    # Below the time, every bit but the six fixed ones varies over 2000 ids.
    fixed = (0xF000 << 64) | (0xC000 << 48)
    low = (1 << 80) - 1
    ones = zeros = 0
    for made in ids:
        ones |= made.int & low
        zeros |= ~made.int & low
    assert ones & ~fixed == zeros & ~fixed == low & ~fixed
