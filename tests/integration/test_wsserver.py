"""The WebSocket endpoints as the event loop serves them, byte by byte over a raw socket:
the handshake, RFC 6455 control frames and errors, and the hand-off of every other request
to the HTTP server. (Chat over these sockets: test_stomp_chat and the e2e clients.)"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import struct
import time

import pytest

from tests.support.server import ServerProcess
from tests.support.ws_frames import TEXT, client_frame

Couple = dict[str, str]
KEY = base64.b64encode(os.urandom(16)).decode()


# These tests are about the socket, not the database: SQLite only.
pytestmark = pytest.mark.backends("sqlite")


def handshake(path: str = "/ws/chat", **headers: str) -> bytes:
    fields = {
        "Host": "localhost",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": KEY,
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Protocol": "v10.stomp, v11.stomp, v12.stomp",
    }
    fields.update({k.replace("_", "-"): v for k, v in headers.items()})
    lines = [f"GET {path} HTTP/1.1", *(f"{k}: {v}" for k, v in fields.items() if v)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def stomp(command: str, headers: dict[str, str], body: str = "") -> bytes:
    lines = [command, *(f"{k}:{v}" for k, v in headers.items())]
    return client_frame(TEXT, ("\n".join(lines) + "\n\n" + body + "\0").encode())


class Raw:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, server: ServerProcess) -> Raw:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def response(self) -> tuple[int, dict[str, str], bytes]:
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 5)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = b""
        if "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        return int(status_line.split()[1]), headers, body

    async def frame(self, timeout: float = 5) -> tuple[int, bytes]:
        head = await asyncio.wait_for(self.reader.readexactly(2), timeout)
        assert not head[1] & 0x80, "server frames are never masked"
        length = head[1] & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
        return head[0] & 0x0F, await self.reader.readexactly(length)

    async def closed(self, timeout: float = 5) -> bool:
        return await asyncio.wait_for(self.reader.read(), timeout) == b""

    async def upgraded(self, request: bytes) -> None:
        await self.send(request)
        status, headers, _ = await self.response()
        assert status == 101
        assert headers["sec-websocket-protocol"] == "v12.stomp"


def close_code(payload: bytes) -> int:
    return int.from_bytes(payload[:2], "big")


async def test_head_in_single_bytes_then_frames_in_the_same_write(
    server: ServerProcess, couple: Couple
) -> None:
    raw = await Raw.open(server)
    for byte in handshake(f"/ws/chat?token={couple['ta']}"):
        raw.writer.write(bytes([byte]))
        await raw.writer.drain()
    status, headers, _ = await raw.response()
    assert status == 101
    digest = hashlib.sha1((KEY + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
    assert headers["sec-websocket-accept"] == base64.b64encode(digest).decode()
    await raw.send(stomp("CONNECT", {"accept-version": "1.2", "heart-beat": "0,0"}))
    opcode, payload = await raw.frame()
    assert (opcode, payload.split(b"\n")[0]) == (0x1, b"CONNECTED")
    raw.writer.close()


async def test_connect_right_behind_the_handshake(server: ServerProcess, couple: Couple) -> None:
    raw = await Raw.open(server)
    connect = stomp("CONNECT", {"accept-version": "1.2", "heart-beat": "0,0"})
    await raw.send(handshake(f"/ws/chat/websocket?token={couple['ta']}") + connect)
    status, _, _ = await raw.response()
    assert status == 101
    opcode, payload = await raw.frame()
    assert opcode == 0x1
    assert payload.startswith(b"CONNECTED\n")
    raw.writer.close()


async def test_ping_is_answered_and_close_is_echoed(server: ServerProcess, couple: Couple) -> None:
    raw = await Raw.open(server)
    await raw.upgraded(handshake(f"/ws/chat?token={couple['ta']}"))
    await raw.send(client_frame(0x9, b"are you there"))
    assert await raw.frame() == (0xA, b"are you there")
    await raw.send(client_frame(0x8, struct.pack("!H", 1000) + b"bye"))
    opcode, payload = await raw.frame()
    assert opcode == 0x8
    assert close_code(payload) == 1000
    assert await raw.closed()


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (client_frame(TEXT, b"CONNECT\n\n\0", mask=None), 1002),  # §5.1: client frames are masked
        (client_frame(0x1, b"\xff\xfe\0"), 1007),  # text that is not UTF-8
        (client_frame(0x3, b""), 1002),  # reserved opcode
        (client_frame(0x9, b"x" * 126), 1002),  # control frame over 125 bytes
        (client_frame(0x0, b"orphan"), 1002),  # continuation with nothing to continue
        (client_frame(0x1, b"x" * (4 * 65536 + 1)), 1009),  # over the message limit
    ],
    ids=["unmasked", "bad-utf8", "reserved-opcode", "long-ping", "orphan-continuation", "huge"],
)
async def test_websocket_protocol_errors_close_with_their_code(
    server: ServerProcess, couple: Couple, data: bytes, code: int
) -> None:
    raw = await Raw.open(server)
    await raw.upgraded(handshake(f"/ws/chat?token={couple['ta']}"))
    raw.writer.write(data)
    opcode, payload = await raw.frame()
    assert opcode == 0x8
    assert close_code(payload) == code
    assert await raw.closed(timeout=2)  # §7.1.7: no waiting for our peer's Close


async def test_fragmented_stomp_frame_with_a_ping_between(
    server: ServerProcess, couple: Couple
) -> None:
    raw = await Raw.open(server)
    await raw.upgraded(handshake(f"/ws/chat?token={couple['ta']}"))
    whole = b"CONNECT\naccept-version:1.2\nheart-beat:0,0\n\n\0"
    await raw.send(client_frame(0x1, whole[:10], fin=False))
    await raw.send(client_frame(0x9, b"p"))
    await raw.send(client_frame(0x0, whole[10:20], fin=False) + client_frame(0x0, whole[20:]))
    assert await raw.frame() == (0xA, b"p")
    opcode, payload = await raw.frame()
    assert (opcode, payload.split(b"\n")[0]) == (0x1, b"CONNECTED")
    raw.writer.close()


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Sec-WebSocket-Version": "8"}, 426),
        ({"Sec-WebSocket-Key": ""}, 400),
        ({"Sec-WebSocket-Key": "c2hvcnQ="}, 400),  # not 16 bytes
        ({"Host": ""}, 400),
    ],
    ids=["version-8", "no-key", "short-key", "no-host"],
)
async def test_bad_handshakes_get_an_http_error(
    server: ServerProcess, headers: dict[str, str], status: int
) -> None:
    raw = await Raw.open(server)
    await raw.send(handshake(**headers))
    got, response_headers, body = await raw.response()
    assert got == status
    assert json.loads(body)["type"] == "ERROR"
    if status == 426:
        assert response_headers["sec-websocket-version"] == "13"
    assert await raw.closed()


async def test_refused_origin_and_token(server: ServerProcess, couple: Couple) -> None:
    raw = await Raw.open(server)
    await raw.send(handshake("/ws/chat?token=not-a-token"))
    status, _, body = await raw.response()
    assert (status, json.loads(body)["code"]) == (401, "AUTH_FAILED")


async def test_other_requests_are_served_by_the_http_server(server: ServerProcess) -> None:
    raw = await Raw.open(server)
    # Two requests on one keep-alive connection, the first split in the middle of the path.
    await raw.send(b"GET /ws/ch")
    await raw.send(b"atx HTTP/1.1\r\nHost: x\r\n\r\n")
    status, _, _ = await raw.response()
    assert status == 404
    await raw.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    status, _, body = await raw.response()
    assert status == 200
    assert json.loads(body)["status"] == "ok"
    raw.writer.close()

    raw = await Raw.open(server)  # the prefix without an upgrade: the SockJS greeting
    await raw.send(b"GET /ws/chat HTTP/1.1\r\nHost: x\r\n\r\n")
    status, _, body = await raw.response()
    assert (status, body) == (200, b"Welcome to SockJS!\n")


async def test_an_upgrade_on_a_kept_alive_connection_comes_back_to_the_core(
    server: ServerProcess, couple: Couple
) -> None:
    """nginx reuses its keep-alive connections to a node for WebSocket handshakes too: an
    upgrade that arrives after a plain request (so on the HTTP server's protocol) is served by
    the same WebSocket core, raw STOMP and SockJS alike."""
    for path, first in ((f"/ws/chat?token={couple['ta']}", None), (SOCKJS, b"o")):
        raw = await Raw.open(server)
        await raw.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await raw.response())[0] == 200
        await raw.send(handshake(path, Sec_WebSocket_Protocol="" if first else "v12.stomp"))
        status, headers, _ = await raw.response()
        assert status == 101, path
        if first is not None:
            assert await raw.frame() == (0x1, first)
        else:
            assert headers["sec-websocket-protocol"] == "v12.stomp"
            await raw.send(stomp("CONNECT", {"accept-version": "1.2", "heart-beat": "0,0"}))
            opcode, payload = await raw.frame()
            assert (opcode, payload.split(b"\n")[0]) == (0x1, b"CONNECTED")
        await raw.send(client_frame(0x9, b"ping"))
        assert await raw.frame() == (0xA, b"ping")
        raw.writer.close()


async def test_an_upgrade_elsewhere_on_a_kept_alive_connection_is_refused(
    server: ServerProcess,
) -> None:
    raw = await Raw.open(server)
    await raw.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await raw.response())[0] == 200
    await raw.send(handshake("/elsewhere"))
    status, _, body = await raw.response()
    assert status == 404
    assert json.loads(body)["code"] == "NOT_FOUND"


async def test_a_request_that_never_ends_is_cut_off(server: ServerProcess) -> None:
    raw = await Raw.open(server)
    started = time.monotonic()
    await raw.send(b"GET /ws/chat HTTP/1.1\r\nHost: x\r\n")
    assert await raw.closed(timeout=10)
    assert 1.5 < time.monotonic() - started < 8  # IEUM_CONNECT_TIMEOUT is 2 s here


async def test_no_compression_is_negotiated(server: ServerProcess, couple: Couple) -> None:
    raw = await Raw.open(server)
    await raw.send(
        handshake(
            f"/ws/chat?token={couple['ta']}",
            Sec_WebSocket_Extensions="permessage-deflate; client_max_window_bits",
        )
    )
    status, headers, _ = await raw.response()
    assert status == 101
    assert "sec-websocket-extensions" not in headers
    raw.writer.close()


# -- SockJS's websocket transport, on the same core through the ASGI app -------------------

SOCKJS = "/ws/chat/000/abcdefgh/websocket"


async def test_sockjs_websocket_on_the_same_core(server: ServerProcess, couple: Couple) -> None:
    raw = await Raw.open(server)
    await raw.send(handshake(SOCKJS, Sec_WebSocket_Protocol=""))
    status, headers, _ = await raw.response()
    assert status == 101
    assert "sec-websocket-protocol" not in headers
    assert await raw.frame() == (0x1, b"o")  # SockJS 0.3: the open frame
    await raw.send(client_frame(0x9, b"still there?"))
    assert await raw.frame() == (0xA, b"still there?")
    connect = f"CONNECT\naccept-version:1.2\nheart-beat:0,0\nAuthorization:Bearer {couple['ta']}"
    await raw.send(client_frame(TEXT, json.dumps([connect + "\n\n\0"]).encode()))
    opcode, payload = await raw.frame()
    assert opcode == 0x1
    assert json.loads(payload[1:])[0].startswith("CONNECTED\n")  # an "a" frame
    await raw.send(client_frame(0x8, struct.pack("!H", 1000)))
    opcode, payload = await raw.frame()
    assert (opcode, close_code(payload)) == (0x8, 1000)
    assert await raw.closed()


async def test_sockjs_websocket_refusals(server: ServerProcess) -> None:
    raw = await Raw.open(server)
    await raw.send(handshake(SOCKJS, Sec_WebSocket_Version="8"))
    status, headers, _ = await raw.response()
    assert (status, headers["sec-websocket-version"]) == (426, "13")
    raw = await Raw.open(server)
    await raw.send(handshake(f"{SOCKJS}?token=forged"))
    status, headers, body = await raw.response()
    assert (status, json.loads(body)["code"]) == (401, "AUTH_FAILED")
    assert headers["content-type"] == "application/json"


async def test_sockjs_websocket_protocol_error(server: ServerProcess) -> None:
    raw = await Raw.open(server)
    await raw.send(handshake(SOCKJS))
    assert (await raw.response())[0] == 101
    assert await raw.frame() == (0x1, b"o")
    raw.writer.write(client_frame(0x1, b"\xff\xfe"))  # not UTF-8
    opcode, payload = await raw.frame()
    assert (opcode, close_code(payload)) == (0x8, 1007)
    assert await raw.closed(timeout=2)


def test_the_http_server_contract_the_hand_off_relies_on() -> None:
    """GatewayProtocolFactory builds uvicorn's httptools protocol with the arguments uvicorn
    gave it, and finds the ASGI app and lifespan state among them: pinned here."""
    import inspect
    from typing import cast

    import uvicorn
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from ieum_chat.gateway.handoff import GatewayProtocolFactory

    parameters = list(inspect.signature(HttpToolsProtocol.__init__).parameters)
    assert parameters[1:4] == ["config", "server_state", "app_state"]
    startup = inspect.getsource(uvicorn.Server.startup)
    assert "config.http_protocol_class" in startup
    assert "app_state=self.lifespan.state" in startup
    # A handshake on a kept-alive connection: uvicorn builds its WebSocket protocol class
    # (our factory's upgrade) and gives it the transport and the request head.
    upgrade = inspect.getsource(HttpToolsProtocol.handle_websocket_upgrade)
    assert "self.ws_protocol_class(" in upgrade
    assert "protocol.data_received(" in upgrade

    async def app(scope: object, receive: object, send: object) -> None: ...

    factory = GatewayProtocolFactory(lambda: None, HttpToolsProtocol)
    config = uvicorn.Config(app, http=factory, ws="none")  # type: ignore[arg-type]
    config.load()
    assert config.http_protocol_class is cast("object", factory)
    factory(config=config, server_state=None, app_state={"k": 1})
    found = factory.asgi()
    assert found is not None
    assert found[0] is config.loaded_app
    assert found[1] == {"k": 1}
