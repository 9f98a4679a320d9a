"""The hand-off between uvicorn and the event-loop WebSocket core: the one place that knows
how uvicorn builds its protocols (pinned by ``tests/integration/test_wsserver.py``).

uvicorn takes :class:`GatewayProtocolFactory` as its ``http`` protocol class, so every
accepted connection starts as a :class:`~ieum_chat.gateway.wsserver.GatewayProtocol`; one
that is not one of our WebSocket handshakes is handed to uvicorn's own HTTP protocol, built
with uvicorn's own arguments. The factory's :meth:`~GatewayProtocolFactory.upgrade` is uvicorn's
``ws`` protocol class: a handshake that arrives on a connection the HTTP protocol already
serves (a proxy's kept-alive connection) comes back to the core.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from ieum_chat.gateway.connection import Gateway
from ieum_chat.gateway.wsasgi import App
from ieum_chat.gateway.wsserver import Flusher, GatewayProtocol

__all__ = ["GatewayProtocolFactory"]


class GatewayProtocolFactory:
    """What uvicorn calls for each connection, with its own protocol's arguments.

    ``fallback`` is the HTTP protocol class that serves everything but our WebSocket
    endpoints; it is built with the same arguments when a connection is handed to it."""

    def __init__(
        self, gateway: Callable[[], Gateway | None], fallback: Callable[..., asyncio.Protocol]
    ) -> None:
        self.gateway = gateway
        self.fallback = fallback
        self.flusher = Flusher()
        self.tasks: set[asyncio.Task[None]] = set()
        self._kwargs: dict[str, Any] = {}

    def __call__(self, **kwargs: Any) -> GatewayProtocol:
        # The same arguments for every connection of one server: kept here, not per connection.
        self._kwargs = kwargs
        return GatewayProtocol(self)

    def hand_off(self) -> asyncio.Protocol:
        return self.fallback(**self._kwargs)

    def upgrade(self, **kwargs: Any) -> GatewayProtocol:
        """What the HTTP server calls (as its WebSocket protocol class) for a handshake on a
        connection it already serves: the request comes back here, and stays."""
        return GatewayProtocol(self, from_http=True)

    def asgi(self) -> tuple[App, dict[str, Any]] | None:
        """The ASGI app the HTTP server serves and its lifespan state (uvicorn's ``config``
        and ``app_state`` arguments), for the WebSockets of other paths."""
        config = self._kwargs.get("config")
        app = getattr(config, "loaded_app", None)
        if app is None:
            return None
        return app, dict(self._kwargs.get("app_state") or {})

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
