"""What each STOMP frame does: CONNECT, SUBSCRIBE, UNSUBSCRIBE, SEND (one path, whether or not
it must wait), read marks, typing, DISCONNECT; refusals as error payloads or ERROR frames."""

from __future__ import annotations

import asyncio

import pytest

from ieum_chat.errors import Unauthorized
from ieum_chat.gateway.dispatch import MAX_INFLIGHT_SENDS
from ieum_chat.observability import metrics
from tests.unit.gateway.harness import Peer, World, body


def text(content: str, temp_id: str | None = None) -> dict[str, object]:
    data: dict[str, object] = {"type": "TEXT", "content": content}
    if temp_id is not None:
        data["tempId"] = temp_id
    return data


async def committed(w: World) -> list[str | None]:
    messages = await w.db.get_messages(w.couple.id, ascending=True, limit=1000)
    return [m.content for m in messages]


def stomp_received() -> float:
    metrics.sample()  # the message path's counts go through a tally
    return metrics.MESSAGES_RECEIVED.labels("stomp")._value.get()  # type: ignore[no-any-return]


# -- CONNECT --------------------------------------------------------------------------------


async def test_connect_with_a_token_in_the_frame(w: World) -> None:
    peer = Peer(w)
    connected = await peer.connect(w.token(w.a))
    assert connected.get("user-name") == str(w.a.id)
    assert peer.conn.user == w.a
    assert w.gateway.session_count() == 1


async def test_connect_with_the_handshake_identity(w: World) -> None:
    principal, user = await w.chat.authenticate(w.token(w.b))
    peer = Peer(w, principal=principal, user=user)
    peer.send("CONNECT", {"accept-version": "1.2"})
    await peer.expect("CONNECTED")
    assert peer.conn.user == w.b


async def test_connect_without_a_token_is_auth_failed_with_the_receipt(w: World) -> None:
    peer = Peer(w)
    peer.send("CONNECT", {"accept-version": "1.2", "receipt": "hi"})
    error = await peer.expect("ERROR")
    assert (error.get("message"), error.get("receipt-id")) == ("AUTH_FAILED", "hi")
    assert body(error)["code"] == "AUTH_FAILED"
    assert peer.transport.closed.is_set()


@pytest.mark.parametrize("world_settings", [{"max_sessions_per_user": 1}])
async def test_sessions_past_the_per_user_limit_are_refused(w: World) -> None:
    await Peer(w).connect(w.token(w.a))
    extra = Peer(w)
    extra.send("CONNECT", {"accept-version": "1.2", "Authorization": f"Bearer {w.token(w.a)}"})
    assert (await extra.expect("ERROR")).get("message") == "RATE_LIMITED"


# -- SUBSCRIBE ------------------------------------------------------------------------------


async def test_subscribe_to_an_unknown_destination_is_an_error_frame(w: World) -> None:
    peer = await w.member()
    peer.send("SUBSCRIBE", {"id": "1", "destination": "/queue/nowhere", "receipt": "where"})
    error = await peer.expect("ERROR")
    assert (error.get("message"), error.get("receipt-id")) == ("NO_SUCH_DESTINATION", "where")
    assert "/queue/nowhere" in body(error)["detail"]


async def test_subscribe_to_another_couple_is_refused_and_the_id_freed(w: World) -> None:
    peer = await w.member()
    other = {"id": "1", "destination": f"/topic/couple/{w.other.id}", "receipt": "r"}
    peer.send("SUBSCRIBE", other)
    [error] = await peer.collect(1)  # no RECEIPT for a refused SUBSCRIBE
    assert body(error)["code"] == "UNAUTHORIZED"
    peer.send("SUBSCRIBE", {**other, "destination": f"/topic/couple/{w.couple.id}"})
    assert (await peer.expect("RECEIPT")).get("receipt-id") == "r"


async def test_a_bad_resume_header_is_told_and_the_subscription_starts_live(w: World) -> None:
    peer = await w.member()
    topic = f"/topic/couple/{w.couple.id}"
    resume = {"x-resume-after-seq": str(2**64), "receipt": "r"}
    peer.send("SUBSCRIBE", {"id": "t", "destination": topic, **resume})
    error, receipt = await peer.collect(2)
    assert body(error)["code"] == "SEND_FAILED"
    assert "x-resume-after-seq" in body(error)["detail"]
    assert receipt.command == "RECEIPT"
    assert peer.conn.subscriptions.get("t") is not None


# -- SEND -----------------------------------------------------------------------------------


async def test_send_is_queued_without_waiting_when_membership_is_cached(w: World) -> None:
    peer = await w.member()
    await w.chat.member_couple(w.a.id, w.couple.id)  # cached
    before = stomp_received()
    peer.send("SEND", {"destination": f"/app/chat/{w.couple.id}", "receipt": "m"}, text("hi"))
    assert peer.conn._busy is None  # handled inside feed(): no task
    assert (await peer.expect("RECEIPT")).get("receipt-id") == "m"
    assert await committed(w) == ["hi"]
    assert stomp_received() == before + 1  # counted once


