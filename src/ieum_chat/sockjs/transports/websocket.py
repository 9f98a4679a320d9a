"""The WebSocket transports: SockJS framing over a WebSocket (``/<server>/<session>/websocket``,
SockJS 0.3 "WebSocket protocols") and the raw ``/websocket`` endpoint, which carries the
application's messages with no framing, no open frame and no heart-beats.

A WebSocket session lives exactly as long as its socket: it is not listed by id (SockJS 0.3
lets two sockets share an id, Websocket.test_reuseSessionId) and it ends when the socket does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from .._channel import Channel, Endpoint, SessionInfo
from .._errors import Rejected, RemoteProtocolError
from .._framing import Frame, FrameType, decode_websocket_messages
from .._http import Request
from .._registry import SessionRegistry
from .._types import Receive, Scope, Send

__all__ = ["deny_websocket", "serve_websocket"]

log = logging.getLogger(__name__)


async def serve_websocket(
    scope: Scope,
    receive: Receive,
    send: Send,
    request: Request,
    *,
    session_id: str | None,
    endpoint: Endpoint,
    registry: SessionRegistry,
) -> None:
    """Serve one socket; ``session_id`` None means the raw ``/websocket`` endpoint."""
    raw = session_id is None
    first = await receive()
    if first["type"] != "websocket.connect":
        return
    info = SessionInfo("rawwebsocket" if raw else "websocket", session_id, request)
    try:
        handler = await endpoint(info)
        channel = registry.create(info, handler, listed=False)
    except Rejected as exc:
        await deny_websocket(
            scope, send, exc.status, exc.body, exc.content_type, headers=exc.headers
        )
        return
    except RemoteProtocolError as exc:
        await deny_websocket(scope, send, exc.status, exc.message.encode())
        return
    await send({"type": "websocket.accept"})
    wake = asyncio.Event()
    channel.attach(wake)
    reader = asyncio.create_task(_read(receive, channel, wake, raw=raw))
    try:
        await _write(channel, wake, reader, send, raw=raw)
    finally:
        reader.cancel()
        # The reader's own cancellation is its result; ours still propagates.
        await asyncio.gather(reader, return_exceptions=True)
        channel.end()


async def _write(
    channel: Channel,
    wake: asyncio.Event,
    reader: asyncio.Task[bool],
    send: Send,
    *,
    raw: bool,
) -> None:
    while True:
        wake.clear()
        if reader.done():
            if not reader.cancelled() and reader.exception() is None and not reader.result():
                # SockJS 0.3 (Websocket.test_broken_json): broken input ends the socket
                # abruptly, with no close frame.
                with contextlib.suppress(Exception):
                    await send({"type": "websocket.close", "code": 1002})
            return
        if channel.gone:
            return
        frame = channel.next_frame()
        if frame is None:
            await wake.wait()
            continue
        try:
            if await _send_frame(frame, send, raw=raw):
                return
        except Exception:
            # The peer is gone; the reader sees the disconnect.
            return


async def _send_frame(frame: Frame, send: Send, *, raw: bool) -> bool:
    """Write one frame; True when it was the last (a close frame)."""
    if frame.type is FrameType.CLOSE:
        code, reason = frame.close or (1000, "")
        if raw:
            await send({"type": "websocket.close", "code": code, "reason": reason[:120]})
        else:
            await send({"type": "websocket.send", "text": frame.data})
            await send({"type": "websocket.close", "code": 1000})
        return True
    if not raw:
        await send({"type": "websocket.send", "text": frame.data})
    elif frame.type is FrameType.MESSAGE:
        # One WebSocket message per application message, as a raw client expects.
        for message in frame.messages:
            await send({"type": "websocket.send", "text": message})
    return False


async def _read(receive: Receive, channel: Channel, wake: asyncio.Event, *, raw: bool) -> bool:
    """Deliver what the client sends until it closes (True) or breaks the framing (False)."""
    try:
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return True
            if message["type"] != "websocket.receive":
                continue
            text = _text(message)
            if text is None:
                return False
            if raw:
                await channel.deliver([text])
                continue
            try:
                messages = decode_websocket_messages(text)
            except RemoteProtocolError:
                log.info("sockjs websocket %s: broken JSON, closing", channel.info.session_id)
                return False
            if messages:
                await channel.deliver(messages)
    finally:
        wake.set()


def _text(message: dict[str, Any] | Any) -> str | None:
    text = message.get("text")
    if text is not None:
        return str(text)
    try:
        return bytes(message.get("bytes") or b"").decode("utf-8")
    except UnicodeDecodeError:
        return None


async def deny_websocket(
    scope: Scope,
    send: Send,
    status: int,
    body: bytes,
    content_type: str = "text/plain; charset=UTF-8",
    *,
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    """Refuse a handshake with an HTTP response where the server allows it (the ASGI
    "websocket.http.response" extension), else with a policy-violation close."""
    if "websocket.http.response" in (scope.get("extensions") or {}):
        await send(
            {
                "type": "websocket.http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", content_type.encode()),
                    (b"content-length", str(len(body)).encode()),
                    *headers,
                ],
            }
        )
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008})
