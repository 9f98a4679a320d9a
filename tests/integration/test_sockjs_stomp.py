"""STOMP over SockJS against a real ``ieum-chat serve``: the SockJS URLs under /ws/chat, the
token at session creation (401 when bad) or in CONNECT, every receiving transport carrying
STOMP frames, and SockJS and raw WebSocket clients chatting in one room."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from ieum_chat.stomp import HEARTBEAT, Frame, FrameParser
from tests.support.server import ServerProcess
from tests.support.sockjs_polling import connect_frame, stomp
from tests.support.stomp_client import StompTestClient

Couple = dict[str, str]


# SQLite only: SockJS is a transport; the stores are covered by the other modules.
pytestmark = pytest.mark.backends("sqlite")


class SockJSClosedError(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code} {reason}")
        self.code = code
        self.reason = reason


class PollingStomp:
    """A STOMP client over SockJS xhr-polling, written out by hand."""

    def __init__(self, http: httpx.AsyncClient, token: str | None = None) -> None:
        self.http = http
        self.url = f"/ws/chat/{uuid.uuid4().int % 1000:03d}/{uuid.uuid4().hex[:8]}"
        self.query = f"?token={token}" if token else ""
        self.parser = FrameParser(max_frame_size=1 << 22)

    async def open(self) -> httpx.Response:
        return await self.http.post(f"{self.url}/xhr{self.query}")

    async def send(self, *frames: str) -> None:
        r = await self.http.post(
            f"{self.url}/xhr_send{self.query}", content=json.dumps(list(frames)).encode()
        )
        assert r.status_code == 204, r.text

    async def frame(self, timeout: float = 5.0) -> Frame:
        async with asyncio.timeout(timeout):
            while True:
                item = self.parser.next_frame()
                if item is not None and item is not HEARTBEAT:
                    assert isinstance(item, Frame)
                    if b'"event":"USER_' not in item.body:  # presence races the test
                        return item
                    continue
                if item is HEARTBEAT:
                    continue
                body = (await self.http.post(f"{self.url}/xhr{self.query}")).text
                feed_sockjs(self.parser, body.rstrip("\n"))


def feed_sockjs(parser: FrameParser, data: str) -> None:
    """One SockJS frame's STOMP content into ``parser``."""
    if data.startswith("a"):
        for message in json.loads(data[1:]):
            parser.receive_data(message.encode())
    elif data.startswith("c"):
        code, reason = json.loads(data[1:])
        raise SockJSClosedError(code, reason)


async def test_sockjs_urls_under_ws_chat(http: httpx.AsyncClient, couple: Couple) -> None:
    for path in ("/ws/chat", "/ws/chat/"):
        r = await http.get(path)
        assert (r.status_code, r.text) == (200, "Welcome to SockJS!\n")
    # sockjs-client keeps the URL's query string on /info and every transport URL.
    r = await http.get(f"/ws/chat/info?token={couple['ta']}&t=1")
    assert r.status_code == 200
    assert r.json()["websocket"] is True
    assert (await http.get("/ws/chat/iframe.html")).status_code == 200
    assert (await http.get("/ws/chat/000/abc/unknown")).status_code == 404
    assert (await http.get("/ws/chat/000/a.b/xhr")).status_code == 404
    # A WebSocket URL asked for over plain HTTP.
    assert (await http.get("/ws/chat/websocket")).status_code == 400


@pytest.mark.parametrize(
    "suffix", ["xhr", "xhr_streaming", "eventsource", "htmlfile?c=cb", "jsonp?c=cb"]
)
async def test_bad_token_is_refused_with_401(http: httpx.AsyncClient, suffix: str) -> None:
    method = "POST" if suffix.startswith("xhr") else "GET"
    sep = "&" if "?" in suffix else "?"
    r = await http.request(method, f"/ws/chat/000/{uuid.uuid4().hex}/{suffix}{sep}token=forged")
    assert r.status_code == 401
    assert r.json()["code"] == "AUTH_FAILED"


async def test_bad_token_refuses_the_sockjs_websocket(server: ServerProcess) -> None:
    url = f"{server.ws_url}/000/{uuid.uuid4().hex}/websocket?token=forged"
    with pytest.raises(InvalidStatus) as info:
        async with connect(url):
            pass
    assert info.value.response.status_code == 401
    assert json.loads(info.value.response.body or b"{}")["code"] == "AUTH_FAILED"


async def test_missing_token_gets_an_error_then_the_close_frame(
    http: httpx.AsyncClient,
) -> None:
    client = PollingStomp(http)
    assert (await client.open()).text == "o\n"
    await client.send(connect_frame())
    frame = await client.frame()
    assert frame.command == "ERROR"
    assert json.loads(frame.body)["code"] == "AUTH_FAILED"
    with pytest.raises(SockJSClosedError) as info:
        await client.frame()
    assert info.value.code == 1000


