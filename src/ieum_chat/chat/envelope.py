"""What travels on a couple's broker channel: ``b"<seq>[:<audience>]\\n" + json``.

The seq prefix lets a node order and de-duplicate the couple's stream (a resumed
subscription skips live entries it already replayed) without parsing the JSON; events that
are not stored (typing, presence) carry seq 0. An audience (a user id, 32 hex digits) limits
an event to that member's sessions: a message they hid for themselves, which the partner must
never see.
"""

from __future__ import annotations

import uuid

__all__ = ["channel_for", "pack", "unpack"]


def channel_for(couple_id: uuid.UUID) -> str:
    """``couple:`` and the id as ``str()`` writes it, put together from the id's integer here:
    ``str()`` of a ``uuid.UUID`` is Python code (about 1 µs), run once a payload published."""
    digits = couple_id.int.to_bytes(16).hex()
    return f"couple:{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


def pack(seq: int, body: bytes, *, audience: uuid.UUID | None = None) -> bytes:
    if audience is None:
        return b"%d\n%b" % (seq, body)
    return b"%d:%s\n%b" % (seq, audience.hex.encode(), body)


def unpack(payload: bytes) -> tuple[int, uuid.UUID | None, bytes]:
    """(seq, audience or None for every member, body); ValueError for anything else."""
    head, sep, body = payload.partition(b"\n")
    if not sep:
        raise ValueError("not an envelope")
    seq, colon, audience = head.partition(b":")
    return int(seq), uuid.UUID(audience.decode()) if colon else None, body
