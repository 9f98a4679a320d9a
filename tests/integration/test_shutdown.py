"""A node stops within ``IEUM_SHUTDOWN_GRACE`` + 1 s whatever its Redis has just done: been
emptied under it (what a restart without persistence leaves), or been restarted (every
connection reset). Each wait of the stop has a deadline, so a backend that stopped answering,
or a driver that lost a cancellation, cannot hold a node up.

The node has a STOMP session open (so presence has counts to give back when it leaves) and
heart-beats presence every 10 ms, so the stop meets the heart-beat in every state: sleeping,
in a command, re-asserting its counts after finding the keys gone.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fixtures import SERVER_ENV
from tests.support.redis import RedisServer
from tests.support.server import Cli, ServerProcess
from tests.support.stomp_client import StompTestClient

GRACE = 2.0
ROUNDS = 2


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    RedisServer.require()
    server = RedisServer(tmp_path).start()
    try:
        yield server
    finally:
        server.stop()


async def _node_with_a_session(
    cli: Cli, redis: RedisServer, log: Path
) -> tuple[ServerProcess, StompTestClient]:
    env = {
        **SERVER_ENV,
        "IEUM_REDIS_URL": redis.url,
        "IEUM_SHUTDOWN_GRACE": str(GRACE),
        "IEUM_PRESENCE_TTL": "0.03",
    }
    node = ServerProcess(cli, log, extra_env=env).start()
    (pair,) = cli.seed(1)
    client = await StompTestClient.connected(node.ws_url, pair["ta"])
    await client.subscribe(f"/topic/couple/{pair['couple']}")
    return node, client


def _seconds_to_stop(node: ServerProcess) -> float:
    assert node.proc is not None
    started = time.monotonic()
    node.proc.send_signal(signal.SIGTERM)
    try:
        node.proc.wait(timeout=GRACE + 30)
    except subprocess.TimeoutExpired:
        node.proc.kill()
        raise AssertionError(f"still running {GRACE + 30} s after SIGTERM") from None
    return time.monotonic() - started


@pytest.mark.parametrize("what", ["emptied", "restarted"])
async def test_a_node_stops_in_time_right_after_its_redis_was(
    what: str, cli: Cli, redis_server: RedisServer, tmp_path: Path
) -> None:
    for i in range(ROUNDS):
        node, client = await _node_with_a_session(cli, redis_server, tmp_path / f"node-{i}.log")
        try:
            await asyncio.sleep(0.5)  # a few heart-beats
            if what == "emptied":
                redis_server.flush()
            else:
                redis_server.restart()
            elapsed = _seconds_to_stop(node)
            assert elapsed <= GRACE + 1, f"the stop took {elapsed:.1f} s: {node.log_text()[-2000:]}"
        finally:
            node.stop()
            await client.close()
