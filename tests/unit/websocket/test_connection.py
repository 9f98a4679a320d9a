"""The connection object: the closing handshake both ways, failing, the close deadline, and
the bounds on what a peer can make the server hold (outbound bytes, Pongs included; fragments by
count and bytes; frames parsed per turn)."""

from __future__ import annotations

import struct

import pytest

from ieum_chat.websocket import CloseReceived, Connection, Ping, State, TextMessage

from ._support import CLOSE, CONTINUATION, PING, TEXT, client_frame, decode_server_frames

PONG_OPCODE, CLOSE_OPCODE, TEXT_OPCODE = 0xA, 0x8, 0x1


def connection(**limits: int) -> Connection:
    settings = {"max_message_size": 1 << 16, "outbound_limit": 1 << 16, **limits}
    return Connection(close_timeout=5.0, **settings)


def close_body(code: int, reason: bytes = b"") -> bytes:
    return struct.pack("!H", code) + reason


def state(conn: Connection) -> State:
    """The state, unnarrowed: it changes under the test's feet."""
    return conn.state


def sent(conn: Connection) -> list[tuple[int, bytes]]:
    return [(frame.opcode, frame.payload) for frame in decode_server_frames(conn.data_to_send())]


# -- the closing handshake ------------------------------------------------------------------


def test_the_peer_closes_and_its_close_is_echoed() -> None:
    conn = connection()
    conn.receive_data(client_frame(TEXT, b"hi") + client_frame(CLOSE, close_body(1001, b"bye")))
    events = conn.events_received(0.0)
    assert events == [TextMessage(b"hi"), CloseReceived(1001, "bye")]
    assert sent(conn) == [(CLOSE_OPCODE, close_body(1001))]
    assert conn.state is State.CLOSED
    assert conn.get_timer() is None


def test_we_close_after_what_is_queued_and_wait_for_the_peer() -> None:
    conn = connection()
    assert conn.send_text(b"last")
    conn.send_close(100.0, 1000, "done")
    assert conn.send_text(b"dropped: our Close is out (RFC 6455 7.1.2)")
    assert sent(conn) == [(TEXT_OPCODE, b"last"), (CLOSE_OPCODE, close_body(1000, b"done"))]
    assert conn.state is State.CLOSING
    assert conn.get_timer() == 105.0
    # Messages still arriving are dropped; Pings are not answered; the Close ends it.
    conn.receive_data(client_frame(TEXT, b"late") + client_frame(PING, b"p"))
    assert conn.events_received(101.0) == [Ping(b"p")]
    conn.receive_data(client_frame(CLOSE, close_body(1000)))
    assert conn.events_received(102.0) == [CloseReceived(1000, "")]
    assert conn.data_to_send() == b""  # our Close was already sent
    assert state(conn) is State.CLOSED
    assert conn.get_timer() is None


def test_the_close_deadline_aborts_a_peer_that_never_answers() -> None:
    conn = connection()
    conn.send_close(10.0)
    conn.data_to_send()
    conn.handle_timer(14.9)
    assert (conn.state, conn.aborted) == (State.CLOSING, False)
    conn.handle_timer(15.0)
    assert (conn.state, conn.aborted) == (State.CLOSED, True)
    assert conn.get_timer() is None


def test_a_protocol_error_fails_the_connection() -> None:
    conn = connection()
    conn.send_text(b"queued, never sent")
    conn.receive_data(client_frame(TEXT, b"x", mask=None))  # RFC 6455 5.1: not masked
    assert conn.events_received(3.0) == []
    assert sent(conn) == [(CLOSE_OPCODE, close_body(1002, b"client frame is not masked"))]
    assert conn.eof_wanted
    assert conn.state is State.CLOSING
    assert conn.get_timer() == 8.0
    # What the peer sends now is read and dropped, never parsed.
    conn.receive_data(client_frame(PING, b"p") * 1000)
    assert conn.events_received(4.0) == []
    assert not conn.input_pending
    conn.receive_eof()
    assert state(conn) is State.CLOSED


def test_fail_from_the_server_side_sends_one_close() -> None:
    conn = connection()
    conn.send_close(0.0)
    conn.fail(1011, "oops", 1.0)
    assert sent(conn) == [(CLOSE_OPCODE, close_body(1000))]
    assert conn.eof_wanted


