"""Every difference between SQLite and PostgreSQL that the store has to care about.

The rest of ``store`` is written once, in SQLAlchemy Core, against both; whatever one of the
two needs done differently is decided here and nowhere else:

- which async driver a URL gets (:func:`normalize_url`);
- how connections are set up (SQLite: WAL, foreign keys, busy timeout, and SQLAlchemy emitting
  ``BEGIN`` itself, because the ``sqlite3`` driver's legacy mode skips it before SELECT and DDL);
- how writers are serialised (SQLite allows one writer per file: one in-process
  :class:`asyncio.Lock` plus ``BEGIN IMMEDIATE`` against other processes; PostgreSQL takes row
  locks, ``SELECT ... FOR UPDATE``, which SQLAlchemy leaves out on SQLite);
- how to look up many composite keys at once so that an index answers it;
- which driver errors mean "the database cannot be reached" (``driver_errors`` maps them);
- how a batch of messages is appended (:meth:`BaseEngine.appender`; PostgreSQL: a few raw
  asyncpg connections running one statement, see ``appends`` and ``asyncpg_pool``; SQLite: a
  write transaction like every other, its statements on the driver's cursor);
- where write transactions run (:meth:`BaseEngine.writer`; SQLite: on a thread of their own,
  ``sqlite_writer.ThreadWriter``, each in one hop, with the WAL copied back to the database
  file beside them by ``sqlite_writer.WalCheckpointer``; PostgreSQL: on the engine).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Final

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import Text, bindparam, event, exc, func, make_url, pool, select, tuple_
from sqlalchemy import create_engine as sa_create_engine
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.sql.elements import ColumnElement

from ieum_chat.store.sqlite_writer import ThreadWriter, WalCheckpointer

if TYPE_CHECKING:
    from ieum_chat.store.appends import Appender
    from ieum_chat.store.asyncpg_pool import AsyncpgPool
    from ieum_chat.store.pool import DatabasePool
    from ieum_chat.store.row_reads import RowReader

__all__ = [
    "APPEND_SETTINGS",
    "LOOKUP_KEYS",
    "BaseEngine",
    "PostgresEngine",
    "SqliteEngine",
    "create_engine",
    "engine_for_url",
    "normalize_url",
]

# scheme as written by the operator -> the asyncio driver we run it on
_ASYNC_SCHEMES = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",  # Heroku-style URLs
    "postgresql+asyncpg": "postgresql+asyncpg",
}


# The parameter of BaseEngine.in_tuples: the keys looked up.
LOOKUP_KEYS = "lookup_keys"

# Execution option set on the connection of a write transaction; read by the SQLite BEGIN hook.
_WRITE_OPTION = "ieum_write"

# Every PostgreSQL connection, SQLAlchemy's and the raw pools': seconds to connect, seconds
# a statement may run, and how a connection waits for a free one.
_PG_CONNECT_TIMEOUT = 5
_PG_COMMAND_TIMEOUT = 30
_PG_POOL_TIMEOUT = 5
_PG_APPLICATION_NAME = "ieum-chat"

# The append pool's size is the engine's pool_size, but no more than this: each batch is one
# call, and the chat service commits with two writers; more callers queue for a connection.
_APPEND_CONNECTIONS_MAX = 4
# The read pool's likewise: a read of one statement holds its connection for one round trip,
# and the node's REST requests and resuming sessions share them.
_READ_CONNECTIONS_MAX = 8

# Keys that SQLAlchemy's asyncpg dialect reads from the URL for itself, not for asyncpg.connect.
_SQLALCHEMY_ONLY_ARGS = ("prepared_statement_cache_size", "prepared_statement_name_func")


def normalize_url(url: str) -> str:
    """Return ``url`` with the asyncio driver this project runs on.

    ``sqlite:///./x.db`` -> ``sqlite+aiosqlite:///./x.db``; ``postgresql://`` and ``postgres://``
    -> ``postgresql+asyncpg://``; URLs that already name those drivers are returned unchanged.
    Anything else raises :class:`ValueError` (the message never contains the password).
    """
    scheme, sep, rest = url.strip().partition("://")
    if not sep or not scheme:
        raise ValueError(
            "database URL must look like sqlite:///path/to/file.db or postgresql://user@host/dbname"
        )
    target = _ASYNC_SCHEMES.get(scheme.lower())
    if target is None:
        raise ValueError(
            f"unsupported database URL scheme {scheme!r}: use sqlite:///path/to/file.db "
            "(aiosqlite) or postgresql://user@host/dbname (asyncpg)"
        )
    normalized = f"{target}://{rest}"
    try:
        make_url(normalized)
    except exc.ArgumentError:
        raise ValueError(f"malformed database URL for scheme {scheme!r}") from None
    return normalized


class BaseEngine(abc.ABC):
    """What the store needs to know about one kind of database."""

    name: ClassVar[str]

    @abc.abstractmethod
    def engine_kwargs(self, *, pool_size: int) -> dict[str, Any]:
        """Extra arguments for :func:`create_async_engine`."""

    def install(self, engine: AsyncEngine) -> None:  # noqa: B027 - optional hook
        """Attach connection/transaction hooks to a freshly created engine."""

    def write_guard(self) -> contextlib.AbstractAsyncContextManager[object]:
        """Held around a whole write transaction, before a connection is checked out."""
        return contextlib.nullcontext()

    def write_options(self) -> dict[str, Any]:
        """Execution options for the connection of a write transaction."""
        return {_WRITE_OPTION: True}

    def read_options(self) -> dict[str, Any]:
        """Execution options for the connection of a read transaction (none: a transaction
        like a write's)."""
        return {}

    def writer(self, engine: AsyncEngine) -> ThreadWriter | None:
        """Where write transactions on ``engine``'s database run, when not on the engine
        itself (None)."""
        return None

    def in_tuples(self, columns: Sequence[ColumnElement[Any]]) -> ColumnElement[bool]:
        """``(columns) IN`` the keys of the parameter :data:`LOOKUP_KEYS`, in the form this
        database answers from an index on them: one statement for any number of keys (build
        it once), run with :meth:`tuple_keys`."""
        return tuple_(*columns).in_(bindparam(LOOKUP_KEYS, expanding=True))

    def tuple_keys(
        self, columns: Sequence[ColumnElement[Any]], keys: Sequence[tuple[Any, ...]]
    ) -> dict[str, Any]:
        """The parameters of :meth:`in_tuples` on ``columns`` for these keys."""
        return {LOOKUP_KEYS: list(keys)}

    @abc.abstractmethod
    def appender(self, db_pool: DatabasePool, *, pool_size: int) -> Appender:
        """How ``MessagesStore.append_messages`` stores a batch on this database."""

    def reader(self, db_pool: DatabasePool, *, pool_size: int) -> RowReader:
        """How ``DatabasePool.read_rows`` reads one statement on this database: in a read
        transaction of ``db_pool``."""
        from ieum_chat.store.row_reads import TransactionRowReader

        return TransactionRowReader(db_pool)

    def is_unavailable(self, error: BaseException) -> bool:
        """Whether ``error`` (SQLAlchemy's, or asyncpg's from a raw pool) says the
        database could not be reached (rather than refused)."""
        if isinstance(error, OSError | TimeoutError | exc.TimeoutError):
            return True
        if isinstance(error, exc.DBAPIError):
            if error.connection_invalidated or isinstance(error, exc.InterfaceError):
                return True
            return error.orig is not None and self._is_unavailable_orig(error.orig)
        return not isinstance(error, exc.SQLAlchemyError) and self._is_unavailable_orig(error)

    def _is_unavailable_orig(self, orig: BaseException) -> bool:
        return isinstance(orig, OSError | TimeoutError)


# A reading connection's page cache, sized for the root and inner pages of the indexes a read
# walks rather than their leaves.
_READER_CACHE_KIB = 256
# The WAL pages past which a commit checkpoints (see _install), the WalCheckpointer's bound.
_WAL_AUTOCHECKPOINT = 10000
# Reading connections of a file, at most. More do not read faster: a SQLite read holds the
# GIL for most of its time. 32 concurrent tasks reading history pages got 435, 521 and 601
# pages/s from pools of 10, 4 and 2 (376, 405 and 478 in a second round), and 15,000
# sessions connected at 147/s with 4 against 201/s with 2. Each connection costs about
# 0.65 MB once used (its thread, SQLite's connection, its statements and its page cache).
_READERS_MAX = 2


class SqliteEngine(BaseEngine):
    name = "sqlite"

    def __init__(
        self,
        *,
        busy_timeout_ms: int = 5000,
        foreign_keys: bool = True,
        reader_cache_kib: int | None = _READER_CACHE_KIB,
    ) -> None:
        self._busy_timeout_ms = busy_timeout_ms
        self._foreign_keys = foreign_keys
        self._reader_cache_kib = reader_cache_kib  # None: SQLite's default
        # SQLite has one writer per file; queueing writers here instead of in SQLite's busy
        # handler keeps 'database is locked' out of normal operation.
        self._write_lock = asyncio.Lock()
        self._dialect = sqlite.dialect()

    def engine_kwargs(self, *, pool_size: int) -> dict[str, Any]:
        return {"pool_size": min(pool_size, _READERS_MAX), "max_overflow": 0}

    def install(self, engine: AsyncEngine) -> None:
        # The pool's connections of a file only read (its writes go to the writer thread).
        # SQLite gives each connection a page cache of its own, 2 MiB by default, and the
        # pool's ten fill theirs with copies of the same pages: while 15,000 idle sessions
        # connected they grew by 21 MB, 1.4 KB a session. Kept small, the pages a reader
        # misses come from the kernel's page cache of the file, which every connection shares.
        kib = self._reader_cache_kib
        # A negative cache_size counts KiB, a positive one pages.
        self._install(engine.sync_engine, () if kib is None else (f"PRAGMA cache_size=-{kib}",))

    def writer(self, engine: AsyncEngine) -> ThreadWriter | None:
        """A thread of its own with one connection, for a file (a memory database is one per
        connection: its writes stay on the engine)."""
        database = engine.url.database
        if not database or database == ":memory:" or database.startswith("file::memory:"):
            return None
        sync_url = engine.url.set(drivername="sqlite+pysqlite")
        sync = sa_create_engine(sync_url, poolclass=pool.StaticPool)
        self._install(sync)
        checkpoints = sa_create_engine(sync_url, poolclass=pool.StaticPool)
        self._install(checkpoints)
        return ThreadWriter(
            sync, self.write_options(), WalCheckpointer(checkpoints, _WAL_AUTOCHECKPOINT)
        )

    def _install(self, engine: Engine, extra_pragmas: Sequence[str] = ()) -> None:
        pragmas = [
            "PRAGMA journal_mode=WAL",
            # FULL, not NORMAL: a RECEIPT promises the message survives a power cut.
            "PRAGMA synchronous=FULL",
            f"PRAGMA busy_timeout={self._busy_timeout_ms}",
            f"PRAGMA foreign_keys={'ON' if self._foreign_keys else 'OFF'}",
            # A checkpoint every 10,000 WAL pages (about 40 MB), not 1,000: the pages every
            # commit touches (the couples' counters, the indexes' right edges) are copied back
            # to the database once per checkpoint, and a 12-message append took 3.1 ms and
            # 215 us of CPU a message at 1,000 against 2.4 ms and 174 us. On a file the
            # WalCheckpointer copies the pages beside the writer, and the WAL starts over
            # before this bound in most cycles. After a checkpoint the WAL file is cut back to
            # 64 MiB at most.
            f"PRAGMA wal_autocheckpoint={_WAL_AUTOCHECKPOINT}",
            "PRAGMA journal_size_limit=67108864",
            *extra_pragmas,
        ]

        def on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Take BEGIN away from the sqlite3 driver (see the SQLAlchemy SQLite dialect docs,
            # "Transactions with SQLite and the sqlite3 driver"); on_begin emits it instead.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            try:
                for pragma in pragmas:
                    cursor.execute(pragma)
            finally:
                cursor.close()

        def on_begin(conn: Connection) -> None:
            # IMMEDIATE takes the write lock up front, so a writer in another process makes us
            # wait in busy_timeout instead of failing at our first UPDATE.
            immediate = conn.get_execution_options().get(_WRITE_OPTION, False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        event.listen(engine, "connect", on_connect)
        event.listen(engine, "begin", on_begin)

    def write_guard(self) -> contextlib.AbstractAsyncContextManager[object]:
        return self._write_lock

    def in_tuples(self, columns: Sequence[ColumnElement[Any]]) -> ColumnElement[bool]:
        # SQLite scans the whole table for a row value IN (VALUES ...), but probes the index
        # when the list is a subquery. The keys travel as one JSON parameter (tuple_keys).
        each = func.json_each(bindparam(LOOKUP_KEYS, type_=Text())).table_valued("value")
        listed = select(*(func.json_extract(each.c.value, f"$[{i}]") for i in range(len(columns))))
        return tuple_(*columns).in_(listed)

    def tuple_keys(
        self, columns: Sequence[ColumnElement[Any]], keys: Sequence[tuple[Any, ...]]
    ) -> dict[str, Any]:
        # Each value in its stored form (Uuid -> 32 hex digits), as json_extract compares it.
        processors = self.stored_forms(columns)
        rows = [
            [
                value if proc is None else proc(value)
                for proc, value in zip(processors, key, strict=True)
            ]
            for key in keys
        ]
        return {LOOKUP_KEYS: json.dumps(rows)}

    def stored_forms(
        self, columns: Sequence[ColumnElement[Any]]
    ) -> list[Callable[[Any], Any] | None]:
        """Per column, what turns a Python value into the form SQLite stores (a Uuid's 32 hex
        digits, a DateTime's text), as SQLAlchemy binds it; None where the value goes as is.
        For statements run on the driver's cursor, and for keys compared inside SQL."""
        return [
            col.type.dialect_impl(self._dialect).bind_processor(self._dialect) for col in columns
        ]

    def appender(self, db_pool: DatabasePool, *, pool_size: int) -> Appender:
        """The append's statements in a named write transaction of ``db_pool``, on the
        driver's cursor (``appends.SqliteAppender``)."""
        from ieum_chat.store.appends import SqliteAppender

        return SqliteAppender(db_pool, self)

    def _is_unavailable_orig(self, orig: BaseException) -> bool:
        text = str(orig).lower()
        return super()._is_unavailable_orig(orig) or "unable to open database" in text


# What the append pool's connections set for the append statement and functions.
APPEND_SETTINGS: Final[Mapping[str, str]] = {
    # Each statement of the append functions must take a fresh snapshot (READ COMMITTED),
    # whatever the database's default isolation is.
    "default_transaction_isolation": "read committed",
    # The append statement is planned once per connection (asyncpg prepares it on first
    # use), for every batch after: a generic plan, not five custom ones first, and one that
    # reaches the couples through their primary key even if it is made while the table is
    # small (as the functions' own SET clauses ask for theirs).
    "plan_cache_mode": "force_generic_plan",
    "enable_seqscan": "off",
}


# What the read pool's connections set: each statement sees what was committed before it
# began (READ COMMITTED), whatever the database's default isolation is.
_READ_SETTINGS: Final[Mapping[str, str]] = {"default_transaction_isolation": "read committed"}


class PostgresEngine(BaseEngine):
    name = "postgresql"

    def engine_kwargs(self, *, pool_size: int) -> dict[str, Any]:
        return {
            "pool_size": pool_size,
            "max_overflow": pool_size,
            # No pre-ping (a round trip per checkout, ~10% of the write path): after a
            # database restart the first statement on a dead connection fails, SQLAlchemy
            # then invalidates the whole pool, and that one batch gets SEND_FAILED, which
            # clients retry with the same tempId.
            "pool_timeout": _PG_POOL_TIMEOUT,
            "connect_args": {
                "server_settings": {"application_name": _PG_APPLICATION_NAME},
                "timeout": _PG_CONNECT_TIMEOUT,
                "command_timeout": _PG_COMMAND_TIMEOUT,
            },
        }

    def read_options(self) -> dict[str, Any]:
        # A read runs its statements in autocommit: no BEGIN and COMMIT, two round trips of
        # the three a one-statement read took. Nothing is lost by it: at READ COMMITTED (the
        # append connections set it; the store's reads rely on nothing stronger) a
        # transaction gives its statements no common snapshot anyway, and each statement
        # sees at least what the one before it saw, in a transaction or not.
        return {"isolation_level": "AUTOCOMMIT"}

    def reader(self, db_pool: DatabasePool, *, pool_size: int) -> RowReader:
        """Reads of one statement on raw connections of a pool of their own (opened on first
        use), as the append's."""
        from ieum_chat.store.row_reads import RawRowReader

        pool = self._raw_pool(db_pool, _READ_SETTINGS, min(pool_size, _READ_CONNECTIONS_MAX))
        return RawRowReader(pool, db_pool.engine.dialect)

    def appender(self, db_pool: DatabasePool, *, pool_size: int) -> Appender:
        """One statement per batch (``appends.APPEND_NEW``), on a raw connection of a small
        pool of its own (opened on first use)."""
        from ieum_chat.store.appends import ServerAppender

        size = min(pool_size, _APPEND_CONNECTIONS_MAX)
        return ServerAppender(self._raw_pool(db_pool, APPEND_SETTINGS, size))

    def _raw_pool(
        self, db_pool: DatabasePool, settings: Mapping[str, str], size: int
    ) -> AsyncpgPool:
        from ieum_chat.store.asyncpg_pool import AsyncpgPool

        return AsyncpgPool(
            self.raw_connect_args(db_pool.engine, settings),
            size=size,
            acquire_timeout=_PG_POOL_TIMEOUT,
            is_unavailable=self.is_unavailable,
        )

    def raw_connect_args(self, engine: AsyncEngine, settings: Mapping[str, str]) -> dict[str, Any]:
        """``asyncpg.connect()`` arguments for a raw pool's connections to ``engine``'s
        database (the append's, the reads'): the engine's own, plus ``settings``, what the
        pool's statements rely on."""
        # The engine's dialect turns the URL into arguments (host, port, user, password,
        # database, query options such as ssl) exactly as for its own connections; and no
        # password is ever rendered into a DSN string.
        _, url_args = engine.dialect.create_connect_args(engine.url)
        for key in _SQLALCHEMY_ONLY_ARGS:
            url_args.pop(key, None)
        return {
            **url_args,
            "timeout": _PG_CONNECT_TIMEOUT,
            "command_timeout": _PG_COMMAND_TIMEOUT,
            "server_settings": {"application_name": _PG_APPLICATION_NAME, **settings},
        }

    def _is_unavailable_orig(self, orig: BaseException) -> bool:
        if super()._is_unavailable_orig(orig):
            return True
        # SQLAlchemy's asyncpg adapter keeps the asyncpg exception as __cause__ and its
        # SQLSTATE as .sqlstate, as asyncpg's own exceptions (the raw pools') do: class 08
        # is "connection exception", 57P0x "server going away", 3D000 "database does not
        # exist", 53300 "too many connections".
        sqlstate = getattr(orig, "sqlstate", None) or ""
        if sqlstate.startswith(("08", "57P0")) or sqlstate in {"3D000", "53300"}:
            return True
        # The raw pools' driver errors, classed as SQLAlchemy classes its InterfaceError
        # (see is_unavailable), so that the pools agree: a connection found closed, mostly.
        return isinstance(orig, asyncpg.InterfaceError)


def engine_for_url(url: str) -> BaseEngine:
    """The dialect policy for a (normalized or not) database URL."""
    name = make_url(normalize_url(url)).get_backend_name()
    if name == "sqlite":
        return SqliteEngine()
    return PostgresEngine()


def create_engine(
    url: str, *, pool_size: int = 10, for_migrations: bool = False
) -> tuple[BaseEngine, AsyncEngine]:
    """An async engine for ``url`` with the dialect's hooks installed.

    ``for_migrations``: no pool, and on SQLite no foreign-key enforcement (Alembic's batch mode
    rebuilds tables by copy, drop and rename, which enforcement would get in the way of).
    """
    normalized = normalize_url(url)
    policy = engine_for_url(normalized)
    if for_migrations:
        if isinstance(policy, SqliteEngine):
            # SQLite's default cache, which also bounds the sorts of an index being built.
            policy = SqliteEngine(foreign_keys=False, reader_cache_kib=None)
        kwargs: dict[str, Any] = {"poolclass": pool.NullPool}
    else:
        kwargs = policy.engine_kwargs(pool_size=pool_size)
    engine = create_async_engine(normalized, **kwargs)
    policy.install(engine)
    return policy, engine
