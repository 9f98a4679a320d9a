"""The client SDK against a scripted STOMP server: what the real server does rarely or never
on demand (silent peers, expiring tokens, rate limits, gaps in the stream, ignored
DISCONNECTs)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from websockets.asyncio.server import ServerConnection, serve

from ieum_chat.client import (
    Backoff,
    ChatClient,
    ChatMessage,
    ClientClosed,
    Connected,
    Disconnected,
    ErrorEvent,
    SendError,
)
from ieum_chat.stomp import HEARTBEAT, Frame, FrameParser, serialize_frame

COUPLE = uuid.uuid4()
SENDER = uuid.uuid4()
FAST: dict[str, Any] = {"backoff": Backoff(0.02, 0.1), "heartbeat": (0.0, 0.0)}


def message_body(seq: int, temp_id: str | None = None) -> bytes:
    return orjson.dumps(
        {
            "id": str(uuid.uuid4()),
            "coupleId": str(COUPLE),
            "seq": seq,
            "senderId": str(SENDER),
            "senderName": "a",
            "senderProfileImage": None,
            "content": f"m{seq}",
            "type": "TEXT",
            "imageUrl": None,
            "isRead": False,
            "readAt": None,
            "createdAt": "2024-01-11T10:10:00.000",
            "tempId": temp_id,
        }
    )


@dataclass
class Session:
    ws: ServerConnection
    frames: list[Frame] = field(default_factory=list)
    heartbeats: int = 0
    subs: dict[str, str] = field(default_factory=dict)  # destination -> id

    async def send(self, frame: Frame) -> None:
        await self.ws.send(serialize_frame(frame).decode())

    async def message(self, destination: str, body: bytes) -> None:
        sub = self.subs[destination]
        headers = (("destination", destination), ("subscription", sub), ("message-id", "m"))
        await self.send(Frame("MESSAGE", headers, body))

    async def chat(self, seq: int, temp_id: str | None = None) -> None:
        await self.message(f"/topic/couple/{COUPLE}", message_body(seq, temp_id))

    async def error_payload(self, code: str, temp_id: str | None, detail: str = "") -> None:
        body = {"type": "ERROR", "code": code, "message": "x", "tempId": temp_id, "detail": detail}
        await self.message("/user/queue/errors", orjson.dumps(body))


Handler = Callable[[Session, Frame], Awaitable[None]]


@dataclass
class FakeServer:
    """CONNECT -> CONNECTED, SUBSCRIBE -> RECEIPT; ``on_frame`` scripts the rest."""

    heartbeat: str = "0,0"
    answer_disconnect: bool = True
    refuse_connects: int = 0
    """The first CONNECTs get ERROR (AUTH_FAILED), then a close."""
    on_frame: Handler | None = None
    """Every frame but CONNECT and SUBSCRIBE."""
    on_subscribe: Handler | None = None
    """After a SUBSCRIBE's RECEIPT."""
    on_ready: Callable[[Session], Awaitable[None]] | None = None
    """Once, when the first session has its three subscriptions (the error and event
    queues, the couple topic)."""
    sessions: list[Session] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    url: str = ""

    async def handler(self, ws: ServerConnection) -> None:
        session = Session(ws)
        self.sessions.append(session)
        parser = FrameParser()
        async for data in ws:
            parser.receive_data(data.encode() if isinstance(data, str) else data)
            while (item := parser.next_frame()) is not None:
                if item is HEARTBEAT:
                    session.heartbeats += 1
                    continue
                assert isinstance(item, Frame)
                session.frames.append(item)
                await self.handle(session, item)

    async def handle(self, session: Session, frame: Frame) -> None:
        if frame.command == "CONNECT":
            self.tokens.append((frame.get("Authorization") or "").removeprefix("Bearer "))
            if len(self.tokens) <= self.refuse_connects:
                body = orjson.dumps({"type": "ERROR", "code": "AUTH_FAILED", "message": "x"})
                await session.send(Frame("ERROR", (("message", "AUTH_FAILED"),), body))
                await session.ws.close()
                return
            headers = (("version", "1.2"), ("heart-beat", self.heartbeat), ("user-name", "u"))
            await session.send(Frame("CONNECTED", headers))
            return
        if frame.command == "SUBSCRIBE":
            session.subs[frame.get("destination") or ""] = frame.get("id") or ""
            if receipt := frame.get("receipt"):
                await session.send(Frame("RECEIPT", (("receipt-id", receipt),)))
            if len(session.subs) == 3 and self.on_ready is not None:
                ready, self.on_ready = self.on_ready, None
                await ready(session)
            if self.on_subscribe is not None:
                await self.on_subscribe(session, frame)
            return
        if frame.command == "DISCONNECT" and self.answer_disconnect:
            await session.send(Frame("RECEIPT", (("receipt-id", frame.get("receipt") or ""),)))
            await session.ws.close()
            return
        if self.on_frame is not None:
            await self.on_frame(session, frame)


