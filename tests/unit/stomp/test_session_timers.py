"""StompSession timers: every TimerAction, with explicit `now` values (no clock is read)."""

from __future__ import annotations

import pytest

from ieum_chat.stomp import SessionState, StompSession, TimerAction

CONNECT_12 = b"CONNECT\naccept-version:1.2\nheart-beat:%d,%d\n\n\0"


def connecting(
    now: float = 0.0, *, heartbeat: tuple[int, int] = (0, 0), **kwargs: object
) -> StompSession:
    session = StompSession(now=now, **kwargs)  # type: ignore[arg-type]
    session.receive_data(CONNECT_12 % heartbeat, now)
    assert session.next_event() is not None
    return session


def test_connect_timeout_while_awaiting_connect() -> None:
    session = StompSession(now=100.0, connect_timeout=10.0)
    assert session.get_timer() == 110.0
    assert session.handle_timer(109.9) is None
    assert session.handle_timer(110.0) is TimerAction.CONNECT_TIMEOUT
    # Stateless: it stays due until the shell acts on it.
    assert session.handle_timer(111.0) is TimerAction.CONNECT_TIMEOUT
    session.error("CONNECT_TIMEOUT")
    assert session.get_timer() is None
    assert session.handle_timer(200.0) is None


def test_connect_timeout_while_connecting() -> None:
    session = connecting(0.0, connect_timeout=5.0)
    assert session.state is SessionState.CONNECTING
    assert session.get_timer() == 5.0
    assert session.handle_timer(5.0) is TimerAction.CONNECT_TIMEOUT


def test_bytes_before_connect_do_not_extend_the_deadline() -> None:
    session = StompSession(now=0.0, connect_timeout=10.0)
    session.receive_data(b"\n", 9.0)
    assert session.handle_timer(10.0) is TimerAction.CONNECT_TIMEOUT


def test_accept_stops_the_connect_deadline() -> None:
    session = connecting(0.0, connect_timeout=5.0)
    session.accept(1.0)
    assert session.get_timer() is None
    assert session.handle_timer(50.0) is None


def test_send_heartbeat() -> None:
    # Client wants a heart-beat every 4 s, the server can do one every 1 s: every 4 s it is.
    session = connecting(heartbeat=(0, 4000), server_heartbeat=(1000, 0))
    session.accept(10.0)
    assert session.heartbeat == (4000, 0)
    assert session.get_timer() == 14.0
    assert session.handle_timer(13.99) is None
    assert session.handle_timer(14.0) is TimerAction.SEND_HEARTBEAT
    session.note_sent(14.0)
    assert session.get_timer() == 18.0
    # Any write (a MESSAGE) also counts.
    session.note_sent(16.5)
    assert session.get_timer() == 20.5
    assert session.handle_timer(20.0) is None


def test_peer_timeout_after_grace() -> None:
    # The client sends every 3 s at best, the server wants one every 2 s: expect 3 s, allow 2x.
    session = connecting(heartbeat=(3000, 0), server_heartbeat=(0, 2000))
    session.accept(10.0)
    assert session.heartbeat == (0, 3000)
    assert session.get_timer() == 16.0
    assert session.handle_timer(15.9) is None
    assert session.handle_timer(16.0) is TimerAction.PEER_TIMEOUT


def test_any_received_byte_resets_the_peer_deadline() -> None:
    session = connecting(heartbeat=(3000, 0), server_heartbeat=(0, 2000))
    session.accept(10.0)
    session.receive_data(b"\n", 15.0)
    assert session.next_event() is None
    assert session.get_timer() == 21.0
    assert session.handle_timer(20.0) is None
    session.receive_data(b"SEND\ndesti", 20.5)
    assert session.get_timer() == 26.5


def test_heartbeat_grace_parameter() -> None:
    session = connecting(heartbeat=(1000, 0), server_heartbeat=(0, 1000), heartbeat_grace=1.5)
    session.accept(0.0)
    assert session.get_timer() == 1.5


def test_both_directions_earliest_first() -> None:
    session = connecting(heartbeat=(1000, 1000), server_heartbeat=(1000, 1000))
    session.accept(0.0)
    assert session.get_timer() == 1.0
    assert session.handle_timer(1.0) is TimerAction.SEND_HEARTBEAT
    session.note_sent(1.0)
    session.receive_data(b"\n", 1.0)
    assert session.get_timer() == 2.0
    # At 3.0 both the peer deadline (1 + 2x1) and a heart-beat (2.0) are due: the peer wins.
    assert session.handle_timer(3.0) is TimerAction.PEER_TIMEOUT


def test_expiry() -> None:
    session = connecting()
    session.accept(0.0)
    assert session.get_timer() is None
    session.set_expiry(3600.0)
    assert session.get_timer() == 3600.0
    assert session.handle_timer(3599.0) is None
    assert session.handle_timer(3600.0) is TimerAction.EXPIRED
    session.set_expiry(None)
    assert session.handle_timer(3600.0) is None


def test_expiry_comes_before_peer_timeout_and_heartbeat() -> None:
    session = connecting(heartbeat=(1000, 1000), server_heartbeat=(1000, 1000))
    session.accept(0.0)
    session.set_expiry(5.0)
    assert session.get_timer() == 1.0
    assert session.handle_timer(10.0) is TimerAction.EXPIRED


def test_connect_timeout_comes_before_expiry() -> None:
    session = StompSession(now=0.0, connect_timeout=10.0)
    session.set_expiry(5.0)
    assert session.get_timer() == 5.0
    assert session.handle_timer(6.0) is TimerAction.EXPIRED
    assert session.handle_timer(10.0) is TimerAction.CONNECT_TIMEOUT


def test_no_heartbeats_in_10() -> None:
    session = StompSession(now=0.0)
    session.receive_data(b"CONNECT\nheart-beat:1000,1000\n\n\0", 0.0)
    assert session.next_event() is not None
    session.accept(0.0)
    assert session.heartbeat == (0, 0)
    assert session.get_timer() is None
    assert session.handle_timer(1e9) is None


def test_timers_stop_after_disconnect() -> None:
    session = connecting(heartbeat=(1000, 1000), server_heartbeat=(1000, 1000))
    session.accept(0.0)
    session.set_expiry(5.0)
    session.receive_data(b"DISCONNECT\n\n\0", 0.5)
    assert session.next_event() is not None
    session.close_after_disconnect()
    assert session.get_timer() is None
    assert session.handle_timer(100.0) is None


@pytest.mark.parametrize("now", [0.0, 1234.5])
def test_deadlines_are_relative_to_the_given_clock(now: float) -> None:
    session = StompSession(now=now, connect_timeout=2.5)
    assert session.get_timer() == now + 2.5
