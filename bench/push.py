"""What push costs the chat: messages/s with pushes on (every partner offline: one device
per member on a local FCM service, no session says it is that device) next to pushes off,
in one run on one machine; how many pushes/s the server sustains; and the lag from a
message's acceptance to the provider's accept, at half the push-on peak and at half the
sustained push rate.

    python -m bench.push                         # PostgreSQL, 50 couples, 15 s per run
    python -m bench.push --sqlite --couples 20

The local FCM service (the tests' one: OAuth2 token endpoint and messages:send over TLS and
HTTP/2) runs in a process of its own (``bench._push_service``); it, the chat server, the load
generators and the database share this machine's cores. Everything runs on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC
from pathlib import Path
from typing import Any, Literal

import httpx

from ieum_chat.store import Database

from ._load import LoadSpec, run_load
from ._servers import IeumServer
from ._targets import Couple, Target

__all__ = ["main"]


class PushService:
    """The local FCM service's process, and what it accepted (message id -> when)."""

    def __init__(self, root: Path, proc: subprocess.Popen[bytes], info: dict[str, str]) -> None:
        self.root = root
        self.proc = proc
        self.info = info

    def received(self) -> list[tuple[str, float]]:
        path = self.root / "received.jsonl"
        lines = path.read_text().splitlines() if path.exists() else []
        rows = [json.loads(line) for line in lines if line.endswith("]")]
        return [(str(mid), float(at)) for mid, at in rows]

    def env(self) -> dict[str, str]:
        return {
            "IEUM_FCM_CREDENTIALS": self.info["credentials"],
            "IEUM_FCM_ENDPOINT": self.info["url"],
            "IEUM_PUSH_CA_FILE": self.info["ca"],
            "IEUM_LOG_LEVEL": "WARNING",
        }


@contextmanager
def push_service(root: Path) -> Iterator[PushService]:
    root.mkdir()
    log = (root / "service.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench._push_service", str(root)], stdout=log, stderr=log
    )
    log.close()
    try:
        deadline = time.monotonic() + 30
        while not (root / "service.json").exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the local FCM service did not start: see {root}")
            time.sleep(0.1)
        yield PushService(root, proc, json.loads((root / "service.json").read_text()))
    finally:
        proc.kill()
        proc.wait(10)


def _register(server: IeumServer, couples: list[Couple]) -> None:
    """One FCM device per member."""
    with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=10) as http:
        for couple in couples:
            for jwt in (couple.ta, couple.tb):
                response = http.put(
                    "/chat/devices/phone",
                    json={"platform": "fcm", "token": f"bench-{uuid.uuid4().hex}"},
                    headers={"Authorization": f"Bearer {jwt}"},
                )
                response.raise_for_status()


def _spec(server: IeumServer, args: argparse.Namespace, label: str, rate: float = 0.0) -> LoadSpec:
    return LoadSpec(
        target=Target("ieum", server.url),
        couples=server.couples,
        procs=args.procs,
        duration=args.duration,
        warmup=args.warmup,
        rate=rate,
        server_pid=server.pid,
        db_match=server.db_match,
        label=label,
        progress=not args.quiet,
    )


def _backlog(port: int) -> float:
    """The server's pushes owed and not yet accepted (its gauge, read every 5 s)."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith('ieum_delivery_backlog{channel="fcm"}'):
            return float(line.split()[-1])
    return 0.0


def _drain(service: PushService, port: int, limit: float = 900.0) -> float:
    """Wait until the server owes no push and none arrived for 6 s (the gauge's period);
    seconds until the last push arrived."""
    start = time.monotonic()
    count, since = len(service.received()), time.monotonic()
    while time.monotonic() - start < limit:
        time.sleep(0.5)
        now = len(service.received())
        if now != count:
            count, since = now, time.monotonic()
        elif time.monotonic() - since > 6 and _backlog(port) == 0:
            break
    return round(since - start, 1)


def _sustained(got: list[tuple[str, float]]) -> float:
    """Pushes/s the provider took while a backlog kept the server busy."""
    if len(got) < 2:
        return 0.0
    return round(len(got) / (got[-1][1] - got[0][1]), 1)


async def _lags(database_url: str, received: dict[str, float]) -> list[float]:
    """Seconds from each pushed message's acceptance (``created_at``) to the provider's."""
    db = await Database.connect(database_url)
    try:
        ids = [uuid.UUID(i) for i in received]
        found = {}
        for start in range(0, len(ids), 500):
            found.update(await db.messages_by_id(ids[start : start + 500]))
    finally:
        await db.close()
    return [
        received[str(mid)] - m.created_at.replace(tzinfo=UTC).timestamp()
        for mid, m in found.items()
    ]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _lag_summary(lags: list[float]) -> dict[str, float]:
    if not lags:
        return {}
    return {
        "p50": round(statistics.median(lags) * 1000, 1),
        "p99": round(_percentile(lags, 0.99) * 1000, 1),
        "max": round(max(lags) * 1000, 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.push", description=__doc__)
    parser.add_argument("--couples", type=int, default=50)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--sqlite", action="store_true", help="SQLite instead of PostgreSQL")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args(argv)
    backend: Literal["sqlite", "postgresql"] = "sqlite" if args.sqlite else "postgresql"
    out: dict[str, Any] = {"backend": backend, "couples": args.couples}
    with tempfile.TemporaryDirectory(prefix="ieum-push-bench-") as tmp:
        root = Path(tmp)
        (root / "off").mkdir()
        with IeumServer(backend, root / "off", args.couples) as server:
            off = run_load(_spec(server, args, "push off"))
        out["off_msgs_per_s"] = off["throughput"]["msgs_per_s"]
        (root / "on").mkdir()
        with (
            push_service(root / "fcm") as service,
            IeumServer(backend, root / "on", args.couples, extra_env=service.env()) as server,
        ):
            _register(server, server.couples)
            on = run_load(_spec(server, args, "push on"))
            out["on_msgs_per_s"] = on["throughput"]["msgs_per_s"]
            # the closed loop may outrun the pushes: their backlog drains after it
            out["drain_s"] = _drain(service, server.port)
            out["pushes_per_s_sustained"] = _sustained(service.received())
            # half the push-on peak (the pushes may not keep up), then half of what the pushes
            # sustained (their own latency); each once the backlog has drained
            for name, rate in (
                ("half_peak", out["on_msgs_per_s"] / 2),
                ("half_push_rate", out["pushes_per_s_sustained"] / 2),
            ):
                done = len(service.received())
                run = run_load(_spec(server, args, f"push on, {rate:.0f} msgs/s", rate=rate))
                _drain(service, server.port)
                received = dict(service.received()[done:])
                lags = asyncio.run(_lags(server.env["IEUM_DATABASE_URL"], received))
                out[name] = {
                    "rate": round(rate, 1),
                    "msgs_per_s": run["throughput"]["msgs_per_s"],
                    "pushes": len(lags),
                    "lag_ms": _lag_summary(lags),
                }
    out["ratio_on_vs_off"] = round(out["on_msgs_per_s"] / out["off_msgs_per_s"], 3)
    print(json.dumps(out, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps({**out, "runs": {"off": off, "on": on}}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
