"""Hostile input: random and mutated byte streams only ever end in a ProtocolError with one of
the three codes, never another exception, and never a buffer past the bound; random request
heads only ever end in a HandshakeError."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ieum_chat.websocket import (
    CloseReceived,
    FrameParser,
    HandshakeError,
    ProtocolError,
    parse_request,
    validate_upgrade,
)

from ._support import BINARY, CLOSE, CONTINUATION, PING, TEXT, client_frame

LIMIT = 512
SEED = b"".join(
    [
        client_frame(TEXT, "안녕".encode()),
        client_frame(BINARY, b"x" * 200, fin=False),
        client_frame(PING, b"p"),
        client_frame(CONTINUATION, b"y" * 300),
        client_frame(TEXT, b"z" * 130),
        client_frame(CLOSE, b"\x03\xe8bye"),
    ]
)
HEAD = (
    b"GET /ws?t=1 HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


@st.composite
def mutated(draw: st.DrawFn, seed: bytes) -> bytes:
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 6))):
        index = draw(st.integers(0, max(len(data) - 1, 0)))
        action = draw(st.sampled_from(["flip", "cut", "insert"]))
        if action == "flip" and data:
            data[index] ^= 1 << draw(st.integers(0, 7))
        elif action == "cut":
            del data[index : index + draw(st.integers(1, 8))]
        else:
            data[index:index] = draw(st.binary(min_size=1, max_size=8))
    return bytes(data)


def run(stream: bytes, chunk: int) -> ProtocolError | None:
    parser = FrameParser(max_message_size=LIMIT)
    error: ProtocolError | None = None
    try:
        for start in range(0, len(stream), chunk):
            parser.receive_data(stream[start : start + chunk])
            while (event := parser.next_event()) is not None:
                if isinstance(event, CloseReceived):
                    assert parser.buffered == 0
            assert parser.buffered <= LIMIT + 14
    except ProtocolError as exc:
        error = exc
        assert parser.next_event() is None
        assert parser.buffered == 0
    return error


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=600), mutated(SEED)), st.sampled_from([1, 3, 64, 4096]))
def test_hostile_frames(stream: bytes, chunk: int) -> None:
    error = run(stream, chunk)
    assert error is None or error.code in (1002, 1007, 1009)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=300), mutated(HEAD)))
def test_hostile_request_heads(head: bytes) -> None:
    status = None
    try:
        validate_upgrade(parse_request(head))
    except HandshakeError as error:
        status = error.status
    assert status in (None, 400, 405, 426)
