"""Frames the server sends: final, unmasked (RFC 6455 §5.1), never fragmented.

The fan-out writes one text frame per message and sends the same bytes to every subscriber, so
building one is a table look-up (or one struct pack) and one concatenation.
"""

from __future__ import annotations

from struct import Struct
from typing import Final

from ._close import MAX_CLOSE_REASON, is_wire_code

__all__ = ["binary_frame", "close_frame", "ping_frame", "pong_frame", "text_frame"]

_MAX_CONTROL_PAYLOAD: Final = 125
# §5.2: 7-bit lengths up to 125, then 126 + a 16-bit length, then 127 + a 63-bit length.
_LENGTH_16: Final = Struct("!BBH")
_LENGTH_64: Final = Struct("!BBQ")


def _short_heads(first: int) -> tuple[bytes, ...]:
    return tuple(bytes((first, length)) for length in range(126))


_TEXT_HEADS: Final = _short_heads(0x81)
_BINARY_HEADS: Final = _short_heads(0x82)
_CLOSE_HEADS: Final = _short_heads(0x88)
_PING_HEADS: Final = _short_heads(0x89)
_PONG_HEADS: Final = _short_heads(0x8A)


def _frame(heads: tuple[bytes, ...], payload: bytes) -> bytes:
    length = len(payload)
    if length < 126:
        return heads[length] + payload
    first = heads[0][0]
    if length < 65536:
        return _LENGTH_16.pack(first, 126, length) + payload
    return _LENGTH_64.pack(first, 127, length) + payload


def text_frame(payload: bytes) -> bytes:
    """A whole text message; `payload` must already be UTF-8 (it is not checked, §5.6)."""
    return _frame(_TEXT_HEADS, payload)


def binary_frame(payload: bytes) -> bytes:
    return _frame(_BINARY_HEADS, payload)


def _control(heads: tuple[bytes, ...], payload: bytes) -> bytes:
    if len(payload) > _MAX_CONTROL_PAYLOAD:
        raise ValueError("a control frame payload is at most 125 bytes (RFC 6455 §5.5)")
    return heads[len(payload)] + payload


def ping_frame(payload: bytes) -> bytes:
    return _control(_PING_HEADS, payload)


def pong_frame(payload: bytes) -> bytes:
    """The answer to a Ping; §5.5.3 wants the Ping's payload echoed."""
    return _control(_PONG_HEADS, payload)


def close_frame(code: int | None = None, reason: str = "") -> bytes:
    """A Close frame (§5.5.1); the reason is cut to 123 bytes at a character boundary."""
    if code is None:
        if reason:
            raise ValueError("a close reason needs a close code (RFC 6455 §5.5.1)")
        return _CLOSE_HEADS[0]
    if not is_wire_code(code):
        raise ValueError(f"close code {code} may not be sent (RFC 6455 §7.4)")
    # Lone surrogates cannot be encoded; "?" keeps the rest of the reason readable.
    raw = reason.encode("utf-8", "replace")
    if len(raw) > MAX_CLOSE_REASON:
        cut = MAX_CLOSE_REASON
        # raw[cut] is the first byte left out: while it continues a character, that character
        # started inside the kept part and has to go as a whole.
        while raw[cut] & 0xC0 == 0x80:
            cut -= 1
        raw = raw[:cut]
    return _CLOSE_HEADS[2 + len(raw)] + code.to_bytes(2, "big") + raw
