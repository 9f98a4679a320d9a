"""One STOMP session over one WebSocket: the CONNECT handshake, framing, heart-beats.

The framing is the project's sans-IO core (`FrameParser`, `serialize_frame`); this module adds
the socket and the clock. It knows nothing of chat: the client reads frames from it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from ieum_chat.stomp import HEARTBEAT, Frame, FrameParser, serialize_frame

from ._events import ErrorEvent, MalformedEvent, error_event

__all__ = ["HeartbeatTimeout", "LinkOptions", "ServerError", "StompLink", "error_from_frame"]

log = logging.getLogger(__name__)

# The server picks the highest it supports (README "Connecting").
SUBPROTOCOLS: Final = [Subprotocol("v10.stomp"), Subprotocol("v11.stomp"), Subprotocol("v12.stomp")]
_HEARTBEAT_EOL: Final = "\n"


class HeartbeatTimeout(Exception):
    """Nothing arrived for the grace multiple of the server's heart-beat: it is gone."""


class ServerError(Exception):
    """The server sent a STOMP ERROR frame (then closes the connection)."""

    def __init__(self, event: ErrorEvent) -> None:
        super().__init__(f"{event.code}: {event.detail or event.message}")
        self.event = event


@dataclass(frozen=True, slots=True)
class LinkOptions:
    heartbeat: tuple[float, float]
    """Seconds: (how often we can send, how often we want to receive); 0 turns one off."""
    heartbeat_grace: float
    """A silent server is declared dead after this many of its heart-beat intervals."""
    connect_timeout: float
    max_frame_size: int


def _interval_ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


def _server_heartbeat(value: str | None) -> tuple[int, int]:
    if value is None:
        return (0, 0)
    try:
        sx, sy = (int(part.strip()) for part in value.split(","))
    except ValueError:
        return (0, 0)
    return (max(sx, 0), max(sy, 0))


def error_from_frame(frame: Frame) -> ErrorEvent:
    """The ERROR frame's JSON body (AUTH_FAILED, TOKEN_EXPIRED), else its `message` header."""
    header = frame.get("message") or "ERROR"
    if frame.body:
        try:
            data = orjson.loads(frame.body)
            if isinstance(data, dict):
                return error_event(data, fatal=True)
        except (orjson.JSONDecodeError, MalformedEvent):
            pass
    return ErrorEvent(code=header, message=header, fatal=True)


class StompLink:
    """A connected STOMP session. Build it with `open()`; read with `next_frame()`."""

    def __init__(
        self, ws: ClientConnection, connected: Frame, parser: FrameParser, options: LinkOptions
    ) -> None:
        self.ws = ws
        self.version = connected.get("version") or "1.0"
        self.session = connected.get("session")
        self.user_name = connected.get("user-name")
        self._parser = parser
        self._parser.version = self.version
        self._grace = options.heartbeat_grace
        # STOMP 1.2 "Heart-beating": each direction runs at the slower of what the sender
        # offers and the receiver wants, and only when both want it.
        cx, cy = (_interval_ms(s) for s in options.heartbeat)
        sx, sy = _server_heartbeat(connected.get("heart-beat"))
        self.send_interval = max(cx, sy) / 1000 if cx and sy else 0.0
        self.receive_interval = max(sx, cy) / 1000 if sx and cy else 0.0
        loop = asyncio.get_running_loop()
        self._last_received = loop.time()
        self._last_sent = loop.time()
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, url: str, token: str, options: LinkOptions) -> StompLink:
        """WebSocket handshake, then CONNECT; raises ServerError when refused (AUTH_FAILED)."""
        ws = await connect(
            url,
            subprotocols=SUBPROTOCOLS,
            open_timeout=options.connect_timeout,
            ping_interval=None,  # STOMP heart-beats do this job
            close_timeout=1.0,
            max_size=options.max_frame_size,
        )
        try:
            parser = FrameParser(max_frame_size=options.max_frame_size)
            cx, cy = (_interval_ms(s) for s in options.heartbeat)
            host = urlsplit(url).hostname or "localhost"
            connect_frame = Frame(
                "CONNECT",
                (
                    ("accept-version", "1.0,1.1,1.2"),
                    ("host", host),
                    ("heart-beat", f"{cx},{cy}"),
                    ("Authorization", f"Bearer {token}"),
                ),
            )
            await ws.send(serialize_frame(connect_frame, "1.2").decode())
            async with asyncio.timeout(options.connect_timeout):
                frame = await _first_frame(ws, parser)
            if frame.command == "ERROR":
                raise ServerError(error_from_frame(frame))
            if frame.command != "CONNECTED":
                raise ServerError(
                    ErrorEvent("PROTOCOL", f"expected CONNECTED, got {frame.command}", fatal=True)
                )
            return cls(ws, frame, parser, options)
        except BaseException:
            ws.transport.abort()
            raise

    async def write(self, frame: Frame) -> None:
        data = serialize_frame(frame, self.version)
        async with self._lock:
            # Text frames: every body this SDK writes is UTF-8 JSON.
            await self.ws.send(data.decode())
            self._last_sent = asyncio.get_running_loop().time()

    async def next_frame(self) -> Frame:
        """The next frame (heart-beats are consumed); raises HeartbeatTimeout when the server
        falls silent, websockets' ConnectionClosed when the socket closes."""
        loop = asyncio.get_running_loop()
        while True:
            item = self._parser.next_frame()
            if isinstance(item, Frame):
                return item
            if item is HEARTBEAT:
                continue
            if self.receive_interval:
                deadline = self._last_received + self.receive_interval * self._grace
                if deadline <= loop.time():
                    raise HeartbeatTimeout(
                        f"no data from the server for {self.receive_interval * self._grace:.1f} s"
                    )
                try:
                    # Cancelling recv() loses nothing (websockets' asyncio implementation).
                    async with asyncio.timeout_at(deadline):
                        data = await self.ws.recv()
                except TimeoutError:
                    continue  # re-checked above
            else:
                data = await self.ws.recv()
            self._last_received = loop.time()
            self._parser.receive_data(data.encode() if isinstance(data, str) else data)

    async def heartbeat_loop(self) -> None:
        """Send an EOL whenever nothing else was written for the negotiated interval."""
        if not self.send_interval:
            return
        loop = asyncio.get_running_loop()
        while True:
            wait = self._last_sent + self.send_interval - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            async with self._lock:
                await self.ws.send(_HEARTBEAT_EOL)
                self._last_sent = loop.time()

    def abort(self) -> None:
        """Drop the socket at once, as a network failure would."""
        self.ws.transport.abort()

    async def close(self) -> None:
        """Close the WebSocket (bounded by its close_timeout)."""
        await self.ws.close()


async def _first_frame(ws: ClientConnection, parser: FrameParser) -> Frame:
    while True:
        item = parser.next_frame()
        if isinstance(item, Frame):
            return item
        if item is None:
            data = await ws.recv()
            parser.receive_data(data.encode() if isinstance(data, str) else data)
