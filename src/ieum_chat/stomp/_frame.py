"""The frame value type, the heart-beat sentinel and the command vocabulary (STOMP 1.2 "Frames")."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Final, Literal

__all__ = [
    "CLIENT_COMMANDS",
    "HEARTBEAT",
    "RAW_HEADER_COMMANDS",
    "SERVER_COMMANDS",
    "VERSIONS",
    "Frame",
    "Heartbeat",
    "is_valid_command",
]

VERSIONS: Final = ("1.0", "1.1", "1.2")

CLIENT_COMMANDS: Final = frozenset(
    {
        "CONNECT",
        "STOMP",
        "SEND",
        "SUBSCRIBE",
        "UNSUBSCRIBE",
        "ACK",
        "NACK",
        "BEGIN",
        "COMMIT",
        "ABORT",
        "DISCONNECT",
    }
)
SERVER_COMMANDS: Final = frozenset({"CONNECTED", "MESSAGE", "RECEIPT", "ERROR"})

# STOMP 1.2 "Value Encoding": CONNECT and CONNECTED headers are never escaped, so that a 1.0 peer
# can read them before a version is negotiated. STOMP is CONNECT under another name.
RAW_HEADER_COMMANDS: Final = frozenset({"CONNECT", "STOMP", "CONNECTED"})

# Unknown commands still have to look like one, so that the session can name what it refuses.
_COMMAND_SYNTAX: Final = re.compile(r"[A-Z]{1,32}")


def is_valid_command(command: str) -> bool:
    return (
        command in CLIENT_COMMANDS
        or command in SERVER_COMMANDS
        or (_COMMAND_SYNTAX.fullmatch(command) is not None)
    )


@dataclass(frozen=True, slots=True)
class Frame:
    """One STOMP frame; `headers` keeps every entry in wire order, repeats included."""

    command: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""

    def get(self, name: str, default: str | None = None) -> str | None:
        # STOMP 1.2 "Repeated Header Entries": only the first occurrence counts.
        for key, value in self.headers:
            if key == name:
                return value
        return default


class Heartbeat(enum.Enum):
    """A bare EOL between frames (STOMP 1.2 "Heart-beating")."""

    HEARTBEAT = "HEARTBEAT"

    def __repr__(self) -> str:
        return "HEARTBEAT"


HEARTBEAT: Final[Literal[Heartbeat.HEARTBEAT]] = Heartbeat.HEARTBEAT
