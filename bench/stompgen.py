"""A second load generator, independent of the rest of ``bench/`` on purpose: it imports
nothing from ``bench`` or ``ieum_chat``, frames STOMP itself over the ``websockets`` package,
and starts the server only through the ``ieum-chat`` command, as a user would. It exists so
that the throughput comparison does not rest on one generator's way of measuring.

Each couple is two STOMP sessions on one topic. Every member sends a TEXT with a receipt and
waits for the RECEIPT before the next (a closed loop, one SEND in flight per member); a
message counts once its RECEIPT arrived (ieum-chat: stored), a delivery once the partner got
it. The same loop runs against ieum-chat on PostgreSQL (a throwaway database) and against
RabbitMQ's Web-STOMP plugin, one after the other:

    python -m bench.stompgen                            # both, 50 couples, 15 s each
    python -m bench.stompgen --couples 50 --duration 15 --procs 2 --only ieum

RabbitMQ: ``rabbitmq-plugins enable rabbitmq_web_stomp`` (guest/guest on 127.0.0.1:15674).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websockets

PG_ADMIN = os.environ.get("IEUM_TEST_PG_URL", "postgresql://root@127.0.0.1:5432/test")
RABBITMQ_URL = "ws://127.0.0.1:15674/ws"


# -- STOMP, by hand ---------------------------------------------------------------------------


def frame(command: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [command, *(f"{k}:{v}" for k, v in headers.items())]
    return ("\n".join(lines) + "\n\n").encode() + body + b"\x00"


def frames(buffer: bytearray) -> list[tuple[str, dict[str, str], bytes]]:
    """Take the whole frames off ``buffer`` (bodies here hold no NUL; heart-beats skipped)."""
    out: list[tuple[str, dict[str, str], bytes]] = []
    while True:
        end = buffer.find(b"\x00")
        if end < 0:
            return out
        raw = bytes(buffer[:end]).lstrip(b"\r\n")
        del buffer[: end + 1]
        head, _, body = raw.partition(b"\n\n")
        command, *lines = head.decode().split("\n")
        headers: dict[str, str] = {}
        for line in lines:
            key, _, value = line.partition(":")
            headers.setdefault(key, value)
        out.append((command, headers, body))


# -- one process's couples --------------------------------------------------------------------


@dataclass
class Target:
    kind: str  # "ieum" or "rabbitmq"
    url: str

    def connect_headers(self, token: str) -> dict[str, str]:
        if self.kind == "rabbitmq":
            return {
                "accept-version": "1.2",
                "host": "/",
                "login": "guest",
                "passcode": "guest",
                "heart-beat": "0,0",
            }
        return {
            "accept-version": "1.2",
            "host": "127.0.0.1",
            "Authorization": f"Bearer {token}",
            "heart-beat": "0,0",
        }

    def topic(self, couple: str) -> str:
        return f"/topic/couple.{couple}" if self.kind == "rabbitmq" else f"/topic/couple/{couple}"

    def send_to(self, couple: str) -> str:
        return self.topic(couple) if self.kind == "rabbitmq" else f"/app/chat/{couple}"


@dataclass
class Tally:
    receipts: int = 0
    deliveries: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@dataclass
class Member:
    couple: str
    name: str  # "<couple>:a" or "<couple>:b"
    token: str


async def _member(
    target: Target,
    member: Member,
    tally: Tally,
    window: tuple[float, float],
    ready: asyncio.Barrier,
) -> None:
    couple, name, token = member.couple, member.name, member.token
    start, stop = window
    padding = "x" * 80
    async with websockets.connect(
        target.url, subprotocols=[websockets.Subprotocol("v12.stomp")], max_size=2**20
    ) as ws:
        buffer = bytearray()
        receipt = asyncio.Event()

        async def read() -> None:
            async for data in ws:
                buffer.extend(data.encode() if isinstance(data, str) else data)
                for command, headers, body in frames(buffer):
                    if command == "RECEIPT":
                        receipt.set()
                    elif command == "MESSAGE":
                        now = time.time()
                        message = json.loads(body)
                        if "code" in message:  # ieum-chat's /user/queue/errors
                            raise RuntimeError(f"{target.kind}: {message}")
                        if message.get("type") != "TEXT":
                            continue  # ieum-chat's presence events share the topic
                        if start <= now < stop:
                            tally.deliveries += 1
                        sent, sender, _ = message["content"].split(" ", 2)
                        if sender != name and start <= now < stop:
                            tally.latencies_ms.append((now - float(sent)) * 1000)
                    elif command == "ERROR":
                        tally.errors.append(headers.get("message", body.decode()[:200]))

        await ws.send(frame("CONNECT", target.connect_headers(token)))
        connected = bytearray()
        while b"\x00" not in connected:
            data = await ws.recv()
            connected.extend(data.encode() if isinstance(data, str) else data)
        if not connected.lstrip(b"\r\n").startswith(b"CONNECTED"):
            raise RuntimeError(f"{target.kind}: {connected[:300]!r}")
        reader = asyncio.create_task(read())
        await ws.send(frame("SUBSCRIBE", {"id": "0", "destination": target.topic(couple)}))
        if target.kind == "ieum":  # where a refused SEND is told (no RECEIPT comes)
            await ws.send(frame("SUBSCRIBE", {"id": "1", "destination": "/user/queue/errors"}))
        await ready.wait()
        n = 0
        while time.time() < stop:
            receipt.clear()
            body = json.dumps(
                {
                    "type": "TEXT",
                    "content": f"{time.time()} {name} {padding}",
                    "tempId": f"{name}-{n}",
                }
            ).encode()
            headers = {
                "destination": target.send_to(couple),
                "receipt": f"r{n}",
                "content-type": "application/json",
                "content-length": str(len(body)),
            }
            await ws.send(frame("SEND", headers, body))
            await asyncio.wait(
                [asyncio.ensure_future(receipt.wait()), reader], return_when=asyncio.FIRST_COMPLETED
            )
            if reader.done():
                reader.result()  # its exception, or the server closed the socket
                raise RuntimeError(f"{target.kind}: the socket closed")
            if start <= time.time() < stop:
                tally.receipts += 1
            n += 1
        await asyncio.sleep(0.5)  # the last deliveries
        reader.cancel()


async def _process_main(target: Target, couples: list[dict[str, str]], window: Any) -> Tally:
    tally = Tally()
    ready = asyncio.Barrier(2 * len(couples))
    await asyncio.gather(
        *(
            _member(
                target, Member(c["couple"], f"{c['couple']}:{m}", c[f"t{m}"]), tally, window, ready
            )
            for c in couples
            for m in ("a", "b")
        )
    )
    return tally


def _process(target: Target, couples: list[dict[str, str]], window: Any, out: Any) -> None:
    try:
        tally = asyncio.run(_process_main(target, couples, window))
        out.send(tally)
    except BaseException as exc:  # report and let the parent fail
        out.send(Tally(errors=[f"{type(exc).__name__}: {exc}"]))


def run_load(
    target: Target, couples: list[dict[str, str]], procs: int, warmup: float, duration: float
) -> dict[str, Any]:
    begin = time.time() + 2.0 + 0.002 * len(couples)  # every session connected by then
    window = (begin + warmup, begin + warmup + duration)
    pipes, workers = [], []
    for i in range(procs):
        share = couples[i::procs]
        parent, child = multiprocessing.Pipe(duplex=False)
        worker = multiprocessing.Process(target=_process, args=(target, share, window, child))
        worker.start()
        pipes.append(parent)
        workers.append(worker)
    tallies = [pipe.recv() for pipe in pipes]
    for worker in workers:
        worker.join()
    errors = [e for t in tallies for e in t.errors]
    if errors:
        raise SystemExit(f"{target.kind}: {len(errors)} errors, first: {errors[0]}")
    latencies = sorted(x for t in tallies for x in t.latencies_ms)
    receipts = sum(t.receipts for t in tallies)
    return {
        "target": target.kind,
        "msgs_per_s": receipts / duration,
        "deliveries_per_s": sum(t.deliveries for t in tallies) / duration,
        "p50_ms": statistics.median(latencies) if latencies else float("nan"),
        "p99_ms": latencies[int(0.99 * (len(latencies) - 1))] if latencies else float("nan"),
    }


# -- ieum-chat, started through its command ---------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _psql(sql: str) -> None:
    subprocess.run(["psql", PG_ADMIN, "-q", "-c", sql], check=True, capture_output=True)


def run_ieum(couples: int, procs: int, warmup: float, duration: float) -> dict[str, Any]:
    command = str(Path(sys.executable).with_name("ieum-chat"))
    database = f"stompgen_{secrets.token_hex(4)}"
    _psql(f"CREATE DATABASE {database}")
    port = _free_port()
    env = {
        **os.environ,
        "IEUM_DATABASE_URL": PG_ADMIN.rsplit("/", 1)[0] + f"/{database}",
        "IEUM_JWT_SECRET": secrets.token_urlsafe(48),
        "IEUM_PORT": str(port),
        "IEUM_LOG_LEVEL": "WARNING",
        # Load, not abuse: lift the per-user message rate (20/s) and let every session in
        # at once.
        "IEUM_MESSAGE_RATE": "1000000",
        "IEUM_MESSAGE_BURST": "1000000",
        "IEUM_ADMISSION_RATE": "100000",
        "IEUM_ADMISSION_BURST": "100000",
    }
    server = None
    try:
        subprocess.run([command, "migrate"], env=env, check=True, capture_output=True)
        seeded = subprocess.run(
            [command, "seed", "--couples", str(couples), "--ttl", "3600"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        pairs = json.loads(seeded.stdout)
        with tempfile.TemporaryFile() as log:
            # A session of its own, as a daemon runs: Linux shares the CPU between sessions
            # first, and RabbitMQ and PostgreSQL's backends have sessions of their own.
            server = subprocess.Popen(
                [command, "serve"], env=env, stdout=log, stderr=log, start_new_session=True
            )
            deadline = time.monotonic() + 30
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1):
                        break
                except OSError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        log.seek(0)
                        tail = log.read()[-2000:]
                        raise SystemExit(f"ieum-chat did not start: {tail!r}") from None
                    time.sleep(0.2)
            target = Target("ieum", f"ws://127.0.0.1:{port}/ws/chat")
            return run_load(target, pairs, procs, warmup, duration)
    finally:
        if server is not None:
            server.terminate()
            server.wait(20)
        _psql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


def run_rabbitmq(couples: int, procs: int, warmup: float, duration: float) -> dict[str, Any]:
    pairs = [{"couple": uuid.uuid4().hex, "ta": "", "tb": ""} for _ in range(couples)]
    return run_load(Target("rabbitmq", RABBITMQ_URL), pairs, procs, warmup, duration)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stompgen", description=__doc__)
    parser.add_argument("--couples", type=int, default=50)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--only", choices=("ieum", "rabbitmq"))
    args = parser.parse_args(argv)
    runs = {"ieum": run_ieum, "rabbitmq": run_rabbitmq}
    results = []
    for name, run in runs.items():
        if args.only in (None, name):
            print(f"== {name}: {args.couples} couples, {args.duration:g} s", file=sys.stderr)
            results.append(run(args.couples, args.procs, args.warmup, args.duration))
    print("| target | msgs/s | deliveries/s | partner p50 / p99 ms |")
    print("|---|---|---|---|")
    for r in results:
        label = "ieum-chat PostgreSQL" if r["target"] == "ieum" else "RabbitMQ Web-STOMP"
        print(
            f"| {label} | {r['msgs_per_s']:,.0f} | {r['deliveries_per_s']:,.0f} "
            f"| {r['p50_ms']:.1f} / {r['p99_ms']:.1f} |"
        )
    if len(results) == 2:
        ratio = results[0]["msgs_per_s"] / results[1]["msgs_per_s"]
        print(f"\nieum-chat PostgreSQL / RabbitMQ messages/s: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
