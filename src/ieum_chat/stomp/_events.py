"""What a client asked for, as the session reports it to the shell (one event per client frame).

CONNECT headers may carry a token (`passcode`, `Authorization`): they stay out of `repr()`, so
logging an event never logs a credential.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "Ack",
    "ConnectRequested",
    "Disconnect",
    "Event",
    "Headers",
    "Nack",
    "Send",
    "Subscribe",
    "Unsubscribe",
]

Headers = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class ConnectRequested:
    """A CONNECT or STOMP frame; the shell authenticates, then calls `accept()` or `error()`."""

    version: str
    host: str | None
    login: str | None
    passcode: str | None = field(repr=False)
    heartbeat: tuple[int, int]
    headers: Headers = field(repr=False)


@dataclass(frozen=True, slots=True)
class Subscribe:
    id: str
    destination: str
    ack: str
    receipt: str | None
    headers: Headers


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    id: str
    receipt: str | None


@dataclass(frozen=True, slots=True)
class Send:
    destination: str
    body: bytes
    content_type: str | None
    receipt: str | None
    headers: Headers


@dataclass(frozen=True, slots=True)
class Ack:
    id: str
    receipt: str | None


@dataclass(frozen=True, slots=True)
class Nack:
    id: str
    receipt: str | None


@dataclass(frozen=True, slots=True)
class Disconnect:
    receipt: str | None


Event = ConnectRequested | Subscribe | Unsubscribe | Send | Ack | Nack | Disconnect
