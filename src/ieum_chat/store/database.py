"""The store as the application holds it: one object, every aggregate, one pool."""

from __future__ import annotations

from sqlalchemy import Connection, text

from ieum_chat.errors import StoreUnavailable
from ieum_chat.store.changes import ChangesStore
from ieum_chat.store.couples import CouplesStore
from ieum_chat.store.deliveries import DeliveriesStore
from ieum_chat.store.devices import DevicesStore
from ieum_chat.store.engines import create_engine
from ieum_chat.store.lifecycle import LifecycleStore
from ieum_chat.store.maintenance import MaintenanceStore
from ieum_chat.store.messages import MessagesStore
from ieum_chat.store.pool import DatabasePool
from ieum_chat.store.stream import StreamStore
from ieum_chat.store.uploads import UploadsStore
from ieum_chat.store.users import UsersStore

__all__ = ["Database"]


def _ping_txn(conn: Connection) -> None:
    conn.execute(text("SELECT 1"))


class Database(
    UsersStore,
    CouplesStore,
    LifecycleStore,
    MessagesStore,
    ChangesStore,
    StreamStore,
    MaintenanceStore,
    DevicesStore,
    DeliveriesStore,
    UploadsStore,
):
    """SQLite or PostgreSQL, chosen by URL.

    Methods raise ``ValueError`` for arguments the database cannot hold (documented per
    method), :class:`~ieum_chat.errors.StoreUnavailable` when the database cannot be reached
    and :class:`~ieum_chat.errors.StoreError` for any other database failure.
    """

    @classmethod
    async def connect(cls, url: str, *, pool_size: int = 10) -> Database:
        """Open a pool on ``url`` (any form :func:`normalize_url` accepts) and check that the
        database answers. ValueError for a URL we cannot use; StoreUnavailable if unreachable.
        The schema must already be migrated (:func:`ieum_chat.store.upgrade_schema`)."""
        if pool_size < 1:
            raise ValueError(f"pool_size must be at least 1, got {pool_size}")
        policy, engine = create_engine(url, pool_size=pool_size)
        # PostgreSQL's append connections open on first use: here they would add nothing to ping.
        database = cls(DatabasePool(policy, engine, pool_size=pool_size))
        try:
            await database.ping()
        except BaseException:
            await database.close()
            raise
        return database

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.db_pool.dialect

    async def close(self) -> None:
        await self.db_pool.close()

    async def ping(self) -> None:
        """``SELECT 1``; StoreUnavailable if the database does not answer."""
        try:
            await self.db_pool.read_txn("ping", _ping_txn)
        except StoreUnavailable:
            raise
        except Exception as error:
            raise StoreUnavailable(f"ping: {error}") from error
