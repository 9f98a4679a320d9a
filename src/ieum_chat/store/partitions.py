"""Hash-partitioning ``messages`` by ``couple_id`` on PostgreSQL (``ieum-chat migrate
--partitions N``), a step run after the migrations rather than a migration of its own: the
number of partitions is the operator's choice, and an unpartitioned database stays a valid head.

The table becomes ``PARTITION BY HASH (couple_id)`` with partitions ``messages_p0`` ..
``messages_p{N-1}`` (``MODULUS N, REMAINDER i``). A couple's messages all live in one
partition, so every query that names the couple (history pages, resume, tempId lookups, read
marks, unread counts, the append function's probes) is pruned to that partition and its indexes.

What partitioning asks of the schema, and what is done about it:

- Every primary key and unique constraint of a partitioned table must contain the partition key.
  ``uq_messages_couple_seq`` and ``uq_messages_couple_sender_temp`` already do; the primary key
  on ``id`` becomes ``PRIMARY KEY (id, couple_id)`` (``id`` first, so that a lookup by id alone
  still probes one index per partition rather than scanning). ``id`` is then unique per couple
  in the database, and unique overall because the server draws it (``records.new_message_id``,
  a version 7 UUID: the time in milliseconds and 74 random bits); no client chooses it.
- A foreign key to ``messages`` would have to name a unique key of it, hence ``couple_id``
  too. No table has one: ``messages.reply_to_id``, ``message_events.message_id`` and
  ``message_hides.message_id`` are plain columns (a quoted or reacted-to message may be erased
  without cascading), and the append function and the change batches check under the couple's
  counter lock that a message they name exists in that couple. The conversion refuses a
  database where something does reference ``messages``, rather than drop the reference.
- Foreign keys from ``messages`` (to ``couples``, ``users``), check constraints and plain
  indexes are recreated as they were, by name, from the catalog.

The conversion runs in one transaction holding ``ACCESS EXCLUSIVE`` on ``messages``: rename the
table aside, create the partitioned table like it, copy the rows, drop the old table, recreate
the keys, constraints and indexes, ``ANALYZE``. A failure leaves the database as it was.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ieum_chat.errors import StoreError
from ieum_chat.store.driver_errors import map_driver_errors
from ieum_chat.store.engines import PostgresEngine, create_engine, engine_for_url

__all__ = [
    "MAX_PARTITIONS",
    "PartitionRefused",
    "Partitioning",
    "message_partitions",
    "partition_messages",
]

# A bound, not a recommendation: each partition is a table with six indexes.
MAX_PARTITIONS = 1024
_KEY = "couple_id"
_ASIDE = "messages_unpartitioned"


class PartitionRefused(StoreError):
    """The database cannot be partitioned as asked (already otherwise, or a shape we keep)."""


@dataclass(frozen=True)
class Partitioning:
    """What :func:`partition_messages` found or did."""

    partitions: int
    converted: bool  # False: the table was already partitioned so
    rows: int  # rows copied (0 when not converted)


def _require_postgresql(url: str) -> None:
    if not isinstance(engine_for_url(url), PostgresEngine):
        raise ValueError("partitioning needs PostgreSQL: SQLite has no table partitioning")


async def message_partitions(url: str) -> int | None:
    """How many hash partitions on ``couple_id`` ``messages`` has; None when unpartitioned.

    PartitionRefused when it is partitioned some other way.
    """
    _require_postgresql(url)
    policy, engine = create_engine(url, for_migrations=True)
    try:
        with map_driver_errors("partition", policy.is_unavailable):
            async with engine.connect() as conn:
                return await _current(conn)
    finally:
        await engine.dispose()


async def partition_messages(url: str, partitions: int) -> Partitioning:
    """Hash-partition ``messages`` by ``couple_id`` into ``partitions`` tables, in place.

    The schema must already be migrated. Idempotent for the same count; PartitionRefused for a
    table already partitioned otherwise (a different count, key or strategy: converting
    between counts is not supported) or one another table's foreign key references. ValueError
    on SQLite or for a count outside 2..MAX_PARTITIONS; StoreUnavailable / StoreError as the
    store's other operations.
    """
    _require_postgresql(url)
    if not 2 <= partitions <= MAX_PARTITIONS:
        raise ValueError(f"partitions must be between 2 and {MAX_PARTITIONS}: {partitions}")
    policy, engine = create_engine(url, for_migrations=True)
    try:
        with map_driver_errors("partition", policy.is_unavailable):
            async with engine.begin() as conn:
                await conn.execute(text("SET LOCAL lock_timeout = '30s'"))
                if await conn.scalar(text("SELECT to_regclass('messages')")) is None:
                    raise StoreError("no messages table: run the migrations first")
                await conn.execute(text("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE"))
                current = await _current(conn)
                if current == partitions:
                    return Partitioning(partitions, converted=False, rows=0)
                if current is not None:
                    raise PartitionRefused(
                        f"messages is already hash-partitioned into {current} partitions;"
                        f" changing it to {partitions} is not supported"
                    )
                rows = await _convert(conn, partitions)
                return Partitioning(partitions, converted=True, rows=rows)
    finally:
        await engine.dispose()


async def _current(conn: AsyncConnection) -> int | None:
    row = (
        await conn.execute(
            text(
                """
                SELECT pt.partstrat::text, pt.partnatts, a.attname, pg_get_partkeydef(pt.partrelid)
                FROM pg_partitioned_table AS pt
                LEFT JOIN pg_attribute AS a
                  ON a.attrelid = pt.partrelid AND a.attnum = pt.partattrs[0]
                WHERE pt.partrelid = to_regclass('messages')
                """
            )
        )
    ).first()
    if row is None:
        return None
    strategy, keys, column, definition = row
    if (strategy, keys, column) != ("h", 1, _KEY):
        raise PartitionRefused(f"messages is partitioned by {definition}, not HASH ({_KEY})")
    bounds = [
        str(bound)
        for bound in (
            await conn.execute(
                text(
                    "SELECT pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits AS i"
                    " JOIN pg_class AS c ON c.oid = i.inhrelid"
                    " WHERE i.inhparent = to_regclass('messages')"
                )
            )
        ).scalars()
    ]
    count = len(bounds)
    expected = {f"FOR VALUES WITH (modulus {count}, remainder {i})" for i in range(count)}
    if set(bounds) != expected:
        raise PartitionRefused(f"messages has partitions other than MODULUS {count}: {bounds}")
    return count


async def _convert(conn: AsyncConnection, partitions: int) -> int:
    """The conversion proper, inside the caller's transaction (``messages`` locked)."""
    await _refuse_references(conn)
    constraints = await _constraints(conn)
    indexes = await _indexes(conn)

    await conn.execute(text(f"ALTER TABLE messages RENAME TO {_ASIDE}"))
    await conn.execute(
        text(
            f"CREATE TABLE messages (LIKE {_ASIDE} INCLUDING DEFAULTS INCLUDING GENERATED"
            " INCLUDING STORAGE INCLUDING COMPRESSION INCLUDING COMMENTS)"
            f" PARTITION BY HASH ({_KEY})"
        )
    )
    for remainder in range(partitions):
        await conn.execute(
            text(
                f"CREATE TABLE messages_p{remainder} PARTITION OF messages"
                f" FOR VALUES WITH (MODULUS {partitions}, REMAINDER {remainder})"
            )
        )
    # LIKE keeps the column order, so the rows copy as they are.
    copied = await conn.execute(text(f"INSERT INTO messages SELECT * FROM {_ASIDE}"))
    await conn.execute(text(f"DROP TABLE {_ASIDE}"))
    # The old table's names are free again: the keys first, the plain indexes last.
    for name, definition in constraints:
        await conn.execute(text(f'ALTER TABLE messages ADD CONSTRAINT "{name}" {definition}'))
    for definition in indexes:
        await conn.execute(text(definition))
    await conn.execute(text("ANALYZE messages"))
    return int(copied.rowcount)


