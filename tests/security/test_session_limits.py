"""Threat: one user (a stolen token, or a buggy client in a reconnect loop) opens sessions
without bound, each holding a socket, buffers and subscriptions, and so exhausts the server.

``IEUM_MAX_SESSIONS_PER_USER`` bounds the sessions of one user on every node together. The
check and the count are one step in the presence backend, so a burst of concurrent CONNECTs
(all arriving before any of them is counted) cannot slip past it: exactly ``limit`` succeed,
on one node or spread over several sharing a Redis, and the rest get ERROR ``RATE_LIMITED``.

Refused by: ``Presence.opened(user, limit=...)`` (in-process: one step on the event loop;
Redis: one Lua script over the totals of every node), called by ``ChatService.session_opened``
before CONNECTED is sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fixtures import SERVER_ENV
from tests.support.redis import REDIS_URL, delete_prefix, require_redis, unique_prefix
from tests.support.server import Cli, ServerProcess
from tests.support.stomp_client import StompTestClient, frame_json

LIMIT = 10
ATTEMPTS = 150
ENV = {**SERVER_ENV, "IEUM_MAX_SESSIONS_PER_USER": str(LIMIT)}


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Cli:
    tool = Cli.for_database(f"sqlite:///{tmp_path_factory.mktemp('db') / 'chat.db'}")
    tool.run("migrate")
    return tool


@pytest.fixture(scope="module")
def one_node(cli: Cli, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    node = ServerProcess(cli, tmp_path_factory.mktemp("one") / "node.log", extra_env=ENV).start()
    try:
        yield [node.ws_url]
    finally:
        node.stop()


@pytest.fixture(scope="module")
def two_nodes(cli: Cli, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    require_redis()
    prefix = unique_prefix()
    env = {**ENV, "IEUM_REDIS_URL": REDIS_URL, "IEUM_REDIS_PREFIX": prefix}
    workdir = tmp_path_factory.mktemp("two")
    nodes: list[ServerProcess] = []
    try:
        for i in range(2):
            nodes.append(ServerProcess(cli, workdir / f"node{i}.log", extra_env=env).start())
        yield [n.ws_url for n in nodes]
    finally:
        for node in nodes:
            node.stop()
        delete_prefix(prefix)


async def _connect(url: str, token: str) -> tuple[str, StompTestClient]:
    """CONNECT and return the answer's command (and the client, left open)."""
    client = await StompTestClient.open(url)
    await client.send(
        "CONNECT",
        {"accept-version": "1.2", "host": "ieum", "Authorization": f"Bearer {token}"},
    )
    frame = await client.next_frame(timeout=60)
    if frame.command == "ERROR":
        assert frame.get("message") == "RATE_LIMITED"
        assert frame_json(frame)["code"] == "RATE_LIMITED"
    return frame.command, client


async def _burst(urls: list[str], token: str) -> list[str]:
    # Every socket is open before the first CONNECT goes out: the CONNECTs race.
    results = await asyncio.gather(*(_connect(urls[i % len(urls)], token) for i in range(ATTEMPTS)))
    for _, client in results:
        await client.close()
    return [command for command, _ in results]


@pytest.mark.parametrize("nodes", ["one_node", "two_nodes"])
async def test_concurrent_connects_of_one_user_stop_at_the_limit(
    cli: Cli, nodes: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    urls: list[str] = request.getfixturevalue(nodes)
    couple = cli.seed(1)[0]
    answers = await _burst(urls, couple["ta"])
    assert answers.count("CONNECTED") == LIMIT
    assert answers.count("ERROR") == ATTEMPTS - LIMIT
    # The refused sessions counted nothing, and the closed ones gave their places back.
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        again = await _burst(urls, couple["ta"])
        if again.count("CONNECTED") == LIMIT or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.2)
    assert again.count("CONNECTED") == LIMIT