@asynccontextmanager
async def fake_server(**kwargs: Any) -> AsyncIterator[FakeServer]:
    fake = FakeServer(**kwargs)
    async with serve(fake.handler, "127.0.0.1", 0, subprotocols=["v12.stomp"]) as server:  # type: ignore[list-item]
        port = next(iter(server.sockets)).getsockname()[1]
        fake.url = f"ws://127.0.0.1:{port}/ws/chat"
        yield fake


def client(url: str, **kwargs: Any) -> ChatClient:
    counter = iter(range(1_000_000))
    options: dict[str, Any] = {"resume_after_seq": 0, **FAST, **kwargs}
    return ChatClient(url, lambda: f"token-{next(counter)}", couple_id=COUPLE, **options)


async def next_of(c: ChatClient, kind: type[Any], timeout: float = 10.0) -> Any:
    async with asyncio.timeout(timeout):
        while True:
            event = await c.next_event()
            if isinstance(event, kind):
                return event


async def test_silent_server_is_detected_by_heartbeats() -> None:
    async with fake_server(heartbeat="100,0") as fake:
        c = client(fake.url, heartbeat=(0.0, 0.1), heartbeat_grace=2.0)
        async with c:
            await next_of(c, Connected)
            started = time.monotonic()
            gone: Disconnected = await next_of(c, Disconnected)
            assert "no data from the server" in gone.reason
            assert time.monotonic() - started < 2.0  # 0.2 s of silence, plus slack
            await next_of(c, Connected)  # and it came back
        assert len(fake.sessions) >= 2


async def test_client_sends_heartbeats_the_server_asked_for() -> None:
    async with fake_server(heartbeat="0,50") as fake:
        async with client(fake.url, heartbeat=(0.05, 0.0)) as c:
            await next_of(c, Connected)
            await asyncio.sleep(0.6)
        assert fake.sessions[0].heartbeats >= 3


async def test_token_expired_reconnects_with_a_fresh_token() -> None:
    async def expire(session: Session) -> None:
        body = orjson.dumps({"type": "ERROR", "code": "TOKEN_EXPIRED", "message": "만료"})
        await session.send(Frame("ERROR", (("message", "TOKEN_EXPIRED"),), body))
        await session.ws.close()

    async with fake_server(on_ready=expire) as fake:
        async with client(fake.url) as c:
            error: ErrorEvent = await next_of(c, ErrorEvent)
            assert (error.code, error.fatal) == ("TOKEN_EXPIRED", True)
            await next_of(c, Connected)
        assert fake.tokens[:2] == ["token-0", "token-1"]


async def test_auth_failed_on_connect_backs_off_and_retries() -> None:
    async with fake_server(refuse_connects=2) as fake:
        async with client(fake.url) as c:
            for _ in range(2):
                error: ErrorEvent = await next_of(c, ErrorEvent)
                assert error.code == "AUTH_FAILED"
                gone: Disconnected = await next_of(c, Disconnected)
                assert "AUTH_FAILED" in gone.reason
            await next_of(c, Connected)
            assert c.connected
        assert fake.tokens == ["token-0", "token-1", "token-2"]  # a fresh token each time


