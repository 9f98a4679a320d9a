"""StompSession CONNECT: version and heart-beat negotiation, the CONNECTED frame."""

from __future__ import annotations

import tracemalloc

import pytest

import ieum_chat.stomp._negotiation as negotiation
from ieum_chat.stomp import (
    ConnectRequested,
    LocalProtocolError,
    Send,
    SessionState,
    StompSession,
)

from ._support import connect, feed, frame, read, refusal

# -- CONNECT, version negotiation ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept_version", "supported", "preferred", "expected"),
    [
        (None, ("1.0", "1.1", "1.2"), None, "1.0"),
        ("1.0", ("1.0", "1.1", "1.2"), None, "1.0"),
        ("1.1", ("1.0", "1.1", "1.2"), None, "1.1"),
        ("1.0,1.1,1.2", ("1.0", "1.1", "1.2"), None, "1.2"),
        ("1.2, 1.1", ("1.0", "1.1", "1.2"), None, "1.2"),
        ("1.0,1.1,1.2", ("1.0", "1.1"), None, "1.1"),
        ("1.1,2.0", ("1.0", "1.1", "1.2"), None, "1.1"),
        # A subprotocol hint (v12.stomp) only fills in for a missing accept-version.
        (None, ("1.0", "1.1", "1.2"), "1.2", "1.2"),
        ("1.0,1.1", ("1.0", "1.1", "1.2"), "1.2", "1.1"),
    ],
)
def test_version_negotiation(
    accept_version: str | None,
    supported: tuple[str, ...],
    preferred: str | None,
    expected: str,
) -> None:
    session = StompSession(now=0.0, supported_versions=supported, preferred_version=preferred)
    headers = () if accept_version is None else (("accept-version", accept_version),)
    event = feed(session, frame("CONNECT", *headers))
    assert isinstance(event, ConnectRequested)
    assert event.version == expected
    assert session.version == expected
    connected = read(session.accept(1.0))
    assert connected.get("version") == (None if expected == "1.0" else expected)


@pytest.mark.parametrize(
    ("accept_version", "supported"),
    [("2.0", ("1.0", "1.1", "1.2")), ("1.0", ("1.1", "1.2")), ("", ("1.0", "1.1", "1.2"))],
)
def test_no_common_version(accept_version: str, supported: tuple[str, ...]) -> None:
    session = StompSession(now=0.0, supported_versions=supported)
    message = refusal(session, frame("CONNECT", ("accept-version", accept_version)))
    listed = ",".join(supported)
    assert message == f"no common STOMP version; this server supports {listed}"
    # STOMP 1.2 "Protocol Negotiation": the ERROR frame carries a version header.
    error = read(session.error("PROTOCOL_ERROR"))
    assert error.get("version") == listed
    assert session.state is SessionState.CLOSED


def test_no_common_version_without_accept_version() -> None:
    session = StompSession(now=0.0, supported_versions=("1.2",))
    assert "supports 1.2" in refusal(session, frame("CONNECT"))


def test_connect_requested_fields() -> None:
    session = StompSession(now=0.0)
    event = feed(
        session,
        frame(
            "CONNECT",
            ("accept-version", "1.2"),
            ("host", "chat"),
            ("login", "alice"),
            ("passcode", "s3cret"),
            ("heart-beat", "5000,20000"),
            ("Authorization", "Bearer tok.en"),
        ),
    )
    assert event == ConnectRequested(
        version="1.2",
        host="chat",
        login="alice",
        passcode="s3cret",
        heartbeat=(5000, 20000),
        headers=(
            ("accept-version", "1.2"),
            ("host", "chat"),
            ("login", "alice"),
            ("passcode", "s3cret"),
            ("heart-beat", "5000,20000"),
            ("Authorization", "Bearer tok.en"),
        ),
    )
    # Logging the event must not log a credential.
    assert "s3cret" not in repr(event)
    assert "tok.en" not in repr(event)


def test_connect_12_without_host_is_accepted() -> None:
    event = feed(StompSession(now=0.0), frame("CONNECT", ("accept-version", "1.2")))
    assert isinstance(event, ConnectRequested)
    assert event.host is None
    assert event.login is None
    assert event.passcode is None


def test_connect_headers_are_not_unescaped() -> None:
    event = feed(StompSession(now=0.0), b"CONNECT\naccept-version:1.2\npasscode:a\\tb\n\n\0")
    assert isinstance(event, ConnectRequested)
    assert event.passcode == "a\\tb"


@pytest.mark.parametrize("value", ["secret-token", "1", "1,2,3", "-1,0", "1,x", ""])
def test_malformed_heartbeat_is_refused_without_echo(value: str) -> None:
    session = StompSession(now=0.0)
    message = refusal(session, frame("CONNECT", ("accept-version", "1.2"), ("heart-beat", value)))
    assert message.startswith("heart-beat header must be")
    assert "secret" not in message


def test_accept_version_is_not_echoed() -> None:
    session = StompSession(now=0.0)
    message = refusal(session, frame("CONNECT", ("accept-version", "token-abc")))
    assert "token" not in message


