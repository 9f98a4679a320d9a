"""What every presence backend promises: ``opened`` returns True for exactly the call that
brought a user's sessions, on all nodes together, from 0 to 1, and ``closed`` for exactly the
call that brought them back to 0. Runs on the in-process counts and on Redis."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any


async def test_first_session_connects_and_last_disconnects(cluster: Any) -> None:
    node = await cluster.node(0)
    user = uuid.uuid4()
    assert not await node.online(user)
    assert await node.opened(user) is True
    assert await node.opened(user) is False
    assert await node.online(user)
    assert node.session_count(user) == 2
    assert await node.closed(user) is False
    assert await node.online(user)
    assert await node.closed(user) is True
    assert not await node.online(user)
    assert node.session_count(user) == 0


async def test_sessions_on_different_nodes_make_one_user(cluster: Any) -> None:
    first, second = await cluster.node(0), await cluster.node(1)
    user = uuid.uuid4()
    assert await first.opened(user) is True
    assert await second.opened(user) is False  # already online through the first node
    assert await second.online(user)
    assert await first.closed(user) is False  # still online through the second
    assert await first.online(user)
    assert await second.closed(user) is True
    assert not await first.online(user)
    assert cluster.all_reported() == []


async def test_a_close_without_an_open_is_ignored(cluster: Any) -> None:
    node = await cluster.node(0)
    user = uuid.uuid4()
    assert await node.closed(user) is False
    assert await node.opened(user) is True  # the stray close did not go below zero
    assert await node.closed(user) is True
    assert await node.closed(user) is False


async def test_users_are_counted_separately(cluster: Any) -> None:
    node = await cluster.node(0)
    users = [uuid.uuid4() for _ in range(20)]
    assert [await node.opened(u) for u in users] == [True] * 20
    assert [await node.opened(u) for u in users] == [False] * 20
    assert [await node.closed(u) for u in users[:10]] == [False] * 10
    assert [await node.closed(u) for u in users[:10]] == [True] * 10
    assert [await node.online(u) for u in users] == [False] * 10 + [True] * 10


async def test_concurrent_sessions_on_every_node_announce_once(cluster: Any) -> None:
    nodes = [await cluster.node(i) for i in range(3)]
    user = uuid.uuid4()
    for _ in range(3):
        opened = await asyncio.gather(*(n.opened(user) for n in nodes for _ in range(10)))
        assert opened.count(True) == 1
        closed = await asyncio.gather(*(n.closed(user) for n in nodes for _ in range(10)))
        assert closed.count(True) == 1
        assert not await nodes[0].online(user)


async def test_session_count_is_this_nodes(cluster: Any) -> None:
    first, second = await cluster.node(0), await cluster.node(1)
    user = uuid.uuid4()
    await first.opened(user)
    await second.opened(user)
    await second.opened(user)
    if cluster.backend == "memory":
        assert first.session_count(user) == 3  # one node: all of them
    else:
        assert (first.session_count(user), second.session_count(user)) == (1, 2)
