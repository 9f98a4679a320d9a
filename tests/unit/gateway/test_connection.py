"""The socket shell: frames in order, ERROR then close, timers, the outbound bound, shutdown
and teardown."""

from __future__ import annotations

import asyncio
import logging
import re
import uuid

import pytest

from ieum_chat.chat.requests import MessageType, SendRequest
from tests.unit.gateway.harness import Peer, World, body


async def closed_peer(peer: Peer, timeout: float = 5.0) -> None:
    await asyncio.wait_for(peer.transport.closed.wait(), timeout)


async def test_a_protocol_error_is_an_error_frame_then_close(w: World) -> None:
    peer = await w.member()
    peer.conn.feed(b"FROB\nreceipt:r\n\n\0")
    error = await peer.expect("ERROR")
    assert (error.get("message"), error.get("receipt-id")) == ("PROTOCOL_ERROR", "r")
    assert body(error)["detail"] == "unknown command FROB"
    assert peer.conn.closing
    peer.conn.feed(b"SEND\ndestination:/app/chat/x\n\n\0")  # ignored: the session is over
    assert await peer.frames() == []


async def test_a_frame_over_the_limit_is_frame_too_large(w: World) -> None:
    peer = await w.member()
    peer.conn.feed(b"SEND\ndestination:/a\n\n" + b"x" * (w.settings.max_frame_size + 1))
    error = await peer.expect("ERROR")
    assert error.get("message") == "FRAME_TOO_LARGE"
    assert str(w.settings.max_frame_size) in body(error)["detail"]


@pytest.mark.parametrize("world_settings", [{"connect_timeout": 0.05}])
async def test_no_connect_in_time(w: World) -> None:
    peer = Peer(w)
    await closed_peer(peer)
    assert (await peer.expect("ERROR")).get("message") == "CONNECT_TIMEOUT"


async def test_token_expiry_ends_the_session(w: World) -> None:
    peer = Peer(w)
    # exp is whole seconds: a token of ttl=1 may have a few milliseconds left when made, and
    # expire before the CONNECTED frame is read; one of ttl=3 has 2 to 3 seconds
    await peer.connect(w.token(w.a, ttl=3))
    await closed_peer(peer, timeout=8)
    assert (await peer.expect("ERROR")).get("message") == "TOKEN_EXPIRED"


@pytest.mark.parametrize("world_settings", [{"heartbeat_ms": (50, 0)}])
async def test_heartbeats_go_out_when_nothing_else_does(w: World) -> None:
    peer = Peer(w)
    await peer.connect(w.token(w.a), **{"heart-beat": "0,50"})
    async with asyncio.timeout(5):
        while b"\n" not in peer.transport.written:
            peer.transport.wrote.clear()
            await peer.transport.wrote.wait()


