"""The application factory: its lifespan owns the database, the broker and the chat service."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.routing import WebSocketRoute

from ieum_chat import __version__
from ieum_chat.auth import TokenVerifier
from ieum_chat.broker import create_broker
from ieum_chat.chat.service import ChatService
from ieum_chat.config import Settings
from ieum_chat.gateway import Gateway, Hub, StompWebSocketApp
from ieum_chat.store import Database

__all__ = ["Runtime", "create_app"]

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """Filled by the lifespan; endpoints read it per connection."""

    gateway: Gateway | None = None

    def require_gateway(self) -> Gateway:
        if self.gateway is None:
            raise RuntimeError("the application is not started")
        return self.gateway


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
        db = await Database.connect(settings.database_url)
        broker = create_broker(settings.redis_url)
        await broker.start()
        chat = ChatService(db, broker, settings, TokenVerifier(settings))
        await chat.start()
        runtime.gateway = Gateway(settings=settings, chat=chat, hub=Hub(broker))
        log.info(
            "ieum-chat %s ready (database %s, broker %s)",
            __version__,
            db.dialect,
            "redis" if settings.redis_url else "memory",
        )
        try:
            yield
        finally:
            runtime.gateway = None
            await chat.close()
            await broker.close()
            await db.close()

    app = FastAPI(title="ieum-chat", version=__version__, lifespan=lifespan)
    app.state.runtime = runtime
    endpoint = StompWebSocketApp(runtime.require_gateway)
    app.router.routes.append(WebSocketRoute("/ws/chat", endpoint))
    app.router.routes.append(WebSocketRoute("/ws/chat/websocket", endpoint))

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return app
