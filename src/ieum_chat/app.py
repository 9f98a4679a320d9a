"""The application factory: its lifespan owns the database, the broker and the chat service."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI
from starlette.routing import Route, WebSocketRoute

from ieum_chat import __version__
from ieum_chat._build import cores
from ieum_chat.aio import finish_within
from ieum_chat.api import install_api
from ieum_chat.api.operations import install_operations
from ieum_chat.auth import TokenVerifier
from ieum_chat.broker import create_broker, create_presence
from ieum_chat.chat.service import ChatService
from ieum_chat.config import Settings
from ieum_chat.demo import install_demo
from ieum_chat.gateway import Gateway, Hub
from ieum_chat.gateway.connection import SERVER_NAME
from ieum_chat.gateway.sockjs import create_sockjs_app
from ieum_chat.observability import metrics
from ieum_chat.observability.http import RequestMetricsMiddleware
from ieum_chat.push import create_delivery
from ieum_chat.store import Database
from ieum_chat.uploads import create_upload_backend

__all__ = ["Runtime", "create_app"]

log = logging.getLogger(__name__)

# Seconds past the stop deadline that closing the backends may take.
CLEANUP_SLACK = 0.8


@dataclass
class Runtime:
    """Filled by the lifespan; endpoints read it per connection."""

    gateway: Gateway | None = None
    # Event-loop time by which a stop must be complete (set when SIGTERM arrives; the
    # lifespan's own shutdown sets it if nobody did).
    stop_deadline: float | None = None
    # The STOMP CONNECTED frame's ``server`` header (a worker process of several names itself)
    server_name: str = SERVER_NAME

    def require_gateway(self) -> Gateway:
        if self.gateway is None:
            raise RuntimeError("the application is not started")
        return self.gateway

    def stop_within(self, seconds: float) -> None:
        if self.stop_deadline is None:
            self.stop_deadline = asyncio.get_running_loop().time() + seconds

    def remaining(self) -> float:
        """Seconds left before the stop deadline."""
        if self.stop_deadline is None:
            return 0.0
        return max(0.0, self.stop_deadline - asyncio.get_running_loop().time())


def _bind_gauges(gateway: Gateway) -> None:
    """Gauges read at scrape time, so the hot path pays nothing for them."""
    metrics.WRITE_QUEUE.set_function(gateway.chat.pipeline.depth)
    metrics.SUBSCRIPTIONS.set_function(gateway.hub.listener_count)
    metrics.STOMP_SESSIONS.set_function(gateway.session_count)
    metrics.OUTBOUND_BACKLOG.set_function(gateway.backlog_bytes)
    broker = gateway.chat.broker
    metrics.BROKER_DROPPED.set_function(lambda: getattr(broker, "dropped", 0))


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    runtime = Runtime()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.uses_dev_secret:
            log.warning(
                "IEUM_JWT_SECRET is not set: using the built-in DEVELOPMENT secret. "
                "Anyone can forge tokens for this server. Set IEUM_JWT_SECRET in production."
            )
        db = await Database.connect(
            settings.database_url, replica_url=settings.database_replica_url
        )
        broker = create_broker(settings.redis_url, prefix=settings.redis_prefix)
        await broker.start()
        presence = create_presence(
            settings.redis_url, prefix=settings.redis_prefix, ttl=settings.presence_ttl
        )
        uploads = create_upload_backend(settings)
        chat = ChatService(
            db, broker, settings, TokenVerifier(settings), uploads=uploads, presence=presence
        )
        await presence.start()
        await chat.start()
        delivery = create_delivery(db, settings)
        await delivery.start()
        chat.pipeline.on_commit(delivery.notify)
        chat.lifecycle.on_end(delivery.ended)
        runtime.gateway = Gateway(
            settings=settings,
            chat=chat,
            hub=Hub(broker),
            watch=delivery.watch if delivery.enabled else None,
            server_name=runtime.server_name,
        )
        # After a broker outage every local subscription catches up from the database.
        broker.set_resync_handler(runtime.gateway.resync)
        # Deleted users and couples lose their sessions on every node within about a second.
        chat.set_revocation_handler(runtime.gateway.revoke)
        _bind_gauges(runtime.gateway)
        log.info(
            "ieum-chat %s ready (database %s, broker %s, protocol cores %s)",
            __version__,
            db.dialect,
            "redis" if settings.redis_url else "memory",
            cores(),
        )
        try:
            yield
        finally:
            # Every step ends by the stop deadline (IEUM_SHUTDOWN_GRACE after SIGTERM) plus
            # CLEANUP_SLACK: a step that hangs (a backend that stopped answering) is left
            # behind instead of holding up the stop.
            runtime.stop_within(settings.shutdown_grace)

            def budget() -> float:
                return runtime.remaining() + CLEANUP_SLACK

            await finish_within(sockjs.aclose(), budget(), "closing SockJS sessions")
            runtime.gateway = None
            broker.set_resync_handler(None)
            chat.set_revocation_handler(None)
            await finish_within(chat.close(budget()), budget(), "closing the chat service")
            await finish_within(delivery.close(), budget(), "closing the delivery engine")
            await finish_within(presence.close(), budget(), "closing presence")
            await finish_within(broker.close(), budget(), "closing the broker")
            await finish_within(db.close(), budget(), "closing the database")

    app = FastAPI(title="ieum-chat", version=__version__, lifespan=lifespan)
    app.state.runtime = runtime
    install_api(app, settings)
    # The WebSockets of /ws/chat and /ws/chat/websocket (raw STOMP) never reach the app: the
    # server's protocol (gateway.wsserver) answers them from the event loop. SockJS 0.3 under
    # the same prefix: every HTTP request, and the WebSocket of a SockJS session, which that
    # protocol runs through this app on the same WebSocket core.
    sockjs = create_sockjs_app(runtime.require_gateway, settings)
    app.router.routes.append(Route("/ws/chat", sockjs))
    app.router.routes.append(Route("/ws/chat/{path:path}", sockjs))
    app.router.routes.append(WebSocketRoute("/ws/chat/{server}/{session}/websocket", sockjs))

    install_operations(app, lambda: runtime.require_gateway().chat)
    install_demo(app)  # /demo: the chat page `ieum-chat demo` links to
    app.add_middleware(RequestMetricsMiddleware)
    return app