async def test_rate_limited_send_is_retried_with_the_same_temp_id() -> None:
    seen: list[str] = []

    async def limit_first(session: Session, frame: Frame) -> None:
        if frame.command != "SEND":
            return
        temp_id = orjson.loads(frame.body)["tempId"]
        seen.append(temp_id)
        if len(seen) == 1:
            await session.error_payload("RATE_LIMITED", temp_id, "slow down")
        else:
            await session.send(Frame("RECEIPT", (("receipt-id", frame.get("receipt") or ""),)))

    async with fake_server(on_frame=limit_first) as fake:
        c = client(fake.url, retry_backoff=Backoff(0.05, 0.1))
        async with c:
            receipt = await asyncio.wait_for(c.send_text("hi", temp_id="t-1"), 10)
        assert receipt.attempts == 2
        assert seen == ["t-1", "t-1"]
        assert c.stats.retries == 1


async def test_permanent_send_failure_is_not_retried() -> None:
    async def refuse(session: Session, frame: Frame) -> None:
        if frame.command == "SEND":
            temp_id = orjson.loads(frame.body)["tempId"]
            await session.error_payload("UNAUTHORIZED", temp_id, "not a member")

    async with fake_server(on_frame=refuse) as fake, client(fake.url) as c:
        with pytest.raises(SendError) as info:
            await asyncio.wait_for(c.send_text("hi"), 10)
        assert (info.value.code, info.value.transient) == ("UNAUTHORIZED", False)
        assert c.stats.retries == 0


async def test_gap_in_the_stream_resubscribes_from_the_last_seq() -> None:
    async def gap(session: Session) -> None:
        await session.chat(1)
        await session.chat(3)  # 2 never arrives on this subscription

    async def replay(session: Session, frame: Frame) -> None:
        if frame.get("x-resume-after-seq") == "1":
            await session.chat(2)
            await session.chat(3)

    async with fake_server(on_ready=gap, on_subscribe=replay) as fake:
        async with client(fake.url) as c:
            got = [await next_of(c, ChatMessage) for _ in range(3)]
            assert [m.seq for m in got] == [1, 2, 3]
            assert c.stats.gaps == 1
        frames = fake.sessions[0].frames
        assert [f.command for f in frames if f.command.endswith("SUBSCRIBE")][-2:] == [
            "UNSUBSCRIBE",
            "SUBSCRIBE",
        ]


async def test_reconnect_resumes_after_the_last_seq() -> None:
    async def five(session: Session) -> None:
        for seq in range(1, 6):
            await session.chat(seq)

    async with fake_server(on_ready=five) as fake:
        async with client(fake.url) as c:
            assert [(await next_of(c, ChatMessage)).seq for _ in range(5)] == [1, 2, 3, 4, 5]
            await c.reconnect()
            await next_of(c, Connected)
            await next_of(c, Connected)
        topic = f"/topic/couple/{COUPLE}"
        subscribes = [
            f
            for s in fake.sessions
            for f in s.frames
            if f.command == "SUBSCRIBE" and f.get("destination") == topic
        ]
        assert [f.get("x-resume-after-seq") for f in subscribes] == ["0", "5"]


async def test_close_is_bounded_when_the_server_ignores_disconnect() -> None:
    async with fake_server(answer_disconnect=False) as fake:
        c = client(fake.url)
        c.start()
        async with asyncio.timeout(3):
            await c.wait_ready()
        pending = asyncio.create_task(c.send_text("never acknowledged"))
        await asyncio.sleep(0.05)
        started = time.monotonic()
        await c.close()
        assert time.monotonic() - started < 3.0  # the 1 s DISCONNECT wait, plus slack
        with pytest.raises(ClientClosed, match="closed"):
            await pending
        assert [event async for event in c.events()]  # what was received stays readable


async def test_close_while_the_server_is_unreachable() -> None:
    c = ChatClient(
        "ws://127.0.0.1:9/ws/chat", lambda: "t", couple_id=COUPLE, backoff=Backoff(0.05, 0.2)
    )
    c.start()
    gone: Disconnected = await next_of(c, Disconnected)
    assert "Connect" in gone.reason or "refused" in gone.reason.lower()
    started = time.monotonic()
    await asyncio.gather(c.close(), c.close())  # concurrent closes both wait for the end
    assert time.monotonic() - started < 2.0
    assert c._runner is None
    with pytest.raises(ClientClosed, match="closed"):
        await c.wait_ready()
