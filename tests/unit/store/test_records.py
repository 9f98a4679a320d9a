from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime

from ieum_chat.store.records import Media, Message, NewMessage


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
