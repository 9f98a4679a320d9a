"""History pages deep in a long conversation: one couple with 100,000 messages (and a second
couple's traffic beside it), then 50-message pages at random cursors, timed through the store
and through ``GET /chat/rooms/{roomId}/messages`` on a real ``ieum-chat serve``, with as many
``GET /chat/room`` (the room's summary: unread count, last message) between them.

    python -m bench.history                       # PostgreSQL on IEUM_TEST_PG_URL (a throwaway DB)
    python -m bench.history --sqlite              # a SQLite file instead
    python -m bench.history --messages 100000 --pages 2000 --limit 50

Prints the plan of a deep page (EXPLAIN ANALYZE on PostgreSQL, EXPLAIN QUERY PLAN on SQLite)
and p50/p99 of each kind of page. Every request goes to 127.0.0.1; the run stops by itself.

The REST requests go over one kept-alive connection of the standard library's http.client,
the lightest client at hand: httpx added about 0.35 ms to the median request and more to its
tail. ``GET /healthz`` is timed beside them, as the floor the client and HTTP alone cost.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from ieum_chat.auth import issue_token
from ieum_chat.config import Settings
from ieum_chat.store import Couple, Database, normalize_url, upgrade_schema
from ieum_chat.store.messages import page_query

from ._servers import free_port, spawn_serve

__all__ = ["explain_page", "percentiles", "seed_history"]

ADMIN_URL = os.environ.get("IEUM_TEST_PG_URL", "postgresql://root@127.0.0.1:5432/test")
SECRET = "ieum-chat-bench-secret-0123456789-0123456789"

# One statement per dialect fills a couple's history with seq 1..n (the append path would
# take minutes for 100,000 rows and is not what is measured here).
_PG_FILL = """
INSERT INTO messages (id, couple_id, sender_id, type, content, seq, is_read, created_at)
SELECT gen_random_uuid(), CAST(:couple AS uuid),
       CASE WHEN n % 2 = 0 THEN CAST(:a AS uuid) ELSE CAST(:b AS uuid) END,
       'TEXT', 'message ' || n, n, n < :n - 20,
       TIMESTAMP '2024-01-01' + n * INTERVAL '1 second'
FROM generate_series(1, :n) AS n
"""
_SQLITE_FILL = """
WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < :n)
INSERT INTO messages (id, couple_id, sender_id, type, content, seq, is_read, created_at)
SELECT lower(hex(randomblob(16))), :couple, CASE WHEN n % 2 = 0 THEN :a ELSE :b END,
       'TEXT', 'message ' || n, n, n < :n - 20,
       datetime('2024-01-01', '+' || n || ' seconds')
