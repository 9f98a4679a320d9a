"""The sessions of one SockJS service and the handler tasks they run, all owned here."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from ._channel import Accept, Channel, Handler, SessionInfo
from ._errors import RemoteProtocolError
from ._options import SockJSOptions

__all__ = ["SessionRegistry"]

log = logging.getLogger(__name__)


class SessionRegistry:
    """Polling and streaming sessions by id, plus WebSocket sessions (which have no entry:
    SockJS 0.3 lets two WebSockets share one session id). At most ``max_sessions`` of both
    live at once."""

    def __init__(self, options: SockJSOptions) -> None:
        self._options = options
        self._sessions: dict[str, Channel] = {}
        self._live: set[Channel] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._live)

    def get(self, session_id: str) -> Channel | None:
        return self._sessions.get(session_id)

    def create(
        self, info: SessionInfo, handler: Handler | Accept, *, listed: bool = True
    ) -> Channel:
        """A new session; ``listed`` ones are found again by id. Raises `RemoteProtocolError`
        (503) when the service is full."""
        if len(self._live) >= self._options.max_sessions:
            raise RemoteProtocolError("Too many sessions.", status=503)
        channel = Channel(info, handler, self._options, spawn=self.spawn, on_gone=self._gone)
        self._live.add(channel)
        if listed and info.session_id is not None:
            self._sessions[info.session_id] = channel
        return channel

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    async def aclose(self) -> None:
        """End every session and cancel the handlers still running (server shutdown)."""
        for channel in list(self._live):
            channel.cancel()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _gone(self, channel: Channel) -> None:
        self._live.discard(channel)
        sid = channel.info.session_id
        if sid is not None and self._sessions.get(sid) is channel:
            del self._sessions[sid]

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("sockjs task %s failed", task.get_name(), exc_info=task.exception())
