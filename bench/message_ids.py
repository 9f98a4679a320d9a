"""What a message's ids cost PostgreSQL: the WAL written a message and the append statement's
CPU a call, with the ids the server makes (``records.new_message_id``, version 7: in the order
they were made) and the tempIds the client SDKs make (the same kind, as text) against random
ones (version 4), on a table that already holds ``--rows`` messages. Three kinds: both ids
time-ordered, as the server and its SDKs make them; time-ordered message ids with random
tempIds (a client that makes its own, as ``UUID.randomUUID()``); both random.

A database of each kind is migrated, seeded with ``--couples`` couples and filled with
``--rows`` messages through the store's append statement (``appends.APPEND_NEW``, 40 a call),
every id and tempId of the kind. Then, ``--rounds`` times, the kinds take turns: a
``CHECKPOINT``, a block of ``--calls`` calls of ``--size`` messages right after it, then a
second block. A block's figures are the WAL written over it (``pg_current_wal_lsn``) a message
and the backend's CPU (its schedstat) a call. The first block after a checkpoint writes each
page it is the first to touch whole into the WAL (``full_page_writes``), and a random id
touches a page of the primary key's index anywhere in it, a random tempId a page anywhere in
its sender's part of the tempIds' index.

    python -m bench.message_ids                         # 2,000,000 rows, 3 rounds
    python -m bench.message_ids --rows 200000 --rounds 2

Everything runs against the machine's PostgreSQL (``--pg-admin-url``), on databases dropped
at the end. The backend must run on this machine (its /proc is read).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from bench._args import _positive_int
from bench._cli import report_probe
from bench._proc import schedstat_cpu_seconds
from bench._report import markdown_table, median_range
from bench._servers import PG_ADMIN_URL, database_url, ieum_cli
from bench.append_cost import PROBE_ERRORS, columns, json_parameters
from ieum_chat.ids import new_ordered_id
from ieum_chat.store.appends import APPEND_NEW
from ieum_chat.store.engines import APPEND_SETTINGS
from ieum_chat.store.records import new_message_id

__all__ = ["KINDS", "main", "render"]

# (name, how its ids are made, how its tempIds are), the server's and its SDKs' first
KINDS: tuple[tuple[str, Callable[[], uuid.UUID], Callable[[], str]], ...] = (
    ("time-ordered (v7)", new_message_id, lambda: str(new_ordered_id())),
    ("v7 ids, random tempIds", new_message_id, lambda: str(uuid.uuid4())),
    ("random (v4)", uuid.uuid4, lambda: str(uuid.uuid4())),
)
BLOCKS = ("after a checkpoint", "the block after")
_FILL_BATCH = 40
_WAL_POSITION = "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')"


@dataclass
class _Table:
    """One kind's database, filled, and the connection that appends to it."""

    make_id: Callable[[], uuid.UUID]
    make_temp_id: Callable[[], str]
    couples: list[dict[str, str]]
    conn: Any
    offset: int = 0

    async def append(self, size: int) -> None:
        await self.conn.fetch(
            APPEND_NEW,
            *json_parameters(
                columns(self.couples, size, self.offset, self.make_id, self.make_temp_id)
            ),
        )
        self.offset += size


async def _open(
    admin: Any,
    args: argparse.Namespace,
    make_id: Callable[[], uuid.UUID],
    make_temp_id: Callable[[], str],
    names: list[str],
) -> _Table:
    name = f"ieum_ids_{uuid.uuid4().hex[:10]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    names.append(name)  # dropped at the end, whatever happens from here
    url = database_url(args.pg_admin_url, name)
    ieum_cli(url, "migrate")
    couples = json.loads(ieum_cli(url, "seed", "--couples", str(args.couples)))
    conn = await asyncpg.connect(url, server_settings=dict(APPEND_SETTINGS))
    table = _Table(make_id, make_temp_id, couples, conn)
    for _ in range(args.rows // _FILL_BATCH):
        await table.append(_FILL_BATCH)
    return table


async def _block(table: _Table, args: argparse.Namespace) -> tuple[float, float]:
    """(WAL bytes a message, backend µs of CPU a call) over one block."""
    pid = table.conn.get_server_pid()
    wal = float(await table.conn.fetchval(_WAL_POSITION))
    cpu = schedstat_cpu_seconds(pid)
    for _ in range(args.calls):
        await table.append(args.size)
    cpu = schedstat_cpu_seconds(pid) - cpu
    wal = float(await table.conn.fetchval(_WAL_POSITION)) - wal
    return round(wal / (args.calls * args.size)), round(cpu / args.calls * 1e6, 1)


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    admin = await asyncpg.connect(args.pg_admin_url)
    tables: list[_Table] = []
    names: list[str] = []
    try:
        for _, make_id, make_temp_id in KINDS:
            tables.append(await _open(admin, args, make_id, make_temp_id, names))
        blocks: dict[str, dict[str, dict[str, list[float]]]] = {
            kind: {block: {"wal_bytes_a_message": [], "cpu_us_a_call": []} for block in BLOCKS}
            for kind, _, _ in KINDS
        }
        for _ in range(args.rounds):
            for (kind, _, _), table in zip(KINDS, tables, strict=True):
                await admin.execute("CHECKPOINT")
                for block in BLOCKS:
                    wal, cpu = await _block(table, args)
                    blocks[kind][block]["wal_bytes_a_message"].append(wal)
                    blocks[kind][block]["cpu_us_a_call"].append(cpu)
    finally:
        for table in tables:
            await table.conn.close()
        for name in names:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    return {
        "rows": args.rows,
        "size": args.size,
        "calls": args.calls,
        "rounds": args.rounds,
        "blocks": blocks,
    }


def render(result: dict[str, Any]) -> str:
    lines = [
        f"{result['rows']:,} messages stored first; blocks of {result['calls']} calls of "
        f"{result['size']} messages; medians (range) of {result['rounds']} rounds",
        "",
        markdown_table(
            ["ids", "block", "WAL bytes a message", "CPU µs a call"],
            (
                [
                    kind,
                    block,
                    median_range(figures["wal_bytes_a_message"]),
                    median_range(figures["cpu_us_a_call"]),
                ]
                for kind, blocks in result["blocks"].items()
                for block, figures in blocks.items()
            ),
        ),
    ]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.message_ids", description=__doc__)
    parser.add_argument("--rows", type=_positive_int, default=2_000_000, help="stored first")
    parser.add_argument("--size", type=_positive_int, default=8, help="messages a call")
    parser.add_argument("--calls", type=_positive_int, default=1500, help="calls a block")
    parser.add_argument("--rounds", type=_positive_int, default=3)
    parser.add_argument("--couples", type=_positive_int, default=50)
    parser.add_argument("--pg-admin-url", default=PG_ADMIN_URL, help="CREATE DATABASE")
    parser.add_argument("--out", type=Path, help="JSON result file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)

    def run() -> dict[str, Any]:
        return asyncio.run(_run(args))

    return report_probe("bench.message_ids", run, render, args.out, PROBE_ERRORS)


if __name__ == "__main__":
    sys.exit(main())
