"""The plan of a history page on a partitioned ``messages`` table: a throwaway PostgreSQL
database migrated and partitioned as ``ieum-chat migrate --partitions N`` does, filled with
200,000 messages over 1,000 couples (200 each), then ``EXPLAIN (ANALYZE, BUFFERS)`` of the
query behind ``GET /chat/rooms/{roomId}/messages`` for one couple's newest page as a member
sees it (50 messages, asked as 51 to know whether older ones exist; without those they hid).

    python -m bench.partition_plan                  # PostgreSQL on IEUM_TEST_PG_URL
    python -m bench.partition_plan --messages 200000 --couples 1000 --partitions 8

Prints the rows per partition and the plan: one partition scanned, through its index.
The database is dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from collections.abc import Sequence

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import Uuid, bindparam, text
from sqlalchemy.ext.asyncio import create_async_engine

from ieum_chat.store import normalize_url, upgrade_schema
from ieum_chat.store.messages import page_query
from ieum_chat.store.partitions import partition_messages

__all__ = ["explain_newest_page", "seed"]

ADMIN_URL = os.environ.get("IEUM_TEST_PG_URL", "postgresql://root@127.0.0.1:5432/test")

# Users, couples and every couple's messages in three statements (the append path would take
# minutes for 200,000 rows and is not what is shown here); seq 1..per couple, last_seq to match.
_USERS = """
INSERT INTO users (id, name) SELECT gen_random_uuid(), 'user ' || n FROM generate_series(1, :n) n
"""
_COUPLES = """
INSERT INTO couples (id, user1_id, user2_id, last_seq)
SELECT gen_random_uuid(), u.id, v.id, :per
FROM (SELECT id, row_number() OVER (ORDER BY id) AS r FROM users) AS u
JOIN (SELECT id, row_number() OVER (ORDER BY id) AS r FROM users) AS v ON v.r = u.r + 1
WHERE u.r % 2 = 1
"""
_MESSAGES = """
INSERT INTO messages (id, couple_id, sender_id, type, content, seq, is_read, created_at)
SELECT gen_random_uuid(), c.id, CASE WHEN n % 2 = 0 THEN c.user1_id ELSE c.user2_id END,
       'TEXT', 'message ' || n, n, n < :per - 5,
       TIMESTAMP '2024-01-01' + n * INTERVAL '1 minute'
FROM couples AS c CROSS JOIN generate_series(1, :per) AS n
"""


async def seed(url: str, couples: int, per_couple: int) -> tuple[uuid.UUID, uuid.UUID]:
    """Fill the database; returns one couple's id and one of its members'."""
    engine = create_async_engine(normalize_url(url))
    try:
        async with engine.begin() as conn:
            await conn.execute(text(_USERS), {"n": 2 * couples})
            await conn.execute(text(_COUPLES), {"per": per_couple})
            await conn.execute(text(_MESSAGES), {"per": per_couple})
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")  # VACUUM's need
            await conn.execute(text("VACUUM ANALYZE messages"))
            couple = (
                await conn.execute(text("SELECT id, user1_id FROM couples ORDER BY id LIMIT 1"))
            ).one()
    finally:
        await engine.dispose()
    return couple[0], couple[1]


async def explain_newest_page(
    url: str, couple_id: uuid.UUID, viewer_id: uuid.UUID, limit: int = 51
) -> str:
    """``EXPLAIN (ANALYZE, BUFFERS)`` of the couple's newest page as ``viewer_id`` sees it
    (without the messages they hid), the query the history route runs."""
    engine = create_async_engine(normalize_url(url))
    try:
        async with engine.connect() as conn:
            sql = str(
                page_query(couple_id, limit=limit, viewer_id=viewer_id)
                .bound()
                .compile(engine, compile_kwargs={"literal_binds": True})
            )
            await conn.execute(text(sql))  # warm: the plan shown is a page served from cache
            rows = await conn.execute(text("EXPLAIN (ANALYZE, BUFFERS) " + sql))
            return "\n".join(str(row[0]) for row in rows)
    finally:
        await engine.dispose()


async def _rows_per_partition(url: str, couple_id: uuid.UUID) -> tuple[list[str], str]:
    engine = create_async_engine(normalize_url(url))
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT tableoid::regclass::text, count(*), count(DISTINCT couple_id)"
                    " FROM messages GROUP BY 1 ORDER BY 1"
                )
            )
            lines = [f"  {name:<12} {n:>7} messages  {c:>4} couples" for name, n, c in rows]
            home = await conn.scalar(
                text(
                    "SELECT tableoid::regclass::text FROM messages WHERE couple_id = :c LIMIT 1"
                ).bindparams(bindparam("c", type_=Uuid())),
                {"c": couple_id},
            )
    finally:
        await engine.dispose()
    return lines, str(home)


async def _pg_admin(statement: str) -> None:
    conn = await asyncpg.connect(ADMIN_URL, timeout=5)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--couples", type=int, default=1000)
    parser.add_argument("--partitions", type=int, default=8)
    args = parser.parse_args(argv)
    per_couple = max(1, args.messages // args.couples)

    name = f"ieum_bench_{uuid.uuid4().hex[:10]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    url = f"{ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    try:
        upgrade_schema(url)
        asyncio.run(partition_messages(url, args.partitions))
        started = time.perf_counter()
        couple, viewer = asyncio.run(seed(url, args.couples, per_couple))
        total = per_couple * args.couples
        print(
            f"{total} messages over {args.couples} couples in {args.partitions} hash partitions"
            f" (seeded in {time.perf_counter() - started:.1f} s)"
        )
        lines, home = asyncio.run(_rows_per_partition(url, couple))
        print("\n".join(lines))
        print(f"\nnewest page of couple {couple} (stored in {home}), limit 51:")
        print(asyncio.run(explain_newest_page(url, couple, viewer)))
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