async def test_send_waits_in_order_when_membership_must_be_looked_up(w: World) -> None:
    peer = await w.member()  # membership not cached yet: the first SEND reads the database
    dest = {"destination": f"/app/chat/{w.couple.id}"}
    before = stomp_received()
    for i in range(3):
        peer.send("SEND", {**dest, "receipt": f"m{i}"}, text(f"m{i}"))
    assert peer.conn._busy is not None
    assert peer.transport.paused  # reading waits while a frame is being handled
    got = [f.get("receipt-id") for f in await peer.collect(3)]
    assert got == ["m0", "m1", "m2"]
    assert await committed(w) == ["m0", "m1", "m2"]
    assert stomp_received() == before + 3
    assert not peer.transport.paused


async def test_pipelined_sends_past_the_in_flight_bound_keep_their_order(w: World) -> None:
    peer = await w.member()
    await w.chat.member_couple(w.a.id, w.couple.id)
    count = MAX_INFLIGHT_SENDS * 2 + 5
    for i in range(count):
        peer.send(
            "SEND", {"destination": f"/app/chat/{w.couple.id}", "receipt": f"{i}"}, text(f"{i}")
        )
    async with asyncio.timeout(10):
        receipts: list[str | None] = []
        while len(receipts) < count:
            receipts += [f.get("receipt-id") for f in await peer.frames()]
    assert receipts == [str(i) for i in range(count)]
    assert await committed(w) == [str(i) for i in range(count)]


async def test_send_to_another_couple_is_unauthorized_with_its_temp_id(w: World) -> None:
    peer = await w.member()
    dest = {"destination": f"/app/chat/{w.other.id}", "receipt": "x"}
    for _ in ("looked up", "cached"):  # the second time, the couple is in the cache
        peer.send("SEND", dest, text("no", "t1"))
        [error] = await peer.collect(1)
        assert (body(error)["code"], body(error)["tempId"]) == ("UNAUTHORIZED", "t1")
    with pytest.raises(Unauthorized):
        await w.chat.member_couple(w.a.id, w.other.id)
    assert await w.db.get_messages(w.other.id) == []


async def test_an_invalid_body_is_send_failed_and_nothing_is_stored(w: World) -> None:
    peer = await w.member()
    peer.send("SEND", {"destination": f"/app/chat/{w.couple.id}", "receipt": "x"}, text(" ", "t2"))
    [error] = await peer.collect(1)
    assert (body(error)["code"], body(error)["tempId"]) == ("SEND_FAILED", "t2")
    assert await committed(w) == []


async def test_send_outside_the_app_destinations_is_unauthorized(w: World) -> None:
    peer = await w.member()
    for dest in (
        f"/topic/couple/{w.couple.id}",
        "/app/chat/not-a-uuid",
        f"/app/chat/{w.couple.id}/x",
    ):
        peer.send("SEND", {"destination": dest}, text("sneaky"))
        [error] = await peer.collect(1)
        assert body(error)["code"] == "UNAUTHORIZED"
    assert await committed(w) == []


async def test_a_repeated_temp_id_is_stored_once(w: World) -> None:
    peer = await w.member()
    for i in range(2):
        peer.send(
            "SEND",
            {"destination": f"/app/chat/{w.couple.id}", "receipt": f"{i}"},
            text("once", "same"),
        )
    got = [f.get("receipt-id") for f in await peer.collect(2)]
    assert got == ["0", "1"]
    assert await committed(w) == ["once"]


# -- read marks, typing ---------------------------------------------------------------------


async def test_read_and_typing_get_their_receipts(w: World) -> None:
    peer = await w.member()
    peer.send(
        "SEND", {"destination": f"/app/chat/{w.couple.id}/read", "receipt": "rd"}, {"upToSeq": 5}
    )
    assert (await peer.expect("RECEIPT")).get("receipt-id") == "rd"
    peer.send(
        "SEND",
        {"destination": f"/app/chat/{w.couple.id}/typing", "receipt": "ty"},
        {"typing": True},
    )
    assert (await peer.expect("RECEIPT")).get("receipt-id") == "ty"


async def test_read_out_of_range_is_send_failed(w: World) -> None:
    peer = await w.member()
    peer.send(
        "SEND",
        {"destination": f"/app/chat/{w.couple.id}/read"},
        '{"upToSeq": 18446744073709551616}',
    )
    [error] = await peer.collect(1)
    assert "upToSeq" in body(error)["detail"]


# -- DISCONNECT -----------------------------------------------------------------------------


async def test_disconnect_receipt_comes_after_every_send_before_it(w: World) -> None:
    peer = await w.member()
    await w.chat.member_couple(w.a.id, w.couple.id)
    for i in range(5):
        peer.send(
            "SEND", {"destination": f"/app/chat/{w.couple.id}", "receipt": f"{i}"}, text(f"{i}")
        )
    peer.send("DISCONNECT", {"receipt": "bye"})
    got = [f.get("receipt-id") for f in await peer.collect(6)]
    assert got == ["0", "1", "2", "3", "4", "bye"]
    assert peer.transport.closed.is_set()


async def test_ack_and_nack_are_accepted(w: World) -> None:
    peer = await w.member()
    peer.send("ACK", {"id": "x", "receipt": "a"})
    peer.send("NACK", {"id": "y", "receipt": "n"})
    assert [f.get("receipt-id") for f in await peer.collect(2)] == ["a", "n"]


async def test_presence_goes_with_the_session(w: World) -> None:
    peer = await w.member()
    assert w.chat.presence.session_count(w.a.id) == 1
    peer.conn.close()
    await peer.conn.teardown()
    assert w.chat.presence.session_count(w.a.id) == 0