def test_heartbeat_header_is_ignored_in_10() -> None:
    session = StompSession(now=0.0)
    event = feed(session, frame("CONNECT", ("heart-beat", "garbage")))
    assert isinstance(event, ConnectRequested)
    assert event.heartbeat == (0, 0)
    assert session.heartbeat == (0, 0)


@pytest.mark.parametrize(
    ("client", "server", "expected"),
    [
        ("0,0", (10000, 10000), (0, 0)),
        ("5000,20000", (10000, 10000), (20000, 10000)),
        ("20000,5000", (10000, 10000), (10000, 20000)),
        ("0,1000", (10000, 10000), (10000, 0)),
        ("1000,0", (10000, 10000), (0, 10000)),
        ("1000,1000", (0, 0), (0, 0)),
        ("1000,1000", (0, 5000), (0, 5000)),
        (" 4000 , 6000 ", (1000, 1000), (6000, 4000)),
    ],
)
def test_heartbeat_negotiation(
    client: str, server: tuple[int, int], expected: tuple[int, int]
) -> None:
    session = StompSession(now=0.0, server_heartbeat=server)
    event = feed(session, frame("CONNECT", ("accept-version", "1.1"), ("heart-beat", client)))
    assert isinstance(event, ConnectRequested)
    assert session.heartbeat == expected
    assert read(session.accept(1.0)).get("heart-beat") == f"{expected[0]},{expected[1]}"


def test_sessions_that_negotiate_alike_keep_no_pair_of_their_own() -> None:
    """An open session keeps its negotiated pair for its whole life, and idle sessions are
    counted in thousands: those of one app's clients negotiate alike and share one tuple (a
    compiled session holds the two numbers inside itself instead)."""
    sessions = []
    tracemalloc.start()
    try:
        for index in range(200):
            session = StompSession(now=0.0, server_heartbeat=(10000, 10000))
            client = "10000,10000" if index % 2 else " 10000 , 10000 "
            feed(session, frame("CONNECT", ("accept-version", "1.2"), ("heart-beat", client)))
            sessions.append(session)
        snapshot = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    assert all(session.heartbeat == (10000, 10000) for session in sessions)
    in_negotiation = tracemalloc.Filter(True, negotiation.__file__ or "")
    traces = snapshot.filter_traces([in_negotiation])
    retained = sum(stat.size for stat in traces.statistics("filename"))
    # A tuple kept by each session shows here by the thousand bytes (5,600 when measured).
    assert retained < 2_000


# -- CONNECTED --------------------------------------------------------------------------------


def test_connected_frame() -> None:
    session = StompSession(now=0.0, server_name="test/1")
    feed(session, frame("CONNECT", ("accept-version", "1.2"), ("heart-beat", "0,0")))
    connected = read(session.accept(1.0, (("user-name", "alice"),)))
    assert connected.command == "CONNECTED"
    assert connected.get("version") == "1.2"
    assert connected.get("heart-beat") == "0,0"
    assert connected.get("server") == "test/1"
    assert connected.get("user-name") == "alice"
    session_id = connected.get("session")
    assert session_id
    assert connected.body == b""


def test_connected_frame_caller_headers_replace_defaults() -> None:
    session = StompSession(now=0.0)
    feed(session, frame("CONNECT", ("accept-version", "1.2")))
    connected = read(session.accept(1.0, (("session", "s-1"), ("server", "other"))))
    assert [value for name, value in connected.headers if name == "session"] == ["s-1"]
    assert [value for name, value in connected.headers if name == "server"] == ["other"]


@pytest.mark.parametrize("name", ["version", "heart-beat", "content-length"])
def test_connected_frame_reserved_headers(name: str) -> None:
    session = StompSession(now=0.0)
    feed(session, frame("CONNECT", ("accept-version", "1.2")))
    with pytest.raises(LocalProtocolError):
        session.accept(1.0, ((name, "1"),))
    assert session.state is SessionState.CONNECTING


def test_connected_frame_10() -> None:
    session = StompSession(now=0.0)
    feed(session, frame("CONNECT"))
    connected = read(session.accept(1.0), "1.0")
    assert connected.get("version") is None
    assert connected.get("heart-beat") is None
    assert connected.get("session")


@pytest.mark.parametrize(
    ("version", "destination"),
    [("1.0", "/a\\tb"), ("1.1", "/a\nb"), ("1.2", "/a\rb")],
)
def test_accept_switches_the_parser_to_the_version(version: str, destination: str) -> None:
    session = connect(version)
    escaped = {"1.0": b"/a\\tb", "1.1": b"/a\\nb", "1.2": b"/a\\rb"}[version]
    event = feed(session, b"SEND\ndestination:" + escaped + b"\n\n\0")
    assert isinstance(event, Send)
    assert event.destination == destination


def test_11_refuses_the_12_cr_escape() -> None:
    assert refusal(connect("1.1"), b"SEND\ndestination:/a\\r\n\n\0").startswith("invalid escape")
