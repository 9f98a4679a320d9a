"""Helpers shared by the session tests."""

from __future__ import annotations

import pytest

from ieum_chat.stomp import (
    ConnectRequested,
    Event,
    Frame,
    FrameParser,
    RemoteProtocolError,
    SessionState,
    StompSession,
)

__all__ = ["connect", "feed", "frame", "read", "refusal"]


def frame(command: str, *headers: tuple[str, str], body: bytes = b"") -> bytes:
    head = "".join(f"\n{name}:{value}" for name, value in headers)
    return f"{command}{head}\n\n".encode() + body + b"\0"


def read(data: bytes, version: str = "1.2") -> Frame:
    parser = FrameParser(version=version)
    parser.receive_data(data)
    result = parser.next_frame()
    assert isinstance(result, Frame)
    assert parser.buffered == 0
    return result


def feed(session: StompSession, data: bytes, now: float = 1.0) -> Event | None:
    session.receive_data(data, now)
    return session.next_event()


def connect(version: str = "1.2", *, heartbeat: str = "0,0", **kwargs: object) -> StompSession:
    session = StompSession(now=0.0, **kwargs)  # type: ignore[arg-type]
    event = feed(session, frame("CONNECT", ("accept-version", version), ("heart-beat", heartbeat)))
    assert isinstance(event, ConnectRequested)
    session.accept(1.0)
    assert session.state is SessionState.CONNECTED
    return session


def refusal(session: StompSession, data: bytes) -> str:
    with pytest.raises(RemoteProtocolError) as info:
        feed(session, data)
    return info.value.message
