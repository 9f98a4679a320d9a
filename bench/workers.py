"""Deliveries/s of one node with 1 and with 2 worker processes (``IEUM_WORKERS``), in one run.

For each worker count it starts ``ieum-chat serve`` on a fresh database (PostgreSQL by
default; ``--backend sqlite`` for the embedded file) with the machine's Redis (every count, so
the broker is the same and only the process count differs), seeds couples, and drives them with
the load generator of ``python -m bench run`` (a closed loop: each member keeps ``--window``
SENDs awaiting their RECEIPT). One table, one row per worker count; the loss and duplicate
columns are the generator's own check that every member saw every seq once, in order.

    python -m bench.workers                           # 1 and 2 workers, PostgreSQL
    python -m bench.workers --workers 1,2,4 --couples 40 --duration 15
    python -m bench.workers --backend sqlite --duration 3 --warmup 1

The clients run on the same machine as the workers, PostgreSQL and Redis: on few cores more
workers mean more processes sharing them, so compare the rows with the machine in mind. The
CPU columns are the first process's only, so they are left out with several workers.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.redis import REDIS_URL, delete_prefix, unique_prefix

from bench._args import _positive_int, _seconds
from bench._fleet import BenchError
from bench._load import LoadSpec, run_load
from bench._report import load_table
from bench._servers import PG_ADMIN_URL, IeumServer
from bench._targets import Target


def _counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of worker counts: {text!r}") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"worker counts must be positive: {text!r}")
    return counts


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.workers",
        description="deliveries/s with 1 and 2 worker processes on one port",
    )
    parser.add_argument("--workers", type=_counts, default=[1, 2], help="counts (default 1,2)")
    parser.add_argument("--backend", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--couples", type=_positive_int, default=20)
    parser.add_argument(
        "--window", type=_positive_int, default=8, help="SENDs in flight per member"
    )
    parser.add_argument("--procs", type=_positive_int, default=2, help="load generator processes")
    parser.add_argument("--duration", type=_seconds, default=10.0, help="seconds measured")
    parser.add_argument("--warmup", type=_seconds, default=2.0)
    parser.add_argument("--drain", type=_seconds, default=10.0)
    parser.add_argument(
        "--pg-admin-url",
        default=PG_ADMIN_URL,
        help="CREATE DATABASE",
    )
    parser.add_argument("--no-progress", action="store_true")
    return parser


def run_one(args: argparse.Namespace, workers: int, workdir: Path) -> dict[str, Any]:
    backend: Literal["sqlite", "postgresql"] = args.backend
    prefix = unique_prefix()
    env = {"IEUM_WORKERS": str(workers), "IEUM_REDIS_URL": REDIS_URL, "IEUM_REDIS_PREFIX": prefix}
    rundir = workdir / f"workers-{workers}"
    rundir.mkdir()
    try:
        with IeumServer(backend, rundir, args.couples, args.pg_admin_url, env) as server:
            return run_load(
                LoadSpec(
                    target=Target("ieum", server.url),
                    couples=server.couples,
                    procs=args.procs,
                    window=args.window,
                    duration=args.duration,
                    warmup=args.warmup,
                    drain=args.drain,
                    server_pid=server.pid if workers == 1 else None,
                    db_match=server.db_match if workers == 1 else (),
                    progress=not args.no_progress,
                    label=f"{workers} worker{'s' if workers > 1 else ''}",
                )
            )
    finally:
        delete_prefix(prefix)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    results: list[tuple[str, dict[str, Any]]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="ieum-bench-workers-") as tmp:
            for workers in args.workers:
                label = f"{args.backend}, {workers} worker{'s' if workers > 1 else ''}"
                results.append((label, run_one(args, workers, Path(tmp))))
    except BenchError as exc:
        print(f"bench.workers: error: {exc}", file=sys.stderr)
        return 2
    print(load_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
