"""The sans-IO session: the state table, one receiver at a time, heart-beats, expiry,
close frames and the bounded buffer, all with explicit `now` values."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ieum_chat.sockjs import (
    Attach,
    FrameType,
    LocalProtocolError,
    Session,
    SessionState,
    TimerAction,
)


def state_of(session: Session) -> SessionState:
    return session.state


def attached(now: float = 0.0, **kwargs: float) -> Session:
    session = Session(now=now, **kwargs)  # type: ignore[arg-type]
    assert session.attach(now) is Attach.ATTACHED
    return session


def test_open_frame_first_then_messages_coalesced() -> None:
    session = attached()
    assert session.state is SessionState.NEW
    assert session.send("a")
    frame = session.next_frame(0.0)
    assert frame is not None
    assert frame.data == "o"
    assert state_of(session) is SessionState.OPEN
    assert session.send("b")
    frame = session.next_frame(0.0)
    assert frame is not None
    assert frame.data == 'a["a","b"]'
    assert session.next_frame(0.0) is None
    assert session.pending_size == 0


def test_second_receiver_is_busy_and_changes_nothing() -> None:
    session = attached()
    assert session.attach(1.0) is Attach.BUSY
    assert session.attached
    session.detach(2.0)
    assert session.attach(3.0) is Attach.ATTACHED


def test_close_frame_after_pending_messages_and_for_every_later_receiver() -> None:
    session = attached()
    session.next_frame(0.0)
    session.send("last words")
    session.close(3000, "Go away!")
    assert session.state is SessionState.CLOSING
    assert not session.is_open
    first = session.next_frame(0.0)
    assert first is not None
    assert first.data == 'a["last words"]'
    close = session.next_frame(0.0)
    assert close is not None
    assert close.type is FrameType.CLOSE
    assert close.close == (3000, "Go away!")
    session.detach(1.0)
    # Until it expires, a closed session answers every request with its close frame.
    session.attach(2.0)
    assert session.next_frame(2.0) == close
    session.close(1000, "again")  # the first close wins
    assert session.next_frame(2.0) == close


def test_close_before_open_still_sends_the_open_frame_first() -> None:
    session = attached()
    session.close(3000, "Go away!")
    first, second = session.next_frame(0.0), session.next_frame(0.0)
    assert first is not None
    assert second is not None
    assert (first.data, second.data) == ("o", 'c[3000,"Go away!"]')


def test_interrupted_receiver_closes_with_1002_and_drops_pending() -> None:
    session = attached()
    session.next_frame(0.0)
    session.send("lost")
    session.detach(1.0, interrupted=True)
    assert session.state is SessionState.CLOSING
    session.attach(2.0)
    frame = session.next_frame(2.0)
    assert frame is not None
    assert frame.data == 'c[1002,"Connection interrupted"]'


def test_heartbeat_only_while_attached() -> None:
    session = attached(0.0, heartbeat_interval=25.0, disconnect_delay=5.0)
    session.next_frame(0.0)
    assert session.get_timer() == 25.0
    assert session.handle_timer(24.9) is None
    assert session.handle_timer(25.0) is TimerAction.HEARTBEAT
    assert session.get_timer() is None  # due until taken
    frame = session.next_frame(25.5)
    assert frame is not None
    assert frame.data == "h"
    assert session.get_timer() == 50.5
    # Any frame counts: a message resets the heart-beat clock.
    session.send("x")
    session.next_frame(40.0)
    assert session.get_timer() == 65.0


def test_detached_session_expires_after_the_disconnect_delay() -> None:
    session = attached(0.0, heartbeat_interval=25.0, disconnect_delay=5.0)
    session.next_frame(0.0)
    session.detach(10.0)
    assert session.get_timer() == 15.0
    assert session.handle_timer(14.0) is None
    assert session.handle_timer(15.0) is TimerAction.EXPIRED
    assert session.state is SessionState.CLOSED
    assert session.get_timer() is None
    with pytest.raises(LocalProtocolError):
        session.attach(16.0)


def test_reattaching_cancels_expiry() -> None:
    session = attached(0.0, disconnect_delay=5.0)
    session.next_frame(0.0)
    session.detach(1.0)
    session.attach(5.0)
    assert session.handle_timer(6.5) is None
    assert session.state is SessionState.OPEN


def test_buffer_is_bounded() -> None:
    session = attached(0.0, max_pending=10)
    assert session.send("12345")
    assert session.send("12345")
    assert not session.send("1")
    assert session.pending_size == 10
    session.next_frame(0.0)  # open
    session.next_frame(0.0)  # the messages
    assert session.send("1")


def test_one_oversized_message_fits_an_empty_buffer() -> None:
    session = attached(0.0, max_pending=4)
    assert session.send("x" * 100)
    assert not session.send("y")


def test_misuse_raises() -> None:
    session = Session(now=0.0)
    with pytest.raises(LocalProtocolError):
        session.next_frame(0.0)
    with pytest.raises(LocalProtocolError):
        session.detach(0.0)
    session.attach(0.0)
    session.close(1000, "bye")
    with pytest.raises(LocalProtocolError):
        session.send("late")
    with pytest.raises(LocalProtocolError):
        Session(now=0.0, heartbeat_interval=0)


def test_expire_ends_an_attached_session() -> None:
    session = attached()
    session.expire()
    assert session.state is SessionState.CLOSED
    assert not session.attached
    session.expire()  # idempotent


_OPS = st.lists(
    st.sampled_from(["attach", "detach", "abort", "send", "take", "close", "tick"]),
    max_size=40,
)


@given(_OPS)
def test_any_sequence_keeps_the_protocol_invariants(ops: list[str]) -> None:
    """Whatever the shell does (within the API's rules): the open frame is the first frame,
    nothing follows a close frame within one request, and the state only moves forward."""
    session = Session(now=0.0, heartbeat_interval=1.0, disconnect_delay=2.0, max_pending=50)
    now = 0.0
    frames: list[str] = []
    order = list(SessionState)
    for op in ops:
        before = session.state
        if session.state is SessionState.CLOSED:
            break
        if op == "attach":
            session.attach(now)
        elif op in ("detach", "abort") and session.attached:
            session.detach(now, interrupted=op == "abort")
        elif op == "send" and session.is_open:
            session.send("m")
        elif op == "take" and session.attached:
            frame = session.next_frame(now)
            if frame is not None:
                frames.append(frame.data)
        elif op == "close":
            session.close(3000, "bye")
        elif op == "tick":
            now += 1.5
            session.handle_timer(now)
        assert order.index(session.state) >= order.index(before)
    if frames:
        assert frames[0] == "o"
        assert "o" not in frames[1:]
    for first, second in pairwise(frames):
        if first.startswith("c"):
            assert second.startswith("c")
