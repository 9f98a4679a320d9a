"""The opening handshake, server side: find the request head, parse it (RFC 9112), check it is a
WebSocket upgrade (RFC 6455 §4.2.1), and write the answer (§4.2.2) or a refusal."""

from __future__ import annotations

import binascii
import re
from base64 import b64encode
from collections.abc import Sequence
from dataclasses import dataclass
from hashlib import sha1
from http import HTTPStatus
from typing import Final

from ._errors import HandshakeError

__all__ = [
    "MAX_HEAD",
    "UpgradeRequest",
    "accept_key",
    "accept_response",
    "head_length",
    "http_response",
    "parse_request",
    "validate_upgrade",
]

MAX_HEAD: Final = 16384

_HEAD_END: Final = b"\r\n\r\n"
_CRLF: Final = b"\r\n"
# §1.3: the GUID the key is concatenated with before hashing.
_GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_KEY_LENGTH: Final = 24  # base64 of 16 bytes (§4.1)

# RFC 9110 §5.6.2 tchar.
_TOKEN: Final = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
# RFC 9112 §3: method SP request-target SP HTTP-version; the target is visible ASCII (RFC 3986).
_REQUEST_LINE: Final = re.compile(rb"(%s) ([\x21-\x7e]+) HTTP/([0-9])\.([0-9])" % _TOKEN)
# RFC 9112 §5.1: no whitespace between name and colon; RFC 9110 §5.5: no CTL but HTAB in a value.
_FIELD_LINE: Final = re.compile(rb"(%s):([^\x00-\x08\x0a-\x1f\x7f]*)" % _TOKEN)
_TOKEN_TEXT: Final = re.compile(_TOKEN.decode())
_WHITESPACE: Final = b" \t"


@dataclass(frozen=True, slots=True)
class UpgradeRequest:
    """A parsed request head; header names are lower-case, values latin-1 and stripped."""

    method: str
    target: str
    path: str
    query: str
    http_version: str
    headers: tuple[tuple[str, str], ...]

    def header(self, name: str) -> str | None:
        """The first value of the header `name` (lower-case), None when absent."""
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def header_values(self, name: str) -> list[str]:
        """Every value of the header `name` (lower-case), in order."""
        return [value for key, value in self.headers if key == name]

    def _tokens(self, name: str) -> list[str]:
        # RFC 9110 §5.3: repeated field lines are one comma-separated list.
        return [item.strip() for value in self.header_values(name) for item in value.split(",")]

    @property
    def subprotocols(self) -> list[str]:
        """The subprotocols the client offers, in its order of preference (§4.1)."""
        return [item for item in self._tokens("sec-websocket-protocol") if item]

    @property
    def is_upgrade(self) -> bool:
        """Whether Upgrade names websocket and Connection names upgrade (§4.2.1 items 3, 4)."""
        upgrade = {item.lower() for item in self._tokens("upgrade")}
        connection = {item.lower() for item in self._tokens("connection")}
        return "websocket" in upgrade and "upgrade" in connection


def head_length(buffer: bytes | bytearray, limit: int = MAX_HEAD) -> int | None:
    """Length of the request head including the terminating CRLFCRLF, or None while incomplete.

    Raises HandshakeError(431) when no end is found within `limit` bytes.
    """
    end = buffer.find(_HEAD_END, 0, limit)
    if end != -1:
        return end + len(_HEAD_END)
    if len(buffer) >= limit:
        raise HandshakeError(431, f"request head larger than {limit} bytes")
    return None


def _bad(message: str) -> HandshakeError:
    return HandshakeError(400, message)


def parse_request(head: bytes) -> UpgradeRequest:
    """Parse a request head (as delimited by head_length); HandshakeError(400) when malformed."""
    lines = head.removesuffix(_HEAD_END).split(_CRLF)
    request_line = _REQUEST_LINE.fullmatch(lines[0])
    if request_line is None:
        raise _bad("malformed request line")
    method, target, major, minor = (part.decode("ascii") for part in request_line.groups())
    path, _, query = target.partition("?")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (b" ", b"\t"):
            # RFC 9112 §5.2: a server rejects obs-fold (or rewrites it; we do not).
            raise _bad("obsolete line folding in the request head")
        field = _FIELD_LINE.fullmatch(line)
        if field is None:
            raise _bad("malformed header line")
        name, value = field.groups()
        headers.append((name.decode("ascii").lower(), value.strip(_WHITESPACE).decode("latin-1")))
    return UpgradeRequest(
        method=method,
        target=target,
        path=path,
        query=query,
        http_version=f"{major}.{minor}",
        headers=tuple(headers),
    )


