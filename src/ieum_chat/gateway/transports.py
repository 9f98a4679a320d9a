"""Where a :class:`~ieum_chat.gateway.connection.StompConnection` writes.

The event-loop WebSocket endpoint (``wsserver``) is a :class:`Transport` itself; transports
that send by awaiting (an ASGI WebSocket, a SockJS channel) go through :class:`QueuedTransport`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Protocol

__all__ = ["QueuedTransport", "Transport"]


class Transport(Protocol):
    """Where a connection writes. No method waits."""

    def write(self, frame: bytes) -> bool:
        """Send one whole STOMP frame (or a heart-beat EOL). False when the peer has fallen
        too far behind: the connection then closes it as a slow consumer."""

    def close(self) -> None:
        """Send what is queued, then close (the connection calls it once)."""

    def discard(self) -> None:
        """Drop the frames not yet handed to the operating system (a slow consumer's)."""

    def backlog(self) -> int:
        """Bytes written and not yet taken by the peer."""

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


class QueuedTransport:
    """A :class:`Transport` over an async ``send`` (an ASGI WebSocket, a SockJS channel): a
    queue of frames, bounded in bytes, drained by one writer task (:meth:`run`)."""

    __slots__ = ("_close", "_closing", "_frames", "_limit", "_queued", "_ready", "_send")

    def __init__(
        self,
        send: Callable[[bytes], Awaitable[None]],
        close: Callable[[], Awaitable[None]],
        *,
        limit: int,
    ) -> None:
        self._send = send
        self._close = close
        self._limit = limit
        self._frames: deque[bytes] = deque()
        self._queued = 0
        self._ready = asyncio.Event()
        self._closing = False

    def write(self, frame: bytes) -> bool:
        if self._closing:
            return True
        if self._queued + len(frame) > self._limit and self._frames:
            return False
        self._frames.append(frame)
        self._queued += len(frame)
        self._ready.set()
        return True

    def close(self) -> None:
        self._closing = True
        self._ready.set()

    def discard(self) -> None:
        self._frames.clear()
        self._queued = 0

    def backlog(self) -> int:
        return self._queued

    def pause_reading(self) -> None:
        """Nothing to do: the read loop awaits the connection before reading on."""

    def resume_reading(self) -> None:
        """See :meth:`pause_reading`."""

    async def run(self) -> None:
        """Write until closed, or until the peer is gone."""
        while True:
            await self._ready.wait()
            self._ready.clear()
            while self._frames:
                frame = self._frames.popleft()
                self._queued -= len(frame)
                try:
                    await self._send(frame)
                except Exception:
                    return  # the peer is gone; the reader sees it and tears down
            if self._closing:
                with contextlib.suppress(Exception):
                    await self._close()
                return
