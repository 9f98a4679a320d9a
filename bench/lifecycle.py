"""How long a dissolution takes to end the members' sessions: two ``ieum-chat serve`` nodes on
one database (and Redis, with ``--redis``), a member of each couple on each node through the
client SDK, then ``POST /admin/v1/couples/{id}/dissolve`` on the first node, one couple at a
time. Times to each member's STOMP ERROR ``COUPLE_DISSOLVED``: on the
node that took the call, and on the other (which learns it from the directory feed), both
from the moment the call was sent.

    python -m bench.lifecycle                 # SQLite, in-process broker, 20 couples
    python -m bench.lifecycle --postgresql --redis --couples 50

Everything runs on 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import httpx

from ieum_chat.client import Backoff, ChatClient, ClientClosed, ErrorEvent

from ._servers import IeumServer, free_port, spawn_serve

__all__ = ["main"]

BACKOFF = Backoff(0.05, 0.5)
FEED_INTERVAL = 0.5  # seconds between a node's reads of the directory feed
REDIS_URL = os.environ.get("IEUM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _second_node(first: IeumServer, workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    log = (workdir / "second.log").open("ab")
    proc = spawn_serve(first.env, port, log)
    log.close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return proc, port
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the second node did not start")


def _token(token: str) -> Callable[[], str]:
    return lambda: token


async def _ended(client: ChatClient) -> float:
    """When (``perf_counter``) the client got its ERROR ``COUPLE_DISSOLVED``."""
    while True:
        try:
            event = await client.next_event()
        except ClientClosed:
            raise RuntimeError("the client ended without COUPLE_DISSOLVED") from None
        if isinstance(event, ErrorEvent) and event.code == "COUPLE_DISSOLVED":
            return time.perf_counter()


async def _measure(
    first: IeumServer, second_port: int, key: str
) -> tuple[list[float], list[float]]:
    here: list[float] = []
    there: list[float] = []
    other_url = f"ws://127.0.0.1:{second_port}/ws/chat"
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{first.port}", timeout=10) as http:
        for couple in first.couples:
            a = ChatClient(first.url, _token(couple.ta), couple_id=couple.couple, backoff=BACKOFF)
            b = ChatClient(other_url, _token(couple.tb), couple_id=couple.couple, backoff=BACKOFF)
            try:
                for client in (a, b):
                    client.start()
                async with asyncio.timeout(30):
                    await asyncio.gather(a.wait_ready(), b.wait_ready())
                # Each call would otherwise come right after the other node's last read (the
                # one that ended the previous couple): a random phase against its reads.
                await asyncio.sleep(random.uniform(0, FEED_INTERVAL))
                waits = [asyncio.ensure_future(_ended(c)) for c in (a, b)]
                start = time.perf_counter()
                answer = await http.post(
                    f"/admin/v1/couples/{couple.couple}/dissolve",
                    headers={"Authorization": f"Bearer {key}"},
                )
                answer.raise_for_status()
                async with asyncio.timeout(10):
                    ended_here, ended_there = await asyncio.gather(*waits)
                here.append(ended_here - start)
                there.append(ended_there - start)
            finally:
                await asyncio.gather(a.close(), b.close())
    return here, there


def _summary(name: str, values: Sequence[float]) -> str:
    ordered = sorted(values)
    p50 = statistics.median(ordered) * 1000
    p90 = ordered[int(0.9 * (len(ordered) - 1))] * 1000
    return (
        f"{name}: p50 {p50:.1f} ms, p90 {p90:.1f} ms, max {ordered[-1] * 1000:.1f} ms "
        f"({len(ordered)} couples)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.lifecycle", description=__doc__)
    parser.add_argument("--couples", type=int, default=20)
    parser.add_argument("--postgresql", action="store_true", help="PostgreSQL instead of SQLite")
    parser.add_argument("--redis", action="store_true", help="Redis between the two nodes")
    args = parser.parse_args(argv)
    key = secrets.token_hex(24)
    env = {"IEUM_ADMIN_API_KEYS": f"bench:{key}", "IEUM_LOG_LEVEL": "WARNING"}
    if args.redis:
        env |= {"IEUM_REDIS_URL": REDIS_URL, "IEUM_REDIS_PREFIX": f"b{secrets.token_hex(4)}:"}
    backend: Literal["sqlite", "postgresql"] = "postgresql" if args.postgresql else "sqlite"
    with (
        tempfile.TemporaryDirectory() as tmp,
        IeumServer(backend, Path(tmp), args.couples, extra_env=env) as first,
    ):
        second, port = _second_node(first, Path(tmp))
        try:
            here, there = asyncio.run(_measure(first, port, key))
        finally:
            second.terminate()
            second.wait(20)
    broker = "redis" if args.redis else "memory"
    print(f"dissolve -> ERROR COUPLE_DISSOLVED, {backend}, {broker} broker, two nodes")
    print(_summary("  the node that took the call", here))
    print(_summary("  the other node", there))
    return 0


if __name__ == "__main__":
    sys.exit(main())
