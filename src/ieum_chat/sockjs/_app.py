"""The SockJS service as one pure ASGI app.

Mounted at a prefix (by a Starlette ``Mount``/``Route``, or with ``prefix=`` when it sees the
whole path) it answers SockJS 0.3's URLs below it:

    ""  "/"                              greeting
    /info                                capabilities and entropy (GET, OPTIONS)
    /iframe[-version].html               the iframe page (cached, ETag/304)
    /websocket                           raw WebSocket, no SockJS framing
    /<server>/<session>/<transport>      websocket, xhr, xhr_send, xhr_streaming,
                                         eventsource, htmlfile, jsonp, jsonp_send

and runs one handler (from the ``endpoint``) per session.
"""

from __future__ import annotations

import logging
import re
from typing import Final

from ._channel import Endpoint
from ._http import Request, preflight_headers, respond, route_path
from ._options import SockJSOptions
from ._registry import SessionRegistry
from ._static import (
    greeting,
    iframe,
    iframe_page,
    info,
    info_preflight,
    method_not_allowed,
    not_found,
)
from ._types import Receive, Scope, Send
from .transports import RECEIVERS, SENDERS
from .transports._serve import serve_receiver, serve_sender, text_error
from .transports.websocket import deny_websocket, serve_websocket

__all__ = ["SockJSApp"]

log = logging.getLogger(__name__)

# SockJS 0.3 "Session URLs": server and session ids are any non-empty text without dots or
# slashes.
_SESSION_URL: Final = re.compile(r"/([^/.]+)/([^/.]+)/([^/]+)")
_IFRAME_URL: Final = re.compile(r"/iframe[0-9a-z_.\-]*\.html")
_UPGRADE_ONLY: Final = 'Can "Upgrade" only to "WebSocket".'


class SockJSApp:
    """A SockJS 0.3 service; see the module docstring.

    ``endpoint(info)`` is awaited before each session is created; it returns the handler
    that serves the session's `Channel` (or an `Accept` of it with the check every later
    request of the session must pass, else 404), or raises `Rejected` to answer the request
    with an HTTP error (a 401 for a bad token, say). Call `aclose()` when the server shuts
    down (a lifespan does it when the app is served on its own).
    """

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        prefix: str = "",
        options: SockJSOptions | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.prefix = prefix.rstrip("/")
        self.options = options or SockJSOptions()
        self.registry = SessionRegistry(self.options)
        self._iframe = iframe_page(self.options.sockjs_url)

    async def aclose(self) -> None:
        await self.registry.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        path = self._relative(route_path(scope))
        if kind == "websocket":
            await self._websocket(scope, receive, send, path)
        elif kind == "http":
            await self._http(scope, receive, send, path)

    def _relative(self, path: str) -> str | None:
        if not self.prefix:
            return path
        if path == self.prefix or path.startswith(self.prefix + "/"):
            return path[len(self.prefix) :]
        return None

    async def _http(self, scope: Scope, receive: Receive, send: Send, path: str | None) -> None:
        if path is None:
            await not_found(send)
            return
        request = Request.from_scope(scope, path)
        method = request.method
        if path in ("", "/"):
            if method in ("GET", "HEAD"):
                await greeting(send)
            else:
                await method_not_allowed(send, "GET")
            return
        if _IFRAME_URL.fullmatch(path):
            if method in ("GET", "HEAD"):
                await iframe(request, send, self.options, self._iframe)
            else:
                await method_not_allowed(send, "GET")
            return
        if not self.options.origin_allowed(request.origin):
            await text_error(send, 403, "Origin not allowed.")
            return
        if path == "/info":
            if method == "GET":
                await info(request, send, self.options)
            elif method == "OPTIONS":
                await info_preflight(request, send, self.options)
            else:
                await method_not_allowed(send, "OPTIONS, GET")
            return
        if path == "/websocket":
            await self._websocket_over_http(request, send)
            return
        match = _SESSION_URL.fullmatch(path)
        if match is None:
            await not_found(send)
            return
        session_id, transport = match.group(2), match.group(3)
        if transport == "websocket":
            await self._websocket_over_http(request, send)
            return
        receiver = RECEIVERS.get(transport)
        if receiver is not None:
            if method == "OPTIONS" and receiver.preflight:
                await respond(send, 204, preflight_headers(request, "OPTIONS, POST", self.options))
            elif method != receiver.method:
                await method_not_allowed(send, receiver.method)
            else:
                await serve_receiver(
                    receiver,
                    session_id,
                    request,
                    receive,
                    send,
                    endpoint=self.endpoint,
                    registry=self.registry,
                    options=self.options,
                )
            return
        sender = SENDERS.get(transport)
        if sender is not None:
            if method == "OPTIONS" and sender.preflight:
                await respond(send, 204, preflight_headers(request, "OPTIONS, POST", self.options))
            elif method != sender.method:
                await method_not_allowed(send, sender.method)
            else:
                await serve_sender(
                    sender,
                    session_id,
                    request,
                    receive,
                    send,
                    registry=self.registry,
                    options=self.options,
                )
            return
        await not_found(send)

    async def _websocket_over_http(self, request: Request, send: Send) -> None:
        """A WebSocket URL reached without an upgrade: 405 for anything but GET, 400 for a
        GET (SockJS 0.3, WebsocketHttpErrors); 404 when WebSockets are off."""
        if not self.options.websocket:
            await not_found(send)
        elif request.method != "GET":
            await method_not_allowed(send, "GET")
        elif "upgrade" not in request.headers.get("connection", "").lower():
            message = '"Connection" must be "Upgrade".'
            await text_error(send, 400, message if "upgrade" in request.headers else _UPGRADE_ONLY)
        else:
            await text_error(send, 400, _UPGRADE_ONLY)

    async def _websocket(
        self, scope: Scope, receive: Receive, send: Send, path: str | None
    ) -> None:
        if path is not None and self.options.websocket:
            request = Request.from_scope(scope, path)
            if not self.options.origin_allowed(request.origin):
                await receive()
                await deny_websocket(scope, send, 403, b"Origin not allowed.")
                return
            if path == "/websocket":
                await self._serve_socket(scope, receive, send, request, None)
                return
            match = _SESSION_URL.fullmatch(path)
            if match is not None and match.group(3) == "websocket":
                await self._serve_socket(scope, receive, send, request, match.group(2))
                return
        await receive()
        await deny_websocket(scope, send, 404, b"Not found.")

    async def _serve_socket(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        request: Request,
        session_id: str | None,
    ) -> None:
        await serve_websocket(
            scope,
            receive,
            send,
            request,
            session_id=session_id,
            endpoint=self.endpoint,
            registry=self.registry,
        )

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return
