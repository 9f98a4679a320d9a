"""Fan-out backends, chosen by URL scheme and imported lazily."""

from __future__ import annotations

from ieum_chat.broker.base import Broker, Handler

__all__ = ["Broker", "Handler", "create_broker"]


def create_broker(url: str | None) -> Broker:
    """``None`` or ``memory://``: the in-process broker."""
    if url is None or url.startswith("memory:"):
        from ieum_chat.broker.memory import MemoryBroker

        return MemoryBroker()
    scheme = url.split(":", 1)[0]
    raise ValueError(f"unsupported broker URL scheme {scheme!r} (expected memory://)")
