"""Metrics move by the right amounts, tokens never reach logs or metrics, readiness follows
the database (and only reports a lost broker as degraded), and the shipped dashboard names
only metrics that exist."""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from tests.support.fixtures import SERVER_ENV
from tests.support.postgres import (
    create_database,
    drop_database,
    postgres_address,
    require_postgres,
    through_port,
)
from tests.support.redis import redis_address, require_redis, unique_prefix
from tests.support.server import Cli, ServerProcess
from tests.support.stomp_client import StompTestClient
from tests.support.tcp_proxy import ProxyFactory

DASHBOARD = Path(__file__).parents[2] / "deploy" / "grafana" / "ieum-chat-dashboard.json"
# Debug logging, so that every line that could leak a token is written.
pytestmark = pytest.mark.server_env({"IEUM_LOG_LEVEL": "DEBUG"})

_SAMPLE = re.compile(r"^([a-zA-Z_:][\w:]*)(\{[^}]*\})? ([-+0-9.eEnaif]+)$")


def scrape(server: ServerProcess) -> dict[str, float]:
    text = httpx.get(f"{server.http_url}/metrics", timeout=5).text
    samples: dict[str, float] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match:
            samples[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return samples


def delta(before: dict[str, float], after: dict[str, float], key: str) -> float:
    return after.get(key, 0.0) - before.get(key, 0.0)


async def settle(*clients: StompTestClient) -> None:
    """Drain what is in flight (presence events) so counters stand still."""
    for client in clients:
        try:
            while True:
                await client.next_frame(timeout=0.4)
        except TimeoutError:
            pass


async def test_counters_follow_a_scripted_chat(
    server: ServerProcess, couple: dict[str, str]
) -> None:
    a = await StompTestClient.connected(server.ws_url, couple["ta"])
    b = await StompTestClient.connected(server.ws_url, couple["tb"])
    for client in (a, b):
        await client.subscribe("/user/queue/errors")
        await client.subscribe(f"/topic/couple/{couple['couple']}")
    await settle(a, b)
    before = scrape(server)
    assert before['ieum_connections_open{transport="websocket"}'] >= 2
    dest = f"/app/chat/{couple['couple']}"
    for i in range(3):
        await a.send(
            "SEND",
            {"destination": dest, "receipt": f"r{i}"},
            {"type": "TEXT", "content": f"m{i}", "tempId": f"t{i}"},
        )
        await a.receipt(f"r{i}")
    await a.send(
        "SEND",
        {"destination": dest, "receipt": "dup"},
        {"type": "TEXT", "content": "m0", "tempId": "t0"},
    )  # a retry: not stored
    await a.receipt("dup")
    await b.send("SEND", {"destination": dest + "/read", "receipt": "rd"}, {"upToSeq": 3})
    await b.receipt("rd")
    await b.send("SEND", {"destination": dest + "/typing", "receipt": "ty"}, {"typing": True})
    await b.receipt("ty")
    await a.send("SEND", {"destination": dest}, {"type": "TEXT", "content": " "})
    with pytest.raises(InvalidStatus):
        await StompTestClient.open(server.ws_url, token="forged.token.value")
    await settle(a, b)
    after = scrape(server)
    assert delta(before, after, 'ieum_messages_received_total{via="stomp"}') == 5
    assert delta(before, after, "ieum_messages_stored_total") == 3
    assert delta(before, after, "ieum_read_receipts_total") == 1
    assert delta(before, after, "ieum_typing_events_total") == 1
    # 3 messages, 1 read receipt and 1 typing event to 2 subscribers, plus 1 error payload.
    assert delta(before, after, "ieum_messages_delivered_total") == 11
    assert delta(before, after, 'ieum_errors_total{code="SEND_FAILED"}') == 1
    assert delta(before, after, 'ieum_auth_failures_total{where="handshake"}') == 1
    assert delta(before, after, "ieum_send_commit_seconds_count") == 4
    # Each SEND waited for its RECEIPT: four message transactions (the retry's too), and the
    # read mark's change.
    assert delta(before, after, 'ieum_write_transaction_seconds_count{kind="messages"}') == 4
    assert delta(before, after, 'ieum_write_transaction_seconds_count{kind="changes"}') == 1
    assert after["ieum_stomp_sessions"] >= 2
    assert after["ieum_subscriptions"] >= 2
    await a.close()
    await b.close()
    await asyncio.sleep(0.3)
    closed = scrape(server)
    assert delta(after, closed, 'ieum_connections_open{transport="websocket"}') == -2


async def test_tokens_never_reach_logs_or_metrics(
    server: ServerProcess, couple: dict[str, str]
) -> None:
    tokens = [couple["ta"], couple["tb"]]
    via_query = await StompTestClient.connected(server.ws_url, couple["ta"], via="query")
    via_header = await StompTestClient.connected(server.ws_url, couple["tb"], via="header")
    via_connect = await StompTestClient.connected(server.ws_url, couple["ta"], via="connect")
    # A refused token is logged as a refusal, never verbatim.
    bad = couple["ta"][:-4] + "abcd"
    tokens.append(bad)
    with pytest.raises(InvalidStatus):
        await StompTestClient.open(server.ws_url, token=bad)
    refused = await StompTestClient.open(server.ws_url)
    await refused.send("CONNECT", {"accept-version": "1.2", "Authorization": f"Bearer {bad}"})
    await refused.expect("ERROR")
    async with httpx.AsyncClient() as http:
        await http.get(f"{server.http_url}/healthz", params={"token": couple["ta"]}, timeout=5)
    for client in (via_query, via_header, via_connect):
        await client.send("DISCONNECT", {"receipt": "bye"})
        await client.receipt("bye")
    await asyncio.sleep(0.3)
    log_text = server.log_text()
    assert "WebSocket /ws/chat?token=[REDACTED]" in log_text  # the redaction did run
    async with httpx.AsyncClient() as http:
        metrics_text = (await http.get(f"{server.http_url}/metrics", timeout=5)).text
    for token in tokens:
        for part in token.split("."):
            if len(part) > 20:
                assert part not in log_text
                assert part not in metrics_text


def test_dashboard_names_only_existing_metrics(server: ServerProcess) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {name for expr in exprs for name in re.findall(r"\b(ieum_[a-z_]+)", expr)}
    text = httpx.get(f"{server.http_url}/metrics", timeout=5).text
    exposed = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}
    families = set()
    for name in exposed:
        families.update({name, f"{name}_total", f"{name}_bucket", f"{name}_count", f"{name}_sum"})
    assert used
    assert used <= families, used - families


