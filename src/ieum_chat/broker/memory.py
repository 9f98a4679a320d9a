"""The in-process broker: one node, delivery by direct call."""

from __future__ import annotations

import logging

from ieum_chat.broker.base import Broker, Handler

__all__ = ["MemoryBroker"]

log = logging.getLogger(__name__)


class MemoryBroker(Broker):
    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = {}

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._handlers.clear()

    async def publish(self, channel: str, payload: bytes) -> None:
        for handler in tuple(self._handlers.get(channel, ())):
            try:
                handler(channel, payload)
            except Exception:
                # One faulty listener must not stop delivery to the others.
                log.exception("broker handler failed on %s", channel)

    async def subscribe(self, channel: str, handler: Handler) -> None:
        handlers = self._handlers.setdefault(channel, [])
        if handler not in handlers:
            handlers.append(handler)

    async def unsubscribe(self, channel: str, handler: Handler) -> None:
        handlers = self._handlers.get(channel)
        if handlers is None:
            return
        if handler in handlers:
            handlers.remove(handler)
        if not handlers:
            del self._handlers[channel]

    async def ping(self) -> None:
        return None

    def channel_count(self) -> int:
        return len(self._handlers)
