"""StompSession: the state table, MESSAGE, RECEIPT, ERROR and DISCONNECT."""

from __future__ import annotations

import pytest

from ieum_chat.stomp import (
    Ack,
    ConnectRequested,
    Disconnect,
    Frame,
    LocalProtocolError,
    Nack,
    RemoteProtocolError,
    Send,
    SessionState,
    StompSession,
    Subscribe,
    Unsubscribe,
)

from ._support import connect, feed, frame, read, refusal

# -- the state table ---------------------------------------------------------------------------

VALID_IN_CONNECTED = {
    "SEND": (frame("SEND", ("destination", "/a")), Send),
    "SUBSCRIBE": (frame("SUBSCRIBE", ("id", "1"), ("destination", "/a")), Subscribe),
    "UNSUBSCRIBE": (frame("UNSUBSCRIBE", ("id", "0")), Unsubscribe),
    "ACK": (frame("ACK", ("id", "m")), Ack),
    "NACK": (frame("NACK", ("id", "m")), Nack),
    "DISCONNECT": (frame("DISCONNECT"), Disconnect),
}
OTHER_COMMANDS = ["BEGIN", "COMMIT", "ABORT"]
ALL_COMMANDS = ["CONNECT", "STOMP", *VALID_IN_CONNECTED, *OTHER_COMMANDS]


@pytest.mark.parametrize("command", ["CONNECT", "STOMP"])
def test_awaiting_connect_accepts_connect_and_stomp(command: str) -> None:
    session = StompSession(now=0.0)
    states = [session.state]
    event = feed(session, frame(command, ("accept-version", "1.2"), ("host", "h")))
    assert isinstance(event, ConnectRequested)
    assert event.host == "h"
    states.append(session.state)
    assert states == [SessionState.AWAITING_CONNECT, SessionState.CONNECTING]


@pytest.mark.parametrize("command", [*VALID_IN_CONNECTED, *OTHER_COMMANDS])
def test_awaiting_connect_refuses_everything_else(command: str) -> None:
    message = refusal(StompSession(now=0.0), frame(command, ("destination", "/a")))
    assert message == f"expected CONNECT or STOMP, got {command}"


@pytest.mark.parametrize("command", list(VALID_IN_CONNECTED))
def test_connected_accepts(command: str) -> None:
    session = connect()
    feed(session, frame("SUBSCRIBE", ("id", "0"), ("destination", "/a")))
    data, event_type = VALID_IN_CONNECTED[command]
    assert isinstance(feed(session, data), event_type)
    # After DISCONNECT too: the receipt still has to be written (close_after_disconnect()).
    assert session.state is SessionState.CONNECTED


@pytest.mark.parametrize("command", ["CONNECT", "STOMP"])
def test_connected_refuses_a_second_connect(command: str) -> None:
    message = refusal(connect(), frame(command, ("accept-version", "1.2")))
    assert message == f"{command} on a session that is already connected"


@pytest.mark.parametrize("command", OTHER_COMMANDS)
def test_transactions_are_not_supported(command: str) -> None:
    message = refusal(connect(), frame(command, ("transaction", "tx1")))
    assert message == "transactions are not supported"


@pytest.mark.parametrize("closed", [False, True])
@pytest.mark.parametrize("command", ALL_COMMANDS)
def test_nothing_is_accepted_after_disconnect(command: str, closed: bool) -> None:
    session = connect()
    feed(session, frame("DISCONNECT"))
    if closed:
        session.close_after_disconnect()
    assert refusal(session, frame(command)) == f"{command} after DISCONNECT"


def test_disconnect_then_more_frames_in_the_same_chunk() -> None:
    session = connect()
    session.receive_data(frame("DISCONNECT", ("receipt", "r")) + frame("SEND"), 1.0)
    assert session.next_event() == Disconnect(receipt="r")
    with pytest.raises(RemoteProtocolError, match="SEND after DISCONNECT"):
        session.next_event()
    # The shell may still answer with an ERROR: the session is not CLOSED yet.
    assert read(session.error("PROTOCOL_ERROR")).command == "ERROR"
    assert session.state is SessionState.CLOSED
    session.close_after_disconnect()
    assert session.state is SessionState.CLOSED


@pytest.mark.parametrize("command", ALL_COMMANDS)
def test_nothing_is_accepted_after_error(command: str) -> None:
    session = connect()
    session.error("BYE")
    assert refusal(session, frame(command)) == f"{command} on a closed session"


