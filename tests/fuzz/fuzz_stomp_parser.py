"""Fuzz target for the STOMP parser and session.

`fuzz_one(data)` feeds arbitrary bytes to a FrameParser and to a StompSession driven like the
gateway drives it; the only exception allowed out of the core is RemoteProtocolError (a
LocalProtocolError here would be a bug: the harness uses the API correctly). Every frame parsed
must survive serialize -> parse unchanged, and every byte the session writes must parse.

    python tests/fuzz/fuzz_stomp_parser.py [corpus_dir]    # with atheris installed

tests/unit/stomp/test_fuzz.py runs the same function under hypothesis, without atheris.
"""

from __future__ import annotations

from collections.abc import Iterator

from ieum_chat.stomp import (
    HEARTBEAT,
    ConnectRequested,
    Disconnect,
    Event,
    Frame,
    FrameParser,
    RemoteProtocolError,
    Send,
    SessionState,
    StompSession,
    Subscribe,
    serialize_frame,
)
from tests.fuzz._atheris import run_atheris

__all__ = ["fuzz_one"]

VERSIONS = ("1.0", "1.1", "1.2")
MAX_FRAME_SIZE = 2048


def fuzz_one(data: bytes) -> None:
    if not data:
        return
    # The first byte picks the parser version and how the input is cut into chunks.
    control, payload = data[0], data[1:]
    version = VERSIONS[control % 3]
    chunk = None if control & 0x80 else 1 + (control >> 2) % 16
    _fuzz_parser(payload, version, chunk)
    _fuzz_session(payload, chunk, preferred=VERSIONS[(control >> 4) % 3] if control & 1 else None)


def _chunks(payload: bytes, size: int | None) -> Iterator[bytes]:
    if size is None:
        yield payload
        return
    for start in range(0, len(payload), size):
        yield payload[start : start + size]


def _check_error(error: RemoteProtocolError) -> None:
    assert "\n" not in error.message
    assert "\r" not in error.message
    assert 0 < len(error.message) <= 200


def _reparse(data: bytes, version: str) -> Frame:
    parser = FrameParser(version=version, max_frame_size=1 << 20)
    parser.receive_data(data)
    frame = parser.next_frame()
    assert isinstance(frame, Frame)
    assert parser.buffered == 0
    return frame


def _check_round_trip(frame: Frame, version: str) -> None:
    expected = frame
    if frame.body and frame.get("content-length") is None:
        length = (("content-length", str(len(frame.body))),)
        expected = Frame(frame.command, frame.headers + length, frame.body)
    assert _reparse(serialize_frame(frame, version), version) == expected


def _fuzz_parser(payload: bytes, version: str, chunk: int | None) -> None:
    parser = FrameParser(max_frame_size=MAX_FRAME_SIZE, max_headers=16, version=version)
    try:
        for piece in _chunks(payload, chunk):
            parser.receive_data(piece)
            while (frame := parser.next_frame()) is not None:
                if frame is not HEARTBEAT:
                    assert isinstance(frame, Frame)
                    assert len(frame.body) < MAX_FRAME_SIZE
                    _check_round_trip(frame, version)
    except RemoteProtocolError as error:
        _check_error(error)


def _react(session: StompSession, event: Event, now: float) -> None:
    version = session.version or "1.2"
    if isinstance(event, Subscribe) and session.state is SessionState.CONNECTED:
        data = session.message(
            destination=event.destination, subscription=event.id, message_id="m-1", body=b"{}"
        )
        assert _reparse(data, version).command == "MESSAGE"
        session.note_sent(now)
    if isinstance(event, Send) and event.destination.endswith("reject"):
        _check_close(session, session.error("REJECTED", body=event.body, receipt_id=event.receipt))
        return
    receipt = None if isinstance(event, ConnectRequested) else event.receipt
    if receipt is not None:
        assert _reparse(session.receipt(receipt), version).get("receipt-id") == receipt
    if isinstance(event, Disconnect):
        session.close_after_disconnect()


def _check_close(session: StompSession, data: bytes) -> None:
    assert _reparse(data, session.version or "1.2").command == "ERROR"
    assert session.state is SessionState.CLOSED


def _fuzz_session(payload: bytes, chunk: int | None, preferred: str | None) -> None:
    session = StompSession(
        now=0.0,
        max_frame_size=MAX_FRAME_SIZE,
        max_subscriptions=4,
        server_heartbeat=(1000, 1000),
        preferred_version=preferred,
    )
    now = 0.0
    try:
        for piece in _chunks(payload, chunk):
            now += 0.25
            session.receive_data(piece, now)
            while session.state is not SessionState.CLOSED:
                event = session.next_event()
                if event is None and session.state is SessionState.CONNECTING:
                    connected = session.accept(now)
                    assert _reparse(connected, session.version or "1.2").command == "CONNECTED"
                    continue
                if event is None:
                    break
                _react(session, event, now)
            timer = session.get_timer()
            action = session.handle_timer(now)
            assert action is None or (timer is not None and timer <= now)
    except RemoteProtocolError as error:
        _check_error(error)
        if session.state is not SessionState.CLOSED:
            _check_close(session, session.error(error.code))


def main() -> None:
    run_atheris(fuzz_one)


if __name__ == "__main__":
    main()
