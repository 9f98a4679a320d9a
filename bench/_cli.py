"""``python -m bench`` (also ``ieum-chat bench`` from a source tree): load generator commands.

    python -m bench run --seed seed.json --url ws://127.0.0.1:8080/ws/chat --server-pid auto
    python -m bench run --target rabbitmq --url ws://127.0.0.1:15674/ws --couples 50
    python -m bench idle --seed seed.json --sessions 15000 --server-pid auto
    python -m bench compare --backends sqlite,postgresql,rabbitmq --couples 50 --duration 15
    python -m bench compare --backends postgresql --mix 0,0.1   # 10% of the SENDs reactions

Other probes in this folder: ``python -m bench.one_couple``, ``bench.history``, ``bench.multinode``,
``bench.workers`` (1 vs 2 worker processes on one port),
``bench.thumbnails`` (the cost of inspecting a photo and a video upload),
``bench.instructions`` (the server's instructions per message, source trees in turns).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ._args import _fraction, _fractions, _positive_int, _seconds
from ._compare import BACKENDS, CompareSpec, render, run_compare
from ._fleet import BenchError
from ._load import IdleSpec, LoadSpec, run_idle, run_load
from ._proc import find_listener_pid
from ._report import idle_table, load_table
from ._servers import PG_ADMIN_URL
from ._targets import IEUM, KINDS, Couple, Target, synthetic_couples

__all__ = ["main"]

_DEFAULT_URLS = {IEUM: "ws://127.0.0.1:8080/ws/chat", "rabbitmq": "ws://127.0.0.1:15674/ws"}


def _target_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", choices=KINDS, default=IEUM, help="server kind (default ieum)")
    p.add_argument(
        "--url",
        help="WebSocket URL (ieum: ws://127.0.0.1:8080/ws/chat, rabbitmq: ws://127.0.0.1:15674/ws)",
    )
    p.add_argument("--seed", help="JSON of `ieum-chat seed --couples N` ('-': stdin); ieum only")
    p.add_argument("--couples", type=_positive_int, help="couples to use (default: all seeded)")
    p.add_argument("--procs", type=_positive_int, default=2, help="generator processes (2)")
    p.add_argument("--server-pid", help="pid of the server, or 'auto': its CPU and RSS are read")
    p.add_argument("--out", default="bench-result.json", help="JSON result file")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.add_argument("--login", default="guest", help="rabbitmq: STOMP login (guest)")
    p.add_argument("--passcode", default="guest", help="rabbitmq: STOMP passcode (guest)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="STOMP-over-WebSocket load generator for ieum-chat and RabbitMQ Web-STOMP",
        epilog=(
            "Other probes: python -m bench.one_couple, bench.history, bench.multinode, "
            "bench.workers, bench.instructions, bench.db_time"
        ),
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="N couples send for a while; loss, latency, throughput")
    _target_args(run)
    loop = run.add_mutually_exclusive_group()
    loop.add_argument(
        "--window",
        type=_positive_int,
        default=1,
        help="closed loop: SENDs awaiting RECEIPT per member (1)",
    )
    loop.add_argument(
        "--rate", type=_seconds, default=0.0, help="open loop: messages/s over all members"
    )
    loop.add_argument(
        "--member-rate", type=_seconds, default=0.0, help="open loop: messages/s of each member"
    )
    run.add_argument("--duration", type=_seconds, default=10.0, help="measured seconds (10)")
    run.add_argument("--warmup", type=_seconds, default=2.0, help="unmeasured seconds first (2)")
    run.add_argument(
        "--drain",
        type=_seconds,
        default=10.0,
        help="seconds to wait for what is still owed at the end (10)",
    )
    run.add_argument("--message-bytes", type=_positive_int, default=32, help="content length")
    run.add_argument(
        "--reactions",
        type=_fraction,
        default=0.0,
        metavar="FRACTION",
        help="this fraction of the SENDs are reactions (❤️ added to the latest message, then "
        "removed) instead of chat messages, counted apart; ieum only (0)",
    )
    run.add_argument(
        "--db-match",
        action="append",
        default=[],
        help="command-line substring of database processes to charge CPU to "
        "(e.g. the PostgreSQL database name); repeatable",
    )
    run.add_argument("--label", default="", help="name of the run in the table")
    run.add_argument(
        "--wait-quiet",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help="wait up to this long for the machine to be <20%% busy before starting",
    )
    run.add_argument(
        "--steadiness",
        action="store_true",
        help="time a fixed work on every core beside the run (bench.steadiness, 3 to 6%% of "
        "a core each): how much of the tail fell in the host's slow spells",
    )

    idle = sub.add_parser("idle", help="K sessions CONNECT + SUBSCRIBE and stay; RSS per session")
    _target_args(idle)
    idle.add_argument("--sessions", type=_positive_int, required=True, help="sessions to open")
    idle.add_argument("--hold", type=_seconds, default=10.0, help="seconds to hold them (10)")
    idle.add_argument("--settle", type=_seconds, default=3.0, help="seconds before RSS is read (3)")
    idle.add_argument(
        "--concurrency",
        type=_positive_int,
        default=64,
        help="handshakes in progress per process (64)",
    )
    idle.add_argument(
        "--heartbeat-ms",
        type=int,
        default=0,
        help="ask the server for a heart-beat every N ms (0: none); its CPU over the hold is "
        "reported as hold_cpu_s",
    )
    idle.add_argument("--label", default="", help="name of the run in the table")

    cmp = sub.add_parser("compare", help="the same load on ieum-chat and RabbitMQ, one table")
    cmp.add_argument(
        "--backends", default=",".join(BACKENDS), help=f"comma-separated, of {', '.join(BACKENDS)}"
    )
    cmp.add_argument("--couples", type=_positive_int, default=50, help="couples (50)")
    cmp.add_argument("--window", type=_positive_int, default=1, help="SENDs in flight/member (1)")
    cmp.add_argument("--duration", type=_seconds, default=15.0, help="measured seconds (15)")
    cmp.add_argument("--warmup", type=_seconds, default=3.0, help="unmeasured seconds (3)")
    cmp.add_argument("--procs", type=_positive_int, default=2, help="generator processes (2)")
    cmp.add_argument("--message-bytes", type=_positive_int, default=32, help="content length")
    cmp.add_argument(
        "--mix",
        type=_fractions,
        default=(0.0,),
        metavar="F,F,...",
        help="reaction fractions (as `run --reactions`): each ieum-chat backend runs once per "
        "fraction, in this order, on a fresh server; RabbitMQ runs the 0 mix only (0)",
    )
    cmp.add_argument(
        "--no-half-rate", action="store_true", help="skip the open-loop run at half of each peak"
    )
    cmp.add_argument(
        "--no-floor",
        action="store_true",
        help="skip the commit floor measured after each PostgreSQL half-load run",
    )
    cmp.add_argument(
        "--floor-dir",
        type=Path,
        default=Path("/var/tmp"),
        help="where the commit floor's file goes: on the file system of PostgreSQL's WAL "
        "(/var/tmp)",
    )
    cmp.add_argument(
        "--half-runs",
        type=_positive_int,
        default=3,
        help="open-loop runs at half of each peak; the table shows the median p99's (3)",
    )
    cmp.add_argument(
        "--idle",
        type=int,
        default=0,
        metavar="K",
        help="also hold K idle sessions on a fresh ieum-chat server (the first backend)",
    )
    cmp.add_argument(
        "--idle-rabbitmq",
        type=int,
        default=0,
        metavar="K",
        help="idle sessions for RabbitMQ (its open-files limit is often ~1,000)",
    )
    cmp.add_argument("--idle-hold", type=_seconds, default=10.0, help="seconds (10)")
    cmp.add_argument(
        "--server-src",
        type=Path,
        metavar="TREE",
        help="a source tree whose src/ the ieum-chat servers run, e.g. build/compiled (the "
        "protocol cores compiled: `make compiled`); default: the installed package",
    )
    cmp.add_argument("--rabbitmq-url", default=_DEFAULT_URLS["rabbitmq"])
    cmp.add_argument(
        "--no-enable-rabbitmq",
        action="store_true",
        help="do not run `rabbitmq-plugins enable rabbitmq_web_stomp`",
    )
    cmp.add_argument(
        "--pg-admin-url",
        default=PG_ADMIN_URL,
        help="where to CREATE/DROP the throwaway database",
    )
    cmp.add_argument(
        "--wait-quiet",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help="before each run, wait up to this long for the machine to be <20%% busy",
    )
    cmp.add_argument(
        "--steadiness",
        action="store_true",
        help="beside each load run, time a fixed work on every core (bench.steadiness)",
    )
    cmp.add_argument("--out", default="bench-result.json", help="JSON result file")
    cmp.add_argument("--quiet", action="store_true", help="no progress line")
    return parser


def _couples(args: argparse.Namespace, wanted: int | None) -> list[Couple]:
    if args.target == IEUM:
        if not args.seed:
            raise BenchError("--seed is needed for ieum-chat (`ieum-chat seed --couples N`)")
        text = sys.stdin.read() if args.seed == "-" else Path(args.seed).read_text()
        try:
            couples = [Couple.from_row(row) for row in json.loads(text)]
        except (ValueError, KeyError, TypeError) as exc:
            raise BenchError(f"--seed is not `ieum-chat seed` output: {exc}") from None
        if wanted is not None:
            if wanted > len(couples):
                raise BenchError(f"{wanted} couples wanted, {len(couples)} seeded")
            couples = couples[:wanted]
        return couples
    return synthetic_couples(wanted or 50)


def _target(args: argparse.Namespace) -> tuple[Target, int | None]:
    try:
        target = Target(
            args.target,
            args.url or _DEFAULT_URLS[args.target],
            login=args.login,
            passcode=args.passcode,
        )
    except ValueError as exc:
        raise BenchError(str(exc)) from None
    pid: int | None = None
    if args.server_pid == "auto":
        pid = find_listener_pid(target.port)
        if pid is None:
            raise BenchError(f"no process visible listening on :{target.port}")
    elif args.server_pid:
        try:
            pid = int(args.server_pid)
        except ValueError:
            raise BenchError(f"--server-pid: not a pid: {args.server_pid!r}") from None
        if not Path(f"/proc/{pid}").exists():
            raise BenchError(f"--server-pid: no process {pid}")
    return target, pid


def report_probe(
    name: str,
    measure: Callable[[], dict[str, Any]],
    render: Callable[[dict[str, Any]], str],
    out: Path | None,
    errors: tuple[type[BaseException], ...] = (BenchError,),
) -> int:
    """A probe's ``main`` (``bench.append_cost`` and the like): ``measure``, print the result's
    table and write its JSON to ``out``; 2, with the error on stderr, if ``errors`` is raised."""
    try:
        result = measure()
    except errors as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2
    print(render(result))
    if out is not None:
        out.write_text(json.dumps(result, indent=2, default=str))
        print(f"result written to {out}")
    return 0


def _write(path: str, result: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"result written to {path}", file=sys.stderr)


def _cmd_run(args: argparse.Namespace) -> int:
    target, pid = _target(args)
    if args.reactions and target.react_destination("") is None:
        raise BenchError(f"--reactions: {target.label} has no reactions")
    couples = _couples(args, args.couples)
    rate = args.rate or args.member_rate * 2 * len(couples)
    spec = LoadSpec(
        target=target,
        couples=couples,
        procs=args.procs,
        window=args.window,
        rate=rate,
        duration=args.duration,
        warmup=args.warmup,
        drain=args.drain,
        message_bytes=args.message_bytes,
        reactions=args.reactions,
        server_pid=pid,
        db_match=tuple(args.db_match),
        progress=not args.quiet,
        label=args.label,
        quiet_wait=args.wait_quiet,
        steadiness=args.steadiness,
    )
    result = run_load(spec)
    print(load_table([(result["label"], result)]))
    _write(args.out, result)
    loss = result["loss"]
    return 1 if loss["lost"] or loss["duplicates"] or loss["rejected"] or result["errors"] else 0


def _cmd_idle(args: argparse.Namespace) -> int:
    target, pid = _target(args)
    if args.heartbeat_ms:
        target = dataclasses.replace(target, heartbeat_ms=args.heartbeat_ms)
    couples = _couples(args, math.ceil(args.sessions / 2))
    spec = IdleSpec(
        target=target,
        couples=couples,
        procs=args.procs,
        hold=args.hold,
        settle=args.settle,
        server_pid=pid,
        connect_concurrency=args.concurrency,
        progress=not args.quiet,
        label=args.label,
    )
    result = run_idle(spec)
    if result["server"].get("rss_kb_per_session") is not None:
        print(idle_table([(result["label"], result)]))
    else:
        print(f"{result['sessions']:,} sessions open, {result['open_at_end']:,} at the end")
    _write(args.out, result)
    return 1 if result["failed"] or result["open_at_end"] < result["sessions"] else 0


def _cmd_compare(args: argparse.Namespace) -> int:
    backends = tuple(b.strip() for b in args.backends.split(",") if b.strip())
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown or not backends:
        raise BenchError(f"--backends: choose among {', '.join(BACKENDS)}")
    spec = CompareSpec(
        backends=backends,
        couples=args.couples,
        window=args.window,
        duration=args.duration,
        warmup=args.warmup,
        procs=args.procs,
        message_bytes=args.message_bytes,
        mixes=args.mix,
        half_rate=not args.no_half_rate,
        half_runs=args.half_runs,
        idle_sessions=args.idle,
        idle_rabbitmq=args.idle_rabbitmq,
        idle_hold=args.idle_hold,
        rabbitmq_url=args.rabbitmq_url,
        enable_rabbitmq=not args.no_enable_rabbitmq,
        pg_admin_url=args.pg_admin_url,
        server_src=args.server_src,
        progress=not args.quiet,
        quiet_wait=args.wait_quiet,
        steadiness=args.steadiness,
        floor=not args.no_floor,
        floor_dir=args.floor_dir,
    )
    result = run_compare(spec)
    print(render(result))
    _write(args.out, result)
    bad = any(
        "error" in row
        or any(
            run["loss"]["lost"] or run["loss"]["duplicates"] or run["loss"]["rejected"]
            for run in (row["peak"], *row["half_runs"])
            if run
        )
        for row in result["rows"]
    )
    return 1 if bad else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handler = {"run": _cmd_run, "idle": _cmd_idle, "compare": _cmd_compare}[args.command]
    try:
        return handler(args)
    except BenchError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
