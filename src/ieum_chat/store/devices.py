"""Devices that take push notifications, and each user's push preview setting.

A device is one of a user's phones or browsers, named by the id the app gives it: one user's
ids never touch another's. A provider token (or Web Push endpoint) names one device in the
whole service: registering it for a user removes it from anyone else (the phone changed
accounts), so a push never reaches the previous account's owner.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from ieum_chat.store.pool import AnyRow, SQLBaseStore
from ieum_chat.store.schema import deliveries, devices, users, utcnow

__all__ = [
    "DEVICE_ID_MAX",
    "LOCALE_MAX",
    "Device",
    "DevicesStore",
    "devices_txn",
    "previews_txn",
    "token_key",
]

DEVICE_ID_MAX = 100  # devices.device_id is VARCHAR(100)
LOCALE_MAX = 35  # devices.locale is VARCHAR(35) (a BCP 47 tag)


@dataclass(frozen=True, slots=True)
class Device:
    """One device of a user. Web Push: ``token`` is the subscription's endpoint and
    ``p256dh``/``auth`` its keys; FCM and APNs: the provider's token, no keys."""

    user_id: uuid.UUID
    device_id: str
    platform: str
    token: str
    p256dh: str | None = None
    auth: str | None = None
    locale: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


_COLUMNS = (
    devices.c.user_id,
    devices.c.device_id,
    devices.c.platform,
    devices.c.token,
    devices.c.p256dh,
    devices.c.auth,
    devices.c.locale,
    devices.c.created_at,
    devices.c.updated_at,
)


def token_key(token: str) -> str:
    """The indexed key of a token: SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def device_from_row(row: AnyRow) -> Device:
    return Device(
        row.user_id,
        row.device_id,
        row.platform,
        row.token,
        row.p256dh,
        row.auth,
        row.locale,
        row.created_at,
        row.updated_at,
    )


def _put_txn(conn: Connection, device: Device, now: datetime) -> tuple[Device, bool]:
    key = token_key(device.token)
    # The token now belongs to this (user, device) alone: the devices that had it go, and so
    # do the pushes owed to them (they carry the token: the previous owner's notifications
    # would reach the new one).
    displaced = conn.execute(
        delete(devices)
        .where(
            devices.c.token_key == key,
            ~and_(devices.c.user_id == device.user_id, devices.c.device_id == device.device_id),
        )
        .returning(devices.c.user_id, devices.c.device_id)
    ).all()
    for gone in displaced:
        _forget_deliveries(conn, gone.user_id, gone.device_id)
    values = {
        "platform": device.platform,
        "token": device.token,
        "token_key": key,
        "p256dh": device.p256dh,
        "auth": device.auth,
        "locale": device.locale,
        "updated_at": now,
    }
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    inserted = conn.execute(
        dialect.insert(devices)
        .values(user_id=device.user_id, device_id=device.device_id, created_at=now, **values)
        .on_conflict_do_nothing()
    ).rowcount
    if not inserted:
        conn.execute(
            update(devices)
            .where(devices.c.user_id == device.user_id, devices.c.device_id == device.device_id)
            .values(**values)
        )
    row = conn.execute(
        select(*_COLUMNS).where(
            devices.c.user_id == device.user_id, devices.c.device_id == device.device_id
        )
    ).one()
    return device_from_row(row), bool(inserted)


def devices_txn(conn: Connection, user_ids: Collection[uuid.UUID]) -> list[Device]:
    rows = conn.execute(
        select(*_COLUMNS)
        .where(devices.c.user_id.in_(list(user_ids)))
        .order_by(devices.c.user_id, devices.c.created_at, devices.c.device_id)
    )
    return [device_from_row(row) for row in rows]


def _forget_deliveries(conn: Connection, user_id: uuid.UUID, device_id: str) -> None:
    """Drop the pushes still owed to a device that is gone."""
    conn.execute(
        delete(deliveries).where(
            deliveries.c.user_id == user_id, deliveries.c.device_id == device_id
        )
    )


def _delete_txn(conn: Connection, user_id: uuid.UUID, device_id: str, token: str | None) -> bool:
    condition = and_(devices.c.user_id == user_id, devices.c.device_id == device_id)
    if token is not None:
        condition = and_(condition, devices.c.token_key == token_key(token))
    if not conn.execute(delete(devices).where(condition)).rowcount:
        return False
    _forget_deliveries(conn, user_id, device_id)
    return True


def _set_preview_txn(conn: Connection, user_id: uuid.UUID, on: bool) -> bool:
    changed = conn.execute(
        update(users)
        .where(users.c.id == user_id, users.c.deleted_at.is_(None))
        .values(push_preview=on)
    ).rowcount
    return bool(changed)


def previews_txn(conn: Connection, user_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, bool]:
    rows = conn.execute(
        select(users.c.id, users.c.push_preview).where(users.c.id.in_(list(user_ids)))
    )
    return {row.id: bool(row.push_preview) for row in rows}


class DevicesStore(SQLBaseStore):
    async def put_device(self, device: Device) -> tuple[Device, bool]:
        """Register or update ``device`` (its token leaves any other device, with the pushes
        owed to that one); the device as stored, and whether it is new."""
        return await self.db_pool.write_txn("put_device", _put_txn, device, utcnow())

    async def devices_of(self, user_ids: Collection[uuid.UUID]) -> list[Device]:
        """The devices of these users, each user's oldest first."""
        if not user_ids:
            return []
        return await self.db_pool.read_txn("devices_of", devices_txn, user_ids)

    async def delete_device(
        self, user_id: uuid.UUID, device_id: str, *, token: str | None = None
    ) -> bool:
        """Remove one device of ``user_id`` and the pushes still owed to it (in the same
        transaction); with ``token``, only while it still has that token (a provider said the
        token is dead: a newer registration stays). False when there was no such device."""
        return await self.db_pool.write_txn("delete_device", _delete_txn, user_id, device_id, token)

    async def set_push_preview(self, user_id: uuid.UUID, on: bool) -> bool:
        """Whether the user's pushes show sender and text; False if there is no such user."""
        return await self.db_pool.write_txn("set_push_preview", _set_preview_txn, user_id, on)

    async def push_previews(self, user_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, bool]:
        if not user_ids:
            return {}
        return await self.db_pool.read_txn("push_previews", previews_txn, user_ids)