async def test_chat_between_xhr_polling_and_raw_websocket(
    server: ServerProcess, http: httpx.AsyncClient, couple: Couple
) -> None:
    topic = f"/topic/couple/{couple['couple']}"
    polling = PollingStomp(http, token=couple["ta"])  # the token in the query string
    assert (await polling.open()).text == "o\n"
    await polling.send(
        connect_frame(),
        stomp("SUBSCRIBE", {"id": "s1", "destination": topic, "receipt": "sub"}),
    )
    assert (await polling.frame()).command == "CONNECTED"
    receipt = await polling.frame()
    assert (receipt.command, receipt.get("receipt-id")) == ("RECEIPT", "sub")

    raw = await StompTestClient.connected(server.ws_url, couple["tb"])
    await raw.subscribe(topic)
    body = json.dumps({"type": "TEXT", "content": "from raw", "tempId": "raw-1"})
    await raw.send("SEND", {"destination": f"/app/chat/{couple['couple']}"}, body)
    message = await polling.frame()
    assert message.command == "MESSAGE"
    assert json.loads(message.body)["content"] == "from raw"

    body = json.dumps({"type": "TEXT", "content": "안녕 \u2028 </script>", "tempId": "sj-1"})
    await polling.send(
        stomp("SEND", {"destination": f"/app/chat/{couple['couple']}", "receipt": "r1"}, body)
    )
    frames = [await polling.frame(), await polling.frame()]
    assert {f.command for f in frames} == {"MESSAGE", "RECEIPT"}
    seen = await raw.messages_until(lambda m: m.get("tempId") == "sj-1")
    assert seen[-1]["content"] == "안녕 \u2028 </script>"
    await raw.close()


async def test_connect_header_token_over_the_sockjs_websocket(
    server: ServerProcess, couple: Couple
) -> None:
    url = f"{server.ws_url}/{uuid.uuid4().int % 1000}/{uuid.uuid4().hex}/websocket"
    async with connect(url) as ws:
        assert await asyncio.wait_for(ws.recv(), 5) == "o"
        await ws.send(json.dumps([connect_frame(couple["ta"])]))
        parser = FrameParser(max_frame_size=1 << 22)
        feed_sockjs(parser, str(await asyncio.wait_for(ws.recv(), 5)))
        frame = parser.next_frame()
        assert isinstance(frame, Frame)
        assert frame.command == "CONNECTED"
        assert frame.get("version") == "1.2"


async def test_raw_websocket_paths_stay_raw_stomp(server: ServerProcess, couple: Couple) -> None:
    for url in (server.ws_url, f"{server.ws_url}/websocket"):
        client = await StompTestClient.connected(url, couple["ta"], via="query")
        await client.close()


def split(transport: str, data: str) -> tuple[list[str], str]:
    """Complete SockJS frames at the start of ``data`` (as the transport wraps them) and the
    rest."""
    frames: list[str] = []
    if transport == "eventsource":
        *done, rest = data.split("\r\n\r\n")
        frames = [d.strip()[len("data: ") :] for d in done if d.strip()]
    elif transport == "htmlfile":
        *done, rest = data.split("</script>\r\n")
        for chunk in done:
            if "<script>\np(" in chunk:
                frames.append(json.loads(chunk.split("<script>\np(", 1)[1].rsplit(");", 1)[0]))
    else:
        *done, rest = data.split("\n")
        frames = [d for d in done if d and not d.startswith("hhhh")]
    return frames, rest


@pytest.mark.parametrize("transport", ["xhr_streaming", "eventsource", "htmlfile"])
async def test_streaming_transports_carry_stomp(
    http: httpx.AsyncClient, couple: Couple, transport: str
) -> None:
    url = f"/ws/chat/000/{uuid.uuid4().hex}"
    method = "POST" if transport.startswith("xhr") else "GET"
    query = f"?c=cb&token={couple['ta']}" if transport == "htmlfile" else f"?token={couple['ta']}"
    parser = FrameParser(max_frame_size=1 << 22)
    async with http.stream(method, f"{url}/{transport}{query}") as response:
        assert response.status_code == 200
        chunks = response.aiter_text()
        buffer = ""
        sockjs: list[str] = []
        async with asyncio.timeout(5):
            while not sockjs:
                buffer += await anext(chunks)
                sockjs, buffer = split(transport, buffer)
            assert sockjs == ["o"]
            # Every request of the session carries its token, as sockjs-client's URLs do.
            send_query = query.replace("?c=cb&", "?")
            await http.post(
                f"{url}/xhr_send{send_query}", content=json.dumps([connect_frame()]).encode()
            )
            while (frame := parser.next_frame()) is None:
                buffer += await anext(chunks)
                sockjs, buffer = split(transport, buffer)
                for data in sockjs:
                    feed_sockjs(parser, data)
    assert isinstance(frame, Frame)
    assert frame.command == "CONNECTED"


async def test_jsonp_carries_stomp(http: httpx.AsyncClient, couple: Couple) -> None:
    url = f"/ws/chat/000/{uuid.uuid4().hex}"
    assert (await http.get(f"{url}/jsonp?c=cb&token={couple['ta']}")).text == '/**/cb("o");\r\n'
    query = f"token={couple['ta']}"
    r = await http.post(f"{url}/jsonp_send?{query}", data={"d": json.dumps([connect_frame()])})
    assert r.text == "ok"
    body = (await http.get(f"{url}/jsonp?c=cb&{query}")).text
    data = json.loads(body[len("/**/cb(") : -len(");\r\n")])
    parser = FrameParser(max_frame_size=1 << 22)
    feed_sockjs(parser, data)
    frame = parser.next_frame()
    assert isinstance(frame, Frame)
    assert frame.command == "CONNECTED"
