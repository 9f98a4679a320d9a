"""What travels on a couple's broker channel: ``b"<seq>\\n" + json``.

The seq prefix lets a node order and de-duplicate chat messages (a resumed subscription
skips live messages it already replayed) without parsing the JSON; events that are not
stored (read receipts, typing, presence) carry seq 0.
"""

from __future__ import annotations

import uuid

__all__ = ["channel_for", "pack", "unpack"]


def channel_for(couple_id: uuid.UUID) -> str:
    return f"couple:{couple_id}"


def pack(seq: int, body: bytes) -> bytes:
    return b"%d\n%b" % (seq, body)


def unpack(payload: bytes) -> tuple[int, bytes]:
    head, sep, body = payload.partition(b"\n")
    if not sep:
        raise ValueError("not an envelope")
    return int(head), body
