"""A sans-IO WebSocket client codec (RFC 6455), just enough for a load generator.

The generator shares two cores with the server it measures, so every microsecond it spends per
frame is taken from the server. A general client library (a coroutine and a future per message)
costs several times what this does: the handshake is built and checked by hand, server frames
are decoded from one buffer per read, and client frames are masked with websockets' C helper.
"""

from __future__ import annotations

import base64
import hashlib
import os
import random
import struct
from dataclasses import dataclass
from typing import Final

__all__ = [
    "OP_BINARY",
    "OP_CLOSE",
    "OP_PING",
    "OP_PONG",
    "OP_TEXT",
    "HandshakeError",
    "WsMessage",
    "WsReader",
    "accept_key",
    "check_response",
    "encode_frame",
    "handshake_request",
]

OP_CONT: Final = 0x0
OP_TEXT: Final = 0x1
OP_BINARY: Final = 0x2
OP_CLOSE: Final = 0x8
OP_PING: Final = 0x9
OP_PONG: Final = 0xA

_GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3
_MAX_HANDSHAKE: Final = 16384
_SHORT: Final = struct.Struct("!H")
_LONG: Final = struct.Struct("!Q")

try:
    from websockets.speedups import apply_mask as _apply_mask
except ImportError:  # pragma: no cover - websockets ships the C helper on every platform we run

    def _apply_mask(data: bytes | bytearray | memoryview, mask: bytes | bytearray) -> bytes:
        n = len(data)
        key = (mask * (n // 4 + 1))[:n]
        return (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")


class HandshakeError(Exception):
    """The server refused the upgrade or answered something that is not RFC 6455."""


@dataclass(frozen=True, slots=True)
class WsMessage:
    opcode: int
    payload: bytes


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()


def handshake_request(host: str, path: str, subprotocols: tuple[str, ...]) -> tuple[bytes, str]:
    """The opening handshake (RFC 6455 §4.1) and the key whose accept value to expect."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    if subprotocols:
        lines.append(f"Sec-WebSocket-Protocol: {', '.join(subprotocols)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"), key


def check_response(buffer: bytearray, key: str) -> tuple[str | None, bytes] | None:
    """None while the response head is incomplete; else (selected subprotocol, bytes after it).

    Raises HandshakeError for anything but a 101 with the right Sec-WebSocket-Accept (§4.2.2).
    """
    end = buffer.find(b"\r\n\r\n")
    if end == -1:
        if len(buffer) > _MAX_HANDSHAKE:
            raise HandshakeError("handshake response too long")
        return None
    head = bytes(buffer[:end]).decode("latin-1")
    rest = bytes(buffer[end + 4 :])
    status, *lines = head.split("\r\n")
    parts = status.split(" ", 2)
    if len(parts) < 2 or parts[1] != "101":
        body = rest[:200].decode("utf-8", "replace")
        raise HandshakeError(f"upgrade refused: {status!r} {body}".strip())
    headers: dict[str, str] = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("sec-websocket-accept") != accept_key(key):
        raise HandshakeError("wrong Sec-WebSocket-Accept")
    return headers.get("sec-websocket-protocol"), rest


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """One final client frame; client frames are always masked (§5.3)."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 0x80 | 126)) + _SHORT.pack(n)
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + _LONG.pack(n)
    # The mask only has to keep intermediaries from reading the stream as something else; a
    # PRNG is enough on loopback and costs a tenth of os.urandom's system call.
    mask = random.randbytes(4)
    return b"".join((head, mask, _apply_mask(payload, mask)))


class WsReader:
    """Server frames in, whole messages out; control frames are returned as they come."""

    __slots__ = ("_buffer", "_fragment_op", "_fragments", "_max_message")

    def __init__(self, max_message: int = 1 << 22) -> None:
        self._buffer = bytearray()
        self._fragments: list[bytes] = []
        self._fragment_op = 0
        self._max_message = max_message

    def receive_data(self, data: bytes) -> list[WsMessage]:
        buffer = self._buffer
        buffer += data
        out: list[WsMessage] = []
        pos = 0
        size = len(buffer)
        while size - pos >= 2:
            b0 = buffer[pos]
            b1 = buffer[pos + 1]
            length = b1 & 0x7F
            start = pos + 2
            if length == 126:
                if size - start < 2:
                    break
                length = _SHORT.unpack_from(buffer, start)[0]
                start += 2
            elif length == 127:
                if size - start < 8:
                    break
                length = _LONG.unpack_from(buffer, start)[0]
                start += 8
            mask = b""
            if b1 & 0x80:  # servers must not mask (§5.1), but reading it costs nothing
                if size - start < 4:
                    break
                mask = bytes(buffer[start : start + 4])
                start += 4
            if length > self._max_message:
                raise HandshakeError(f"frame of {length} bytes is over the limit")
            end = start + length
            if end > size:
                break
            payload = bytes(buffer[start:end])
            if mask:
                payload = _apply_mask(payload, mask)
            pos = end
            opcode = b0 & 0x0F
            if opcode >= OP_CLOSE:
                out.append(WsMessage(opcode, payload))
            elif not b0 & 0x80:  # a fragment (§5.4)
                if opcode != OP_CONT:
                    self._fragment_op = opcode
                self._fragments.append(payload)
            elif opcode == OP_CONT:
                self._fragments.append(payload)
                out.append(WsMessage(self._fragment_op, b"".join(self._fragments)))
                self._fragments.clear()
            else:
                out.append(WsMessage(opcode, payload))
        if pos:
            del buffer[:pos]
        return out
