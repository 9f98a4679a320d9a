"""Threat: an ERROR frame a real client cannot parse.

StompProtocolAndroid 1.6.6 (the Android client of the plan) reads each header line with
``([^:\\s]+)\\s*:\\s*([^:\\s]+)``; a line it cannot match throws in its parser and ends the
client's message stream, so the user never learns why the session closed. Every ERROR the
server writes therefore carries one token in ``message`` (its code: ``PROTOCOL_ERROR``,
``FRAME_TOO_LARGE``, ...) and says the rest in its JSON body ``{"type":"ERROR","code",
"message","detail"?}``. An ERROR caused by a frame that carried ``receipt`` echoes it as
``receipt-id`` (STOMP 1.2 "ERROR"), so a client can tell which frame was refused.

Each test provokes one ERROR and parses the raw frame as that client does: over a real socket
against a real server, or, for the ERRORs that need a broken database, a stalled peer or a
shutdown, against the gateway in-process.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from ieum_chat.client._link import error_from_frame
from ieum_chat.errors import ErrorCode
from ieum_chat.stomp import Frame, FrameParser
from tests.support.server import TEST_SECRET, ServerProcess
from tests.unit.gateway.harness import Peer, World, template_database, world

Couple = dict[str, str]

# StompProtocolAndroid 1.6.6, StompMessage.PATTERN_HEADER, matched against each whole line.
ANDROID_HEADER = re.compile(r"([^:\s]+)\s*:\s*([^:\s]+)")


@dataclass(frozen=True)
class WireError:
    headers: dict[str, str]
    body: dict[str, Any]
    raw: str


def android_parse(raw: str) -> WireError:
    """The ERROR frame as StompProtocolAndroid reads it; fails where its parser throws."""
    head, sep, rest = raw.partition("\n\n")
    assert sep, f"no end of headers in {raw!r}"
    command, *lines = head.split("\n")
    assert command == "ERROR", raw
    headers: dict[str, str] = {}
    for line in lines:
        match = ANDROID_HEADER.fullmatch(line)
        assert match is not None, f"StompProtocolAndroid cannot parse header line {line!r}"
        headers.setdefault(match.group(1), match.group(2))
    body = rest.rstrip("\0")
    return WireError(headers, orjson.loads(body), raw)


def check(error: WireError, code: str, *, receipt: str | None = None) -> WireError:
    assert error.headers["message"] == code
    assert error.body["type"] == "ERROR"
    assert error.body["code"] == code
    assert isinstance(error.body["message"], str)
    assert error.body["message"]
    assert error.headers.get("receipt-id") == receipt
    # The project's own client SDK reads the same frame: the code, and the words.
    parser = FrameParser()
    parser.receive_data(error.raw.encode())
    frame = parser.next_frame()
    assert isinstance(frame, Frame)
    event = error_from_frame(frame)
    assert (event.code, event.detail, event.fatal) == (code, error.body.get("detail"), True)
    return error


def token(user: str, ttl: float = 600) -> str:
    return jwt.encode({"sub": user, "exp": int(time.time() + ttl)}, TEST_SECRET, algorithm="HS256")


async def open_ws(server: ServerProcess, query: str = "") -> ClientConnection:
    return await connect(
        server.ws_url + query,
        subprotocols=[Subprotocol("v12.stomp")],
        max_size=None,
        ping_interval=None,
    )


async def connected(server: ServerProcess, user_token: str) -> ClientConnection:
    ws = await open_ws(server)
    await ws.send(f"CONNECT\naccept-version:1.2\nAuthorization:Bearer {user_token}\n\n\0")
    frame = await ws.recv()
    assert str(frame).startswith("CONNECTED"), frame
    return ws


async def error_of(ws: ClientConnection, timeout: float = 6.0) -> WireError:
    """The ERROR frame, then the close that follows it."""
    async with asyncio.timeout(timeout):
        while True:
            message = await ws.recv()
            text = message if isinstance(message, str) else message.decode()
            if text.startswith("ERROR"):
                break
        try:
            while True:
                await ws.recv()
        except ConnectionClosed:
            pass  # the close that follows an ERROR
    return android_parse(text)


# -- protocol errors (the STOMP core) --------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "receipt"),
    [
        ("FROB\nreceipt:r-frob\n\n\0", "r-frob"),  # unknown command
        ("SEND\nreceipt:r-nodest\n\n{}\0", "r-nodest"),  # no destination
        ("SEND\ndestination /app/chat/x\n\n\0", None),  # a header without a colon
        ("BEGIN\ntransaction:t1\nreceipt:r-tx\n\n\0", "r-tx"),  # transactions
        ("CONNECT\naccept-version:1.2\nreceipt:r-again\n\n\0", "r-again"),  # CONNECT twice
        ("UNSUBSCRIBE\nid:nope\nreceipt:r-unsub\n\n\0", "r-unsub"),
        ("SEND\ndestination:/app/chat/x\ncontent-length:abc\n\n\0", None),
    ],
)
async def test_protocol_errors(
    server: ServerProcess, couple: Couple, raw: str, receipt: str | None
) -> None:
    ws = await connected(server, couple["ta"])
    await ws.send(raw)
    error = check(await error_of(ws), "PROTOCOL_ERROR", receipt=receipt)
    assert error.body["detail"]


async def test_frame_before_connect(server: ServerProcess) -> None:
    ws = await open_ws(server)
    await ws.send("SEND\ndestination:/app/chat/x\nreceipt:early\n\n{}\0")
    check(await error_of(ws), "PROTOCOL_ERROR", receipt="early")


async def test_no_common_version(server: ServerProcess, couple: Couple) -> None:
    ws = await open_ws(server)
    await ws.send(f"CONNECT\naccept-version:9.9\nAuthorization:Bearer {couple['ta']}\n\n\0")
    error = check(await error_of(ws), "PROTOCOL_ERROR")
    assert error.headers["version"] == "1.0,1.1,1.2"  # STOMP 1.2 "Protocol Negotiation"


async def test_subscription_id_in_use(server: ServerProcess, couple: Couple) -> None:
    ws = await connected(server, couple["ta"])
    await ws.send("SUBSCRIBE\nid:1\ndestination:/user/queue/errors\n\n\0")
    await ws.send("SUBSCRIBE\nid:1\ndestination:/user/queue/errors\nreceipt:dup\n\n\0")
    check(await error_of(ws), "PROTOCOL_ERROR", receipt="dup")


@pytest.mark.parametrize("declared", [False, True])
async def test_frame_too_large(server: ServerProcess, couple: Couple, declared: bool) -> None:
    ws = await connected(server, couple["ta"])
    dest = f"/app/chat/{couple['couple']}"
    if declared:
        await ws.send(f"SEND\ndestination:{dest}\ncontent-length:70000\nreceipt:big\n\n")
    else:
        await ws.send(f"SEND\ndestination:{dest}\nreceipt:big\n\n" + "x" * 70_000)
    error = check(await error_of(ws), "FRAME_TOO_LARGE")
    assert "65536" in error.body["detail"]


# -- the gateway's own ERRORs ----------------------------------------------------------------


async def test_no_such_destination(server: ServerProcess, couple: Couple) -> None:
    ws = await connected(server, couple["ta"])
    await ws.send("SUBSCRIBE\nid:1\ndestination:/queue/nowhere\nreceipt:where\n\n\0")
    error = check(await error_of(ws), "NO_SUCH_DESTINATION", receipt="where")
    assert "/queue/nowhere" in error.body["detail"]


@pytest.mark.parametrize("kind", ["missing", "garbage"])
async def test_auth_failed(server: ServerProcess, kind: str) -> None:
    ws = await open_ws(server)
    auth = "" if kind == "missing" else "Authorization:Bearer abc.def\n"
    await ws.send(f"CONNECT\naccept-version:1.2\n{auth}receipt:hello\n\n\0")
    check(await error_of(ws), "AUTH_FAILED", receipt="hello")


async def test_connect_timeout(server: ServerProcess) -> None:
    ws = await open_ws(server)  # the test server's IEUM_CONNECT_TIMEOUT is 2 s
    check(await error_of(ws, timeout=8), "CONNECT_TIMEOUT")


async def test_token_expired(server: ServerProcess, couple: Couple) -> None:
    ws = await connected(server, token(couple["a"], ttl=2))
    check(await error_of(ws, timeout=8), "TOKEN_EXPIRED")


async def test_too_many_sessions(server: ServerProcess, couple: Couple) -> None:
    sessions = [await connected(server, couple["tb"]) for _ in range(10)]  # the default limit
    ws = await open_ws(server)
    await ws.send(f"CONNECT\naccept-version:1.2\nAuthorization:Bearer {couple['tb']}\n\n\0")
    check(await error_of(ws), "RATE_LIMITED")
    for session in sessions:
        await session.close()


# -- ERRORs a socket test cannot provoke cheaply: the gateway in-process -----------------------
# (the real connection and chat service over SQLite, the socket replaced by memory; see
# tests/unit/gateway/harness.py)


@pytest.fixture(scope="module")
def gateway_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return template_database(tmp_path_factory.mktemp("gateway-template"))


@pytest.fixture
async def w(tmp_path: Path, gateway_template: Path) -> AsyncIterator[World]:
    async with world(tmp_path, gateway_template) as made:
        yield made


def last_error(peer: Peer) -> WireError:
    errors = [f for f in peer.transport.written if f.startswith(b"ERROR")]
    assert len(errors) == 1, errors
    return android_parse(errors[0].decode())


async def test_slow_consumer(w: World) -> None:
    peer = await w.member(reading=False)
    for _ in range(w.settings.outbound_buffer_bytes // 4096 + 1):
        peer.conn.push_message("/topic/couple/x", "t", b"x" * 4096)
    check(last_error(peer), "SLOW_CONSUMER")


async def test_history_unavailable(w: World) -> None:
    peer = await w.member()
    topic = f"/topic/couple/{w.couple.id}"
    peer.send("SUBSCRIBE", {"id": "t0", "destination": topic})  # membership is known now
    await peer.settle()
    w.break_table("couples")  # the stream's position cannot be read
    peer.send("SUBSCRIBE", {"id": "t", "destination": topic, "receipt": "s"})
    await asyncio.wait_for(peer.transport.closed.wait(), 5)
    check(last_error(peer), "HISTORY_UNAVAILABLE", receipt="s")


async def test_server_shutdown(w: World) -> None:
    peer = await w.member()
    await w.gateway.drain(grace=5)
    check(last_error(peer), "SERVER_SHUTDOWN")


async def test_database_down_at_connect(w: World) -> None:
    w.break_table("users")
    peer = Peer(w)
    auth = {"Authorization": f"Bearer {w.token(w.a)}", "receipt": "c"}
    peer.send("CONNECT", {"accept-version": "1.2", **auth})
    await asyncio.wait_for(peer.transport.closed.wait(), 5)
    check(last_error(peer), "SEND_FAILED", receipt="c")


async def test_server_failure(w: World, monkeypatch: pytest.MonkeyPatch) -> None:
    peer = await w.member()

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    # The typing event's publication fails with a bug, not a BrokerError.
    monkeypatch.setattr(w.chat.pipeline.broker, "publish", broken)
    peer.send("SEND", {"destination": f"/app/chat/{w.couple.id}/typing"}, {"typing": True})
    await asyncio.wait_for(peer.transport.closed.wait(), 5)
    check(last_error(peer), "UNAVAILABLE")


def test_every_code_is_one_token() -> None:
    """Whatever ERROR the server writes, its message header is one of these."""
    for code in ErrorCode:
        assert ANDROID_HEADER.fullmatch(f"message:{code.value}"), code
