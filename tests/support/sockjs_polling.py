"""STOMP frames as SockJS messages, and a STOMP client over SockJS xhr-polling written out
by hand (for the in-process app and for a real server alike)."""

from __future__ import annotations

import asyncio
import json

import httpx

from ieum_chat.stomp import HEARTBEAT, Frame, FrameParser, serialize_frame

__all__ = ["PollingStomp", "connect_frame", "stomp"]


def stomp(command: str, headers: dict[str, str] | None = None, body: str = "") -> str:
    frame = Frame(command, tuple((headers or {}).items()), body.encode())
    return serialize_frame(frame, "1.2").decode()


def connect_frame(token: str | None = None) -> str:
    headers = {"accept-version": "1.2", "host": "ieum", "heart-beat": "0,0"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return stomp("CONNECT", headers)


class PollingStomp:
    """One SockJS session at ``/ws/chat/000/{session}``; ``query`` goes on every URL, as
    sockjs-client keeps the query string of the URL it was given."""

    def __init__(self, http: httpx.AsyncClient, session: str, query: str = "") -> None:
        self.http = http
        self.url = f"/ws/chat/000/{session}"
        self.query = query
        self.parser = FrameParser(max_frame_size=1 << 22)

    async def open(self) -> httpx.Response:
        return await self.http.post(f"{self.url}/xhr{self.query}")

    async def send(self, *frames: str, query: str | None = None) -> httpx.Response:
        body = json.dumps(list(frames)).encode()
        return await self.http.post(f"{self.url}/xhr_send{self._q(query)}", content=body)

    async def poll(self, query: str | None = None) -> httpx.Response:
        return await self.http.post(f"{self.url}/xhr{self._q(query)}")

    async def frame(self, timeout: float = 5.0) -> Frame:
        """The next STOMP frame (presence events and heart-beats skipped)."""
        async with asyncio.timeout(timeout):
            while True:
                item = self.parser.next_frame()
                if isinstance(item, Frame):
                    if b'"event":"USER_' not in item.body:
                        return item
                    continue
                if item is HEARTBEAT:
                    continue
                response = await self.poll()
                assert response.status_code == 200, response.text
                data = response.text.rstrip("\n")
                if data.startswith("a"):
                    for message in json.loads(data[1:]):
                        self.parser.receive_data(message.encode())
                elif data.startswith("c"):
                    raise ConnectionError(data)

    def _q(self, query: str | None) -> str:
        return self.query if query is None else query
