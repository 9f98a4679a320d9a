"""The SockJS protocol test server: ``python -m ieum_chat.sockjs.testing --port P``.

It serves the services the official suite (github.com/sockjs/sockjs-protocol, run with
``SOCKJS_URL=http://127.0.0.1:P``) and this project's own tests expect:

    /echo                     echoes every message; streaming responses end after 4096 bytes
    /close                    closes every session at once with 3000 "Go away!"
    /disabled_websocket_echo  /echo without the websocket transport
    /cookie_needed_echo       /echo with the JSESSIONID cookie
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
from collections.abc import Sequence

from ._app import SockJSApp
from ._channel import Channel, Endpoint, Handler, SessionInfo
from ._errors import SessionClosed
from ._http import respond, route_path
from ._options import SockJSOptions
from ._types import Receive, Scope, Send

__all__ = [
    "TEST_RESPONSE_LIMIT",
    "TestServer",
    "close_handler",
    "create_test_server",
    "echo_handler",
    "main",
]

TEST_RESPONSE_LIMIT = 4096


async def echo_handler(channel: Channel) -> None:
    async for message in channel:
        try:
            await channel.send(message)
        except SessionClosed:
            return


async def close_handler(channel: Channel) -> None:
    await channel.close(3000, "Go away!")


def serving(handler: Handler) -> Endpoint:
    """An endpoint that accepts every session and serves it with ``handler``."""

    async def endpoint(info: SessionInfo) -> Handler:
        return handler

    return endpoint


class TestServer:
    """Several SockJS services side by side, each at its prefix (a pure ASGI app)."""

    __test__ = False  # not a pytest test class

    def __init__(self, services: Sequence[SockJSApp]) -> None:
        self.services = tuple(services)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    for service in self.services:
                        await service.aclose()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        path = route_path(scope)
        for service in self.services:
            if path == service.prefix or path.startswith(service.prefix + "/"):
                await service(scope, receive, send)
                return
        if scope["type"] == "http":
            await respond(send, 404, [], b"Not found.", content_type="text/plain; charset=UTF-8")
        else:
            await receive()
            await send({"type": "websocket.close", "code": 1008})


def create_test_server(options: SockJSOptions | None = None) -> TestServer:
    """The four services of the SockJS protocol suite; ``options`` default to the suite's
    (a 4096-byte streaming limit), other values for faster tests."""
    base = options or SockJSOptions(response_limit=TEST_RESPONSE_LIMIT)
    echo, close = serving(echo_handler), serving(close_handler)
    return TestServer(
        [
            SockJSApp(echo, prefix="/echo", options=base),
            SockJSApp(close, prefix="/close", options=base),
            SockJSApp(
                echo,
                prefix="/disabled_websocket_echo",
                options=dataclasses.replace(base, websocket=False),
            ),
            SockJSApp(
                echo,
                prefix="/cookie_needed_echo",
                options=dataclasses.replace(base, cookie_needed=True),
            ),
        ]
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m ieum_chat.sockjs.testing", description="SockJS protocol test server"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--heartbeat", type=float, default=25.0, help="seconds between h frames")
    parser.add_argument(
        "--disconnect-delay", type=float, default=5.0, help="seconds a detached session lives"
    )
    parser.add_argument("--response-limit", type=int, default=TEST_RESPONSE_LIMIT)
    parser.add_argument(
        "--http",
        choices=["h11", "httptools"],
        default="h11",
        # uvicorn's httptools protocol answers HTTP/1.0 streaming requests with chunked
        # encoding, which HTTP/1.0 does not have (SockJS 0.3, Http10.test_streaming).
        help="uvicorn's HTTP implementation (default h11: it frames HTTP/1.0 correctly)",
    )
    parser.add_argument(
        "--upgrade-any-method",
        action="store_true",
        help="let uvicorn treat a non-GET request with upgrade headers as a WebSocket "
        "handshake (uvicorn's default; it then answers 400 itself instead of the app's 405)",
    )
    args = parser.parse_args(argv)
    options = SockJSOptions(
        heartbeat_interval=args.heartbeat,
        disconnect_delay=args.disconnect_delay,
        response_limit=args.response_limit,
    )
    import uvicorn

    uvicorn.run(
        create_test_server(options),
        host=args.host,
        port=args.port,
        http=args.http if args.upgrade_any_method else _get_only_upgrades(args.http),
        ws="websockets",
        lifespan="on",
        log_level="warning",
    )


def _get_only_upgrades(http: str) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol, upgrading only GET requests to WebSocket.

    RFC 6455 §4.1: the opening handshake is a GET. uvicorn hands any request with upgrade
    headers to its WebSocket library, which refuses a POST with 400 before the app sees it;
    SockJS 0.3 (WebsocketHttpErrors.test_invalidMethod) wants the app's 405.
    """
    from uvicorn.protocols.http.h11_impl import H11Protocol
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    base: type[H11Protocol] | type[HttpToolsProtocol] = (
        H11Protocol if http == "h11" else HttpToolsProtocol
    )

    class GetOnlyUpgrades(base):  # type: ignore[valid-type,misc]
        def _should_upgrade(self) -> bool:
            return bool(self.scope["method"] == "GET" and super()._should_upgrade())

    return GetOnlyUpgrades


if __name__ == "__main__":
    main()
