"""The hot queries are answered from indexes on both databases (no full scans)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import Select, Uuid, bindparam, text
from sqlalchemy.ext.asyncio import create_async_engine

from ieum_chat.store import Couple, Database, NewMessage, User, normalize_url
from ieum_chat.store.engines import engine_for_url
from ieum_chat.store.messages import dedup_query, page_query

CoupleFactory = Callable[[], Awaitable[tuple[Couple, User, User]]]
MessageFactory = Callable[..., NewMessage]


async def explain(url: str, query: Select[Any]) -> str:
    """The plan of ``query`` (bound values inlined), as one string."""
    engine = create_async_engine(normalize_url(url))
    try:
        async with engine.connect() as conn:
            sql = str(query.compile(engine, compile_kwargs={"literal_binds": True}))
            if conn.dialect.name == "postgresql":
                await conn.execute(text("ANALYZE messages"))
                rows = await conn.execute(text("EXPLAIN " + sql))
                return "\n".join(row[0] for row in rows)
            rows = await conn.execute(text("EXPLAIN QUERY PLAN " + sql))
            return "\n".join(row[3] for row in rows)
    finally:
        await engine.dispose()


async def full_scans_of_rows(url: str, plan: str) -> list[str]:
    """The plan's sequential scans of tables that hold rows. The planner reads a partition
    that is empty whole (it costs nothing): only a scan of stored rows is a full scan."""
    tables = re.findall(r"Seq Scan on (\w+)", plan)
    if not tables:
        return []
    engine = create_async_engine(normalize_url(url))
    try:
        async with engine.connect() as conn:
            return [
                table
                for table in tables
                if await conn.scalar(text(f"SELECT EXISTS (SELECT 1 FROM {table})"))
            ]
    finally:
        await engine.dispose()


async def test_temp_id_lookup_probes_the_unique_index(
    db: Database,
    migrated_url: str,
    make_couple: CoupleFactory,
    new_message: MessageFactory,
) -> None:
    couple, a, b = await make_couple()
    batch = [new_message(couple, a if i % 2 else b, temp_id=f"t{i}") for i in range(3000)]
    await db.append_messages(batch)
    keys = [(couple.id, a.id, "t1"), (couple.id, b.id, "t2"), (uuid.uuid4(), a.id, "t3")]
    lookup = dedup_query(engine_for_url(migrated_url), keys)
    plan = await explain(migrated_url, lookup.bound())
    # The constraint's index; on a partitioned table, each partition's (named after its columns).
    names = ("uq_messages_couple_sender_temp", "sqlite_autoindex_messages", "sender_id_temp_id_key")
    assert any(name in plan for name in names), plan
    assert await full_scans_of_rows(migrated_url, plan) == [], plan
    assert "SCAN messages" not in plan, plan


async def test_history_page_is_an_index_range_scan(
    db: Database, migrated_url: str, make_couple: CoupleFactory, new_message: MessageFactory
) -> None:
    couple, a, _ = await make_couple()
    other, c, _ = await make_couple()
    await db.append_messages([new_message(couple, a) for _ in range(2000)])
    await db.append_messages([new_message(other, c) for _ in range(2000)])
    plan = await explain(migrated_url, page_query(couple.id, before_seq=1000, limit=50).bound())
    assert "Seq Scan" not in plan, plan
    assert "SCAN messages" not in plan, plan
    assert "Sort" not in plan, plan  # the index order is the page order
    assert "TEMP B-TREE" not in plan, plan


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_history_page_on_20k_rows_uses_an_index_on_postgresql(
    db: Database, migrated_url: str, make_couple: CoupleFactory
) -> None:
    couples = [(await make_couple())[0] for _ in range(4)]
    fill = text(
        """
        INSERT INTO messages (id, couple_id, sender_id, type, content, seq, created_at)
        SELECT gen_random_uuid(), :couple, :sender, 'TEXT', 'x', n,
               TIMESTAMP '2024-01-01' + n * INTERVAL '1 second'
        FROM generate_series(1, 5000) AS n
        """
    ).bindparams(bindparam("couple", type_=Uuid()), bindparam("sender", type_=Uuid()))
    engine = create_async_engine(normalize_url(migrated_url))
    try:
        async with engine.begin() as conn:
            for couple in couples:
                await conn.execute(fill, {"couple": couple.id, "sender": couple.user1_id})
    finally:
        await engine.dispose()
    target = couples[0]
    plan = await explain(migrated_url, page_query(target.id, before_seq=2500, limit=50).bound())
    assert "Seq Scan" not in plan, plan
    assert "Index Scan Backward using uq_messages_couple_seq" in plan, plan
    page = await db.get_messages(target.id, before_seq=2500)
    assert [m.seq for m in page] == list(range(2499, 2449, -1))