@pytest.mark.parametrize("command", ["FOO", "MESSAGE", "CONNECTED", "RECEIPT", "ERROR"])
@pytest.mark.parametrize("connected", [False, True])
def test_unknown_commands(command: str, connected: bool) -> None:
    session = connect() if connected else StompSession(now=0.0)
    assert refusal(session, frame(command)) == f"unknown command {command}"


def test_frames_behind_connect_wait_for_accept() -> None:
    session = StompSession(now=0.0)
    session.receive_data(
        frame("CONNECT", ("accept-version", "1.2"))
        + b"\n"
        + frame("SUBSCRIBE", ("id", "0"), ("destination", "/a")),
        1.0,
    )
    assert isinstance(session.next_event(), ConnectRequested)
    assert session.next_event() is None
    assert session.next_event() is None
    session.accept(2.0)
    assert isinstance(session.next_event(), Subscribe)
    assert session.next_event() is None


def test_data_piling_up_before_accept_is_bounded() -> None:
    session = StompSession(now=0.0, max_frame_size=200)
    feed(session, frame("CONNECT", ("accept-version", "1.2")))
    session.receive_data(frame("SEND", ("destination", "/a"), body=b"x" * 100), 1.0)
    with pytest.raises(RemoteProtocolError, match="too much data before CONNECTED"):
        session.receive_data(frame("SEND", ("destination", "/a"), body=b"x" * 100), 1.0)


def test_local_calls_in_the_wrong_state_are_bugs() -> None:
    session = StompSession(now=0.0)
    with pytest.raises(LocalProtocolError):
        session.accept(0.0)
    with pytest.raises(LocalProtocolError):
        session.receipt("r")
    with pytest.raises(LocalProtocolError):
        session.message(destination="/a", subscription="0", message_id="m", body=b"")
    with pytest.raises(LocalProtocolError):
        session.close_after_disconnect()
    session.error("NO")
    with pytest.raises(LocalProtocolError):
        session.error("AGAIN")


def test_heartbeat_eols_are_consumed_silently() -> None:
    session = connect()
    assert feed(session, b"\n\r\n\n") is None
    assert isinstance(feed(session, b"\n" + frame("ACK", ("id", "1")) + b"\r\n"), Ack)
    assert session.next_event() is None


def test_byte_by_byte() -> None:
    session = StompSession(now=0.0)
    events = []
    data = frame("CONNECT", ("accept-version", "1.2"))
    for index in range(len(data)):
        session.receive_data(data[index : index + 1], 1.0)
        if (event := session.next_event()) is not None:
            events.append(event)
    assert [type(event) for event in events] == [ConnectRequested]


def test_malformed_frame_through_the_session() -> None:
    assert refusal(connect(), b"SEND\nno colon\n\n\0") == "header line without ':'"


def test_frame_over_the_limit_through_the_session() -> None:
    session = connect()
    with pytest.raises(RemoteProtocolError, match="65536 byte limit"):
        session.receive_data(b"SEND\ndestination:/a\n\n" + b"x" * 70000, 2.0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"supported_versions": ()},
        {"supported_versions": ("1.3",)},
        {"supported_versions": ("1.1",), "preferred_version": "1.2"},
        {"server_heartbeat": (-1, 0)},
        {"connect_timeout": 0},
        {"heartbeat_grace": 0.5},
    ],
)
def test_constructor_rejects_bad_arguments(kwargs: dict[str, object]) -> None:
    with pytest.raises(LocalProtocolError):
        StompSession(now=0.0, **kwargs)  # type: ignore[arg-type]


# -- MESSAGE, RECEIPT, ERROR, DISCONNECT -----------------------------------------------------


def test_message() -> None:
    session = connect("1.1")
    data = session.message(destination="/t:1", subscription="s", message_id="m", body=b"{}")
    assert read(data, "1.1") == Frame(
        "MESSAGE",
        (
            ("destination", "/t:1"),
            ("subscription", "s"),
            ("message-id", "m"),
            ("content-type", "application/json"),
            ("content-length", "2"),
        ),
        b"{}",
    )
    assert b"destination:/t\\c1\n" in data


@pytest.mark.parametrize(("ack", "expected"), [("auto", None), ("client", "m7")])
def test_message_carries_the_ack_header_for_client_ack_in_12(
    ack: str, expected: str | None
) -> None:
    session = connect()
    feed(session, frame("SUBSCRIBE", ("id", "s"), ("destination", "/a"), ("ack", ack)))
    data = session.message(destination="/a", subscription="s", message_id="m7", body=b"")
    assert read(data).get("ack") == expected