def test_readyz_follows_the_database(tmp_path: Path, tcp_proxy: ProxyFactory) -> None:
    require_postgres()
    url = create_database()
    proxy = tcp_proxy(*postgres_address())
    try:
        Cli.for_database(url).run("migrate")
        cli = Cli.for_database(through_port(url, proxy.port))
        server = ServerProcess(cli, tmp_path / "server.log", extra_env=SERVER_ENV).start()
        try:
            ready = httpx.get(f"{server.http_url}/readyz", timeout=10)
            assert ready.status_code == 200
            assert ready.json()["checks"] == {"database": "ok", "broker": "ok"}
            proxy.cut()
            down = httpx.get(f"{server.http_url}/readyz", timeout=10)
            assert down.status_code == 503
            assert down.json()["checks"]["database"].startswith("down")
            assert "ieum_database_up 0.0" in httpx.get(f"{server.http_url}/metrics").text
            assert httpx.get(f"{server.http_url}/healthz", timeout=5).status_code == 200
            proxy.restore()
            deadline = time.monotonic() + 15
            while httpx.get(f"{server.http_url}/readyz", timeout=10).status_code != 200:
                assert time.monotonic() < deadline, "readyz did not recover"
                time.sleep(0.3)
        finally:
            server.stop()
    finally:
        drop_database(url)


def test_readyz_stays_ready_while_the_broker_is_down(
    tmp_path: Path, tcp_proxy: ProxyFactory
) -> None:
    """A node whose Redis is gone still serves its own sessions: a load balancer that drained
    it (and, Redis being shared, every other node at once) would turn a fan-out outage into a
    full one. So /readyz stays 200 and says "degraded", with a gauge to alert on."""
    require_redis()
    proxy = tcp_proxy(*redis_address())
    env = SERVER_ENV | {
        "IEUM_REDIS_URL": f"redis://127.0.0.1:{proxy.port}/0",
        "IEUM_REDIS_PREFIX": unique_prefix(),
    }
    cli = Cli.for_database(f"sqlite:///{tmp_path / 'chat.db'}")
    server = ServerProcess(cli, tmp_path / "server.log", extra_env=env).start()
    try:
        ready = httpx.get(f"{server.http_url}/readyz", timeout=10)
        assert ready.status_code == 200
        assert ready.json() == {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}
        assert scrape(server)["ieum_degraded"] == 0
        proxy.cut()
        degraded = httpx.get(f"{server.http_url}/readyz", timeout=10)
        assert degraded.status_code == 200
        body = degraded.json()
        assert body["status"] == "degraded"
        assert body["checks"]["database"] == "ok"
        assert body["checks"]["broker"].startswith("down")
        samples = scrape(server)
        assert samples["ieum_degraded"] == 1
        assert samples["ieum_broker_up"] == 0
        proxy.restore()
        deadline = time.monotonic() + 15
        while httpx.get(f"{server.http_url}/readyz", timeout=10).json()["status"] != "ok":
            assert time.monotonic() < deadline, "readyz did not recover"
            time.sleep(0.3)
        assert scrape(server)["ieum_degraded"] == 0
    finally:
        server.stop()
