"""The generator's WebSocket codec (RFC 6455): handshake, frames whole, byte by byte, fragmented."""

from __future__ import annotations

import struct

import pytest
from bench._ws import (
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_TEXT,
    HandshakeError,
    WsMessage,
    WsReader,
    accept_key,
    check_response,
    encode_frame,
    handshake_request,
)

CHUNKINGS = [None, 1, 3]


def server_frame(opcode: int, payload: bytes, *, fin: bool = True, mask: bytes = b"") -> bytes:
    n = len(payload)
    first = (0x80 if fin else 0) | opcode
    flag = 0x80 if mask else 0
    if n < 126:
        head = bytes((first, flag | n))
    elif n < 65536:
        head = bytes((first, flag | 126)) + struct.pack("!H", n)
    else:
        head = bytes((first, flag | 127)) + struct.pack("!Q", n)
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + payload


def read(data: bytes, chunk: int | None) -> list[WsMessage]:
    reader = WsReader()
    pieces = [data] if chunk is None else [data[i : i + chunk] for i in range(0, len(data), chunk)]
    out: list[WsMessage] = []
    for piece in pieces:
        out.extend(reader.receive_data(piece))
    return out


def test_accept_key_matches_rfc_6455_example() -> None:
    # RFC 6455 §1.3
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_handshake_round_trip_returns_subprotocol_and_trailing_bytes() -> None:
    request, key = handshake_request("127.0.0.1:8080", "/ws/chat?token=t", ("v12.stomp",))
    assert request.startswith(b"GET /ws/chat?token=t HTTP/1.1\r\n")
    assert b"Sec-WebSocket-Protocol: v12.stomp\r\n" in request
    response = (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept_key(key)}\r\nSec-WebSocket-Protocol: v12.stomp\r\n\r\n"
    ).encode() + b"\x81\x00"
    assert check_response(bytearray(response[:20]), key) is None
    assert check_response(bytearray(response), key) == ("v12.stomp", b"\x81\x00")


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (b'HTTP/1.1 401 Unauthorized\r\n\r\n{"code":"AUTH_FAILED"}', "401"),
        (b"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: nope\r\n\r\n", "Accept"),
    ],
)
def test_handshake_refusals(response: bytes, message: str) -> None:
    with pytest.raises(HandshakeError, match=message):
        check_response(bytearray(response), "key")


@pytest.mark.parametrize("chunk", CHUNKINGS)
def test_reader_returns_messages_of_every_length_class(chunk: int | None) -> None:
    payloads = [b"", b"a" * 125, b"b" * 126, b"c" * 70000]
    data = b"".join(server_frame(OP_TEXT, p) for p in payloads)
    assert read(data, chunk if chunk is None else chunk * 997) == [
        WsMessage(OP_TEXT, p) for p in payloads
    ]


@pytest.mark.parametrize("chunk", CHUNKINGS)
def test_reader_joins_fragments_and_passes_control_frames_between_them(chunk: int | None) -> None:
    data = (
        server_frame(OP_TEXT, b"MESS", fin=False)
        + server_frame(OP_PING, b"p")
        + server_frame(0x0, b"AGE", fin=False)
        + server_frame(0x0, b"\n\n\x00")
        + server_frame(OP_CLOSE, b"\x03\xe8")
    )
    assert read(data, chunk) == [
        WsMessage(OP_PING, b"p"),
        WsMessage(OP_TEXT, b"MESSAGE\n\n\x00"),
        WsMessage(OP_CLOSE, b"\x03\xe8"),
    ]


def test_reader_unmasks_a_masked_frame() -> None:
    assert read(server_frame(OP_BINARY, b"hello", mask=b"\x01\x02\x03\x04"), None) == [
        WsMessage(OP_BINARY, b"hello")
    ]


@pytest.mark.parametrize("size", [0, 5, 126, 70000])
def test_client_frames_are_masked_and_decode_back(size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    frame = encode_frame(OP_TEXT, payload)
    assert frame[0] == 0x80 | OP_TEXT
    assert frame[1] & 0x80  # RFC 6455 §5.3: every client frame is masked
    assert read(frame, None) == [WsMessage(OP_TEXT, payload)]