def test_receipt() -> None:
    session = connect("1.2")
    assert read(session.receipt("r:1")) == Frame("RECEIPT", (("receipt-id", "r:1"),))
    assert session.receipt("r:1") == b"RECEIPT\nreceipt-id:r\\c1\n\n\0"


def test_disconnect_with_receipt() -> None:
    session = connect()
    event = feed(session, frame("DISCONNECT", ("receipt", "bye-1")))
    assert event == Disconnect(receipt="bye-1")
    # Fan-out racing the DISCONNECT may still write until the shell closes the session.
    message = session.message(destination="/a", subscription="s", message_id="m", body=b"")
    assert read(message).command == "MESSAGE"
    assert read(session.receipt("bye-1")) == Frame("RECEIPT", (("receipt-id", "bye-1"),))
    session.close_after_disconnect()
    assert session.state is SessionState.CLOSED
    assert read(session.receipt("bye-1")).command == "RECEIPT"
    with pytest.raises(LocalProtocolError):
        session.message(destination="/a", subscription="s", message_id="m", body=b"")
    with pytest.raises(LocalProtocolError):
        session.error("TOO_LATE")


def test_disconnect_without_receipt() -> None:
    assert feed(connect(), frame("DISCONNECT")) == Disconnect(receipt=None)


@pytest.mark.parametrize("state", ["awaiting", "connecting", "connected"])
def test_error_then_closed(state: str) -> None:
    session = StompSession(now=0.0)
    if state != "awaiting":
        feed(session, frame("CONNECT", ("accept-version", "1.2")))
    if state == "connected":
        session.accept(1.0)
    data = session.error(
        "AUTH_FAILED", body=b'{"code":"AUTH_FAILED"}', receipt_id="r1", content_type="text/x"
    )
    assert read(data) == Frame(
        "ERROR",
        (
            ("message", "AUTH_FAILED"),
            ("receipt-id", "r1"),
            ("content-type", "text/x"),
            ("content-length", "22"),
        ),
        b'{"code":"AUTH_FAILED"}',
    )
    assert session.state is SessionState.CLOSED
    assert session.get_timer() is None


@pytest.mark.parametrize("code", ["a b", "a\nb", "no such destination\\c /x", "a:b", ""])
def test_error_message_is_one_token(code: str) -> None:
    """StompProtocolAndroid 1.6.6 parses a header line with ([^:\\s]+)\\s*:\\s*([^:\\s]+):
    a space or a colon in `message` ends its message stream."""
    session = connect("1.0")
    with pytest.raises(LocalProtocolError):
        session.error(code)
    assert session.state is SessionState.CONNECTED


@pytest.mark.parametrize(
    ("raw", "receipt"),
    [
        ("SUBSCRIBE\ndestination:/a\nreceipt:r1\n\n\0", "r1"),  # no id: the handler refuses
        ("BEGIN\ntransaction:t\nreceipt:r2\n\n\0", "r2"),
        ("CONNECT\nreceipt:r3\n\n\0", "r3"),  # not in the table for this state
        ("FROB\nreceipt:r4\n\n\0", "r4"),
        ("SEND\n\n\0", None),
    ],
)
def test_error_echoes_the_receipt_of_the_refused_frame(raw: str, receipt: str | None) -> None:
    """STOMP 1.2 "ERROR": an ERROR caused by a frame with `receipt` carries `receipt-id`."""
    session = connect()
    session.receive_data(raw.encode(), 1.0)
    with pytest.raises(RemoteProtocolError):
        session.next_event()
    assert read(session.error("PROTOCOL_ERROR")).get("receipt-id") == receipt


def test_frame_too_large_has_its_own_code() -> None:
    session = connect()
    with pytest.raises(RemoteProtocolError) as refused:
        session.receive_data(b"SEND\ndestination:/a\n\n" + b"x" * 70_000, 1.0)
    assert refused.value.code == "FRAME_TOO_LARGE"
    with pytest.raises(RemoteProtocolError) as again:
        session.next_event()  # the parser stays dead, with the same code
    assert again.value.code == "FRAME_TOO_LARGE"


def test_remote_protocol_error_message_is_one_short_line() -> None:
    error = RemoteProtocolError("x\n" * 500)
    assert "\n" not in error.message
    assert len(error.message) <= 200
    assert str(error) == error.message
