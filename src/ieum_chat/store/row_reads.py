"""Reads of one statement, the store's hottest: a history page with its stream position, the
two of a member's room, a page of messages. On PostgreSQL such a read runs on a raw connection
(``asyncpg_pool``), as a batch is appended; elsewhere in a read transaction of the pool.

A named transaction costs the server more than its statement costs the database: SQLAlchemy's
pool checkout and return, its execution and result wrappers and the greenlet hops of
``run_sync`` took about 0.5 ms of a 1.0 ms history page on a slow machine (one statement, 51
rows; 0.5 ms on a raw connection). Here the statement is still written once, with
SQLAlchemy's Core (``messages``, ``routing``): it is compiled once for the dialect, and each
call sends its parameters to the statement asyncpg has prepared on the connection.

Rows are indexed by position, and both kinds (asyncpg ``Record``, SQLAlchemy ``Row``) take
slices: converters read columns by position (``records.message_from_row``).
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql import Select

if TYPE_CHECKING:
    from ieum_chat.store.asyncpg_pool import AsyncpgPool
    from ieum_chat.store.pool import DatabasePool

__all__ = ["Compiled", "RawRowReader", "RowReader", "TransactionRowReader", "rows_txn"]


class RowReader(abc.ABC):
    """Runs a read of one statement and returns its rows."""

    @abc.abstractmethod
    async def rows(
        self, desc: str, statement: Select[Any], params: Mapping[str, Any]
    ) -> Sequence[Sequence[Any]]:
        """The rows of ``statement`` with ``params`` (``desc`` names it in logs and errors)."""

    async def close(self) -> None:  # noqa: B027 - nothing to release unless overridden
        """Release what the reader holds of its own."""


class TransactionRowReader(RowReader):
    """In a read transaction of the pool (``DatabasePool.read_txn``)."""

    def __init__(self, db_pool: DatabasePool) -> None:
        self._db_pool = db_pool

    async def rows(
        self, desc: str, statement: Select[Any], params: Mapping[str, Any]
    ) -> Sequence[Sequence[Any]]:
        return await self._db_pool.read_txn(desc, rows_txn, statement, params)


def rows_txn(
    conn: Connection, statement: Select[Any], params: Mapping[str, Any]
) -> Sequence[Sequence[Any]]:
    """The rows of ``statement`` with ``params``, in the transaction of ``conn``."""
    return conn.execute(statement, dict(params)).all()


class Compiled:
    """A statement compiled once for ``dialect``: its SQL, with numbered parameters, and what
    each number takes. Refused (ValueError) unless the driver takes every parameter's value as
    it is (no bind processor, no list expanded into the SQL), so that a statement whose type
    would need converting fails where it is first compiled, not with wrong values."""

    __slots__ = ("defaults", "names", "sql")

    def __init__(self, statement: Select[Any], dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        for name, bind in compiled.binds.items():
            if bind.expanding or bind.type.dialect_impl(dialect).bind_processor(dialect):
                raise ValueError(f"parameter {name!r} cannot be sent as it is")
        self.sql = str(compiled)
        self.names: tuple[str, ...] = tuple(compiled.positiontup or ())
        # Values written into the statement (a LIMIT 1, say), which calls do not pass.
        self.defaults = {
            name: compiled.binds[name].value
            for name in self.names
            if not compiled.binds[name].required
        }

    def args(self, params: Mapping[str, Any]) -> list[Any]:
        """The values in parameter order (KeyError: a parameter the statement needs)."""
        defaults = self.defaults
        return [params[name] if name in params else defaults[name] for name in self.names]


class RawRowReader(RowReader):
    """On a raw connection of ``pool``: one round trip, a statement asyncpg has prepared."""

    def __init__(self, pool: AsyncpgPool, dialect: Dialect) -> None:
        self.pool = pool
        self._dialect = dialect
        # Bounded by the code: the statements read here are built once per shape (a few
        # dozen: a page's bounds, order and viewer, with the position or not; the room's).
        self._compiled: dict[Select[Any], Compiled] = {}

    async def rows(
        self, desc: str, statement: Select[Any], params: Mapping[str, Any]
    ) -> Sequence[Sequence[Any]]:
        return await self.pool.fetch(desc, *self._call(statement, params))

    def _call(self, statement: Select[Any], params: Mapping[str, Any]) -> list[Any]:
        compiled = self._compiled.get(statement)  # a statement hashes by its identity
        if compiled is None:
            compiled = self._compiled[statement] = Compiled(statement, self._dialect)
        return [compiled.sql, *compiled.args(params)]

    async def close(self) -> None:
        await self.pool.close()