async def _refuse_references(conn: AsyncConnection) -> None:
    referencing = (
        await conn.execute(
            text(
                "SELECT conrelid::regclass::text || '.' || conname FROM pg_constraint"
                " WHERE confrelid = 'messages'::regclass AND conrelid <> confrelid"
                " ORDER BY 1"
            )
        )
    ).scalars()
    names = list(referencing)
    if names:
        raise PartitionRefused(
            "foreign keys reference messages, which a partitioned table can only take on a"
            f" key that includes {_KEY}: {', '.join(names)}"
        )
    triggers = list(
        (
            await conn.execute(
                text(
                    "SELECT tgname FROM pg_trigger"
                    " WHERE tgrelid = 'messages'::regclass AND NOT tgisinternal ORDER BY 1"
                )
            )
        ).scalars()
    )
    if triggers:
        raise PartitionRefused(f"messages has triggers the conversion would not keep: {triggers}")


async def _constraints(conn: AsyncConnection) -> list[tuple[str, str]]:
    """``(name, definition)`` of each constraint of ``messages``, in the order to recreate
    them; the primary key gains ``couple_id``, a unique key without it is refused."""
    rows = (
        await conn.execute(
            text(
                """
                SELECT c.conname, c.contype::text, pg_get_constraintdef(c.oid),
                       array(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY AS k (n, o)
                             JOIN pg_attribute AS a
                               ON a.attrelid = c.conrelid AND a.attnum = k.n
                             ORDER BY k.o)
                FROM pg_constraint AS c
                WHERE c.conrelid = 'messages'::regclass
                ORDER BY position(c.contype IN 'pucf'), c.conname
                """
            )
        )
    ).all()
    made: list[tuple[str, str]] = []
    for name, kind, found, columns in rows:
        keys = [str(column) for column in columns or []]
        definition = str(found)
        if kind == "p" and _KEY not in keys:
            definition = f"PRIMARY KEY ({', '.join(_quoted(k) for k in [*keys, _KEY])})"
        elif kind == "u" and _KEY not in keys:
            raise PartitionRefused(
                f"unique constraint {name} of messages does not include {_KEY}: {definition}"
            )
        elif kind not in "pucf":
            raise PartitionRefused(
                f"messages has a constraint the conversion would not keep: {name}"
            )
        made.append((str(name), definition))
    return made


async def _indexes(conn: AsyncConnection) -> list[str]:
    """``CREATE INDEX`` statements of the indexes not behind a constraint (they name
    ``messages``, which is the partitioned table by the time they run)."""
    rows = (
        await conn.execute(
            text(
                f"""
                SELECT i.relname, pg_get_indexdef(x.indexrelid), x.indisunique,
                       EXISTS (SELECT 1 FROM pg_attribute AS a
                               WHERE a.attrelid = x.indrelid AND a.attname = '{_KEY}'
                                 AND a.attnum = ANY (x.indkey))
                FROM pg_index AS x
                JOIN pg_class AS i ON i.oid = x.indexrelid
                WHERE x.indrelid = 'messages'::regclass
                  AND NOT EXISTS (SELECT 1 FROM pg_constraint AS c
                                  WHERE c.conindid = x.indexrelid
                                    AND c.conrelid = x.indrelid)
                ORDER BY i.relname
                """
            )
        )
    ).all()
    made: list[str] = []
    for name, definition, unique, has_key in rows:
        if unique and not has_key:
            raise PartitionRefused(f"unique index {name} of messages does not include {_KEY}")
        made.append(str(definition))
    return made


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
