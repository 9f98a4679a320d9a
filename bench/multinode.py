"""Cross-node delivery latency and throughput with 1 and 3 nodes.

For each configuration it starts N ``ieum-chat serve`` processes sharing a fresh PostgreSQL
database and the machine's Redis (with the test suite's helpers: PostgreSQL at
``IEUM_TEST_PG_URL``, Redis at ``IEUM_TEST_REDIS_URL``), seeds couples, and connects member a
of couple k to node k mod N and member b to node (k+1) mod N: with several nodes every
delivery crosses nodes. Then:

* latency: every couple's a sends one message each ``--interval`` seconds; the figure is b's
  receipt of the MESSAGE minus a's SEND (one clock: every client runs in this process), so it
  covers validation, the group commit, the publish, Redis and the other node's fan-out;
* throughput: every couple's a pipelines ``--messages`` SENDs with ``--window`` awaiting their
  RECEIPT; the figure is messages delivered to the b's per second, first SEND to last
  delivery, after checking that every b saw every seq once and in order.

    python -m bench.multinode                       # 1 node (memory), 1 node (Redis), 3 nodes
    python -m bench.multinode --config 3:redis --couples 40
    python -m bench.multinode --hop                 # the Redis hop alone: broker to broker

All processes share this machine's CPUs: with few cores, more nodes mean less CPU for each,
so the 3-node figures show the cost of crossing nodes, not the capacity of three machines.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect

from ieum_chat.stomp import HEARTBEAT, Frame, FrameParser, serialize_frame

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.postgres import create_database, drop_database
from tests.support.redis import REDIS_URL, delete_prefix, unique_prefix
from tests.support.server import Cli, ServerProcess, free_port

SERVER_ENV = {
    "IEUM_MESSAGE_RATE": "100000",
    "IEUM_MESSAGE_BURST": "100000",
    "IEUM_LOG_LEVEL": "WARNING",
}


@dataclass
class Member:
    ws: ClientConnection
    parser: FrameParser = field(default_factory=lambda: FrameParser(max_frame_size=1 << 20))
    received: list[tuple[int, str, float]] = field(default_factory=list)  # seq, tempId, time
    credits: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(1 << 30))
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    reader: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, url: str, token: str, couple: str) -> Member:
        ws = await connect(f"{url}?token={token}", subprotocols=["v12.stomp"], max_size=None)  # type: ignore[list-item]
        member = cls(ws)
        topic = f"/topic/couple/{couple}"
        for frame in (
            Frame("CONNECT", (("accept-version", "1.2"), ("heart-beat", "0,0"))),
            Frame(
                "SUBSCRIBE",
                (
                    ("id", "0"),
                    ("destination", topic),
                    ("x-resume-after-seq", "0"),
                    ("receipt", "s"),
                ),
            ),
        ):
            await ws.send(serialize_frame(frame).decode())
        seen = 0
        while seen < 2:  # CONNECTED, RECEIPT
            member.parser.receive_data(_bytes(await ws.recv()))
            while (item := member.parser.next_frame()) is not None:
                if item is not HEARTBEAT:
                    seen += 1
        member.reader = asyncio.create_task(member._read())
        return member

    async def _read(self) -> None:
        while True:
            self.parser.receive_data(_bytes(await self.ws.recv()))
            now = time.perf_counter()
            while (item := self.parser.next_frame()) is not None:
                if not isinstance(item, Frame):
                    continue
                if item.command == "RECEIPT":
                    self.credits.release()
                elif item.command == "MESSAGE":
                    body = orjson.loads(item.body)
                    if "seq" in body:
                        self.received.append((body["seq"], body.get("tempId") or "", now))
                        self.changed.set()

    async def send(self, couple: str, temp_id: str, receipt: str | None = None) -> None:
        headers: tuple[tuple[str, str], ...] = (("destination", f"/app/chat/{couple}"),)
        if receipt is not None:
            headers += (("receipt", receipt),)
        body = orjson.dumps({"type": "TEXT", "content": f"bench {temp_id}", "tempId": temp_id})
        await self.ws.send(serialize_frame(Frame("SEND", headers, body)).decode())

    async def wait_count(self, count: int, seconds: float = 120) -> None:
        async with asyncio.timeout(seconds):
            while len(self.received) < count:
                self.changed.clear()
                await self.changed.wait()

    async def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
            await asyncio.gather(self.reader, return_exceptions=True)
        await self.ws.close()


def _bytes(data: str | bytes) -> bytes:
    return data.encode() if isinstance(data, str) else data


async def _pairs(
    nodes: list[ServerProcess], rows: list[dict[str, str]]
) -> list[tuple[str, Member, Member]]:
    pairs = []
    for k, row in enumerate(rows):
        a = await Member.open(nodes[k % len(nodes)].ws_url, row["ta"], row["couple"])
        b = await Member.open(nodes[(k + 1) % len(nodes)].ws_url, row["tb"], row["couple"])
        pairs.append((row["couple"], a, b))
    return pairs


async def latency(
    rows: list[dict[str, str]], nodes: list[ServerProcess], count: int, interval: float
) -> dict[str, Any]:
    pairs = await _pairs(nodes, rows)
    sent: dict[str, float] = {}

    async def drive(couple: str, a: Member, b: Member) -> None:
        for _ in range(count):
            temp_id = uuid.uuid4().hex
            sent[temp_id] = time.perf_counter()
            await a.send(couple, temp_id)
            await asyncio.sleep(interval)
        await b.wait_count(count)

    started = time.perf_counter()
    await asyncio.gather(*(drive(*p) for p in pairs))
    elapsed = time.perf_counter() - started
    samples = sorted(
        (at - sent[temp_id]) * 1000 for _, _, b in pairs for _, temp_id, at in b.received
    )
    for _, a, b in pairs:
        await a.close()
        await b.close()
    return {
        "messages": len(samples),
        "offered_per_s": round(len(samples) / elapsed),
        "p50_ms": round(statistics.median(samples), 2),
        "p90_ms": round(samples[int(0.90 * (len(samples) - 1))], 2),
        "p99_ms": round(samples[int(0.99 * (len(samples) - 1))], 2),
        "max_ms": round(samples[-1], 2),
    }


async def throughput(
    rows: list[dict[str, str]], nodes: list[ServerProcess], count: int, window: int
) -> dict[str, Any]:
    pairs = await _pairs(nodes, rows)
    for _, a, _ in pairs:
        a.credits = asyncio.Semaphore(window)

    async def drive(couple: str, a: Member, b: Member) -> None:
        for i in range(count):
            await a.credits.acquire()
            await a.send(couple, uuid.uuid4().hex, receipt=str(i))
        await b.wait_count(count)

    started = time.perf_counter()
    await asyncio.gather(*(drive(*p) for p in pairs))
    elapsed = time.perf_counter() - started
    in_order = all([s for s, _, _ in b.received] == list(range(1, count + 1)) for _, _, b in pairs)
    total = sum(len(b.received) for _, _, b in pairs)
    for _, a, b in pairs:
        await a.close()
        await b.close()
    return {
        "messages": total,
        "seconds": round(elapsed, 2),
        "delivered_per_s": round(total / elapsed),
        "every_seq_once_in_order": in_order,
    }


async def redis_hop(count: int = 2000, burst: int = 100_000) -> dict[str, Any]:
    """Two RedisBrokers in this process: one payload at a time (latency of the hop alone),
    then a burst of 300-byte payloads (what one publishing node can push through)."""
    from ieum_chat.broker.redis import RedisBroker

    prefix = unique_prefix()
    a, b = RedisBroker(REDIS_URL, prefix=prefix), RedisBroker(REDIS_URL, prefix=prefix)
    await a.start()
    await b.start()
    samples: list[float] = []
    arrived = asyncio.Event()

    def timed(channel: str, payload: bytes) -> None:
        samples.append(time.perf_counter() - float(payload))
        arrived.set()

    await b.subscribe("hop", timed)
    for _ in range(count):
        arrived.clear()
        await a.publish("hop", repr(time.perf_counter()).encode())
        await arrived.wait()
    samples.sort()
    got = 0
    done = asyncio.Event()

    def counted(channel: str, payload: bytes) -> None:
        nonlocal got
        got += 1
        if got == burst:
            done.set()

    await b.subscribe("burst", counted)
    started = time.perf_counter()
    for _ in range(burst):
        while a._outbox.qsize() > 5000:  # noqa: ASYNC110 - stay inside the bounded queue
            await asyncio.sleep(0.0005)
        await a.publish("burst", b"0\n" + b"x" * 300)
    await done.wait()
    elapsed = time.perf_counter() - started
    await a.close()
    await b.close()
    return {
        "hop_p50_ms": round(samples[len(samples) // 2] * 1000, 3),
        "hop_p99_ms": round(samples[int(0.99 * (len(samples) - 1))] * 1000, 3),
        "burst_payloads_per_s": round(burst / elapsed),
    }


def run_config(nodes_count: int, broker: str, args: argparse.Namespace) -> dict[str, Any]:
    url = create_database("ieum_bench")
    prefix = unique_prefix()
    workdir = Path(tempfile.mkdtemp(prefix="ieum-bench-"))
    extra = {"IEUM_REDIS_URL": REDIS_URL, "IEUM_REDIS_PREFIX": prefix} if broker == "redis" else {}
    cli = Cli.for_database(url, **extra)
    if broker != "redis":
        cli.env.pop("IEUM_REDIS_URL", None)
    nodes: list[ServerProcess] = []
    try:
        cli.run("migrate")
        rows = cli.seed(2 * args.couples)
        for i in range(nodes_count):
            nodes.append(
                ServerProcess(
                    cli, workdir / f"node{i}.log", extra_env=SERVER_ENV, port=free_port()
                ).start()
            )
        lat = asyncio.run(
            latency(rows[: args.couples], nodes, args.latency_messages, args.interval)
        )
        thr = asyncio.run(throughput(rows[args.couples :], nodes, args.messages, args.window))
    finally:
        for node in nodes:
            node.stop()
        drop_database(url)
        if broker == "redis":
            delete_prefix(prefix)
    return {"nodes": nodes_count, "broker": broker, "latency": lat, "throughput": thr}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--config",
        nargs="+",
        default=["1:memory", "1:redis", "3:redis"],
        help="NODES:BROKER pairs to measure (broker: memory or redis)",
    )
    parser.add_argument("--couples", type=int, default=20)
    parser.add_argument("--latency-messages", type=int, default=50, help="per couple")
    parser.add_argument(
        "--interval", type=float, default=0.02, help="seconds between a couple's SENDs"
    )
    parser.add_argument("--messages", type=int, default=500, help="per couple, throughput phase")
    parser.add_argument("--window", type=int, default=32, help="SENDs awaiting RECEIPT per sender")
    parser.add_argument("--hop", action="store_true", help="measure the Redis hop alone")
    args = parser.parse_args()
    if args.hop:
        print(json.dumps(asyncio.run(redis_hop())))
        return
    results = []
    for config in args.config:
        count, _, broker = config.partition(":")
        result = run_config(int(count), broker or "redis", args)
        print(json.dumps(result), flush=True)
        results.append(result)
    print()
    print(f"cpus: {os.cpu_count()}, couples: {args.couples} (a, b on different nodes if nodes > 1)")
    print(
        "| nodes | broker | latency p50 | p99 | max | offered msg/s | throughput msg/s | in order |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        lat, thr = r["latency"], r["throughput"]
        print(
            f"| {r['nodes']} | {r['broker']} | {lat['p50_ms']} ms | {lat['p99_ms']} ms | "
            f"{lat['max_ms']} ms | {lat['offered_per_s']} | {thr['delivered_per_s']} | "
            f"{thr['every_seq_once_in_order']} |"
        )


if __name__ == "__main__":
    main()
