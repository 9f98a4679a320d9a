"""What the parser reports: one event per complete message or control frame (RFC 6455 §5.4-5.6)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BinaryMessage", "CloseReceived", "Event", "Ping", "Pong", "TextMessage"]


@dataclass(frozen=True, slots=True)
class TextMessage:
    """A whole text message, fragments joined; `data` is checked to be UTF-8 (§8.1) but left as
    bytes, so a shell that only forwards it never pays for a decode."""

    data: bytes


@dataclass(frozen=True, slots=True)
class BinaryMessage:
    data: bytes


@dataclass(frozen=True, slots=True)
class Ping:
    """The shell answers with `pong_frame(payload)` (§5.5.2)."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class Pong:
    payload: bytes


@dataclass(frozen=True, slots=True)
class CloseReceived:
    """The client started (or answered) the closing handshake; `code` is None when the frame had
    no body (§7.1.5 then calls the status 1005). The parser accepts nothing after it."""

    code: int | None
    reason: str


Event = TextMessage | BinaryMessage | Ping | Pong | CloseReceived
