"""What push costs the chat: messages/s with pushes on (every partner offline: one device
per member on a local FCM service, no session says it is that device) next to pushes off,
in one run on one machine, and the lag from a message's acceptance to the provider's accept
at half of the push-on peak.

    python -m bench.push                         # PostgreSQL, 50 couples, 15 s per run
    python -m bench.push --sqlite --couples 20

The local FCM service (the tests' one: OAuth2 token endpoint and messages:send over TLS) runs
in this process; the chat server, the load generators and the database run beside it on the
same cores, so the push-on figure pays for the provider too. Everything runs on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC
from pathlib import Path
from typing import Any, Literal

import httpx
from tests.support.push_servers import FcmServer, make_tls, write_service_account
from tests.support.push_servers.threaded import Threaded

from ieum_chat.store import Database

from ._load import LoadSpec, run_load
from ._servers import IeumServer
from ._targets import Couple, Target

__all__ = ["main"]


def _register(server: IeumServer, couples: list[Couple]) -> dict[str, str]:
    """One FCM device per member; token -> user id."""
    tokens: dict[str, str] = {}
    with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=10) as http:
        for couple in couples:
            for user, jwt in ((couple.a, couple.ta), (couple.b, couple.tb)):
                token = f"bench-{uuid.uuid4().hex}"
                response = http.put(
                    "/chat/devices/phone",
                    json={"platform": "fcm", "token": token},
                    headers={"Authorization": f"Bearer {jwt}"},
                )
                response.raise_for_status()
                tokens[token] = user
    return tokens


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


def _backlog(port: int) -> float:
    """The server's pushes owed and not yet accepted (its gauge, read every 5 s)."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith('ieum_delivery_backlog{channel="fcm"}'):
            return float(line.split()[-1])
    return 0.0


def _drain(fcm: FcmServer, port: int, limit: float = 600.0) -> float:
    """Wait until the server owes no push and the provider got nothing new for 6 s (the
    gauge's period); seconds until the last push arrived."""
    start = time.monotonic()
    count, since = len(fcm.messages), time.monotonic()
    while time.monotonic() - start < limit:
        time.sleep(0.5)
        if len(fcm.messages) != count:
            count, since = len(fcm.messages), time.monotonic()
        elif time.monotonic() - since > 6 and _backlog(port) == 0:
            break
    return round(since - start, 1)


def _sustained(fcm: FcmServer, start: int) -> float:
    """Pushes/s the provider took from ``start`` on (while a backlog kept it busy)."""
    got = fcm.messages[start:]
    if len(got) < 2:
        return 0.0
    return round(len(got) / (got[-1].received_at - got[0].received_at), 1)


def _lag_summary(lags: list[float]) -> dict[str, float]:
    if not lags:
        return {}
    return {
        "p50": round(statistics.median(lags) * 1000, 1),
        "p99": round(_percentile(lags, 0.99) * 1000, 1),
        "max": round(max(lags) * 1000, 1),
    }


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


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
        tls = make_tls(root)
        (root / "off").mkdir()
        with IeumServer(backend, root / "off", args.couples) as server:
            off = run_load(_spec(server, args, "push off"))
        out["off_msgs_per_s"] = off["throughput"]["msgs_per_s"]
        with Threaded(FcmServer(tls)) as fcm:
            account = write_service_account(root, fcm.server.token_uri)
            fcm.call(lambda s: s.trust(account))
            env = {
                "IEUM_FCM_CREDENTIALS": account.path,
                "IEUM_FCM_ENDPOINT": fcm.server.url,
                "IEUM_PUSH_CA_FILE": tls.ca_file,
                "IEUM_LOG_LEVEL": "WARNING",
            }
            (root / "on").mkdir()
            with IeumServer(backend, root / "on", args.couples, extra_env=env) as server:
                _register(server, server.couples)
                on = run_load(_spec(server, args, "push on"))
                out["on_msgs_per_s"] = on["throughput"]["msgs_per_s"]
                # the closed loop outruns the pushes: their backlog drains after it
                out["drain_s"] = _drain(fcm.server, server.port)
                out["pushes_per_s_sustained"] = _sustained(fcm.server, 0)
                # half of the push-on peak (pushes may not keep up), then half of what the
                # pushes sustained (their own latency); each after the backlog drained
                for name, rate in (
                    ("half_peak", out["on_msgs_per_s"] / 2),
                    ("half_push_rate", out["pushes_per_s_sustained"] / 2),
                ):
                    done = len(fcm.server.messages)
                    run = run_load(_spec(server, args, f"push on, {rate:.0f} msgs/s", rate=rate))
                    _drain(fcm.server, server.port)
                    received = {
                        m.message["data"]["messageId"]: m.received_at
                        for m in fcm.server.messages[done:]
                    }
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
