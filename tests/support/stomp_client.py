"""A small STOMP-over-WebSocket client for tests: it writes exactly the bytes a test gives it
(malformed frames included) and reads frames back with the project's parser."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Mapping
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from ieum_chat.stomp import HEARTBEAT, Frame, FrameParser, serialize_frame

__all__ = ["StompTestClient", "frame_json"]

SUBPROTOCOLS = ["v10.stomp", "v11.stomp", "v12.stomp"]


def frame_json(frame: Frame) -> Any:
    return orjson.loads(frame.body)


def _is_presence(frame: Frame) -> bool:
    return frame.command == "MESSAGE" and b'"event":"USER_' in frame.body


class StompTestClient:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.parser = FrameParser(max_frame_size=1 << 22)
        self.heartbeats = 0
        # Presence events race a test's own traffic (they follow each CONNECT); tests that
        # are about presence turn this off.
        self.ignore_presence = True
        self._ids = itertools.count(1)
        self.connected_frame: Frame | None = None  # the server's CONNECTED, once connected

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        subprotocols: list[str] | None = None,
    ) -> StompTestClient:
        if token is not None:
            url = f"{url}?token={token}"
        ws = await connect(
            url,
            # An empty list would send an empty Sec-WebSocket-Protocol header: send none.
            subprotocols=(SUBPROTOCOLS if subprotocols is None else subprotocols) or None,  # type: ignore[arg-type]
            additional_headers=headers,
            max_size=None,
            ping_interval=None,
        )
        return cls(ws)

    @classmethod
    async def connected(
        cls,
        url: str,
        token: str,
        *,
        via: str = "connect",
        connect_headers: Mapping[str, str] | None = None,
    ) -> StompTestClient:
        """Open and CONNECT; ``via`` is where the token goes: query, header or connect;
        ``connect_headers`` go on the CONNECT frame too."""
        client = await cls.open(
            url,
            token=token if via == "query" else None,
            headers={"Authorization": f"Bearer {token}"} if via == "header" else None,
        )
        headers = {"accept-version": "1.2", "host": "ieum", "heart-beat": "0,0"}
        headers.update(connect_headers or {})
        if via == "connect":
            headers["Authorization"] = f"Bearer {token}"
        await client.send("CONNECT", headers)
        frame = await client.expect("CONNECTED")
        assert frame.get("version") == "1.2"
        client.connected_frame = frame
        return client

    async def send_raw(self, data: str | bytes) -> None:
        await self.ws.send(data)

    async def send(
        self,
        command: str,
        headers: dict[str, str] | None = None,
        body: bytes | str | dict[str, Any] = b"",
    ) -> None:
        if isinstance(body, dict):
            body = orjson.dumps(body)
        elif isinstance(body, str):
            body = body.encode()
        frame = Frame(command, tuple((headers or {}).items()), body)
        data = serialize_frame(frame, "1.2")
        try:
            await self.ws.send(data.decode())
        except UnicodeDecodeError:
            await self.ws.send(data)  # a binary WebSocket message

    async def subscribe(
        self, destination: str, headers: Mapping[str, str] | None = None, *, receipt: bool = True
    ) -> str:
        sub_id = f"sub-{next(self._ids)}"
        extra = {"id": sub_id, "destination": destination, **(headers or {})}
        if receipt:
            extra["receipt"] = f"r-{sub_id}"
        await self.send("SUBSCRIBE", extra)
        if receipt:
            frame = await self.expect("RECEIPT")
            assert frame.get("receipt-id") == f"r-{sub_id}"
        return sub_id

    async def next_frame(self, timeout: float = 5.0) -> Frame:
        """The next frame (heart-beats are counted, not returned) within ``timeout`` in all."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            item = self.parser.next_frame()
            if item is HEARTBEAT:
                self.heartbeats += 1
                continue
            if item is not None:
                assert isinstance(item, Frame)
                if self.ignore_presence and _is_presence(item):
                    continue
                return item
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError
            # asyncio.timeout, not wait_for: Python 3.11's wait_for drops a cancellation that
            # lands as a frame arrives, and a reader task cancelled then would read on.
            async with asyncio.timeout(remaining):
                data = await self.ws.recv()
            self.parser.receive_data(data.encode() if isinstance(data, str) else data)

    async def expect(self, command: str, timeout: float = 5.0) -> Frame:
        frame = await self.next_frame(timeout)
        assert frame.command == command, f"expected {command}, got {frame}"
        return frame

    async def receipt(self, receipt_id: str, timeout: float = 5.0) -> list[Any]:
        """Wait for the RECEIPT ``receipt_id``, passing other RECEIPTs; return the MESSAGE
        bodies read meanwhile."""
        seen: list[Any] = []
        while True:
            frame = await self.next_frame(timeout)
            if frame.command == "RECEIPT":
                if frame.get("receipt-id") == receipt_id:
                    return seen
                continue  # an earlier SEND's
            assert frame.command == "MESSAGE", f"unexpected {frame}"
            seen.append(frame_json(frame))

    async def expect_message(self, timeout: float = 5.0) -> Any:
        return frame_json(await self.expect("MESSAGE", timeout))

    async def messages_until(self, predicate: Any, timeout: float = 5.0) -> list[Any]:
        """Read MESSAGE bodies until one satisfies ``predicate``; return them all."""
        seen: list[Any] = []
        while True:
            seen.append(await self.expect_message(timeout))
            if predicate(seen[-1]):
                return seen

    async def assert_silent(self, seconds: float = 0.3) -> None:
        try:
            frame = await self.next_frame(seconds)
        except TimeoutError:
            return
        raise AssertionError(f"expected nothing, got {frame}")

    async def closed(self, timeout: float = 5.0) -> bool:
        try:
            while True:
                async with asyncio.timeout(timeout):
                    await self.ws.recv()
        except ConnectionClosed:
            return True
        except TimeoutError:
            return False

    async def close(self) -> None:
        await self.ws.close()