FROM g
"""


async def seed_history(url: str, messages: int, *, neighbour: int = 20_000) -> Couple:
    """A migrated database at ``url`` gets two couples; the first gets ``messages`` messages,
    the second ``neighbour`` (so the index holds other couples' rows too). Returns the first."""
    db = await Database.connect(url)
    try:
        pairs = await db.seed_couples(2, name_prefix="bench")
        dialect = db.dialect
    finally:
        await db.close()
    engine = create_async_engine(normalize_url(url))
    try:
        async with engine.begin() as conn:
            for (couple, a, b), count in zip(pairs, (messages, neighbour), strict=True):
                if dialect == "postgresql":
                    ids = {"couple": str(couple.id), "a": str(a.id), "b": str(b.id)}
                    fill = _PG_FILL
                else:
                    ids = {"couple": couple.id.hex, "a": a.id.hex, "b": b.id.hex}
                    fill = _SQLITE_FILL
                await conn.execute(text(fill), {**ids, "n": count})
                await conn.execute(
                    text("UPDATE couples SET last_seq = :n WHERE id = :id"),
                    {"n": count, "id": ids["couple"]},
                )
            await conn.execute(text("ANALYZE"))
    finally:
        await engine.dispose()
    return pairs[0][0]


async def explain_page(url: str, couple_id: uuid.UUID, before: int, limit: int = 51) -> str:
    """The plan of the history query the REST endpoint runs (``limit`` = page size + 1, to
    know whether more exist), executed on PostgreSQL."""
    engine = create_async_engine(normalize_url(url))
    try:
        async with engine.connect() as conn:
            query = page_query(couple_id, before_seq=before, limit=limit).bound()
            sql = str(query.compile(engine, compile_kwargs={"literal_binds": True}))
            if conn.dialect.name == "postgresql":
                rows = await conn.execute(text("EXPLAIN (ANALYZE, BUFFERS) " + sql))
                return "\n".join(str(row[0]) for row in rows)
            rows = await conn.execute(text("EXPLAIN QUERY PLAN " + sql))
            return "\n".join(str(row[3]) for row in rows)
    finally:
        await engine.dispose()


def percentiles(samples_ms: Sequence[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)
    cuts = statistics.quantiles(ordered, n=100, method="inclusive")
    return {"p50": cuts[49], "p99": cuts[98], "max": ordered[-1], "n": float(len(ordered))}


def _cursors(messages: int, pages: int, seed: int = 7) -> list[int | None]:
    rng = random.Random(seed)
    return [None if i % 10 == 0 else rng.randint(2, messages + 1) for i in range(pages)]


async def _time_store(url: str, couple_id: uuid.UUID, cursors: list[int | None], limit: int) -> Any:
    db = await Database.connect(url)
    try:
        for cursor in cursors[:20]:  # warm the pool and the cache
            await db.get_messages(couple_id, before_seq=cursor, limit=limit + 1)
        samples = []
        for cursor in cursors:
            start = time.perf_counter()
            await db.get_messages(couple_id, before_seq=cursor, limit=limit + 1)
            samples.append((time.perf_counter() - start) * 1000)
        return percentiles(samples)
    finally:
        await db.close()


def _time_rest(
    url: str, couple: Couple, cursors: list[int | None], limit: int
) -> dict[str, dict[str, float]]:
    """p50/p99/max of the history pages at ``cursors``, of as many ``GET /chat/room`` and of
    as many ``GET /healthz``, the three kinds of request taking turns, on one
    ``ieum-chat serve``."""
    port = free_port()
    env = {**os.environ, "IEUM_DATABASE_URL": url, "IEUM_JWT_SECRET": SECRET}
    log = tempfile.NamedTemporaryFile(prefix="bench-history-", suffix=".log", delete=False)  # noqa: SIM115
    server = spawn_serve(env, port, log)
    token = issue_token(Settings(jwt_secret=SECRET), couple.user1_id, ttl=3600)
    client = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if _get(client, "/healthz", {}) == 200:
                    break
            except OSError:
                client.close()
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError(f"the server did not start; see {log.name}")
            time.sleep(0.1)
        headers = {"Authorization": f"Bearer {token}"}
        path = f"/chat/rooms/{couple.id}/messages?limit={limit}"

        def requests(cursor: int | None) -> list[tuple[str, dict[str, str]]]:
            """The three requests of one turn: a page, the room, the floor."""
            page = path if cursor is None else f"{path}&before={cursor}"
            return [(page, headers), ("/chat/room", headers), ("/healthz", {})]

        for cursor in cursors[:20]:
            for target, sent in requests(cursor):
                _ok(client, target, sent)
        series: dict[str, list[float]] = {
            "REST history page": [],
            "REST GET /chat/room": [],
            "GET /healthz (floor)": [],
        }
        for cursor in cursors:
            for samples, (target, sent) in zip(series.values(), requests(cursor), strict=True):
                start = time.perf_counter()
                _ok(client, target, sent)
                samples.append((time.perf_counter() - start) * 1000)
        return {label: percentiles(samples) for label, samples in series.items()}
    finally:
        client.close()
        server.terminate()
        server.wait(timeout=20)
        log.close()
        Path(log.name).unlink(missing_ok=True)


def _get(client: http.client.HTTPConnection, path: str, headers: dict[str, str]) -> int:
    client.request("GET", path, headers=headers)
    response = client.getresponse()
    response.read()
    return response.status


def _ok(client: http.client.HTTPConnection, path: str, headers: dict[str, str]) -> None:
    status = _get(client, path, headers)
    if status != 200:
        raise RuntimeError(f"GET {path} answered {status}")


async def _pg_admin(statement: str) -> None:
    conn = await asyncpg.connect(ADMIN_URL, timeout=5)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--pages", type=int, default=2000)
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--sqlite", action="store_true", help="a SQLite file, not PostgreSQL")
    args = parser.parse_args(argv)

    name = f"ieum_bench_{uuid.uuid4().hex[:10]}"
    workdir = Path(tempfile.mkdtemp(prefix="ieum-bench-"))
    if args.sqlite:
        url = f"sqlite:///{workdir / 'bench.db'}"
    else:
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
        url = f"{ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    try:
        upgrade_schema(url)
        started = time.perf_counter()
        couple = asyncio.run(seed_history(url, args.messages))
        print(f"seeded {args.messages} messages in {time.perf_counter() - started:.1f} s")
        deep = max(2, args.messages // 100)
        print(f"\nplan of a page before seq {deep} (limit {args.limit} + 1):")
        print(asyncio.run(explain_page(url, couple.id, deep, args.limit + 1)))
        cursors = _cursors(args.messages, args.pages)
        store = asyncio.run(_time_store(url, couple.id, cursors, args.limit))
        rest = _time_rest(url, couple, cursors, args.limit)
        print(f"\n{args.pages} pages of {args.limit}, random cursors (1 in 10 the newest page):")
        for label, figures in (("store get_messages", store), *rest.items()):
            print(
                f"  {label:<24} p50 {figures['p50']:6.2f} ms   p99 {figures['p99']:6.2f} ms"
                f"   max {figures['max']:6.2f} ms"
            )
    finally:
        if not args.sqlite:
            asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        for path in workdir.iterdir():
            path.unlink()
        workdir.rmdir()


if __name__ == "__main__":
    main()
