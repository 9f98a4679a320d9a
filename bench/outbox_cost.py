"""What an outbox would cost the send path, next to the cursor the delivery engine uses.

The engine derives pushes and webhooks from the committed streams (a cursor per couple), so
the append transaction is exactly what it is without push. The alternative, an outbox, writes
one row per message in the same transaction as the batch. This probe measures both on
PostgreSQL, alternating in one run: an append of the batches the chat's writers commit (a
call of ``ieum_append_messages_v5``, the store's path for a batch that repeats a tempId), and
the same call followed, in its transaction, by one outbox row per stored message (``INSERT
... SELECT FROM unnest``).

    python -m bench.outbox_cost                   # 50 couples, batches of 32, 4 x 8 s
    python -m bench.outbox_cost --batch 8 --rounds 6

Everything runs on 127.0.0.1 against a fresh database, dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from bench._servers import PG_ADMIN_URL, database_url, ieum_cli
from ieum_chat.store.appends import _APPEND_CALL
from ieum_chat.store.records import NEW_MESSAGE_FIELDS, NewMessage
from ieum_chat.store.schema import utcnow

__all__ = ["main"]

_OUTBOX = """
CREATE TABLE bench_outbox (
    id bigserial PRIMARY KEY, couple_id uuid NOT NULL, seq bigint NOT NULL,
    payload text, created_at timestamp NOT NULL
)"""
_OUTBOX_INSERT = (
    "INSERT INTO bench_outbox (couple_id, seq, created_at) "
    "SELECT c, s, now() FROM unnest($1::uuid[], $2::bigint[]) AS t(c, s)"
)


def _batch(couples: list[dict[str, str]], size: int, offset: int) -> list[NewMessage]:
    out = []
    for i in range(size):
        couple = couples[(offset + i) % len(couples)]
        out.append(
            NewMessage(
                id=uuid.uuid4(),
                couple_id=uuid.UUID(couple["couple"]),
                sender_id=uuid.UUID(couple["a"]),
                type="TEXT",
                content="x" * 32,
                image_url=None,
                temp_id=uuid.uuid4().hex[:16],
                created_at=utcnow(),
            )
        )
    return out


async def _writer(
    pool: Any, couples: list[dict[str, str]], *, size: int, outbox: bool, until: float, lane: int
) -> int:
    stored = 0
    offset = lane * 7919
    while time.monotonic() < until:
        batch = _batch(couples, size, offset)
        offset += size
        columns = [[getattr(m, name) for m in batch] for name in NEW_MESSAGE_FIELDS]
        async with pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(_APPEND_CALL, *columns)
            if outbox:
                await conn.execute(
                    _OUTBOX_INSERT, [r["couple_id"] for r in rows], [r["seq"] for r in rows]
                )
        stored += len(rows)
    return stored


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    name = f"ieum_outbox_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(PG_ADMIN_URL)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = database_url(PG_ADMIN_URL, name)
    try:
        ieum_cli(url, "migrate")
        couples = json.loads(ieum_cli(url, "seed", "--couples", str(args.couples)))
        pool = await asyncpg.create_pool(url, min_size=args.writers, max_size=args.writers)
        try:
            async with pool.acquire() as conn:
                await conn.execute(_OUTBOX)
            rates: dict[str, list[float]] = {"cursor": [], "outbox": []}
            for _ in range(args.rounds):
                for kind in ("cursor", "outbox"):
                    start = time.monotonic()
                    until = start + args.seconds
                    counts = await asyncio.gather(
                        *(
                            _writer(
                                pool,
                                couples,
                                size=args.batch,
                                outbox=kind == "outbox",
                                until=until,
                                lane=lane,
                            )
                            for lane in range(args.writers)
                        )
                    )
                    rates[kind].append(sum(counts) / (time.monotonic() - start))
        finally:
            await pool.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    cursor = statistics.median(rates["cursor"])
    outbox = statistics.median(rates["outbox"])
    return {
        "batch": args.batch,
        "writers": args.writers,
        "rounds": args.rounds,
        "cursor_msgs_per_s": [round(r) for r in rates["cursor"]],
        "outbox_msgs_per_s": [round(r) for r in rates["outbox"]],
        "median_ratio_outbox_vs_cursor": round(outbox / cursor, 3),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.outbox_cost", description=__doc__)
    parser.add_argument("--couples", type=int, default=50)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--writers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(_run(args)), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
