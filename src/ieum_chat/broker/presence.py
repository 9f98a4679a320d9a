"""Who is online, across every node: a user is online while at least one session is open.

USER_CONNECTED goes out on a user's first session and USER_DISCONNECTED on their last, so a
user with a phone and a browser flickers neither when one device reconnects, and a user whose
phone is on one node and browser on another is announced once, not once per node.
"""

from __future__ import annotations

import abc
import uuid
from collections.abc import Awaitable, Callable

__all__ = ["LocalPresence", "Presence", "SessionLimitReached", "TransitionHandler"]

# (user, online): a transition found outside opened()/closed() -- a dead node's sessions
# expired, or this node's counts were re-asserted after a backend outage.
TransitionHandler = Callable[[uuid.UUID, bool], Awaitable[None]]


class SessionLimitReached(Exception):
    """``opened(..., limit=n)`` found ``n`` sessions of the user open already: nothing was
    counted. (The chat service answers it with RATE_LIMITED.)"""


class Presence(abc.ABC):
    """Session counts per user.

    ``opened``/``closed`` return True exactly when that call moved the user's total across
    every node from 0 to 1 / from 1 to 0: one call in the whole service sees each transition.
    When the backend is unreachable they count locally, return False, and the transitions
    are found when it is back and go to the transition handler.

    ``opened(user, limit=n)`` checks and counts in one atomic step: it raises
    :class:`SessionLimitReached` (and counts nothing) when ``n`` sessions of the user are open
    already, on every node together (on this node alone while the backend is unreachable).
    Nothing else raises.
    """

    def __init__(self) -> None:
        self._local: dict[uuid.UUID, int] = {}
        self._on_transition: TransitionHandler | None = None

    def set_transition_handler(self, handler: TransitionHandler | None) -> None:
        self._on_transition = handler

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    @abc.abstractmethod
    async def opened(self, user_id: uuid.UUID, *, limit: int | None = None) -> bool:
        """A session of ``user_id`` opened on this node; True: the user came online.
        :class:`SessionLimitReached` when ``limit`` sessions are open already."""

    @abc.abstractmethod
    async def closed(self, user_id: uuid.UUID) -> bool:
        """A session of ``user_id`` closed on this node; True: the user went offline. A close
        without an open is ignored (False)."""

    @abc.abstractmethod
    async def online(self, user_id: uuid.UUID) -> bool:
        """Whether any node has a session of ``user_id`` (this node's view when the backend
        is unreachable)."""

    def session_count(self, user_id: uuid.UUID) -> int:
        """Sessions of ``user_id`` on this node (the per-node session limit counts these)."""
        return self._local.get(user_id, 0)

    def _count_open(self, user_id: uuid.UUID, limit: int | None = None) -> int:
        """Count one session more on this node, unless ``limit`` are counted here already."""
        count = self._local.get(user_id, 0) + 1
        if limit is not None and count > limit:
            raise SessionLimitReached(user_id)
        self._local[user_id] = count
        return count

    def _count_close(self, user_id: uuid.UUID) -> int | None:
        """The user's local count after the close, None when nothing was open."""
        count = self._local.get(user_id, 0)
        if count <= 0:
            return None
        if count == 1:
            del self._local[user_id]
            return 0
        self._local[user_id] = count - 1
        return count - 1


class LocalPresence(Presence):
    """One node: this process's counts are the whole truth."""

    async def opened(self, user_id: uuid.UUID, *, limit: int | None = None) -> bool:
        # No await between the check and the count: one step on the event loop.
        return self._count_open(user_id, limit) == 1

    async def closed(self, user_id: uuid.UUID) -> bool:
        return self._count_close(user_id) == 0

    async def online(self, user_id: uuid.UUID) -> bool:
        return user_id in self._local
