"""STOMP over SockJS: the bridge between `ieum_chat.sockjs` and `StompConnection`.

Each SockJS session carries one STOMP session, one STOMP frame per SockJS message (a STOMP
heart-beat is a message holding one newline), exactly as Spring's ``withSockJS()`` endpoint
does, so sockjs-client + @stomp/stompjs work unchanged. The token may come with the request
that creates the session (the ``token`` query parameter, which sockjs-client keeps on
``/info`` and on every transport URL; or an ``Authorization: Bearer`` header), where a bad
one is refused as every handshake is (``gateway.admission``); without one, the STOMP CONNECT
must carry it, as on the raw WebSocket endpoint.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ieum_chat.config import Settings
from ieum_chat.gateway.admission import Refusal, admit
from ieum_chat.gateway.connection import Gateway, StompConnection
from ieum_chat.gateway.transports import QueuedTransport
from ieum_chat.sockjs import Channel, Handler, Rejected, SessionInfo, SockJSApp, SockJSOptions

__all__ = ["SOCKJS_PREFIX", "StompSockJSEndpoint", "create_sockjs_app"]

log = logging.getLogger(__name__)

SOCKJS_PREFIX = "/ws/chat"
_JSON = "application/json"


class StompSockJSEndpoint:
    """Decides on each new SockJS session (authentication) and serves it with STOMP."""

    def __init__(self, gateway: Callable[[], Gateway]) -> None:
        self._gateway = gateway

    async def __call__(self, info: SessionInfo) -> Handler:
        gateway = self._gateway()
        request = info.request
        try:
            admission = await admit(gateway, request.headers, request.query)
        except Refusal as refusal:
            raise Rejected(refusal.status, refusal.body, content_type=_JSON) from None
        principal, user = admission.principal, admission.user

        async def serve(channel: Channel) -> None:
            async def send_frame(frame: bytes) -> None:
                # One STOMP frame per SockJS message. Raises SessionClosed once the
                # session is gone; the connection then tears down.
                await channel.send(frame.decode("utf-8", errors="replace"))

            async def close() -> None:
                await channel.close(1000, "")

            transport = QueuedTransport(
                send_frame, close, limit=gateway.settings.outbound_buffer_bytes
            )
            connection = StompConnection(
                gateway,
                transport,
                transport_name=f"sockjs-{info.transport}",
                principal=principal,
                user=user,
                remote=info.remote,
            )

            async def receive() -> bytes | None:
                message = await channel.receive()
                return None if message is None else message.encode("utf-8", errors="replace")

            await connection.run(transport, receive)

        return serve


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
