"""STOMP over SockJS: the bridge between `ieum_chat.sockjs` and `StompConnection`.

Each SockJS session carries one STOMP session, one STOMP frame per SockJS message (a STOMP
heart-beat is a message holding one newline), exactly as Spring's ``withSockJS()`` endpoint
does, so sockjs-client + @stomp/stompjs work unchanged. The token may come with the request
that creates the session (the ``token`` query parameter, which sockjs-client keeps on
``/info`` and on every transport URL; or an ``Authorization: Bearer`` header), where a bad
one is refused as every handshake is (``gateway.admission``); without one, the STOMP CONNECT
must carry it, as on the raw WebSocket endpoint. A session serves only its user's requests
(see `_StompSession`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable

from ieum_chat.auth import Principal
from ieum_chat.config import Settings
from ieum_chat.errors import AuthError
from ieum_chat.gateway.admission import Refusal, admit, handshake_token
from ieum_chat.gateway.connection import Gateway, StompConnection
from ieum_chat.gateway.transports import QueuedTransport
from ieum_chat.observability import metrics
from ieum_chat.sockjs import (
    Accept,
    Channel,
    Rejected,
    Request,
    SessionInfo,
    SockJSApp,
    SockJSOptions,
)
from ieum_chat.store.records import User

__all__ = ["SOCKJS_PREFIX", "StompSockJSEndpoint", "create_sockjs_app"]

log = logging.getLogger(__name__)

SOCKJS_PREFIX = "/ws/chat"
# One SockJS message's text as bytes, None once the session is gone.
_Receive = Callable[[], Awaitable[bytes | None]]
_JSON = "application/json"


class StompSockJSEndpoint:
    """Decides on each new SockJS session (authentication) and serves it with STOMP."""

    def __init__(self, gateway: Callable[[], Gateway]) -> None:
        self._gateway = gateway

    async def __call__(self, info: SessionInfo) -> Accept:
        gateway = self._gateway()
        request = info.request
        try:
            admission = await admit(gateway, request.headers, request.query)
        except Refusal as refusal:
            raise Rejected(
                refusal.status,
                refusal.body,
                content_type=_JSON,
                headers=[(k.lower().encode(), v.encode()) for k, v in refusal.headers],
            ) from None
        session = _StompSession(gateway, info, admission.principal, admission.user)
        return Accept(session.serve, session.admits)


class _StompSession:
    """One SockJS session carrying one STOMP session, bound to one user.

    The session's ids travel in every URL of it (and are easy to learn: a proxy log, the
    browser's history), so they do not make a request the user's: every request after the
    first must carry that user's token, or, for a session created without a token, no token
    at all. The user is the one of the creating request's token, else the one of the STOMP
    CONNECT. Anything else is answered 404 by the SockJS app, as Spring does."""

    __slots__ = ("_connection", "_gateway", "_info", "_principal", "_user")

    def __init__(
        self, gateway: Gateway, info: SessionInfo, principal: Principal | None, user: User | None
    ) -> None:
        self._gateway = gateway
        self._info = info
        self._principal = principal
        self._user = user
        self._connection: StompConnection | None = None

    def _owner(self) -> uuid.UUID | None:
        if self._user is not None:
            return self._user.id
        connection = self._connection
        return connection.user.id if connection is not None and connection.user else None

    async def admits(self, request: Request) -> bool:
        token = handshake_token(request.query, request.headers)
        if token is None:
            # sockjs-client repeats the URL it was given: token-less if the first was.
            allowed = self._user is None
        else:
            try:
                principal = self._gateway.chat.verifier.verify(token, now=time.time())
            except AuthError:
                allowed = False
            else:
                owner = self._owner()
                allowed = owner is None or principal.user_id == owner
        if not allowed:
            log.info("sockjs request refused: not the credentials of the session's user")
            metrics.AUTH_FAILURES.labels("sockjs-session").inc()
        return allowed

    async def serve(self, channel: Channel) -> None:
        gateway = self._gateway

        async def send_frame(frame: bytes) -> None:
            # One STOMP frame per SockJS message. Raises SessionClosed once the session is
            # gone; the connection then tears down.
            await channel.send(frame.decode("utf-8", errors="replace"))

        async def close() -> None:
            await channel.close(1000, "")

        transport = QueuedTransport(send_frame, close, limit=gateway.settings.outbound_buffer_bytes)
        self._connection = connection = StompConnection(
            gateway,
            transport,
            transport_name=f"sockjs-{self._info.transport}",
            principal=self._principal,
            user=self._user,
        )

        async def receive() -> bytes | None:
            message = await channel.receive()
            return None if message is None else message.encode("utf-8", errors="replace")

        await _serve(connection, transport, receive)


async def _serve(
    connection: StompConnection,
    transport: QueuedTransport,
    receive: _Receive,
) -> None:
    """Serve ``connection`` over a transport that reads by awaiting ``receive`` (``None``: the
    peer is gone) and writes through ``transport``'s writer task; then clean up.

    This lives here, beside its one caller, and not on the connection: a compiled build
    compiles the connection's module, and a compiled coroutine must not await in a
    ``finally`` block (see ``ieum_chat._build``)."""
    connection.open()
    name = connection.session_id
    writer = asyncio.create_task(transport.run(), name=f"stomp-write-{name}")
    reader = asyncio.create_task(_read(connection, receive), name=f"stomp-read-{name}")
    try:
        done, _ = await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
        if reader in done and connection.closing and not writer.done():
            # Let the writer flush the last frames (an ERROR, a RECEIPT) and close.
            await asyncio.wait({writer}, timeout=5.0)
    finally:
        for task in (reader, writer):
            task.cancel()
        for result in await asyncio.gather(reader, writer, return_exceptions=True):
            if isinstance(result, Exception):
                connection.log.error("session %s failed", name, exc_info=result)
        await connection.teardown()


async def _read(connection: StompConnection, receive: _Receive) -> None:
    while not connection.closing:
        data = await receive()
        if data is None:
            return
        connection.feed(data)
        await connection.settled()


def create_sockjs_app(
    gateway: Callable[[], Gateway], settings: Settings, *, prefix: str = SOCKJS_PREFIX
) -> SockJSApp:
    """The SockJS service at ``prefix``; it sees whole paths (mount it with Starlette
    ``Route``/``WebSocketRoute``s, not a ``Mount``)."""
    options = SockJSOptions(
        heartbeat_interval=settings.sockjs_heartbeat,
        disconnect_delay=settings.sockjs_disconnect_delay,
        response_limit=settings.sockjs_response_limit,
        cookie_needed=settings.sockjs_cookie_needed,
        sockjs_url=settings.sockjs_client_url,
        allowed_origins=tuple(settings.allowed_origins),
    )
    return SockJSApp(StompSockJSEndpoint(gateway), prefix=prefix, options=options)
