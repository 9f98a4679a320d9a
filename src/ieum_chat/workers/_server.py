"""The uvicorn server of one process: the gateway's WebSocket core in front of the ASGI app,
and a graceful drain of the STOMP sessions before uvicorn's own shutdown."""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
from collections.abc import Callable
from typing import cast

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ieum_chat.app import Runtime, create_app
from ieum_chat.config import Settings
from ieum_chat.gateway.handoff import GatewayProtocolFactory

__all__ = ["Server", "build_server"]

log = logging.getLogger("ieum_chat")


class Server(uvicorn.Server):
    """uvicorn, with a graceful drain of the STOMP sessions before its own shutdown.

    ``on_started`` runs once the listening sockets accept (a worker reports readiness there).
    """

    def __init__(
        self,
        config: uvicorn.Config,
        settings: Settings,
        runtime: Runtime,
        on_started: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(config)
        self.settings = settings
        self.runtime = runtime
        self.on_started = on_started
        # Background tasks of the process (a worker's watch of its supervisor): ended first.
        self.tasks: set[asyncio.Task[None]] = set()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if not self.started or self.should_exit:
            return
        # What exists now (modules, the app, pools, caches) lives as long as the process. Out
        # of the cyclic collector's sight, it is no longer walked by every full collection:
        # one took about 100 ms here, a stop of every session, under load.
        gc.collect()
        gc.freeze()
        if self.on_started is not None:
            self.on_started()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # The whole stop fits in IEUM_SHUTDOWN_GRACE: the sessions' in-flight SENDs get
        # most of it, the HTTP connections and the backends' clean-up what is left.
        for task in self.tasks:
            task.cancel()
        runtime = self.runtime
        grace = self.settings.shutdown_grace
        runtime.stop_within(grace)
        reserve = min(2.0, grace / 4)
        for server in self.servers:
            server.close()  # stop accepting first
        if runtime.gateway is not None:
            told = await runtime.gateway.drain(max(0.0, runtime.remaining() - reserve))
            log.info("shutdown: %d sessions told to reconnect", told)
        # uvicorn hands it to asyncio's timeout, which takes fractions of a second too.
        left = max(0.1, runtime.remaining() - reserve / 2)
        self.config.timeout_graceful_shutdown = left  # type: ignore[assignment]
        await super().shutdown(sockets)


def build_server(
    settings: Settings,
    *,
    server_name: str | None = None,
    on_started: Callable[[], None] | None = None,
) -> Server:
    """The server of one process; ``server_name`` replaces the STOMP CONNECTED frame's
    ``server`` header (a worker names itself there)."""
    app = create_app(settings)
    runtime: Runtime = app.state.runtime
    if server_name is not None:
        runtime.server_name = server_name
    # Every WebSocket is served straight from the event loop on one RFC 6455 core (the STOMP
    # endpoints directly, SockJS's through the ASGI app); every other request goes on to
    # uvicorn's httptools protocol and the ASGI app, and a handshake arriving on such a
    # kept-alive connection comes back to the core. uvicorn's own WebSocket is never used.
    protocol = GatewayProtocolFactory(lambda: runtime.gateway, HttpToolsProtocol)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http=cast("type[asyncio.Protocol]", protocol),
        # A handshake on a connection the HTTP protocol already serves comes back to the core.
        ws=cast("type[asyncio.Protocol]", protocol.upgrade),
        log_config=None,
        lifespan="on",
        timeout_graceful_shutdown=10,
    )
    return Server(config, settings, runtime, on_started)
