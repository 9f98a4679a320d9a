"""Who is online: a user is online while at least one of their sessions is open, on any node.

USER_CONNECTED goes out on a user's first session and USER_DISCONNECTED on their last, so a
user with a phone and a browser flickers neither when one device reconnects. The counting
backends live in :mod:`ieum_chat.broker` (they are shared between nodes like the fan-out):
:class:`LocalPresence` for one process, ``RedisPresence`` for every node sharing a Redis.
"""

from __future__ import annotations

from ieum_chat.broker import LocalPresence, Presence, TransitionHandler, create_presence

__all__ = ["LocalPresence", "Presence", "TransitionHandler", "create_presence"]
