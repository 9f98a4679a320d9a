"""What a million couples need, from what one node measures on this machine.

Two steps, so that the plan can be redone for other workloads without measuring again:

    python -m bench.capacity measure --out capacity.json   # one sitting, about 3 minutes
    python -m bench.capacity plan capacity.json            # 1,000,000 couples, 100M messages/day
    python -m bench.capacity plan capacity.json --node-cores 16 --online 0.7 --json

``measure`` runs, one after the other: a closed-loop chat load on PostgreSQL (deliveries per
second, the server's and PostgreSQL's CPU per delivery), idle sessions (memory per session and
the CPU of setting one up), idle sessions with server heart-beats every second (CPU per
heart-beat), and a burst through the machine's Redis (payloads per second one node publishes,
and Redis's CPU per payload). ``plan`` turns those figures and a workload (every assumption is a
flag, printed with the plan) into nodes, PostgreSQL cores, Redis shards, network, the time a
reconnect storm takes, and which limit comes first. The storm is also simulated: clients with
full-jitter backoff and a Retry-After floor against every node's admission bucket, second by
second (``docs/capacity.md`` compares it with ``bench.storm``'s measured storm).

What is measured is one node of this machine (2 cores shared with the load generator and
PostgreSQL); everything about a million couples is arithmetic on those figures, linear in the
number of nodes and shards: an extrapolation, stated as such.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import math
import os
import random
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

KB = 1024
US = 1e-6


# -- measure ----------------------------------------------------------------------------------


def _redis_pid() -> int | None:
    """The redis-server the tests and benches use (the machine's, on REDIS_URL's port)."""
    from urllib.parse import urlsplit

    from tests.support.redis import REDIS_URL

    from bench._proc import find_listener_pid

    return find_listener_pid(urlsplit(REDIS_URL).port or 6379)


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from bench._compare import CompareSpec, run_compare
    from bench._load import IdleSpec, run_idle
    from bench._servers import IeumServer
    from bench._targets import Target
    from bench.multinode import redis_hop

    _say("== chat load on PostgreSQL, and idle sessions")
    compare = run_compare(
        CompareSpec(
            backends=("postgresql",),
            couples=args.couples,
            duration=args.duration,
            warmup=2.0,
            half_rate=False,
            idle_sessions=args.sessions,
            idle_hold=5.0,
            progress=False,
        )
    )
    (row,) = compare["rows"]
    peak, idle = row["peak"], row["idle"]
    if peak is None or idle is None:
        raise SystemExit(f"the load run failed: {row.get('error')}")
    server = peak["server"]
    delivery_us = server["cpu_us_per_delivery"]
    db_us = server["with_db_cpu_us_per_delivery"] - delivery_us

    _say(f"== {args.sessions:,} idle sessions with a server heart-beat every second")
    with tempfile.TemporaryDirectory(prefix="ieum-capacity-") as tmp:
        couples = math.ceil(args.sessions / 2)
        with IeumServer("sqlite", Path(tmp), couples) as node:
            held = run_idle(
                IdleSpec(
                    Target("ieum", node.url, heartbeat_ms=1000),
                    node.couples,
                    hold=10.0,
                    server_pid=node.pid,
                    progress=False,
                )
            )
    heartbeats = held["sessions"] * 10.0
    heartbeat_us = held["server"]["hold_cpu_s"] / heartbeats / US

    _say("== a burst of 300-byte payloads through Redis")
    redis = _redis_pid()
    before = _cpu_s(redis) if redis else None
    hop = asyncio.run(redis_hop(count=500, burst=args.redis_burst))
    redis_us = (
        (_cpu_s(redis) - before) / args.redis_burst / US if redis and before is not None else None
    )

    setup_cpu_s = idle["server"]["cpu_s_total"] / idle["sessions"]
    return {
        "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": compare["machine"],
        "deliveries_per_s": peak["throughput"]["deliveries_per_s"],
        "messages_per_s": peak["throughput"]["msgs_per_s"],
        "deliveries_per_message": peak["throughput"]["deliveries_per_s"]
        / peak["throughput"]["msgs_per_s"],
        "server_us_per_delivery": delivery_us,
        "postgres_us_per_delivery": db_us,
        "kb_per_session": idle["server"]["rss_kb_per_session"],
        "setup_ms_per_session": setup_cpu_s * 1000,
        "sessions_set_up_per_s": idle["sessions_per_s"],
        "heartbeat_us": heartbeat_us,
        "redis_payloads_per_s_one_publisher": hop["burst_payloads_per_s"],
        "redis_us_per_payload": redis_us,
        "redis_hop_p50_ms": hop["hop_p50_ms"],
    }


# -- plan -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    couples: int
    devices_per_member: float
    online: float  # share of devices with a live session at the peak
    messages_per_day: float
    peak_factor: float  # the peak hour's rate over the day's mean
    events_per_message: float  # read receipts, typing, reactions: delivered, not all stored
    stored_events_per_message: float  # of those, written to the stream (read marks, reactions)
    heartbeat_s: float  # both directions, each this often
    frame_bytes: int  # a MESSAGE frame as sent
    node_cores: int
    node_gb: float
    utilisation: float  # the share of a resource a plan may fill
    admission_rate: float  # IEUM_ADMISSION_RATE per node
    retention_days: int
    row_bytes: int  # a stored message with its indexes (assumed)


def plan(m: dict[str, Any], w: Workload) -> dict[str, Any]:
    sessions = w.couples * 2 * w.devices_per_member * w.online
    msgs_peak = w.messages_per_day / 86_400 * w.peak_factor
    # Every message (and event) goes to each live session of its couple.
    fanout = 2 * w.devices_per_member * w.online
    deliveries = msgs_peak * (1 + w.events_per_message) * fanout
    heartbeats = sessions * 2 / w.heartbeat_s

    # The load run's CPU per delivery carries its share of receiving and storing the send;
    # heart-beats are priced both ways at what the server's own cost (the one measured).
    node_cpu = deliveries * m["server_us_per_delivery"] * US + heartbeats * m["heartbeat_us"] * US
    cores_per_node = w.node_cores * w.utilisation
    by_cpu = node_cpu / cores_per_node
    by_memory = sessions * m["kb_per_session"] / (w.node_gb * KB * KB * w.utilisation)
    nodes = max(2, math.ceil(max(by_cpu, by_memory)) + 1)  # one spare for a node lost

    commits = msgs_peak * (1 + w.stored_events_per_message)
    pg_s_per_message = m["postgres_us_per_delivery"] * US * m["deliveries_per_message"]
    pg_cores = commits * pg_s_per_message / w.utilisation

    publishes = msgs_peak * (1 + w.events_per_message)
    redis_us = m.get("redis_us_per_payload") or 1e6 / m["redis_payloads_per_s_one_publisher"]
    redis_shards = max(1, math.ceil(publishes * redis_us * US / w.utilisation))

    tcp_overhead = 66  # Ethernet + IP + TCP headers per packet
    bytes_out = deliveries * (w.frame_bytes + tcp_overhead) + heartbeats / 2 * (2 + tcp_overhead)

    per_node_sessions = sessions / nodes
    setup_rate = min(
        w.admission_rate, cores_per_node / (m["setup_ms_per_session"] / 1000)
    )  # sessions a node admits per second, bounded by its CPU
    storm_s = per_node_sessions / ((nodes - 1) * setup_rate)

    rows = w.messages_per_day * w.retention_days  # messages; their events add a share
    limits = {"node CPU": by_cpu, "node memory": by_memory}
    first = max(limits, key=lambda k: limits[k])
    return {
        "sessions": round(sessions),
        "messages_per_s_peak": round(msgs_peak),
        "deliveries_per_s_peak": round(deliveries),
        "heartbeats_per_s": round(heartbeats),
        "nodes": nodes,
        "nodes_by_cpu": round(by_cpu, 2),
        "nodes_by_memory": round(by_memory, 2),
        "first_limit": first,
        "sessions_per_node": round(per_node_sessions),
        "server_cores_all_nodes": round(node_cpu, 1),
        "postgres_commits_per_s": round(commits),
        "postgres_cores": round(pg_cores, 2),
        "redis_publishes_per_s": round(publishes),
        "redis_shards": redis_shards,
        "network_mbit_s_out": round(bytes_out * 8 / 1e6),
        "storm_s_one_node_lost": round(storm_s, 1),
        "node_setup_rate_per_s": round(setup_rate),
        "stored_rows_per_year_of_retention": round(rows),
        "stored_tb": round(rows * w.row_bytes / 1e12, 2),
    }


def simulate_storm(  # noqa: PLR0917
    sessions: int,
    nodes: int,
    rate: float,
    burst: int,
    setup_per_s: float,
    base: float,
    cap: float,
    seed: int = 1,
) -> dict[str, float]:
    """``sessions`` clients dropped at t=0 retry with full-jitter backoff (uniform in
    [0, min(cap, base * 2**n)]) and a 1 s Retry-After floor when refused; each of ``nodes``
    admits through a token bucket (``rate``/s, ``burst``) and sets up at most ``setup_per_s``
    sessions a second (a handshake past that is refused too: the client retries). Steps of
    10 ms; returns when every client is back."""
    rng = random.Random(seed)
    step = 0.01
    heap = [(rng.uniform(0, base), client, 0) for client in range(sessions)]
    heapq.heapify(heap)
    tokens = [float(burst)] * nodes
    capacity = [0.0] * nodes
    back: list[float] = []
    t = 0.0
    peak_attempts = 0
    while heap:
        t += step
        for i in range(nodes):
            tokens[i] = min(burst, tokens[i] + rate * step)
            capacity[i] = min(setup_per_s, capacity[i] + setup_per_s * step)
        attempts = 0
        while heap and heap[0][0] <= t:
            _, client, tries = heapq.heappop(heap)
            attempts += 1
            node = rng.randrange(nodes)
            if tokens[node] >= 1 and capacity[node] >= 1:
                tokens[node] -= 1
                capacity[node] -= 1
                back.append(t)
                continue
            ceiling = min(cap, base * 2 ** min(tries + 1, 30))
            heapq.heappush(heap, (t + 1.0 + rng.uniform(0, ceiling), client, tries + 1))
        peak_attempts = max(peak_attempts, attempts)
    return {
        "all_back_s": round(back[-1], 1),
        "p50_s": round(back[len(back) // 2], 1),
        "p90_s": round(back[int(len(back) * 0.9) - 1], 1),
        "peak_attempts_per_s": round(peak_attempts / step),
    }


# -- the command ------------------------------------------------------------------------------


def _workload(args: argparse.Namespace) -> Workload:
    return Workload(
        couples=args.couples,
        devices_per_member=args.devices,
        online=args.online,
        messages_per_day=args.messages_per_day,
        peak_factor=args.peak_factor,
        events_per_message=args.events_per_message,
        stored_events_per_message=args.stored_events_per_message,
        heartbeat_s=args.heartbeat_s,
        frame_bytes=args.frame_bytes,
        node_cores=args.node_cores,
        node_gb=args.node_gb,
        utilisation=args.utilisation,
        admission_rate=args.admission_rate,
        retention_days=args.retention_days,
        row_bytes=args.row_bytes,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.capacity", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    me = sub.add_parser("measure", help="the per-node figures, one sitting")
    me.add_argument("--out", type=Path, default=Path("capacity.json"))
    me.add_argument("--couples", type=int, default=50, help="couples chatting in the load run")
    me.add_argument("--duration", type=float, default=10.0)
    me.add_argument("--sessions", type=int, default=5000, help="idle sessions")
    me.add_argument("--redis-burst", type=int, default=100_000)
    pl = sub.add_parser("plan", help="what a workload needs, from measured figures")
    pl.add_argument("measured", type=Path)
    pl.add_argument("--couples", type=int, default=1_000_000)
    pl.add_argument("--devices", type=float, default=1.3, help="devices per member")
    pl.add_argument("--online", type=float, default=0.6, help="share of devices live at peak")
    pl.add_argument("--messages-per-day", type=float, default=1e8)
    pl.add_argument("--peak-factor", type=float, default=3.0, help="peak hour over the mean")
    pl.add_argument("--events-per-message", type=float, default=1.5)
    pl.add_argument("--stored-events-per-message", type=float, default=0.5)
    pl.add_argument("--heartbeat-s", type=float, default=10.0)
    pl.add_argument("--frame-bytes", type=int, default=450)
    pl.add_argument("--node-cores", type=int, default=8)
    pl.add_argument("--node-gb", type=float, default=16.0)
    pl.add_argument("--utilisation", type=float, default=0.6)
    pl.add_argument("--admission-rate", type=float, default=500.0)
    pl.add_argument("--retention-days", type=int, default=365)
    pl.add_argument("--row-bytes", type=int, default=400)
    pl.add_argument(
        "--simulate",
        type=int,
        default=0,
        metavar="SESSIONS",
        help="also simulate a storm of this many sessions on the planned nodes - 1",
    )
    pl.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "measure":
        figures = measure(args)
        args.out.write_text(json.dumps(figures, indent=2))
        print(json.dumps(figures, indent=2))
        return 0
    figures = json.loads(args.measured.read_text())
    workload = _workload(args)
    result = plan(figures, workload)
    if args.simulate:
        nodes = max(1, result["nodes"] - 1)
        setup = result["node_setup_rate_per_s"]
        result["simulated_storm"] = simulate_storm(
            args.simulate,
            nodes,
            args.admission_rate,
            int(args.admission_rate * 2),
            setup,
            base=0.1,
            cap=10.0,
        )
    if args.json:
        print(
            json.dumps(
                {"workload": asdict(workload), "measured": figures, "plan": result}, indent=2
            )
        )
        return 0
    print("| assumption | value |\n|---|---|")
    for key, value in asdict(workload).items():
        print(f"| {key} | {value:,} |" if isinstance(value, int) else f"| {key} | {value} |")
    print("\n| measured on one node | value |\n|---|---|")
    for key, value in figures.items():
        if key != "machine":
            print(f"| {key} | {round(value, 2) if isinstance(value, float) else value} |")
    print("\n| plan | value |\n|---|---|")
    for key, value in result.items():
        print(f"| {key} | {value:,} |" if isinstance(value, int) else f"| {key} | {value} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
