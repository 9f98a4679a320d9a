"""Couple-topic subscriptions: live messages in seq order, each once, across replays, gaps
and catch-ups; replay that waits for the socket; bounds on what a subscription holds."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ieum_chat.chat.envelope import channel_for, pack
from ieum_chat.chat.requests import MessageType, SendRequest
from ieum_chat.gateway.subscriptions import MAX_HELD, REPLAY_PAGE
from ieum_chat.store import User
from tests.unit.gateway.harness import Peer, World, body


async def store(w: World, count: int, *, sender: User | None = None, size: int = 10) -> None:
    """``count`` messages committed to the couple (and published, as any send is)."""
    user = sender or w.a
    futures = [
        await w.chat.accept(
            user, w.couple.id, SendRequest(MessageType.TEXT, f"{i:05d}" + "x" * size, None, None)
        )
        for i in range(count)
    ]
    await asyncio.gather(*futures)
    await w.chat.close()  # the writers finish: every message is published
    await w.chat.start()


async def subscribe(peer: Peer, w: World, **headers: str) -> str:
    peer.send(
        "SUBSCRIBE",
        {"id": "t", "destination": f"/topic/couple/{w.couple.id}", "receipt": "sub", **headers},
    )
    return "t"


def seqs(frames: list) -> list[int]:  # type: ignore[type-arg]
    return [body(f)["seq"] for f in frames if f.command == "MESSAGE" and "seq" in body(f)]


async def test_resume_replays_then_goes_live_without_gap_or_duplicate(w: World) -> None:
    await store(w, 7)
    peer = await w.member(w.b)
    await subscribe(peer, w, **{"x-resume-after-seq": "3"})
    frames = await peer.frames()
    assert frames[0].command == "RECEIPT"
    assert seqs(frames) == [4, 5, 6, 7]
    await store(w, 2)
    assert seqs(await peer.frames()) == [8, 9]


async def test_the_receipt_names_the_seq_the_subscription_starts_after(w: World) -> None:
    """A client that knows no seq yet learns where its stream starts from the RECEIPT, so
    that its next SUBSCRIBE (after a drop) resumes from there and misses nothing."""
    await store(w, 3)
    fresh = await w.member(w.b)
    await subscribe(fresh, w)
    receipt = (await fresh.frames())[0]
    assert (receipt.command, receipt.get("receipt-id")) == ("RECEIPT", "sub")
    assert receipt.get("x-last-seq") == "3"
    resumed = await w.member(w.b)
    await subscribe(resumed, w, **{"x-resume-after-seq": "1"})
    frames = await resumed.frames()
    assert frames[0].get("x-last-seq") == "1"
    assert seqs(frames) == [2, 3]


async def test_plain_subscribe_starts_after_the_last_message(w: World) -> None:
    await store(w, 3)
    peer = await w.member(w.b)
    await subscribe(peer, w)
    assert seqs(await peer.frames()) == []
    await store(w, 1)
    assert seqs(await peer.frames()) == [4]


async def test_duplicates_and_old_seqs_are_dropped(w: World) -> None:
    peer = await w.member(w.b)
    await subscribe(peer, w)
    await peer.frames()
    await store(w, 2)
    assert seqs(await peer.frames()) == [1, 2]
    sub = peer.conn.subscriptions.get("t")
    assert sub is not None
    for seq in (2, 1, 2):  # the broker may deliver again what was delivered
        sub.deliver(seq, b'{"seq":%d}' % seq)
    assert seqs(await peer.frames()) == []


async def test_events_without_seq_pass_through(w: World) -> None:
    peer = await w.member(w.b)
    await subscribe(peer, w)
    await peer.frames()
    await w.chat.broker.publish(channel_for(w.couple.id), pack(0, b'{"type":"SYSTEM"}'))
    got = await peer.frames()
    assert [body(f)["type"] for f in got] == ["SYSTEM"]


async def test_a_gap_is_caught_up_from_the_database(w: World) -> None:
    peer = await w.member(w.b)
    await subscribe(peer, w)
    await peer.frames()
    sub = peer.conn.subscriptions.get("t")
    assert sub is not None
    # Seqs 1-3 are committed, but this node only hears of 3 (1 and 2 went astray).
    await store(w, 3)
    await peer.frames()
    sub.last_seq = 0
    peer.transport.written.clear()
    peer._seen = 0
    sub.deliver(3, b'{"seq":3}')
    assert sub.catching_up
    assert seqs(await peer.frames()) == [1, 2, 3]
    assert not sub.catching_up
    assert not sub.held


async def test_what_arrives_during_a_replay_is_held_then_released_once(w: World) -> None:
    await store(w, 5)
    peer = await w.member(w.b)
    await subscribe(peer, w, **{"x-resume-after-seq": "0"})
    # The SUBSCRIBE is handled meanwhile: seq 6 arrives before, during or after its replay.
    await store(w, 1)
    assert seqs(await peer.frames()) == [1, 2, 3, 4, 5, 6]


async def test_a_replay_slower_than_a_turn_of_the_test_is_waited_for(
    w: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On a busy machine the database read of a replay may take a while, writing nothing
    # meanwhile; what the peer then reads must not depend on it being quick.
    await store(w, 5)
    read = w.chat.history.replay

    async def slow_read(*args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(0.3)
        return await read(*args, **kwargs)

    monkeypatch.setattr(w.chat.history, "replay", slow_read)
    peer = await w.member(w.b)
    await subscribe(peer, w, **{"x-resume-after-seq": "0"})
    assert seqs(await peer.frames()) == [1, 2, 3, 4, 5]


async def test_held_messages_are_bounded(w: World) -> None:
    peer = await w.member(w.b)
    await subscribe(peer, w)
    await peer.frames()
    sub = peer.conn.subscriptions.get("t")
    assert sub is not None
    sub.catching_up = True  # as while a catch-up reads the database
    for seq in range(1, MAX_HELD + 2):
        sub.deliver(seq, b"{}")
    assert sub.held is not None
    assert len(sub.held) == MAX_HELD
    error = await peer.wait_for("ERROR")
    assert error.get("message") == "SLOW_CONSUMER"
    assert peer.conn.closing


@pytest.fixture
def world_settings() -> dict[str, object]:
    return {"outbound_buffer_bytes": 65536}


async def test_replay_waits_for_the_socket_to_drain(w: World) -> None:
    await store(w, 3 * REPLAY_PAGE, size=1000)  # about 300 KB: several times the bound
    peer = await w.member(w.b, reading=False)
    peer.transport.take()
    await subscribe(peer, w, **{"x-resume-after-seq": "0"})
    await peer.settle()
    limit = w.settings.outbound_buffer_bytes
    # A replay writes a quarter of the bound, then waits below a quarter: about half at most.
    assert 0 < peer.transport.backlog() <= limit // 2 + 2048
    assert not peer.conn.closing
    delivered: list[int] = []
    async with asyncio.timeout(10):
        while len(delivered) < 3 * REPLAY_PAGE:
            frames = await peer.frames()
            delivered += seqs(frames)
            assert peer.transport.backlog() <= limit // 2 + 2048
            peer.transport.take()
            await asyncio.sleep(0.01)
    assert delivered == list(range(1, 3 * REPLAY_PAGE + 1))
    assert not peer.conn.closing


async def test_a_peer_that_takes_nothing_is_closed_as_a_slow_consumer(w: World) -> None:
    w.gateway.stall_timeout = 0.2
    await store(w, REPLAY_PAGE, size=1000)
    peer = await w.member(w.b, reading=False)
    peer.transport.take()
    await subscribe(peer, w, **{"x-resume-after-seq": "0"})
    await asyncio.wait_for(peer.transport.closed.wait(), 5)
    error = [f for f in await peer.frames() if f.command == "ERROR"]
    assert [e.get("message") for e in error] == ["SLOW_CONSUMER"]
    assert peer.transport.discarded > 0  # what it did not take is dropped, not kept


async def test_resync_catches_every_subscription_up(w: World) -> None:
    peer = await w.member(w.b)
    await subscribe(peer, w)
    await peer.frames()
    sub = peer.conn.subscriptions.get("t")
    assert sub is not None
    await store(w, 2)
    await peer.frames()
    sub.last_seq = 0  # as if 1 and 2 were lost by the broker
    peer.transport.written.clear()
    peer._seen = 0
    w.gateway.resync()
    assert seqs(await peer.frames()) == [1, 2]


async def test_unsubscribe_and_teardown_stop_listening(w: World) -> None:
    peer = await w.member(w.b)
    await subscribe(peer, w)
    peer.send("SUBSCRIBE", {"id": "u", "destination": f"/topic/couple/{w.couple.id}"})
    await peer.frames()
    assert w.gateway.hub.listener_count() == 2
    peer.send("UNSUBSCRIBE", {"id": "u", "receipt": "gone"})
    assert (await peer.expect("RECEIPT")).get("receipt-id") == "gone"
    assert w.gateway.hub.listener_count() == 1
    peer.conn.close()
    await peer.conn.teardown()
    assert w.gateway.hub.listener_count() == 0
    assert peer.conn not in w.gateway.connections
