"""The WebSocket fuzz target (tests/fuzz/fuzz_websocket.py) under hypothesis: random and
mutated client streams, driven through the handshake parser and a Connection with small bounds,
keep every invariant the target checks."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ieum_chat.websocket import Connection
from tests.fuzz import fuzz_websocket
from tests.fuzz.fuzz_websocket import fuzz_one

from ._support import BINARY, CLOSE, CONTINUATION, PING, PONG, TEXT, client_frame


@st.composite
def frames(draw: st.DrawFn) -> bytes:
    """Mostly well-formed frames, any order: fragments, control frames between them, Closes."""
    opcode = draw(st.sampled_from([TEXT, BINARY, CONTINUATION, PING, PONG, CLOSE, 0x3]))
    size = 125 if opcode & 0x8 else fuzz_websocket.MAX_MESSAGE + 8
    payload = draw(st.binary(max_size=size))
    if opcode == CLOSE and draw(st.booleans()):
        code = draw(st.sampled_from([1000, 1001, 1005, 3000, 4999, 5000]))
        payload = struct.pack("!H", code) + payload[:20]
    fin = draw(st.booleans()) or bool(opcode & 0x8)
    masked = draw(st.integers(0, 19)) > 0
    return client_frame(opcode, payload, fin=fin, mask=b"\x01\x02\x03\x04" if masked else None)


streams = st.tuples(
    st.integers(0, 255), st.lists(frames(), max_size=40).map(b"".join), st.binary(max_size=8)
).map(lambda parts: bytes([parts[0]]) + parts[1] + parts[2])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(streams, st.binary(max_size=2000)))
def test_connection_invariants(data: bytes) -> None:
    fuzz_one(data)


@pytest.mark.parametrize(
    "stream",
    [
        client_frame(TEXT, b"C", fin=False) + client_frame(CONTINUATION, b"", fin=False) * 50,
        client_frame(PING, b"x" * 125) * 200,
        client_frame(CLOSE, b"\x03\xe8") + client_frame(PING, b"late"),
    ],
    ids=["empty-continuations", "ping-flood", "after-close"],
)
def test_known_floods(stream: bytes) -> None:
    fuzz_one(b"\x07" + stream)


def _unbounded(**options: Any) -> Connection:
    """A Connection whose outbound bound is far past what the target allows."""
    return Connection(**{**options, "outbound_limit": 1 << 30})


def test_fuzz_one_catches_what_it_should(monkeypatch: pytest.MonkeyPatch) -> None:
    """The target's checks can fail: a Connection that never stops answering Pings trips one."""
    flood = b"\x03" + client_frame(PING, b"x" * 125) * 400
    fuzz_one(flood)
    monkeypatch.setattr(fuzz_websocket, "Connection", _unbounded)
    with pytest.raises(AssertionError):
        fuzz_one(flood)
