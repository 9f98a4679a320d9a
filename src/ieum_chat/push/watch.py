"""Which devices are looking at their couple right now, on any node.

A session that said which device it is (``x-device-id`` on CONNECT) and subscribed to its
couple's topic gets that couple's messages over the socket: its device needs no push for
them. The counts are the presence counts (``ieum_chat.broker``: one process, or every node
sharing a Redis, with dead nodes swept), kept under a key of their own per (couple, user,
device), so two sessions of one device (a reconnect overlapping the old socket) count twice
and the device stays watching until the last one ends.
"""

from __future__ import annotations

import uuid

from ieum_chat.broker import Presence, create_presence

__all__ = ["DeviceWatch"]

_NAMESPACE = uuid.UUID("0b5f7a7e-3c1d-4a8e-9f50-d7a4a3b6e2c9")


def watch_key(couple_id: uuid.UUID, user_id: uuid.UUID, device_id: str) -> uuid.UUID:
    return uuid.uuid5(_NAMESPACE, f"{couple_id}/{user_id}/{device_id}")


class DeviceWatch:
    def __init__(self, counts: Presence) -> None:
        self._counts = counts

    @classmethod
    def create(cls, redis_url: str | None, *, prefix: str, ttl: float) -> DeviceWatch:
        return cls(create_presence(redis_url, prefix=f"{prefix}watch:", ttl=ttl))

    async def start(self) -> None:
        await self._counts.start()

    async def close(self) -> None:
        await self._counts.close()

    async def opened(self, couple_id: uuid.UUID, user_id: uuid.UUID, device_id: str) -> None:
        await self._counts.opened(watch_key(couple_id, user_id, device_id))

    async def closed(self, couple_id: uuid.UUID, user_id: uuid.UUID, device_id: str) -> None:
        await self._counts.closed(watch_key(couple_id, user_id, device_id))

    async def watching(self, couple_id: uuid.UUID, user_id: uuid.UUID, device_id: str) -> bool:
        """Whether a session of this device is subscribed to the couple, on any node."""
        return await self._counts.online(watch_key(couple_id, user_id, device_id))
