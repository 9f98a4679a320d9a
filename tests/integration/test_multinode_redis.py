"""Redis goes away under a node: it keeps serving its own subscribers, reconnects by itself,
and every subscriber on either side catches up by seq from the database afterwards. Node 0
reaches Redis through a TCP proxy the test cuts; node 1 reaches it directly."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.support.chat import text
from tests.support.fixtures import SERVER_ENV
from tests.support.nginx import Cluster, running_cluster
from tests.support.redis import redis_address, require_redis
from tests.support.stomp_client import StompTestClient
from tests.support.tcp_proxy import ProxyFactory, TcpProxy

pytestmark = pytest.mark.postgres

Couple = dict[str, str]


@pytest.fixture(scope="module")
def proxy(tcp_proxy: ProxyFactory) -> TcpProxy:
    require_redis()
    return tcp_proxy(*redis_address())


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, proxy: TcpProxy) -> Iterator[Cluster]:
    node_env = {0: {"IEUM_REDIS_URL": f"redis://127.0.0.1:{proxy.port}/0"}}
    workdir = tmp_path_factory.mktemp("redis-faults")
    with running_cluster(workdir, size=2, env=SERVER_ENV, node_env=node_env) as cluster:
        yield cluster


async def through(client: StompTestClient, receipt: str, seq: int) -> list[int]:
    """The seqs a client sees up to ``seq`` while waiting for ``receipt`` (a sender's RECEIPT
    and the broadcast of its own message come in either order)."""
    seen = await client.receipt(receipt, timeout=10)
    while not seen or seen[-1].get("seq") != seq:
        seen.append(await client.expect_message(timeout=10))
    return [m["seq"] for m in seen]


async def test_a_node_cut_off_from_redis_serves_locally_then_everyone_catches_up(
    cluster: Cluster, proxy: TcpProxy
) -> None:
    couple = cluster.cli.seed(1)[0]
    topic = f"/topic/couple/{couple['couple']}"
    dest = f"/app/chat/{couple['couple']}"
    near, far = cluster.nodes[0].ws_url, cluster.nodes[1].ws_url
    a = await StompTestClient.connected(near, couple["ta"])  # on the node that loses Redis
    b_here = await StompTestClient.connected(near, couple["tb"])  # b's tablet, same node
    b = await StompTestClient.connected(far, couple["tb"])  # b's phone, the other node
    for client in (a, b_here, b):
        await client.subscribe(topic, {"x-resume-after-seq": "0"})
    await a.send("SEND", {"destination": dest, "receipt": "r1"}, text("m1"))
    assert await through(a, "r1", 1) == [1]
    for client in (b_here, b):
        assert (await client.expect_message())["seq"] == 1

    proxy.cut()
    await asyncio.sleep(0.3)  # the node notices: its pub/sub link is reset
    for i in (2, 3, 4):
        await a.send("SEND", {"destination": dest, "receipt": f"r{i}"}, text(f"m{i}"))
    assert await through(a, "r4", 4) == [2, 3, 4]
    # Same node: served at once, Redis or not.
    assert [(await b_here.expect_message())["seq"] for _ in range(3)] == [2, 3, 4]
    # The other node's b writes meanwhile; its own node catches it up on the gap (2-4).
    await b.send("SEND", {"destination": dest, "receipt": "r5"}, text("m5"))
    assert await through(b, "r5", 5) == [2, 3, 4, 5]

    proxy.restore()
    # Node 0 reconnects, resubscribes and resyncs: its subscribers get seq 5 from the database.
    for client in (a, b_here):
        late = await client.expect_message(timeout=15)
        assert (late["seq"], late["content"]) == (5, "m5")
    # And it crosses nodes again, live, once.
    await a.send("SEND", {"destination": dest, "receipt": "r6"}, text("m6"))
    for client in (b, b_here):
        assert (await client.expect_message(timeout=10))["seq"] == 6
    assert await through(a, "r6", 6) == [6]
    for client in (a, b_here, b):
        await client.assert_silent(0.5)
        await client.close()
