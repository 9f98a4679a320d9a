"""The ASGI WebSocket over the event-loop core, against a recording shell: the ASGI messages in
and out, and the inbound bound (reading pauses while the app has a message to take)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import pytest

from ieum_chat.gateway.wsasgi import AsgiWebSocket
from ieum_chat.websocket import BinaryMessage, TextMessage

Message = MutableMapping[str, Any]


class Shell:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.paused = False

    def accept(self, subprotocol: str | None, headers: list[tuple[bytes, bytes]]) -> None:
        self.calls.append(("accept", subprotocol))

    def respond(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.calls.append(("respond", status, body))

    async def send_message(self, data: bytes, *, text: bool) -> None:
        self.calls.append(("send", data, text))

    def close_with(self, code: int, reason: str) -> None:
        self.calls.append(("close", code, reason))

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False


Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


async def run(app: Callable[[Receive, Send], Awaitable[None]], ws: AsgiWebSocket) -> None:
    async def asgi(scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        await app(receive, send)

    await ws.run(asgi, {"type": "websocket", "path": "/x"})


async def test_echo_with_back_pressure_on_reading() -> None:
    shell = Shell()
    ws = AsgiWebSocket(shell)
    seen: list[Message] = []

    async def app(receive: Receive, send: Send) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept", "subprotocol": "v12.stomp"})
        ws.feed(TextMessage("안녕".encode()))
        ws.feed(BinaryMessage(b"\x00"))
        assert shell.paused  # the app holds messages: the socket is not read
        seen.append(await receive())
        assert shell.paused
        seen.append(await receive())
        assert not shell.paused
        await send({"type": "websocket.send", "text": "a"})
        await send({"type": "websocket.send", "bytes": b"b"})
        ws.connection_lost(1001)
        seen.append(await receive())
        seen.append(await receive())  # asked again: the same answer
        with pytest.raises(OSError, match="closed"):
            await send({"type": "websocket.send", "text": "late"})

    await run(app, ws)
    assert seen == [
        {"type": "websocket.receive", "text": "안녕"},
        {"type": "websocket.receive", "bytes": b"\x00"},
        {"type": "websocket.disconnect", "code": 1001},
        {"type": "websocket.disconnect", "code": 1006},
    ]
    assert shell.calls == [("accept", "v12.stomp"), ("send", b"a", True), ("send", b"b", False)]


async def test_refusals() -> None:
    async def http_refusal(receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.http.response.start", "status": 401, "headers": []})
        await send({"type": "websocket.http.response.body", "body": b"{", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"}"})

    async def close_before_accept(receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.close", "code": 1008})

    async def silent(receive: Receive, send: Send) -> None:
        await receive()

    expected = {http_refusal: ("respond", 401, b"{}"), close_before_accept: ("respond", 403, b"")}
    expected[silent] = ("respond", 500, b"")
    for app, call in expected.items():
        shell = Shell()
        await run(app, AsgiWebSocket(shell))
        assert shell.calls == [call]


async def test_the_end_of_the_app_closes_what_it_left_open() -> None:
    async def returns(receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})

    async def crashes(receive: Receive, send: Send) -> None:
        await returns(receive, send)
        raise RuntimeError("boom")

    async def closes(receive: Receive, send: Send) -> None:
        await returns(receive, send)
        await send({"type": "websocket.close", "code": 3000, "reason": "go away"})

    for app, close in ((returns, 1000), (crashes, 1011), (closes, 3000)):
        shell = Shell()
        await run(app, AsgiWebSocket(shell))
        assert shell.calls[-1][:2] == ("close", close)
        assert len(shell.calls) == 2


async def test_an_unknown_message_is_a_bug() -> None:
    async def app(receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.accept"})

    shell = Shell()
    await run(app, AsgiWebSocket(shell))
    assert shell.calls == [("accept", None), ("close", 1011, "")]
