"""SockJS 0.3 framing, with no I/O: the frames the server writes and the payloads it reads.

Server to client (SockJS 0.3, "Framing accepted by the client"): ``o`` opens a session, ``h``
is a heart-beat, ``a[...]`` carries a JSON array of messages, ``c[code,"reason"]`` closes.
Client to server there is no framing: a request body is a JSON array of strings (a WebSocket
message may also be a single JSON string).

JSON is written the way browsers can read back verbatim: characters that some browsers or
proxies mangle (the SockJS protocol's ``escapable_by_server`` set, plus lone surrogates, which
cannot be encoded as UTF-8) are written as ``\\uXXXX`` escapes.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from ._errors import RemoteProtocolError

__all__ = [
    "BROKEN_JSON",
    "BUSY_FRAME",
    "HEARTBEAT_FRAME",
    "NOT_STRINGS",
    "OPEN_FRAME",
    "PAYLOAD_EXPECTED",
    "Frame",
    "FrameType",
    "close_frame",
    "decode_messages",
    "decode_websocket_messages",
    "encode_json",
    "message_frame",
]

# SockJS 0.3 "JSON Unicode Encoding": the server must escape these; lone surrogates are added
# because a Python str holding one cannot be written as UTF-8.
_ESCAPABLE: Final = re.compile(
    "[\x00-\x1f\u200c-\u200f\u2028-\u202f\u2060-\u206f\ufff0-\uffff\ud800-\udfff]"
)


def _escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def encode_json(value: object) -> str:
    """Compact JSON with the SockJS escapes applied (the result is plain, valid UTF-8)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return _ESCAPABLE.sub(_escape, text)


class FrameType(enum.Enum):
    OPEN = "o"
    HEARTBEAT = "h"
    MESSAGE = "a"
    CLOSE = "c"


@dataclass(frozen=True, slots=True)
class Frame:
    """One server frame: ``data`` is its text as the WebSocket transport sends it.

    A message frame keeps its ``messages`` and a close frame its ``close`` code and reason,
    for the raw WebSocket, which carries them without SockJS framing.
    """

    type: FrameType
    data: str
    messages: tuple[str, ...] = ()
    close: tuple[int, str] | None = None


OPEN_FRAME: Final = Frame(FrameType.OPEN, "o")
HEARTBEAT_FRAME: Final = Frame(FrameType.HEARTBEAT, "h")


def message_frame(messages: Iterable[str]) -> Frame:
    batch = tuple(messages)
    return Frame(FrameType.MESSAGE, "a" + encode_json(batch), messages=batch)


def close_frame(code: int, reason: str) -> Frame:
    return Frame(FrameType.CLOSE, "c" + encode_json([code, reason]), close=(code, reason))


# What a second receiving request on one session gets (SockJS 0.3, Protocol.test_simpleSession).
BUSY_FRAME: Final = close_frame(2010, "Another connection still open")

PAYLOAD_EXPECTED: Final = "Payload expected."
BROKEN_JSON: Final = "Broken JSON encoding."
NOT_STRINGS: Final = "Payload must be a JSON array of strings."


def _loads(text: str | bytes) -> object:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        # ValueError covers JSONDecodeError and bytes that are not UTF-8.
        raise RemoteProtocolError(BROKEN_JSON) from None


def decode_messages(body: str | bytes) -> list[str]:
    """The messages of an ``xhr_send``/``jsonp_send`` payload: a JSON array of strings.

    Raises `RemoteProtocolError` ("Payload expected." for an empty body, "Broken JSON
    encoding." for anything that is not JSON, or a JSON value that is not an array of strings).
    """
    if not body:
        raise RemoteProtocolError(PAYLOAD_EXPECTED)
    value = _loads(body)
    if not isinstance(value, list) or not all(isinstance(m, str) for m in value):
        raise RemoteProtocolError(NOT_STRINGS)
    return value


def decode_websocket_messages(text: str) -> list[str]:
    """The messages of one WebSocket message: an array of strings or one string; empty
    messages carry none (SockJS 0.3, Websocket.test_empty_frame)."""
    if not text:
        return []
    value = _loads(text)
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(m, str) for m in value):
        raise RemoteProtocolError(NOT_STRINGS)
    return value
