"""SockJS 0.3 over real sockets: ``python -m ieum_chat.sockjs.testing`` under uvicorn (with
h11, and with httptools as ``ieum-chat serve`` runs), driven by httpx and websockets.

These are the streaming and timing behaviours the in-process tests cannot show: each frame
in its own chunk, the response limit, heart-beats, the disconnect delay, aborted requests,
and the WebSocket transports. The official suite (sockjs-protocol.py) checks the rest.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.support.server import free_port

HEARTBEAT = 0.4
DISCONNECT_DELAY = 0.6
LIMIT = 4096


class TestServer:
    __test__ = False

    def __init__(self, http: str) -> None:
        self.http = http
        self.port = free_port()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ieum_chat.sockjs.testing",
                "--port",
                str(self.port),
                "--heartbeat",
                str(HEARTBEAT),
                "--disconnect-delay",
                str(DISCONNECT_DELAY),
                "--http",
                http,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.proc.stderr and self.proc.stderr.read()
            try:
                if httpx.get(f"{self.url}/echo", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise AssertionError("the SockJS test server did not start")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module", params=["h11", "httptools"])
def sockjs_server(request: pytest.FixtureRequest) -> Iterator[TestServer]:
    server = TestServer(request.param)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def http(sockjs_server: TestServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sockjs_server.url, timeout=5) as client:
        yield client


def session_url(service: str = "echo") -> str:
    return f"/{service}/000/{uuid.uuid4().hex}"


class Stream:
    """The body of a streaming response, split at ``delimiter`` as it arrives."""

    def __init__(self, response: httpx.Response, delimiter: bytes) -> None:
        self.response = response
        self.delimiter = delimiter
        self.chunks = response.aiter_raw()
        self.buffer = b""

    async def read(self, timeout: float = 3.0) -> bytes:
        async with asyncio.timeout(timeout):
            while self.delimiter not in self.buffer:
                self.buffer += await anext(self.chunks)
        item, _, self.buffer = self.buffer.partition(self.delimiter)
        return item + self.delimiter

    async def ended(self, timeout: float = 3.0) -> bool:
        async with asyncio.timeout(timeout):
            async for chunk in self.chunks:
                self.buffer += chunk
        return True


@asynccontextmanager
async def stream(
    http: httpx.AsyncClient, method: str, url: str, delimiter: bytes = b"\n"
) -> AsyncIterator[Stream]:
    async with http.stream(method, url) as response:
        assert response.status_code == 200
        yield Stream(response, delimiter)


async def send(http: httpx.AsyncClient, url: str, *messages: str) -> None:
    r = await http.post(f"{url}/xhr_send", content=json.dumps(list(messages)).encode())
    assert r.status_code == 204, r.text


# -- xhr_streaming ----------------------------------------------------------------------


async def test_xhr_streaming_frames_and_response_limit(http: httpx.AsyncClient) -> None:
    url = session_url()
    async with stream(http, "POST", f"{url}/xhr_streaming") as s:
        assert s.response.headers["content-type"] == "application/javascript; charset=UTF-8"
        assert "content-length" not in s.response.headers
        assert await s.read() == b"h" * 2048 + b"\n"
        assert await s.read() == b"o\n"
        message = "x" * 128
        sent = 2
        while sent < LIMIT:
            await send(http, url, message)
            frame = await s.read()
            assert frame == f'a["{message}"]\n'.encode()
            sent += len(frame)
        # Past the limit the response ends; the session lives on.
        assert await s.ended()
    await send(http, url, "after")
    async with stream(http, "POST", f"{url}/xhr_streaming") as s:
        await s.read()  # prelude
        assert await s.read() == b'a["after"]\n'


async def test_xhr_streaming_heartbeat(http: httpx.AsyncClient) -> None:
    async with stream(http, "POST", f"{session_url()}/xhr_streaming") as s:
        await s.read()
        assert await s.read() == b"o\n"
        started = time.monotonic()
        assert await s.read(timeout=HEARTBEAT * 5) == b"h\n"
        assert time.monotonic() - started >= HEARTBEAT * 0.8


async def test_second_receiver_is_refused_and_first_keeps_the_session(
    http: httpx.AsyncClient,
) -> None:
    url = session_url()
    async with stream(http, "POST", f"{url}/xhr_streaming") as first:
        await first.read()
        assert await first.read() == b"o\n"
        async with stream(http, "POST", f"{url}/xhr_streaming") as second:
            await second.read()  # prelude
            assert await second.read() == b'c[2010,"Another connection still open"]\n'
            assert await second.ended()
        r = await http.post(f"{url}/xhr")
        assert r.text == 'c[2010,"Another connection still open"]\n'
        await send(http, url, "still mine")
        assert await first.read() == b'a["still mine"]\n'


async def test_aborted_stream_closes_the_session(http: httpx.AsyncClient) -> None:
    url = session_url()
    async with stream(http, "POST", f"{url}/xhr_streaming") as s:
        await s.read()
        assert await s.read() == b"o\n"
    # The client went away mid-response: the session is closed (SockJS 0.3 allows either a
    # fresh session or this close frame).
    await asyncio.sleep(0.05)
    r = await http.post(f"{url}/xhr")
    assert r.text == 'c[1002,"Connection interrupted"]\n'
    assert (await http.post(f"{url}/xhr_send", content=b'["x"]')).status_code == 204


async def test_close_service_streams_open_then_close(http: httpx.AsyncClient) -> None:
    url = session_url("close")
    async with stream(http, "POST", f"{url}/xhr_streaming") as s:
        await s.read()
        assert await s.read() == b"o\n"
        assert await s.read() == b'c[3000,"Go away!"]\n'
        assert await s.ended()


# -- polling and expiry -------------------------------------------------------------------


async def test_polling_heartbeat_and_disconnect_delay(http: httpx.AsyncClient) -> None:
    url = session_url()
    assert (await http.post(f"{url}/xhr")).text == "o\n"
    # A poll with nothing to say is answered with a heart-beat.
    assert (await http.post(f"{url}/xhr")).text == "h\n"
    await send(http, url, "a", "b")
    assert (await http.post(f"{url}/xhr")).text == 'a["a","b"]\n'
    # No receiving request for the disconnect delay: the session is gone.
    await asyncio.sleep(DISCONNECT_DELAY * 2.5)
    assert (await http.post(f"{url}/xhr_send", content=b'["x"]')).status_code == 404
    assert (await http.post(f"{url}/xhr")).text == "o\n"  # a new session under the old id


async def test_a_waiting_poll_gets_the_message_as_it_is_sent(http: httpx.AsyncClient) -> None:
    url = session_url()
    assert (await http.post(f"{url}/xhr")).text == "o\n"
    poll = asyncio.create_task(http.post(f"{url}/xhr"))
    await asyncio.sleep(0.05)
    assert not poll.done()
    await send(http, url, "now")
    assert (await asyncio.wait_for(poll, 2)).text == 'a["now"]\n'


async def test_jsonp_polling(http: httpx.AsyncClient) -> None:
    url = session_url()
    assert (await http.get(f"{url}/jsonp?c=cb")).text == '/**/cb("o");\r\n'
    r = await http.post(f"{url}/jsonp_send", data={"d": '["x"]'})
    assert (r.status_code, r.text) == (200, "ok")
    assert (await http.get(f"{url}/jsonp?c=cb")).text == '/**/cb("a[\\"x\\"]");\r\n'


# -- eventsource and htmlfile ---------------------------------------------------------------


async def test_eventsource(http: httpx.AsyncClient) -> None:
    url = session_url()
    async with stream(http, "GET", f"{url}/eventsource", b"\r\n\r\n") as s:
        assert s.response.headers["content-type"] == "text/event-stream"
        assert s.response.headers["cache-control"].startswith("no-store")
        # The prelude is one empty line, then the open frame.
        assert await s.read() == b"\r\ndata: o\r\n\r\n"
        await send(http, url, "x" * LIMIT)
        assert await s.read() == b'data: a["' + b"x" * LIMIT + b'"]\r\n\r\n'
        assert await s.ended()


async def test_htmlfile(http: httpx.AsyncClient) -> None:
    url = session_url()
    async with stream(http, "GET", f"{url}/htmlfile?c=%63allback", b"\r\n") as s:
        assert s.response.headers["content-type"] == "text/html; charset=UTF-8"
        prelude = await s.read()
        assert b"var c = parent.callback;" in prelude
        assert len(prelude) > 1024
        assert await s.read() == b"\r\n"  # the prelude ends with an empty line
        assert await s.read() == b'<script>\np("o");\n</script>\r\n'
        await send(http, url, "x")
        assert await s.read() == b'<script>\np("a[\\"x\\"]");\n</script>\r\n'


# -- HTTP edges --------------------------------------------------------------------------


def raw_request(port: int, request: bytes, *, until: bytes | None = None) -> bytes:
    """Send ``request`` on a fresh socket; read until ``until`` is seen, or to EOF."""
    with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
        sock.sendall(request)
        data = b""
        while until is None or until not in data:
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            data += chunk
        return data


def test_websocket_post_is_405_not_a_handshake(sockjs_server: TestServer) -> None:
    response = raw_request(
        sockjs_server.port,
        b"POST /echo/0/0/websocket HTTP/1.1\r\nHost: x\r\nUpgrade: WebSocket\r\n"
        b"Connection: Upgrade\r\nContent-Length: 0\r\n\r\n",
        until=b"\r\n\r\n",
    )
    assert response.startswith(b"HTTP/1.1 405"), response


def test_http10_streaming_is_not_chunked(
    sockjs_server: TestServer, request: pytest.FixtureRequest
) -> None:
    if sockjs_server.http == "httptools":
        # Known and reported: the reason the test server defaults to h11.
        request.applymarker(
            pytest.mark.xfail(strict=True, reason="uvicorn's httptools chunks HTTP/1.0 bodies")
        )
    url = session_url("close")
    response = raw_request(
        sockjs_server.port, f"POST {url}/xhr_streaming HTTP/1.0\r\n\r\n".encode()
    )
    head, _, body = response.partition(b"\r\n\r\n")
    assert b"transfer-encoding" not in head.lower()
    assert body == b"h" * 2048 + b'\no\nc[3000,"Go away!"]\n'


# -- WebSocket ----------------------------------------------------------------------------


@asynccontextmanager
async def websocket(sockjs_server: TestServer, path: str) -> AsyncIterator[ClientConnection]:
    async with connect(f"{sockjs_server.ws_url}{path}", ping_interval=None) as ws:
        yield ws


async def recv(ws: ClientConnection) -> str:
    message = await asyncio.wait_for(ws.recv(), 3)
    assert isinstance(message, str)
    return message


async def test_websocket_transport(sockjs_server: TestServer) -> None:
    async with websocket(sockjs_server, f"{session_url()}/websocket") as ws:
        assert await recv(ws) == "o"
        await ws.send("")
        await ws.send("[]")
        await ws.send('["a","b"]')
        assert await recv(ws) == 'a["a","b"]'
        await ws.send('"single"')
        assert await recv(ws) == 'a["single"]'
        assert await recv(ws) == "h"  # heart-beats on a WebSocket too


async def test_websocket_broken_json_closes_without_a_close_frame(
    sockjs_server: TestServer,
) -> None:
    async with websocket(sockjs_server, f"{session_url()}/websocket") as ws:
        assert await recv(ws) == "o"
        await ws.send('["a')
        with pytest.raises(ConnectionClosed):
            await recv(ws)


async def test_websocket_close_frame_then_close(sockjs_server: TestServer) -> None:
    async with websocket(sockjs_server, f"{session_url('close')}/websocket") as ws:
        assert await recv(ws) == "o"
        assert await recv(ws) == 'c[3000,"Go away!"]'
        with pytest.raises(ConnectionClosed):
            await recv(ws)


async def test_websocket_sessions_may_share_an_id(sockjs_server: TestServer) -> None:
    path = f"{session_url()}/websocket"
    async with websocket(sockjs_server, path) as one, websocket(sockjs_server, path) as two:
        assert (await recv(one), await recv(two)) == ("o", "o")
        await one.send('["1"]')
        await two.send('["2"]')
        assert (await recv(one), await recv(two)) == ('a["1"]', 'a["2"]')


async def test_raw_websocket(sockjs_server: TestServer) -> None:
    async with websocket(sockjs_server, "/echo/websocket") as ws:
        await ws.send("Hello world!\uffff")
        assert await recv(ws) == "Hello world!\uffff"
    async with websocket(sockjs_server, "/close/websocket") as ws:
        with pytest.raises(ConnectionClosed) as info:
            await recv(ws)
        assert info.value.rcvd is not None
        assert (info.value.rcvd.code, info.value.rcvd.reason) == (3000, "Go away!")


async def test_websocket_disabled(sockjs_server: TestServer) -> None:
    with pytest.raises(InvalidStatus, match="404"):
        async with websocket(sockjs_server, f"{session_url('disabled_websocket_echo')}/websocket"):
            pass
