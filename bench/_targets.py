"""The servers the generator can drive, and how each spells the same chat traffic.

ieum-chat: token in the handshake, SUBSCRIBE ``/topic/couple/{id}`` (and ``/user/queue/errors``,
where a refused SEND is answered instead of a RECEIPT), SEND ``/app/chat/{id}``, reactions to
``/app/chat/{id}/react``.
RabbitMQ Web-STOMP: login/passcode on CONNECT, SUBSCRIBE and SEND both on ``/topic/couple.{id}``
(its topic destinations route on the part after ``/topic/``, dots separating words). Both send
every member their own messages too, and a RECEIPT for each SEND that carries a receipt header.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Final, Literal
from urllib.parse import quote, urlsplit

__all__ = ["IEUM", "KINDS", "RABBITMQ", "Couple", "Target", "synthetic_couples"]

IEUM: Final = "ieum"
RABBITMQ: Final = "rabbitmq"
KINDS: Final = (IEUM, RABBITMQ)
Kind = Literal["ieum", "rabbitmq"]


@dataclass(frozen=True, slots=True)
class Couple:
    """One row of ``ieum-chat seed``: the couple, its two members and their tokens."""

    couple: str
    a: str
    b: str
    ta: str = ""
    tb: str = ""

    @classmethod
    def from_row(cls, row: dict[str, str]) -> Couple:
        return cls(row["couple"], row["a"], row["b"], row.get("ta", ""), row.get("tb", ""))


def synthetic_couples(n: int) -> list[Couple]:
    """Couples for a broker that has no users: fresh ids, no tokens."""
    return [Couple(str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())) for _ in range(n)]


@dataclass(frozen=True, slots=True)
class Target:
    kind: Kind
    url: str  # ws://host:port/path
    login: str = "guest"
    passcode: str = "guest"
    vhost: str = "/"
    heartbeat_ms: int = 0
    """Server-to-client heart-beats asked on CONNECT (the client sends none)."""

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme != "ws" or not parts.hostname:
            raise ValueError(f"need a ws://host:port/path URL, not {self.url!r}")

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or 80

    def path(self, token: str) -> str:
        path = urlsplit(self.url).path or "/"
        if self.kind == IEUM and token:
            return f"{path}?token={quote(token)}"
        return path

    def connect_headers(self) -> tuple[tuple[str, str], ...]:
        # heart-beat 0,0 by default: an idle bench session must cost the server nothing but its
        # memory; `idle --heartbeat-ms` asks for the server's heart-beats to price them.
        common = (("accept-version", "1.2"), ("heart-beat", f"0,{self.heartbeat_ms}"))
        if self.kind == RABBITMQ:
            return (
                *common,
                ("host", self.vhost),
                ("login", self.login),
                ("passcode", self.passcode),
            )
        return (*common, ("host", self.host))

    def topic(self, couple: str) -> str:
        if self.kind == RABBITMQ:
            return f"/topic/couple.{couple}"
        return f"/topic/couple/{couple}"

    def send_destination(self, couple: str) -> str:
        if self.kind == RABBITMQ:
            return f"/topic/couple.{couple}"
        return f"/app/chat/{couple}"

    def react_destination(self, couple: str) -> str | None:
        """None: the server has no reactions."""
        return None if self.kind == RABBITMQ else f"/app/chat/{couple}/react"

    @property
    def errors_destination(self) -> str | None:
        return None if self.kind == RABBITMQ else "/user/queue/errors"

    @property
    def label(self) -> str:
        return "RabbitMQ Web-STOMP" if self.kind == RABBITMQ else "ieum-chat"
