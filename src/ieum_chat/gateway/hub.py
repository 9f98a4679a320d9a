"""This node's fan-out: one broker subscription per couple channel with local listeners.

The broker hands each payload to the hub once; the hub unpacks the envelope once and calls
every local listener with the same body bytes (no per-subscriber JSON work).
"""

from __future__ import annotations

import logging
import uuid
from typing import Protocol

from ieum_chat.broker import Broker
from ieum_chat.chat.envelope import unpack

__all__ = ["Hub", "Listener"]

log = logging.getLogger(__name__)


class Listener(Protocol):
    def deliver(self, seq: int, body: bytes, audience: uuid.UUID | None = None) -> None:
        """Called on the event loop; must only enqueue. ``audience``: the one member whose
        sessions may see it (None: every member's)."""


class Hub:
    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        # A list per channel, not a set or a dict: a couple's channel has a few listeners
        # (its members' sessions), and an idle session's share of a list is 70 bytes less.
        self._listeners: dict[str, list[Listener]] = {}
        # Bound once: the broker keeps the handler it is given for every channel, and each
        # access to self._on_payload would make a new method object (64 bytes a couple).
        self._handler = self._on_payload

    async def add(self, channel: str, listener: Listener) -> None:
        listeners = self._listeners.get(channel)
        if listeners is None:
            listeners = self._listeners[channel] = [listener]
            try:
                await self._broker.subscribe(channel, self._handler)
            except BaseException:
                if listener in listeners:
                    listeners.remove(listener)
                if not listeners:
                    self._listeners.pop(channel, None)
                raise
        elif listener not in listeners:
            listeners.append(listener)

    async def remove(self, channel: str, listener: Listener) -> None:
        listeners = self._listeners.get(channel)
        if listeners is None or listener not in listeners:
            return
        listeners.remove(listener)
        if not listeners:
            del self._listeners[channel]
            await self._broker.unsubscribe(channel, self._handler)

    def _on_payload(self, channel: str, payload: bytes) -> None:
        listeners = self._listeners.get(channel)
        if not listeners:
            return
        try:
            seq, audience, body = unpack(payload)
        except ValueError:
            log.error("dropped a malformed payload on %s", channel)
            return
        for listener in tuple(listeners):
            listener.deliver(seq, body, audience)

    def listener_count(self) -> int:
        return sum(len(v) for v in self._listeners.values())
