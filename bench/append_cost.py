"""What a batch of new messages costs PostgreSQL on the append path: the backend's CPU a call.

On a fresh database (migrated, ``--couples`` seeded), one client calls, in turn, the store's
append statement (``appends.APPEND_NEW``, on a connection set as the store's append
connections are, ``engines.APPEND_SETTINGS``) and the server-side function that did the same
before it (``ieum_append_new_messages``, migration 0011): blocks of ``--calls`` calls of each
batch size, ``--rounds`` times. Each block's figure is the backend's CPU time over it (its
schedstat, so neither the client's time nor the round trips count), divided by its calls.
Every message goes to the next couple in turn, from one of its members, with a tempId.

    python -m bench.append_cost                         # sizes 1, 9, 42; 5 rounds of 200
    python -m bench.append_cost --sizes 9 --rounds 9

Everything runs against the machine's PostgreSQL (``--pg-admin-url``), on a database dropped
at the end. The backend must run on this machine (its /proc is read).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from bench._args import _positive_int
from bench._cli import report_probe
from bench._fleet import BenchError
from bench._proc import schedstat_cpu_seconds
from bench._report import markdown_table, median_range
from bench._servers import PG_ADMIN_URL, database_url, ieum_cli
from ieum_chat.store.appends import APPEND_NEW, batch_json
from ieum_chat.store.engines import APPEND_SETTINGS
from ieum_chat.store.records import NewMessage, new_message_id
from ieum_chat.store.schema import utcnow

__all__ = ["main"]


def json_parameters(batch: list[list[Any]]) -> list[Any]:
    """The statement's one parameter, for the batch given as its columns."""
    return [batch_json([NewMessage(*row) for row in zip(*batch, strict=True)])]


def _as_columns(batch: list[list[Any]]) -> list[Any]:
    return batch


# (name, statement, its parameters for a batch's columns): what a block calls
FORMS: tuple[tuple[str, str, Callable[[list[list[Any]]], list[Any]]], ...] = (
    ("statement", APPEND_NEW, json_parameters),
    (
        "function (0011)",
        "SELECT * FROM ieum_append_new_messages($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        _as_columns,
    ),
)


def columns(
    couples: Sequence[dict[str, str]],
    size: int,
    offset: int,
    make_id: Callable[[], uuid.UUID] = new_message_id,
    make_temp_id: Callable[[], str] = lambda: uuid.uuid4().hex[:16],
) -> list[list[Any]]:
    """The append's parameters for ``size`` new messages, the first to couple ``offset``
    (modulo their number), each to the next, senders alternating between the members; their
    ids made as the server makes a message's, or by ``make_id``, their tempIds random, or
    made by ``make_temp_id``."""
    now = utcnow()
    rows = [couples[(offset + i) % len(couples)] for i in range(size)]
    return [
        [make_id() for _ in rows],
        [uuid.UUID(row["couple"]) for row in rows],
        [uuid.UUID(row["a" if (offset + i) % 2 else "b"]) for i, row in enumerate(rows)],
        ["TEXT"] * size,
        ["x" * 32] * size,
        [None] * size,
        [make_temp_id() for _ in rows],
        [now] * size,
        [None] * size,
        [None] * size,
        [None] * size,
    ]


async def _measure(url: str, args: argparse.Namespace) -> dict[str, dict[str, list[float]]]:
    couples = json.loads(ieum_cli(url, "seed", "--couples", str(args.couples)))
    conn = await asyncpg.connect(url, server_settings=dict(APPEND_SETTINGS))
    try:
        pid = conn.get_server_pid()
        out: dict[str, dict[str, list[float]]] = {
            str(size): {name: [] for name, _, _ in FORMS} for size in args.sizes
        }
        offset = 0
        for _ in range(args.rounds):
            for size in args.sizes:
                for name, statement, params in FORMS:
                    await conn.fetch(statement, *params(columns(couples, size, offset)))  # prepared
                    offset += size
                    before = schedstat_cpu_seconds(pid)
                    for _ in range(args.calls):
                        await conn.fetch(statement, *params(columns(couples, size, offset)))
                        offset += size
                    used = schedstat_cpu_seconds(pid) - before
                    out[str(size)][name].append(round(used / args.calls * 1e6, 1))
        return out
    finally:
        await conn.close()


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    name = f"ieum_append_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(args.pg_admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = database_url(args.pg_admin_url, name)
        try:
            ieum_cli(url, "migrate")
            blocks = await _measure(url, args)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
    return {
        "couples": args.couples,
        "calls": args.calls,
        "rounds": args.rounds,
        "us_per_call": blocks,
        "median_us_per_call": {
            size: {form: statistics.median(values) for form, values in forms.items()}
            for size, forms in blocks.items()
        },
    }


def render(result: dict[str, Any]) -> str:
    names = [name for name, _, _ in FORMS]
    rows = []
    for size, forms in result["us_per_call"].items():
        medians = [statistics.median(forms[n]) for n in names]
        cells = [median_range(forms[n]) for n in names]
        rows.append([size, *cells, f"{medians[0] / medians[1]:.2f}"])
    header = ["messages a call", *(f"{n}: µs of CPU a call" for n in names), "ratio"]
    return markdown_table(header, rows)


def _sizes(text: str) -> list[int]:
    return [_positive_int(part) for part in text.split(",")]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.append_cost", description=__doc__)
    parser.add_argument("--sizes", type=_sizes, default=[1, 9, 42], help="messages a call")
    parser.add_argument("--couples", type=_positive_int, default=50)
    parser.add_argument("--calls", type=_positive_int, default=200, help="calls a block")
    parser.add_argument("--rounds", type=_positive_int, default=5)
    parser.add_argument("--pg-admin-url", default=PG_ADMIN_URL, help="CREATE DATABASE")
    parser.add_argument("--out", type=Path, help="JSON result file")
    return parser


# What a probe of the database's own calls reports as its error (exit status 2).
PROBE_ERRORS: tuple[type[BaseException], ...] = (BenchError, OSError, asyncpg.PostgresError)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)

    def run() -> dict[str, Any]:
        return asyncio.run(_run(args))

    return report_probe("bench.append_cost", run, render, args.out, PROBE_ERRORS)


if __name__ == "__main__":
    sys.exit(main())
