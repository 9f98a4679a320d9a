"""CONNECT negotiation: the protocol version and the heart-beat intervals (STOMP 1.2 "Connecting",
"Protocol Negotiation", "Heart-beating")."""

from __future__ import annotations

import functools
from typing import Final

from ._errors import RemoteProtocolError
from ._frame import VERSIONS

__all__ = ["negotiate_heartbeat", "negotiate_version", "parse_heartbeat"]

# More digits than any sane interval in milliseconds; also keeps int() away from huge strings.
_MAX_INTERVAL_DIGITS: Final = 9


def negotiate_version(
    accept_version: str | None, supported: tuple[str, ...], preferred: str | None
) -> str:
    """The highest version both sides speak.

    No accept-version header means a 1.0 client, unless the WebSocket subprotocol already named
    a version (`preferred`): a client that picked v12.stomp and omits the header speaks 1.2.
    """
    if accept_version is None:
        offered = {preferred if preferred is not None else "1.0"}
    else:
        offered = {token.strip() for token in accept_version.split(",")}
    for version in reversed(VERSIONS):
        if version in offered and version in supported:
            return version
    raise RemoteProtocolError(
        f"no common STOMP version; this server supports {','.join(supported)}"
    )


def parse_heartbeat(value: str | None) -> tuple[int, int]:
    """The `heart-beat: cx,cy` header of a CONNECT frame; absent means (0, 0)."""
    if value is None:
        return (0, 0)
    parts = value.split(",")
    if len(parts) != 2:
        raise RemoteProtocolError("heart-beat header must be two integers 'cx,cy'")
    result = []
    for part in parts:
        digits = part.strip()
        if not (digits.isascii() and digits.isdigit()) or len(digits) > _MAX_INTERVAL_DIGITS:
            raise RemoteProtocolError("heart-beat header must be two non-negative integers")
        result.append(int(digits))
    return (result[0], result[1])


# Remembered for the pairs seen lately, so that the sessions that negotiate alike (most of
# them: clients of one app send one heart-beat) share one tuple, which each keeps while open.
@functools.lru_cache(maxsize=64)
def negotiate_heartbeat(client: tuple[int, int], server: tuple[int, int]) -> tuple[int, int]:
    """(server-to-client ms, client-to-server ms), 0 meaning none.

    The client says it can send every cx ms and wants one every cy ms; the server likewise with
    (sx, sy). Each direction runs at the slower of what the sender can do and the receiver
    wants, and only when both sides want it.
    """
    cx, cy = client
    sx, sy = server
    outgoing = max(sx, cy) if sx and cy else 0
    incoming = max(cx, sy) if cx and sy else 0
    return (outgoing, incoming)