def validate_upgrade(request: UpgradeRequest) -> str:
    """The checks of §4.2.1, in its order; returns the Sec-WebSocket-Key.

    405 if not GET; 400 if not HTTP/1.1 or later, Host missing or repeated, a body announced, not
    an upgrade, or the key missing, repeated or not base64 of 16 bytes; 426 when
    Sec-WebSocket-Version is not 13.
    """
    if request.method != "GET":
        raise HandshakeError(405, "a WebSocket handshake is a GET request", (("Allow", "GET"),))
    major, _, minor = request.http_version.partition(".")
    if (int(major), int(minor)) < (1, 1):
        raise _bad("a WebSocket handshake needs HTTP/1.1")
    # RFC 9112 §3.2: exactly one Host header.
    if len(request.header_values("host")) != 1:
        raise _bad("exactly one Host header is required")
    # The bytes after the head are frames: a request body would be read as one.
    if request.header("transfer-encoding") is not None or request.header_values(
        "content-length"
    ) not in ([], ["0"]):
        raise _bad("a WebSocket handshake has no body")
    if not request.is_upgrade:
        raise _bad("not a WebSocket upgrade request")
    keys = request.header_values("sec-websocket-key")
    if len(keys) != 1 or not _is_key(keys[0]):
        raise _bad("Sec-WebSocket-Key must be one base64-encoded 16-byte value")
    if request.header_values("sec-websocket-version") != ["13"]:
        # §4.2.2: tell the client which version we speak. RFC 9110 §15.5.22: a 426 names the
        # protocol to upgrade to.
        raise HandshakeError(
            426,
            "unsupported WebSocket version",
            (("Sec-WebSocket-Version", "13"), ("Upgrade", "websocket")),
        )
    return keys[0]


def _is_key(key: str) -> bool:
    if len(key) != _KEY_LENGTH or not key.isascii():
        return False
    try:
        return len(binascii.a2b_base64(key, strict_mode=True)) == 16
    except binascii.Error:
        return False


def accept_key(key: str) -> str:
    """Sec-WebSocket-Accept for `key` (§4.2.2 item 5.4)."""
    return b64encode(sha1(key.encode("ascii") + _GUID).digest()).decode("ascii")


def accept_response(key: str, subprotocol: str | None) -> bytes:
    """The 101 Switching Protocols response head (§4.2.2), Sec-WebSocket-Accept computed from key.

    `subprotocol` must be one the client offered (§4.2.2 item 5.5); it is not checked here.
    """
    protocol = ""
    if subprotocol is not None:
        if _TOKEN_TEXT.fullmatch(subprotocol) is None:
            raise ValueError("a subprotocol is an HTTP token (RFC 6455 §4.1)")
        protocol = f"Sec-WebSocket-Protocol: {subprotocol}\r\n"
    return (
        "HTTP/1.1 101 Switching Protocols\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept_key(key)}\r\n"
        f"{protocol}\r\n"
    ).encode("ascii")


def http_response(
    status: int,
    body: bytes,
    *,
    content_type: str = "application/json",
    headers: Sequence[tuple[str, str]] = (),
) -> bytes:
    """A whole HTTP/1.1 response with Content-Length and Connection: close (to refuse a handshake).

    Raises ValueError for an unknown status, a header that is not a token name and a CR/LF-free
    value, or one this function writes itself.
    """
    reason = HTTPStatus(status).phrase
    connection = "close"
    lines = [f"HTTP/1.1 {status} {reason}", f"Content-Type: {content_type}"]
    for name, value in headers:
        lowered = name.lower()
        if lowered in ("content-length", "connection", "content-type"):
            raise ValueError(f"http_response() writes {name} itself")
        if _TOKEN_TEXT.fullmatch(name) is None or "\r" in value or "\n" in value:
            raise ValueError("invalid response header")
        if lowered == "upgrade":
            # RFC 9110 §7.8: an Upgrade header is announced in Connection.
            connection = "Upgrade, close"
        lines.append(f"{name}: {value}")
    if "\r" in content_type or "\n" in content_type:
        raise ValueError("invalid content type")
    lines.append(f"Content-Length: {len(body)}")
    lines.append(f"Connection: {connection}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