# -- the outbound bound ------------------------------------------------------------------------


def test_pongs_count_against_the_bound_and_are_coalesced_past_it() -> None:
    limit = 1000
    conn = connection(outbound_limit=limit)
    conn.receive_data(b"".join(client_frame(PING, b"%03d" % i + b"x" * 122) for i in range(100)))
    while True:
        conn.events_received(0.0)
        if not conn.input_pending:
            break
    first = sent(conn)
    # Answered in order until the backlog reached the bound, then only the latest is kept.
    assert 1 < len(first) <= limit // 127 + 1
    assert all(opcode == PONG_OPCODE for opcode, _ in first)
    assert conn.congested
    assert conn.backlog == sum(len(payload) + 2 for _, payload in first)
    # The peer reads nothing: more Pings add nothing.
    conn.receive_data(client_frame(PING, b"newest") * 500)
    while True:
        conn.events_received(0.0)
        if not conn.input_pending:
            break
    assert conn.data_to_send() == b""
    # Once the transport has passed it on, the most recent Ping gets its one answer.
    conn.set_transport_backlog(0)
    assert not conn.congested
    assert sent(conn) == [(PONG_OPCODE, b"newest")]


def test_send_text_refuses_past_the_bound() -> None:
    conn = connection(outbound_limit=100)
    assert conn.send_text(b"x" * 500)  # an empty backlog takes any one message
    assert not conn.send_text(b"y")
    conn.data_to_send()
    assert not conn.send_text(b"y")  # handed to the transport: still counted
    conn.set_transport_backlog(10)
    assert conn.send_text(b"y" * 80)
    assert not conn.send_text(b"y" * 10)
    conn.discard()
    conn.set_transport_backlog(0)
    assert conn.backlog == 0


def test_close_goes_out_past_the_bound() -> None:
    conn = connection(outbound_limit=100)
    conn.send_text(b"x" * 500)
    conn.send_close(0.0)
    assert [opcode for opcode, _ in sent(conn)] == [TEXT_OPCODE, CLOSE_OPCODE]


# -- inbound bounds ------------------------------------------------------------------------------


def test_fragments_are_bounded_by_count() -> None:
    conn = connection(max_fragments=4)
    opening = client_frame(TEXT, b"C", fin=False)
    conn.receive_data(opening + client_frame(CONTINUATION, b"", fin=False) * 3)
    assert conn.events_received(0.0) == []
    assert conn.data_to_send() == b""
    conn.receive_data(client_frame(CONTINUATION, b"", fin=False))
    assert conn.events_received(0.0) == []
    [(opcode, payload)] = sent(conn)
    assert (opcode, payload[:2]) == (CLOSE_OPCODE, struct.pack("!H", 1008))


def test_fragments_are_bounded_by_bytes() -> None:
    conn = connection(max_message_size=10)
    conn.receive_data(client_frame(TEXT, b"123456", fin=False) + client_frame(CONTINUATION, b"78"))
    assert conn.events_received(0.0) == [TextMessage(b"12345678")]
    conn.receive_data(
        client_frame(TEXT, b"123456", fin=False) + client_frame(CONTINUATION, b"7890x")
    )
    assert conn.events_received(0.0) == []
    [(opcode, payload)] = sent(conn)
    assert (opcode, payload[:2]) == (CLOSE_OPCODE, struct.pack("!H", 1009))


@pytest.mark.parametrize(
    "frame", [client_frame(PING, b"p"), client_frame(CONTINUATION, b"", fin=False)]
)
def test_one_turn_parses_a_bounded_number_of_frames(frame: bytes) -> None:
    conn = connection(max_frames_per_turn=3, max_fragments=100)
    conn.receive_data(client_frame(TEXT, b"C", fin=False) + frame * 10)
    turns = 0
    while True:
        turns += 1
        conn.events_received(0.0)
        if not conn.input_pending:
            break
    assert turns == 4  # 11 frames, 3 a turn
    assert conn.state is State.OPEN


def test_eof_ends_the_connection() -> None:
    conn = connection()
    conn.receive_eof()
    assert conn.state is State.CLOSED
    assert conn.send_text(b"dropped")
    assert conn.data_to_send() == b""


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        Connection(max_message_size=10, outbound_limit=0)
