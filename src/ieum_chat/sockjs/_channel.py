"""The I/O shell of one session, and the face the application sees of it.

A `Channel` owns one sans-IO `Session`, its timer, its bounded inbound queue and the task
running the application's handler. The application only uses `receive()`, `send()`,
`close()` (and ``info``); the transports use the rest: a receiving request `attach()`es with
an event to be woken by, takes `next_frame()`s, and `detach()`es; sending requests
`deliver()` the messages they carry.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Final

from ._errors import SessionClosed
from ._framing import OPEN_FRAME, Frame
from ._http import Request
from ._options import SockJSOptions
from ._session import Attach, Session, SessionState, TimerAction

__all__ = ["Accept", "Channel", "Check", "Endpoint", "Handler", "SessionInfo", "Spawn"]

log = logging.getLogger(__name__)

SLOW_CONSUMER: Final = (1013, "Slow consumer")
INTERNAL_ERROR: Final = (1011, "Internal error")
NORMAL_CLOSURE: Final = (1000, "Normal closure")


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """What an endpoint learns about a new session, from the request that creates it."""

    transport: str
    """``websocket``, ``xhr-streaming``, ``xhr-polling``, ``eventsource``, ``htmlfile``,
    ``jsonp-polling`` (sockjs-client's names), or ``rawwebsocket`` for ``/websocket``."""
    session_id: str | None
    """The client's session id; None for the raw WebSocket."""
    request: Request

    @property
    def query(self) -> dict[str, str]:
        return dict(self.request.query)

    @property
    def remote(self) -> str | None:
        client = self.request.client
        return f"{client[0]}:{client[1]}" if client else None


Handler = Callable[["Channel"], Awaitable[None]]
"""Serves one session; the session closes (1000) when it returns."""
Check = Callable[[Request], Awaitable[bool]]
"""Whether a later request of a session may use it (its credentials are those of the
session's user); a request that fails is answered 404, as if the session did not exist."""


@dataclass(frozen=True, slots=True)
class Accept:
    """An endpoint's yes to a new session that only some requests may use after the one that
    created it: the session's ids travel in URLs, so they are no credential on their own."""

    handler: Handler
    check: Check


Endpoint = Callable[[SessionInfo], Awaitable[Handler | Accept]]
"""Called before a session is created; returns its handler (any later request with the
session's ids may use it) or an `Accept`, or raises `Rejected`."""
Spawn = Callable[[Coroutine[Any, Any, None], str], "asyncio.Task[None]"]

# Log lines name a session by a number of this process, never by its id: the id addresses
# the session in URLs.
_serials = itertools.count(1)


class Channel:
    def __init__(
        self,
        info: SessionInfo,
        handler: Handler | Accept,
        options: SockJSOptions,
        *,
        spawn: Spawn,
        on_gone: Callable[[Channel], None] | None = None,
    ) -> None:
        self.info = info
        self.serial = next(_serials)
        """What log lines call the session by."""
        self._handler: Handler
        self._check: Check | None
        if isinstance(handler, Accept):
            self._handler, self._check = handler.handler, handler.check
        else:
            self._handler, self._check = handler, None
        self._options = options
        self._spawn = spawn
        self._on_gone = on_gone
        self._session = Session(
            now=time.monotonic(),
            heartbeat_interval=options.heartbeat_interval,
            disconnect_delay=options.disconnect_delay,
            max_pending=options.max_pending,
        )
        self._inbound: deque[str] = deque()
        self._readable = asyncio.Event()
        self._inbound_room = asyncio.Event()
        self._outbound_room = asyncio.Event()
        self._wake: asyncio.Event | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._gone = False
        self._schedule()

    # -- the application's side -----------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once either side closed the session (nothing more can be sent)."""
        return not self._session.is_open

    async def receive(self) -> str | None:
        """The next message from the client; None once the session is closed and every
        message received before was returned."""
        while True:
            if self._inbound:
                message = self._inbound.popleft()
                self._inbound_room.set()
                return message
            if not self._session.is_open:
                return None
            self._readable.clear()
            await self._readable.wait()

    def __aiter__(self) -> AsyncIterator[str]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[str]:
        while (message := await self.receive()) is not None:
            yield message

    async def send(self, message: str) -> None:
        """Queue one message for the client.

        The outgoing buffer is bounded: when it is full this waits for the client to take
        messages, and after ``send_timeout`` seconds closes the session as a slow consumer.
        Raises `SessionClosed` when the session is closing or closed.
        """
        deadline: float | None = None
        while True:
            if not self._session.is_open:
                raise SessionClosed("the session is closed")
            if self._session.send(message):
                self._poke()
                return
            now = time.monotonic()
            if deadline is None:
                deadline = now + self._options.send_timeout
            if now >= deadline:
                log.info("sockjs session #%d: slow consumer, closing", self.serial)
                self.close_now(*SLOW_CONSUMER)
                raise SessionClosed("slow consumer")
            self._outbound_room.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._outbound_room.wait(), deadline - now)

    async def close(self, code: int = NORMAL_CLOSURE[0], reason: str = NORMAL_CLOSURE[1]) -> None:
        """Close the session: messages already sent go out, then the close frame."""
        self.close_now(code, reason)

    def close_now(self, code: int, reason: str) -> None:
        if self._gone:
            return
        was_open = self._session.is_open
        self._session.close(code, reason)
        if was_open:
            self._closed_for_app()
        self._poke()

    # -- the transports' side -------------------------------------------------------------

    @property
    def state(self) -> SessionState:
        return self._session.state

    @property
    def gone(self) -> bool:
        """Expired or ended: the registry has forgotten it."""
        return self._gone

    async def admits(self, request: Request) -> bool:
        """Whether ``request``, which is not the one that created the session, may use it."""
        return self._check is None or await self._check(request)

    def attach(self, wake: asyncio.Event) -> Attach:
        """Make the calling request the receiver; ``wake`` is set whenever it has work."""
        result = self._session.attach(time.monotonic())
        if result is Attach.ATTACHED:
            self._wake = wake
            self._schedule()
        return result

    def detach(self, *, interrupted: bool = False) -> None:
        if self._gone:
            return
        was_open = self._session.is_open
        self._session.detach(time.monotonic(), interrupted=interrupted)
        self._wake = None
        if was_open and not self._session.is_open:
            self._closed_for_app()
        self._schedule()

    def next_frame(self) -> Frame | None:
        frame = self._session.next_frame(time.monotonic())
        if frame is None:
            return None
        self._outbound_room.set()
        self._schedule()
        if frame is OPEN_FRAME and self._session.state is SessionState.OPEN:
            self._task = self._spawn(self._run_handler(), f"sockjs-{self.serial}")
        return frame

    async def deliver(self, messages: list[str]) -> None:
        """Queue messages from the client, waiting while the inbound queue is full (which
        holds the sending request, or stops reading the WebSocket). Messages arriving after
        the session closed are dropped, as SockJS 0.3 servers do."""
        for message in messages:
            while len(self._inbound) >= self._options.max_inbound:
                if not self._session.is_open:
                    return
                self._inbound_room.clear()
                await self._inbound_room.wait()
            if not self._session.is_open:
                return
            self._inbound.append(message)
            self._readable.set()

    def end(self) -> None:
        """Forget the session now (its WebSocket closed, or the server shuts down)."""
        if self._gone:
            return
        was_open = self._session.is_open
        self._session.expire()
        if was_open:
            self._closed_for_app()
        self._finish()

    def cancel(self) -> None:
        self.end()
        if self._task is not None:
            self._task.cancel()

    # -- internals ------------------------------------------------------------------------

    async def _run_handler(self) -> None:
        code, reason = NORMAL_CLOSURE
        try:
            await self._handler(self)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("sockjs session #%d: handler failed", self.serial)
            code, reason = INTERNAL_ERROR
        finally:
            self._task = None
        self.close_now(code, reason)

    def _poke(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def _closed_for_app(self) -> None:
        """Wake whoever waits on the application's side: receive() returns None, send()
        raises, deliver() stops."""
        self._readable.set()
        self._inbound_room.set()
        self._outbound_room.set()

    def _schedule(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self._session.get_timer()
        if deadline is None or self._gone:
            return
        loop = asyncio.get_running_loop()
        self._timer = loop.call_at(
            loop.time() + max(0.0, deadline - time.monotonic()), self._on_timer
        )

    def _on_timer(self) -> None:
        self._timer = None
        action = self._session.handle_timer(time.monotonic())
        if action is TimerAction.EXPIRED:
            self._closed_for_app()
            self._finish()
            return
        if action is TimerAction.HEARTBEAT:
            self._poke()
        self._schedule()

    def _finish(self) -> None:
        self._gone = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._poke()
        if self._on_gone is not None:
            self._on_gone(self)
