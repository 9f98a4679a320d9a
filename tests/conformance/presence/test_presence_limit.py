"""The per-user session limit is checked and counted in one step: however many sessions of
one user open at once, on one node or on several, exactly ``limit`` of them are admitted.

A check of the count followed by a separate increment would let every concurrent open see
the same count below the limit (the "150 concurrent CONNECTs all succeed" failure)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from ieum_chat.broker import SessionLimitReached

LIMIT = 10


async def _open(node: Any, user: uuid.UUID) -> bool:
    try:
        await node.opened(user, limit=LIMIT)
    except SessionLimitReached:
        return False
    return True


@pytest.mark.parametrize("node_count", [1, 3])
async def test_concurrent_opens_past_the_limit_are_refused(cluster: Any, node_count: int) -> None:
    nodes = [await cluster.node(i) for i in range(node_count)]
    user = uuid.uuid4()
    admitted = await asyncio.gather(*(_open(nodes[i % node_count], user) for i in range(150)))
    assert admitted.count(True) == LIMIT
    # A refused open counted nothing: closing the admitted ones brings the user offline.
    # (In-process presence is one node, whatever the index.)
    owners = list(dict.fromkeys(nodes))
    holders = [n for n in owners for _ in range(n.session_count(user))]
    assert len(holders) == LIMIT
    closed = [await node.closed(user) for node in holders]
    assert closed == [False] * (LIMIT - 1) + [True]
    assert not await nodes[0].online(user)


async def test_a_closed_session_frees_its_place(cluster: Any) -> None:
    first, second = await cluster.node(0), await cluster.node(1)
    user = uuid.uuid4()
    for i in range(LIMIT):
        await (first if i % 2 else second).opened(user, limit=LIMIT)
    with pytest.raises(SessionLimitReached):
        await first.opened(user, limit=LIMIT)
    assert await second.closed(user) is False
    assert await first.opened(user, limit=LIMIT) is False  # the freed place, not a new user
    with pytest.raises(SessionLimitReached):
        await second.opened(user, limit=LIMIT)
    other = uuid.uuid4()
    assert await second.opened(other, limit=LIMIT) is True  # the limit is per user
