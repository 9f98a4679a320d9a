"""Fuzz target for the WebSocket core: the handshake parser and the Connection.

`fuzz_one(data)` reads a request head from arbitrary bytes (only HandshakeError may come out),
then drives a Connection the way the server's shell does: bytes in random chunks, a parsing
turn after each, the shell's own sends, closes, transport drains and timer ticks chosen by the
input. The only exception allowed out is none at all (a peer's error fails the connection),
and after every step:

- what `data_to_send()` returns parses as unmasked server frames, one Close at most, nothing
  after it;
- the backlog stays under the outbound bound plus one message, one Pong and one Close;
- one turn returns at most `max_frames_per_turn` events, and messages only while open.

    python tests/fuzz/fuzz_websocket.py [corpus_dir]    # with atheris installed

tests/unit/websocket/test_connection_fuzz.py runs the same function under hypothesis.
"""

from __future__ import annotations

from ieum_chat.websocket import (
    BinaryMessage,
    CloseReceived,
    Connection,
    Event,
    HandshakeError,
    State,
    TextMessage,
    head_length,
    parse_request,
    validate_upgrade,
)
from tests.fuzz._atheris import run_atheris

__all__ = ["LIMIT", "MAX_FRAMES", "MAX_MESSAGE", "fuzz_one"]

LIMIT = 1024
MAX_MESSAGE = 512
MAX_FRAMES = 4
_CLOSE_OPCODE = 0x8
_MESSAGE = "안녕하세요".encode() * 8  # 120 bytes


def fuzz_one(data: bytes) -> None:
    if len(data) < 2:
        return
    _fuzz_handshake(data)
    _fuzz_connection(data[0], data[1:])


def _fuzz_handshake(data: bytes) -> None:
    try:
        end = head_length(data) or len(data)
        validate_upgrade(parse_request(data[:end]))
    except HandshakeError as error:
        _check_refusal(error)


def _check_refusal(error: HandshakeError) -> None:
    assert 400 <= error.status < 500
    assert "\n" not in error.message


def _fuzz_connection(control: int, stream: bytes) -> None:
    conn = Connection(
        max_message_size=MAX_MESSAGE,
        outbound_limit=LIMIT,
        max_fragments=8,
        max_frames_per_turn=MAX_FRAMES,
        close_timeout=1.0,
    )
    chunk = (1, 7, 61, 4096)[control & 3]
    close_seen = False
    now = 0.0
    for index, start in enumerate(range(0, len(stream), chunk)):
        piece = stream[start : start + chunk]
        conn.receive_data(piece)
        turns = 0
        while True:
            was_open = conn.state is State.OPEN
            events = conn.events_received(now)
            assert len(events) <= MAX_FRAMES
            _check_events(events, was_open)
            turns += 1
            if not conn.input_pending:
                break
            assert turns <= len(stream) + 1
        # The shell's side, chosen by the input: answer, drain, close, tick.
        action = piece[0] % 8
        if action == 0:
            conn.send_text(_MESSAGE)
        elif action == 1:
            conn.set_transport_backlog(0)
        elif action == 2 and index % 5 == 4:
            conn.send_close(now)
        elif action == 3 and index % 7 == 6:
            conn.fail(1011, "fuzz", now)
        now += 0.25
        conn.handle_timer(now)
        # One message past the bound is allowed (an empty backlog takes any one), one Pong
        # and one Close.
        assert conn.backlog <= LIMIT + len(_MESSAGE) + 2 + 127 + 127
        close_seen = _check_output(conn.data_to_send(), close_seen)
        if conn.state is State.CLOSED:
            break
    conn.receive_eof()
    assert conn.state is State.CLOSED
    assert conn.get_timer() is None


def _check_events(events: list[Event], was_open: bool) -> None:
    """Messages only while open: none once our Close is out, none after the peer's."""
    open_ = was_open
    for event in events:
        if type(event) in (TextMessage, BinaryMessage):
            assert open_
        elif type(event) is CloseReceived:
            open_ = False


def _check_output(data: bytes, close_seen: bool) -> bool:
    pos = 0
    while pos < len(data):
        assert not close_seen, "nothing follows a Close (RFC 6455 §5.5.1)"
        first, second = data[pos], data[pos + 1]
        assert first & 0x80, "final (we never fragment)"
        assert not first & 0x70, "no RSV bits (no extension is negotiated)"
        assert not second & 0x80, "server frames are not masked (§5.1)"
        length, pos = second & 0x7F, pos + 2
        if length == 126:
            length, pos = int.from_bytes(data[pos : pos + 2], "big"), pos + 2
        elif length == 127:
            length, pos = int.from_bytes(data[pos : pos + 8], "big"), pos + 8
        pos += length
        assert pos <= len(data), "a whole frame"
        close_seen = first & 0x0F == _CLOSE_OPCODE
    return close_seen


def main() -> None:
    run_atheris(fuzz_one)


if __name__ == "__main__":
    main()