async def test_a_peer_past_the_outbound_bound_is_a_slow_consumer(w: World) -> None:
    peer = await w.member(reading=False)
    peer.transport.take()
    big = b"x" * 4096
    for _ in range(w.settings.outbound_buffer_bytes // len(big) + 1):
        peer.conn.push_message("/topic/couple/x", "t", big)
    assert peer.conn.closing
    assert peer.transport.discarded > 0  # what it had not taken is dropped
    frames = await peer.frames()
    assert frames[-1].get("message") == "SLOW_CONSUMER"


async def test_the_history_unreadable_at_subscribe_is_history_unavailable(w: World) -> None:
    """The stream's position cannot be read (membership is known from a first SUBSCRIBE):
    the SUBSCRIBE gets the ERROR, with its receipt-id."""
    peer = await w.member()
    topic = f"/topic/couple/{w.couple.id}"
    peer.send("SUBSCRIBE", {"id": "t0", "destination": topic, "receipt": "s0"})
    assert (await peer.expect("RECEIPT")).get("receipt-id") == "s0"
    w.break_table("couples")
    peer.send("SUBSCRIBE", {"id": "t", "destination": topic, "receipt": "s"})
    error = await peer.expect("ERROR")
    assert (error.get("message"), error.get("receipt-id")) == ("HISTORY_UNAVAILABLE", "s")


async def test_a_replay_that_cannot_read_the_history_is_history_unavailable(w: World) -> None:
    """Subscribed (the RECEIPT went out), then the replay fails: ERROR, then close."""
    peer = await w.member()
    w.break_table("messages")
    peer.send(
        "SUBSCRIBE",
        {
            "id": "t",
            "destination": f"/topic/couple/{w.couple.id}",
            "receipt": "s",
            "x-resume-after-seq": "0",
        },
    )
    receipt, error = await peer.collect(2)
    assert (receipt.command, receipt.get("receipt-id")) == ("RECEIPT", "s")
    assert (error.command, error.get("message"), error.get("receipt-id")) == (
        "ERROR",
        "HISTORY_UNAVAILABLE",
        None,
    )


async def test_the_database_down_at_connect_closes_with_send_failed(w: World) -> None:
    w.break_table("users")
    peer = Peer(w)
    auth = {"Authorization": f"Bearer {w.token(w.a)}", "receipt": "c"}
    peer.send("CONNECT", {"accept-version": "1.2", **auth})
    error = await peer.expect("ERROR")
    assert (error.get("message"), error.get("receipt-id")) == ("SEND_FAILED", "c")


async def test_an_unexpected_failure_ends_the_session_with_an_error(
    w: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    peer = await w.member()

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    # The typing event's publication fails with a bug, not a BrokerError.
    monkeypatch.setattr(w.chat.pipeline.broker, "publish", broken)
    peer.send("SEND", {"destination": f"/app/chat/{w.couple.id}/typing"}, {"typing": True})
    assert (await peer.expect("ERROR")).get("message") == "UNAVAILABLE"
    assert peer.conn.closing


async def test_shutdown_lets_sends_in_flight_finish_then_says_so(w: World) -> None:
    peer = await w.member()
    await w.chat.member_couple(w.a.id, w.couple.id)
    for i in range(3):
        peer.send(
            "SEND",
            {"destination": f"/app/chat/{w.couple.id}", "receipt": f"{i}"},
            {"type": "TEXT", "content": f"{i}"},
        )
    assert await w.gateway.drain(grace=5) == 1
    frames = await peer.collect(4)
    assert [f.command for f in frames] == ["RECEIPT"] * 3 + ["ERROR"]
    assert frames[-1].get("message") == "SERVER_SHUTDOWN"
    assert not w.gateway.accepting


async def test_teardown_forgets_the_connection(w: World) -> None:
    peer = await w.member()
    peer.send("SUBSCRIBE", {"id": "t", "destination": f"/topic/couple/{w.couple.id}"})
    await peer.frames()
    assert peer.conn in w.gateway.connections
    peer.conn.connection_lost()
    await asyncio.gather(*w.gateway.tasks)
    assert peer.conn not in w.gateway.connections
    assert w.gateway.hub.listener_count() == 0
    assert w.gateway.session_count() == 0


async def test_each_session_has_its_own_id_and_numbers_its_messages_under_it(w: World) -> None:
    ids = []
    for _ in range(2):
        peer = Peer(w)
        connected = await peer.connect(w.token(w.a))
        session_id = peer.conn.session_id
        assert connected.get("session") == session_id
        assert re.fullmatch(r"[0-9a-f]+-[0-9a-f]{8}", session_id), session_id
        peer.conn.push_message("/topic/couple/x", "t", b"{}")
        peer.conn.push_message("/topic/couple/x", "t", b"{}")
        first, second = await peer.collect(2)
        assert [first.get("message-id"), second.get("message-id")] == [
            f"{session_id}-1",
            f"{session_id}-2",
        ]
        ids.append(session_id)
    assert ids[0] != ids[1]


async def test_rest_and_stomp_share_the_send_entry(w: World) -> None:
    """A REST-style accept() and a STOMP SEND go into one queue, one seq order."""
    peer = await w.member()
    await w.chat.member_couple(w.a.id, w.couple.id)  # the SEND is queued inside feed()
    peer.send(
        "SEND",
        {"destination": f"/app/chat/{w.couple.id}", "receipt": "s"},
        {"type": "TEXT", "content": "stomp"},
    )
    rest = await w.chat.accept(w.b, w.couple.id, SendRequest(MessageType.TEXT, "rest", None, None))
    await peer.collect(1)
    stored = await rest
    messages = await w.db.get_messages(w.couple.id, ascending=True)
    assert [m.content for m in messages] == ["stomp", "rest"]
    assert stored.seq == 2


async def test_set_ups_are_counted_while_handled_and_given_back_whatever_the_outcome(
    w: World,
) -> None:
    """The node's count of CONNECTs and SUBSCRIBEs in progress (what admission reads to
    refuse new sessions while it is behind) comes back to zero after each, failed or not."""
    peer = await w.member()
    assert w.gateway.setups == 0
    topic = f"/topic/couple/{w.couple.id}"
    peer.send("SUBSCRIBE", {"id": "t", "destination": topic, "receipt": "s"})
    assert (await peer.expect("RECEIPT")).get("receipt-id") == "s"
    assert w.gateway.setups == 0
    w.break_table("couples")  # a SUBSCRIBE whose membership cannot be read
    peer.send("SUBSCRIBE", {"id": "u", "destination": topic, "receipt": "u"})
    await peer.settle()
    assert w.gateway.setups == 0
    w.break_table("users")  # a CONNECT that fails on the database
    refused = Peer(w)
    refused.send("CONNECT", {"accept-version": "1.2", "Authorization": f"Bearer {w.token(w.b)}"})
    assert (await refused.expect("ERROR")).get("message") == "SEND_FAILED"
    assert w.gateway.setups == 0


@pytest.mark.parametrize("world_settings", [{"connect_timeout": 0.2}])
async def test_a_connect_outlived_by_its_deadline_ends_quietly(
    w: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A CONNECT still waiting on the database when the CONNECT deadline closes the session
    (a node behind in a storm): no CONNECTED after the ERROR, no traceback, nobody counted."""
    presence = w.chat.presence
    opened, closed = presence.opened, presence.closed
    counted: list[int] = []

    async def slow(user_id: uuid.UUID, *, limit: int | None = None) -> bool:
        await asyncio.sleep(0.5)
        came_online = await opened(user_id, limit=limit)
        counted.append(1)
        return came_online

    async def uncounted(user_id: uuid.UUID) -> bool:
        went_offline = await closed(user_id)
        counted.append(-1)
        return went_offline

    monkeypatch.setattr(presence, "opened", slow)
    monkeypatch.setattr(presence, "closed", uncounted)
    peer = Peer(w)
    peer.send("CONNECT", {"accept-version": "1.2", "Authorization": f"Bearer {w.token(w.a)}"})
    await closed_peer(peer)
    await asyncio.sleep(0.6)  # the CONNECT's wait on the database is over
    await peer.conn.teardown()
    frames = await peer.frames()
    assert [f.command for f in frames] == ["ERROR"]
    assert frames[0].get("message") == "CONNECT_TIMEOUT"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert sum(counted) == 0
