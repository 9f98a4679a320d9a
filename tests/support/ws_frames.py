"""Masked client frames (RFC 6455 §5.2) as a test client writes them, written independently of
the server's WebSocket core: any header bits, any length encoding."""

from __future__ import annotations

import struct

__all__ = ["BINARY", "CLOSE", "CONTINUATION", "MASK", "PING", "PONG", "TEXT", "client_frame"]

TEXT, BINARY, CLOSE, PING, PONG, CONTINUATION = 0x1, 0x2, 0x8, 0x9, 0xA, 0x0
MASK = b"\x37\xfa\x21\x3d"  # the mask of the RFC 6455 §5.7 examples


def _xor(data: bytes, mask: bytes) -> bytes:
    return bytes(byte ^ mask[index % 4] for index, byte in enumerate(data))


def client_frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bytes | None = MASK,
    length: int | None = None,
    width: int | None = None,
) -> bytes:
    """One frame as a client writes it (§5.2). `mask=None` leaves it unmasked; `length` overrides
    the declared length, `width` (7, 16 or 64) forces a length encoding."""
    declared = len(payload) if length is None else length
    if width is None:
        width = 7 if declared < 126 else 16 if declared < 65536 else 64
    first = (0x80 if fin else 0) | rsv << 4 | opcode
    flag = 0x80 if mask is not None else 0
    if width == 7:
        head = bytes((first, flag | declared))
    elif width == 16:
        head = struct.pack("!BBH", first, flag | 126, declared)
    else:
        head = struct.pack("!BBQ", first, flag | 127, declared)
    if mask is None:
        return head + payload
    return head + mask + _xor(payload, mask)
