"""The UUIDs the project makes: random ones (version 4) and time-ordered ones (version 7).

A time-ordered id carries the Unix time in milliseconds in its first 48 bits, so ids made a
millisecond or more apart sort in the order they were made, as UUIDs and as their text. A
message's id is one (``records.new_message_id``), and so is the tempId the client SDK makes
for a request: a new key of the messages table then goes to the right-hand end of its index
(the primary key's, and that of the tempIds of its couple and sender), not to a random page
of it, and each leaf page first touched after a checkpoint is written to the WAL whole (see
"Time-ordered message ids" in docs/benchmarks.md). Unique as a random id is: 74 random bits for each
millisecond.

An id is put together from its integer as CPython 3.14's uuid4() does (UUID._from_int), where
UUID's layout is the one it has had since Python 3.8; elsewhere through UUID(int=...).
uuid.uuid4() on 3.11 passes bytes and a version through UUID.__init__'s checks, in Python:
12,500 instructions an id, against 4,700 for a random id made here, compiled (7,800 before
what it calls was bound here once).

The client SDK imports this module too: it needs nothing of the server.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Final

__all__ = ["new_id", "new_ordered_id"]

# A random id: version 4, RFC 4122 variant.
_VERSION_4: Final = (0x4000 << 64) | (0x8000 << 48)
_RANDOM_BITS: Final = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 128) - 1)
# A time-ordered id: version 7 (RFC 9562), the Unix time in milliseconds in its first 48 bits
# and 74 random bits after the version and the variant, drawn from 80.
_VERSION_7: Final = (0x7000 << 64) | (0x8000 << 48)
_RANDOM_LOW_BITS: Final = _RANDOM_BITS & ((1 << 80) - 1)
_UUID: Final = uuid.UUID
_UNKNOWN: Final = uuid.SafeUUID.unknown
_LAYOUT_KNOWN: Final = getattr(_UUID, "__slots__", None) == ("int", "is_safe", "__weakref__")
_urandom: Final = os.urandom
_time_ns: Final = time.time_ns
_new_object: Final = object.__new__
_set_slot: Final = object.__setattr__


def new_id() -> uuid.UUID:
    """A random id (version 4): a user's, a couple's, any row's that is not a message."""
    return _uuid_of((int.from_bytes(_urandom(16)) & _RANDOM_BITS) | _VERSION_4)


def new_ordered_id() -> uuid.UUID:
    """A time-ordered id (version 7): a message's, a request's tempId."""
    millis = _time_ns() // 1_000_000
    return _uuid_of((millis << 80) | (int.from_bytes(_urandom(10)) & _RANDOM_LOW_BITS) | _VERSION_7)


def _uuid_of(value: int) -> uuid.UUID:
    if not _LAYOUT_KNOWN:
        return _UUID(int=value)
    new = _new_object(_UUID)
    _set_slot(new, "int", value)
    _set_slot(new, "is_safe", _UNKNOWN)
    return new
