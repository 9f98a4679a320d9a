"""The fan-out interface between server nodes.

A broker carries opaque payloads (already-serialised JSON) on named channels. Each node
subscribes once per channel it has local listeners for and fans out to its own sessions, so a
payload crosses the broker once per node, never once per subscriber.
"""

from __future__ import annotations

import abc
from collections.abc import Callable

__all__ = ["Broker", "Handler", "ResyncHandler"]

# Called on the event loop for every payload on a channel; must not block (enqueue only).
Handler = Callable[[str, bytes], None]
# Called on the event loop after the broker lost payloads it cannot replay (it reconnected
# to its backend); must not block. The gateway catches its subscribers up from the database.
ResyncHandler = Callable[[], None]


class Broker(abc.ABC):
    """Publish/subscribe between nodes.

    ``publish`` raises :class:`ieum_chat.errors.BrokerError` when the payload could not be
    handed to the backend; callers log it (the message is already durable) and never report a
    failed send for it. ``subscribe``/``unsubscribe`` raise the same error.

    ``publish`` never waits: it returns without suspending its caller, whatever the backend
    is doing (one that talks to a server queues the payload, boundedly, and sends it from a
    task of its own). This node's handlers are called inside ``publish``, in the caller's
    task, and only queue frames. So the chat service publishes from its database writers,
    right after a commit, and a slow backend or subscriber never holds up the next commit.

    Delivery is at most once per handler and in publish order per publishing node; payloads
    may be lost while a backend is unreachable. A broker that lost some calls the resync
    handler once it is whole again, so that listeners catch up from the source of truth.
    """

    _resync: ResyncHandler | None = None

    def set_resync_handler(self, callback: ResyncHandler | None) -> None:
        """Call ``callback`` whenever payloads may have been lost (a backend reconnect).
        The in-process broker never loses any and never calls it."""
        self._resync = callback

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def publish(self, channel: str, payload: bytes) -> None: ...

    @abc.abstractmethod
    async def subscribe(self, channel: str, handler: Handler) -> None:
        """Deliver every later payload on ``channel`` to ``handler`` (once per handler)."""

    @abc.abstractmethod
    async def unsubscribe(self, channel: str, handler: Handler) -> None: ...

    @abc.abstractmethod
    async def ping(self) -> None:
        """Raise BrokerError when the backend is unreachable."""
