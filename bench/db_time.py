"""Where the database's time goes under a chat load, and the WAL each message costs.

Runs ``ieum-chat serve`` on a fresh PostgreSQL database with the load of ``python -m bench
run``: an open loop at ``--rate`` messages/s, or with ``--rate 0`` the closed loop of ``bench
compare``'s peak (one SEND per member awaiting its RECEIPT). Over the measured seconds it

- samples, every ``--every`` seconds, the state of the database backends that store the
  messages (``pg_stat_activity``; their last statement is the append): running, idle (waiting
  for the server's next batch), or waiting on something (``IO/WALSync``: the commit's flush);
- reads the WAL written in that window by record type (``pg_walinspect``, one of PostgreSQL's
  own extensions, created in the throwaway database), per message stored, and the flushes
  the cluster made (``pg_stat_wal``);
- reads the server's histograms: a message's arrival to its commit, its batch's transaction,
  the commit to its publication.

    python -m bench.db_time --rate 4000 --server-src build/compiled
    python -m bench.db_time --rate 0            # the closed loop's peak

The sampling starts when the load's measured window does, give or take the generator's start
(half a second). The WAL and the flushes are the whole cluster's: run it on a quiet one.

The sampler is load too: each sample is a query. It reads ``pg_stat_activity`` every 20 ms by
default (every 2 ms, it and its backend took about a seventh of a core of a 2-core machine),
from a connection to the maintenance database (``--pg-admin-url``), whose backend is not
counted among the server's database processes. A share of samples is a share of the moments
the sampler got a core, not of the time: on a machine short of cores the sampler runs less
often while the appending backend runs, so "running" reads low, and a wait that ends in a
queue for a core reads high (``IO/WALSync`` included: a backend keeps its wait event until it
runs again). The scheduler's own trace (``perf sched``) gives the times.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from bench._args import _positive_int, _seconds
from bench._cli import report_probe
from bench._fleet import BenchError
from bench._load import _START_DELAY, LoadSpec, run_load
from bench._report import waiting_pct
from bench._servers import PG_ADMIN_URL, IeumServer, database_url, read_metrics
from bench._targets import IEUM, Target
from ieum_chat.store.appends import APPEND_NEW

# The backends whose last statement is an append: the store's statement (its opening words:
# PostgreSQL keeps only the first kilobyte of a statement's text) or one of the functions.
_ACTIVITY = """
SELECT state, wait_event_type, wait_event FROM pg_stat_activity
WHERE datname = $1 AND (starts_with(query, $2) OR query LIKE 'SELECT * FROM ieum_append%')
"""
_APPEND_OPENING = APPEND_NEW[:64]
_WAL_STATS = """
SELECT "resource_manager/record_type" AS record, count, combined_size::bigint AS bytes
FROM pg_get_wal_stats($1::text::pg_lsn, $2::text::pg_lsn, true)
WHERE count > 0
"""
_STORED = "ieum_messages_stored_total"
_BATCHES = "ieum_write_batch_messages"
# (title, histogram, labels) of the server's, in the order a message meets them
HISTOGRAMS = (
    ("arrival to commit", "ieum_send_commit_seconds", ""),
    ("its batch's transaction", "ieum_write_transaction_seconds", 'kind="messages"'),
    ("commit to publication", "ieum_commit_delivery_seconds", ""),
)
_BOUNDS = (0.001, 0.0025, 0.005, 0.01)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.db_time",
        description="the database's time and WAL per message under a chat load",
    )
    parser.add_argument(
        "--rate", type=_seconds, default=0.0, help="messages/s; 0: the closed loop's peak"
    )
    parser.add_argument("--couples", type=_positive_int, default=50)
    parser.add_argument("--procs", type=_positive_int, default=2, help="load generator processes")
    parser.add_argument("--duration", type=_seconds, default=10.0, help="seconds measured")
    parser.add_argument("--warmup", type=_seconds, default=3.0, help="seconds of load first")
    parser.add_argument("--every", type=_seconds, default=0.02, help="seconds between two samples")
    parser.add_argument(
        "--server-src",
        type=Path,
        help="a source tree whose src/ the server runs (build/compiled: the compiled cores)",
    )
    parser.add_argument("--pg-admin-url", default=PG_ADMIN_URL, help="CREATE DATABASE")
    parser.add_argument("--out", type=Path, help="JSON result file")
    parser.add_argument("--quiet", action="store_true", help="no progress line")
    return parser


def backend_state(state: str | None, wait_type: str | None, wait_event: str | None) -> str:
    """One sample of a backend, as a row of the table: ``idle`` is waiting for the server."""
    if state == "active":
        return "running" if wait_type is None else f"{wait_type}/{wait_event}"
    return state or "gone"


def histogram(samples: Mapping[str, float], name: str, labels: str = "") -> dict[str, Any]:
    """The count, the sum and the cumulative bucket counts (by upper bound) of one histogram
    of a ``read_metrics`` scrape; ``labels``: the other labels as written, ``kind="messages"``."""
    head = f"{name}_bucket{{{labels + ',' if labels else ''}le="
    buckets = {
        float(key[len(head) :].split('"')[1]): value
        for key, value in samples.items()
        if key.startswith(head)
    }
    suffix = f"{{{labels}}}" if labels else ""
    return {
        "count": samples.get(f"{name}_count{suffix}", 0.0),
        "sum": samples.get(f"{name}_sum{suffix}", 0.0),
        "buckets": buckets,
    }


def histogram_delta(
    before: Mapping[str, float], after: Mapping[str, float], name: str, labels: str = ""
) -> dict[str, Any]:
    """What a histogram counted between two scrapes: its count, mean (s) and the share at or
    below each bound."""
    first, last = histogram(before, name, labels), histogram(after, name, labels)
    count = last["count"] - first["count"]
    shares = {
        bound: (value - first["buckets"].get(bound, 0.0)) / count if count else 0.0
        for bound, value in sorted(last["buckets"].items())
    }
    mean = (last["sum"] - first["sum"]) / count if count else 0.0
    return {"count": count, "mean_s": mean, "share_within": shares}


def wal_per_message(rows: Sequence[Mapping[str, Any]], messages: float) -> list[dict[str, Any]]:
    """WAL records and bytes per message stored, by record type, the most bytes first."""
    total = sum(row["bytes"] for row in rows) or 1
    return [
        {
            "record": row["record"],
            "records_per_message": row["count"] / messages if messages else 0.0,
            "bytes_per_message": row["bytes"] / messages if messages else 0.0,
            "share_of_bytes": row["bytes"] / total,
        }
        for row in sorted(rows, key=lambda row: row["bytes"], reverse=True)
    ]


async def _sample(
    db_url: str,
    admin_url: str,
    db_name: str,
    http_url: str,
    *,
    delay: float,
    seconds: float,
    every: float,
) -> dict[str, Any]:
    # The WAL is read in the throwaway database (pg_walinspect is created there); the backends
    # are sampled from the maintenance database, whose backend the load does not count.
    conn = await asyncpg.connect(db_url, timeout=10)
    watcher = None
    try:
        watcher = await asyncpg.connect(admin_url, timeout=10)
        await asyncio.sleep(delay)
        before = read_metrics(http_url)
        lsn_from = await conn.fetchval("SELECT pg_current_wal_lsn()::text")
        flushes_from = await conn.fetchval("SELECT wal_sync FROM pg_stat_wal")
        states: Counter[str] = Counter()
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            for row in await watcher.fetch(_ACTIVITY, db_name, _APPEND_OPENING):
                states[backend_state(*row)] += 1
            await asyncio.sleep(every)
        elapsed = time.monotonic() - started
        lsn_to = await conn.fetchval("SELECT pg_current_wal_lsn()::text")
        flushes = await conn.fetchval("SELECT wal_sync FROM pg_stat_wal") - flushes_from
        after = read_metrics(http_url)
        wal = [dict(row) for row in await conn.fetch(_WAL_STATS, lsn_from, lsn_to)]
    finally:
        if watcher is not None:
            await watcher.close()
        await conn.close()
    messages = after.get(_STORED, 0.0) - before.get(_STORED, 0.0)
    batches = histogram_delta(before, after, _BATCHES)
    return {
        "seconds": elapsed,
        "messages": messages,
        "batches": batches["count"],
        "backend_states": dict(states),
        "wal_flushes": flushes,
        "wal_bytes_per_message": sum(row["bytes"] for row in wal) / messages if messages else 0,
        "wal_records_per_message": sum(row["count"] for row in wal) / messages if messages else 0,
        "wal": wal_per_message(wal, messages),
        "histograms": {
            title: histogram_delta(before, after, name, labels)
            for title, name, labels in HISTOGRAMS
        },
    }


async def _create_walinspect(db_url: str) -> None:
    conn = await asyncpg.connect(db_url, timeout=10)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
    except asyncpg.PostgresError as exc:
        raise BenchError(f"pg_walinspect (PostgreSQL 15 or later) is needed: {exc}") from None
    finally:
        await conn.close()


def measure(args: argparse.Namespace) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix="ieum-bench-db-") as tmp,
        IeumServer(
            "postgresql", Path(tmp), args.couples, args.pg_admin_url, src=args.server_src
        ) as server,
    ):
        assert server.db_name is not None
        db_url = database_url(args.pg_admin_url, server.db_name)
        asyncio.run(_create_walinspect(db_url))
        sampled: dict[str, Any] = {}
        errors: list[BaseException] = []

        def sample() -> None:
            try:
                sampled.update(
                    asyncio.run(
                        _sample(
                            db_url,
                            args.pg_admin_url,
                            server.db_name or "",
                            f"http://127.0.0.1:{server.port}",
                            delay=_START_DELAY
                            + args.warmup,  # when the load's measured window opens
                            seconds=args.duration,
                            every=args.every,
                        )
                    )
                )
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)

        sampler = threading.Thread(target=sample, name="db-sampler")
        sampler.start()
        try:
            load = run_load(
                LoadSpec(
                    target=Target(IEUM, server.url),
                    couples=server.couples,
                    procs=args.procs,
                    rate=args.rate,
                    duration=args.duration,
                    warmup=args.warmup,
                    server_pid=server.pid,
                    db_match=server.db_match,
                    progress=not args.quiet,
                    label="ieum-chat PostgreSQL",
                )
            )
        finally:
            sampler.join()
        if errors:
            raise BenchError(f"sampling the database failed: {errors[0]!r}")
    return {
        "rate": args.rate,
        "server_src": str(args.server_src) if args.server_src else None,
        "load": {
            "msgs_per_s": load["throughput"]["msgs_per_s"],
            "delivery_ms": load["latency_ms"]["delivery"],
        },
        "processes": processes(load),
        **sampled,
    }


def processes(load: Mapping[str, Any]) -> dict[str, dict[str, float | None]]:
    """The cores the server, its database's processes and the generator used over the load's
    measured window, and the share of their runnable time they spent waiting for a core."""
    window, server, generator = load["window_s"], load["server"], load["generator"]
    out: dict[str, dict[str, float | None]] = {}
    for name, cpu, waited in (
        ("the server", server.get("cpu_s"), server.get("run_queue_s")),
        ("its database", server.get("db_cpu_s"), server.get("db_run_queue_s")),
        ("the generator", generator.get("cpu_s"), generator.get("run_queue_s")),
    ):
        out[name] = {
            "cores": cpu / window if cpu is not None and window else None,
            "waiting_pct": waiting_pct(cpu, waited),
        }
    return out


def render(result: Mapping[str, Any], wal_rows: int = 8) -> str:
    rate = result["rate"]
    loop = f"an open loop at {rate:,.0f} msgs/s" if rate else "the closed loop (window 1)"
    messages, seconds = result["messages"], result["seconds"]
    batches = result["batches"]
    delivery = result["load"]["delivery_ms"]
    lines = [
        f"ieum-chat PostgreSQL, {loop}: {messages:,.0f} messages stored in {seconds:.1f} s "
        f"({messages / seconds:,.0f}/s), {messages / batches if batches else 0:.1f} a batch; "
        f"delivery p50 / p99 {delivery['p50']:.1f} / {delivery['p99']:.1f} ms",
        "",
        "| the appending backend | share of samples |",
        "|---|---|",
    ]
    lines[2:2] = [
        "| process | cores used | waiting for a core (of its runnable time) |",
        "|---|---|---|",
        *(
            f"| {name} | {_cell(row['cores'], '{:.2f}')} | "
            f"{_cell(row['waiting_pct'], '{:.0f} %')} |"
            for name, row in result["processes"].items()
        ),
        "",
    ]
    states = result["backend_states"]
    total = sum(states.values()) or 1
    for state, count in sorted(states.items(), key=lambda item: -item[1]):
        lines.append(f"| {state} | {100 * count / total:.1f} % |")
    flushes = result["wal_flushes"]
    lines += [
        "",
        f"WAL flushes: {flushes / seconds:,.0f}/s; WAL a message: "
        f"{result['wal_bytes_per_message']:,.0f} bytes in "
        f"{result['wal_records_per_message']:.1f} records",
        "",
        "| WAL record | records a message | bytes a message | share of bytes |",
        "|---|---|---|---|",
    ]
    for row in result["wal"][:wal_rows]:
        lines.append(
            f"| {row['record']} | {row['records_per_message']:.2f} | "
            f"{row['bytes_per_message']:,.0f} | {100 * row['share_of_bytes']:.1f} % |"
        )
    head = " | ".join(f"≤ {bound * 1000:g} ms" for bound in _BOUNDS)
    lines += ["", f"| the server's | mean ms | {head} |", "|---|---" + "|---" * len(_BOUNDS) + "|"]
    for title, hist in result["histograms"].items():
        shares = hist["share_within"]
        cells = " | ".join(f"{100 * shares.get(bound, 0.0):.1f} %" for bound in _BOUNDS)
        lines.append(f"| {title} | {1000 * hist['mean_s']:.2f} | {cells} |")
    return "\n".join(lines)


def _cell(value: float | None, form: str) -> str:
    return "-" if value is None else form.format(value)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return report_probe("bench.db_time", lambda: measure(args), render, args.out)


if __name__ == "__main__":
    sys.exit(main())
