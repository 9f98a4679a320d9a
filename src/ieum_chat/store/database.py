"""The store as the application holds it: one object, every aggregate, one pool."""

from __future__ import annotations

from sqlalchemy import Connection, text

from ieum_chat.errors import StoreUnavailable
from ieum_chat.store.changes import ChangesStore
from ieum_chat.store.couples import CouplesStore
from ieum_chat.store.deliveries import DeliveriesStore
from ieum_chat.store.devices import DevicesStore
from ieum_chat.store.engines import create_engine, engine_for_url
from ieum_chat.store.lifecycle import LifecycleStore
from ieum_chat.store.maintenance import MaintenanceStore
from ieum_chat.store.messages import MessagesStore
from ieum_chat.store.pool import DatabasePool
from ieum_chat.store.routing import Reads
from ieum_chat.store.stream import StreamStore
from ieum_chat.store.uploads import UploadsStore
from ieum_chat.store.users import UsersStore

__all__ = ["Database"]


def _ping_txn(conn: Connection) -> None:
    conn.execute(text("SELECT 1"))


def _check_replica(url: str, replica_url: str) -> None:
    if engine_for_url(url).name != "postgresql":
        raise ValueError(
            "a read replica needs a PostgreSQL primary: the database URL is SQLite, "
            "which has no streaming replicas; leave the replica URL unset"
        )
    if engine_for_url(replica_url).name != "postgresql":
        raise ValueError(
            "the read replica URL must name a PostgreSQL streaming replica of the primary: "
            "postgresql://user@host/dbname"
        )


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
    async def connect(
        cls, url: str, *, pool_size: int = 10, replica_url: str | None = None
    ) -> Database:
        """Open a pool on ``url`` (any form :func:`normalize_url` accepts) and check that the
        database answers. ValueError for a URL we cannot use; StoreUnavailable if unreachable.
        The schema must already be migrated (:func:`ieum_chat.store.upgrade_schema`).

        ``replica_url``: a PostgreSQL streaming replica of a PostgreSQL ``url``, which a
        couple's history and stream reads go to when it has replayed far enough (``routing``);
        its connections open on first use, and a replica that cannot be reached sends those
        reads back to the primary, so it is not pinged here."""
        if pool_size < 1:
            raise ValueError(f"pool_size must be at least 1, got {pool_size}")
        if replica_url is not None:
            _check_replica(url, replica_url)
        policy, engine = create_engine(url, pool_size=pool_size)
        # PostgreSQL's append connections open on first use: here they would add nothing to ping.
        primary = DatabasePool(policy, engine, pool_size=pool_size)
        replica = None
        if replica_url is not None:
            replica_policy, replica_engine = create_engine(replica_url, pool_size=pool_size)
            replica = DatabasePool(replica_policy, replica_engine, pool_size=pool_size)
        database = cls(primary, Reads(primary, replica))
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

    @property
    def has_replica(self) -> bool:
        """Whether a read replica is configured."""
        return self.reads.replica is not None

    async def close(self) -> None:
        try:
            await self.reads.close()
        finally:
            await self.db_pool.close()

    async def ping(self) -> None:
        """``SELECT 1``; StoreUnavailable if the database does not answer."""
        try:
            await self.db_pool.read_txn("ping", _ping_txn)
        except StoreUnavailable:
            raise
        except Exception as error:
            raise StoreUnavailable(f"ping: {error}") from error
