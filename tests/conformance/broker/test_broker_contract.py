"""What every broker promises: see conftest.py. Runs on the in-process broker and on Redis."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from tests.support.steps import in_one_step

CHANNEL = "couple:conformance"


async def test_a_payload_reaches_every_subscriber_on_every_node_once(
    cluster: Any, new_collector: Any
) -> None:
    handlers = [new_collector() for _ in range(3)]
    for index, handler in enumerate(handlers):
        await (await cluster.node(index)).subscribe(CHANNEL, handler)
    await (await cluster.node(0)).publish(CHANNEL, b"1\nhello")
    for handler in handlers:
        assert await handler.wait_for(1) == [b"1\nhello"]
        assert handler.got[0][0] == CHANNEL
    for handler in handlers:
        assert await handler.settle() == [b"1\nhello"]


async def test_payloads_keep_their_publish_order(cluster: Any, new_collector: Any) -> None:
    near, far = new_collector(), new_collector()
    await (await cluster.node(0)).subscribe(CHANNEL, near)
    await (await cluster.node(1)).subscribe(CHANNEL, far)
    sent = [b"%d\nm" % i for i in range(1, 2001)]
    publisher = await cluster.node(0)
    for payload in sent:
        await publisher.publish(CHANNEL, payload)
    assert await near.wait_for(len(sent)) == sent
    assert await far.wait_for(len(sent)) == sent
    assert await far.settle() == sent


async def test_publish_returns_without_suspending_and_serves_this_node_inside_it(
    cluster: Any, new_collector: Any
) -> None:
    """The chat service publishes from its database writers: a publish that waited for the
    backend would hold up the next commit."""
    near, far = new_collector(), new_collector()
    publisher = await cluster.node(0)
    await publisher.subscribe(CHANNEL, near)
    await (await cluster.node(1)).subscribe(CHANNEL, far)
    sent = [b"%d\nm" % i for i in range(1, 101)]
    for payload in sent:
        in_one_step(publisher.publish(CHANNEL, payload))
    assert near.payloads == sent  # called inside publish, before any await
    assert await far.wait_for(len(sent)) == sent


async def test_two_nodes_publishing_at_once_lose_and_repeat_nothing(
    cluster: Any, new_collector: Any
) -> None:
    handlers = [new_collector() for _ in range(2)]
    nodes = [await cluster.node(i) for i in range(2)]
    for node, handler in zip(nodes, handlers, strict=True):
        await node.subscribe(CHANNEL, handler)

    async def burst(node: Any, tag: bytes) -> None:
        for i in range(300):
            await node.publish(CHANNEL, b"0\n%b%d" % (tag, i))
            if i % 50 == 0:
                await asyncio.sleep(0)

    await asyncio.gather(burst(nodes[0], b"a"), burst(nodes[1], b"b"))
    for handler in handlers:
        got = await handler.wait_for(600)
        for tag in (b"a", b"b"):
            mine = [p for p in got if p.startswith(b"0\n" + tag)]
            assert mine == [b"0\n%b%d" % (tag, i) for i in range(300)]  # each once, in order
        assert len(await handler.settle()) == 600


async def test_a_handler_subscribed_twice_gets_each_payload_once(
    cluster: Any, new_collector: Any
) -> None:
    handler = new_collector()
    node = await cluster.node(0)
    await node.subscribe(CHANNEL, handler)
    await node.subscribe(CHANNEL, handler)
    await (await cluster.node(1)).publish(CHANNEL, b"0\nx")
    await handler.wait_for(1)
    assert await handler.settle() == [b"0\nx"]


async def test_unsubscribe_stops_delivery_to_that_handler_only(
    cluster: Any, new_collector: Any
) -> None:
    gone, stays = new_collector(), new_collector()
    node = await cluster.node(1)
    await node.subscribe(CHANNEL, gone)
    await node.subscribe(CHANNEL, stays)
    await node.unsubscribe(CHANNEL, gone)
    await node.unsubscribe(CHANNEL, gone)  # twice is harmless
    await node.unsubscribe("couple:never-subscribed", gone)
    await (await cluster.node(0)).publish(CHANNEL, b"0\nafter")
    assert await stays.wait_for(1) == [b"0\nafter"]
    assert await gone.settle() == []


async def test_a_channel_left_and_joined_again_delivers_again(
    cluster: Any, new_collector: Any
) -> None:
    handler = new_collector()
    node = await cluster.node(1)
    publisher = await cluster.node(0)
    for round_ in range(3):
        await node.subscribe(CHANNEL, handler)
        await publisher.publish(CHANNEL, b"0\n%d" % round_)
        await handler.wait_for(round_ + 1)
        await node.unsubscribe(CHANNEL, handler)
    await publisher.publish(CHANNEL, b"0\nunheard")
    assert await handler.settle() == [b"0\n0", b"0\n1", b"0\n2"]


async def test_channels_are_separate(cluster: Any, new_collector: Any) -> None:
    first, second = new_collector(), new_collector()
    node = await cluster.node(1)
    await node.subscribe("couple:first", first)
    await node.subscribe("couple:second", second)
    publisher = await cluster.node(0)
    await publisher.publish("couple:first", b"0\n1")
    await publisher.publish("couple:second", b"0\n2")
    await publisher.publish("couple:nobody", b"0\n3")
    assert await first.wait_for(1) == [b"0\n1"]
    assert await second.wait_for(1) == [b"0\n2"]
    assert first.got[0][0] == "couple:first"
    assert await first.settle() == [b"0\n1"]


async def test_a_subscription_is_live_when_subscribe_returns(
    cluster: Any, new_collector: Any
) -> None:
    publisher = await cluster.node(0)
    subscriber = await cluster.node(1)
    for i in range(20):
        handler = new_collector()
        channel = f"couple:live-{i}"
        await subscriber.subscribe(channel, handler)
        await publisher.publish(channel, b"0\nfirst")
        assert await handler.wait_for(1) == [b"0\nfirst"]


async def test_payload_bytes_arrive_unchanged(cluster: Any, new_collector: Any) -> None:
    handler = new_collector()
    await (await cluster.node(1)).subscribe(CHANNEL, handler)
    payloads = [
        b"",
        b"\x00\x01\xff\n\r\n",
        '7\n{"content":"안녕하세요 👋"}'.encode(),
        bytes(range(256)) * 256,
    ]
    for payload in payloads:
        await (await cluster.node(0)).publish(CHANNEL, payload)
    assert await handler.wait_for(len(payloads)) == payloads


async def test_a_failing_handler_does_not_stop_the_others(cluster: Any, new_collector: Any) -> None:
    def broken(channel: str, payload: bytes) -> None:
        raise RuntimeError("a bug in one listener")

    after = new_collector()
    node = await cluster.node(1)
    await node.subscribe(CHANNEL, broken)
    await node.subscribe(CHANNEL, after)
    await (await cluster.node(0)).publish(CHANNEL, b"0\nstill")
    await (await cluster.node(0)).publish(CHANNEL, b"0\nflowing")
    assert await after.wait_for(2) == [b"0\nstill", b"0\nflowing"]


async def test_many_channels_on_one_node(cluster: Any, new_collector: Any) -> None:
    node = await cluster.node(1)
    handlers = {f"couple:{i}": new_collector() for i in range(200)}
    await asyncio.gather(*(node.subscribe(ch, h) for ch, h in handlers.items()))
    publisher = await cluster.node(0)
    for channel in handlers:
        await publisher.publish(channel, channel.encode())
    for channel, handler in handlers.items():
        assert await handler.wait_for(1) == [channel.encode()]


async def test_ping_answers_while_the_backend_is_up(cluster: Any) -> None:
    await (await cluster.node(0)).ping()


async def test_resync_handler_is_optional(cluster: Any, new_collector: Any) -> None:
    calls: list[int] = []
    node = await cluster.node(0)
    node.set_resync_handler(lambda: calls.append(1))
    node.set_resync_handler(None)
    handler = new_collector()
    await node.subscribe(CHANNEL, handler)
    await node.publish(CHANNEL, b"0\nx")
    await handler.wait_for(1)
    assert calls == []  # nothing was lost, so nothing to catch up


def test_unknown_schemes_are_refused() -> None:
    from ieum_chat.broker import create_broker, create_presence

    with pytest.raises(ValueError, match="unsupported broker URL scheme 'amqp'"):
        create_broker("amqp://localhost")
    with pytest.raises(ValueError, match="unsupported presence URL scheme"):
        create_presence("kafka://localhost")
