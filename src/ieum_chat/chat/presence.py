"""Who is online: a user is online while at least one of their sessions is open.

USER_CONNECTED goes out on a user's first session and USER_DISCONNECTED on their last, so a
user with a phone and a browser flickers neither when one device reconnects.
"""

from __future__ import annotations

import uuid

__all__ = ["LocalPresence"]


class LocalPresence:
    """Session counts of this process. Returns whether a change of state happened."""

    def __init__(self) -> None:
        self._sessions: dict[uuid.UUID, int] = {}

    def opened(self, user_id: uuid.UUID) -> bool:
        count = self._sessions.get(user_id, 0) + 1
        self._sessions[user_id] = count
        return count == 1

    def closed(self, user_id: uuid.UUID) -> bool:
        count = self._sessions.get(user_id, 0) - 1
        if count <= 0:
            self._sessions.pop(user_id, None)
            return count == 0
        self._sessions[user_id] = count
        return False

    def is_online(self, user_id: uuid.UUID) -> bool:
        return user_id in self._sessions

    def session_count(self, user_id: uuid.UUID) -> int:
        return self._sessions.get(user_id, 0)
