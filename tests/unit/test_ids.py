"""The project's ids: random ones, and time-ordered ones for messages and tempIds."""

from __future__ import annotations

import pickle
import time
import uuid

import ieum_chat.ids
from ieum_chat.ids import new_id, new_ordered_id


def test_a_new_id_is_a_random_version_4_uuid_like_any_other() -> None:
    """new_id() builds the UUID from its integer where UUID's layout is the known one (it is
    on the Pythons this runs on); the id must behave as uuid4()'s does in every way."""
    assert ieum_chat.ids._LAYOUT_KNOWN
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


def test_an_ordered_id_is_a_version_7_uuid_that_sorts_by_the_millisecond_it_was_made() -> None:
    """new_ordered_id(): the Unix time in milliseconds in its first 48 bits, then version 7,
    random bits, the RFC 4122 variant, random bits; a UUID like any other in every other way."""
    before = time.time_ns() // 1_000_000
    first = [new_ordered_id() for _ in range(1000)]
    time.sleep(0.003)
    later = [new_ordered_id() for _ in range(1000)]
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
