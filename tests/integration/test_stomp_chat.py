"""STOMP chat over real sockets against a real server, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid

import jwt
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.support.server import TEST_SECRET, ServerProcess
from tests.support.stomp_client import StompTestClient, frame_json

Couple = dict[str, str]


def token(user: str, *, ttl: float = 600, key: str = TEST_SECRET, **claims: object) -> str:
    return jwt.encode(
        {"sub": user, "exp": int(time.time() + ttl), **claims}, key, algorithm="HS256"
    )


def alg_none_token(user: str) -> str:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part({'sub': user, 'exp': 2**31})}."


def bad_tokens(user: str) -> dict[str, str]:
    return {
        "forged": token(user, key="not-the-server-secret-0123456789-abcdefgh"),
        "alg-none": alg_none_token(user),
        "expired": token(user, ttl=-10),
        "unknown-user": token(str(uuid.uuid4())),
        "garbage": "abc.def",
    }


async def pair(server: ServerProcess, couple: Couple) -> tuple[StompTestClient, StompTestClient]:
    a = await StompTestClient.connected(server.ws_url, couple["ta"])
    b = await StompTestClient.connected(server.ws_url, couple["tb"])
    for client in (a, b):
        await client.subscribe("/user/queue/errors")
        await client.subscribe(f"/topic/couple/{couple['couple']}")
    return a, b


def text(content: str, temp_id: str | None = None) -> dict[str, object]:
    body: dict[str, object] = {"type": "TEXT", "content": content}
    if temp_id is not None:
        body["tempId"] = temp_id
    return body


# -- connecting and authentication --------------------------------------------------------


@pytest.mark.parametrize("via", ["query", "header", "connect"])
async def test_token_accepted_in_each_place(
    server: ServerProcess, couple: Couple, via: str
) -> None:
    client = await StompTestClient.connected(server.ws_url, couple["ta"], via=via)
    assert client.ws.subprotocol == "v12.stomp"
    await client.close()


async def test_plan_browser_test_raw_connect_frame(server: ServerProcess, couple: Couple) -> None:
    async with connect(f"{server.ws_url}?token={couple['ta']}") as ws:
        await ws.send("CONNECT\naccept-version:1.1,1.2\n\n\x00")
        reply = await asyncio.wait_for(ws.recv(), 5)
    assert isinstance(reply, str)
    assert reply.startswith("CONNECTED\n")
    assert "version:1.2" in reply


async def test_websocket_alias_path(server: ServerProcess, couple: Couple) -> None:
    client = await StompTestClient.connected(server.ws_url + "/websocket", couple["ta"])
    await client.close()


@pytest.mark.parametrize("kind", ["forged", "alg-none", "expired", "unknown-user", "garbage"])
async def test_bad_handshake_token_gets_401_json(
    server: ServerProcess, couple: Couple, kind: str
) -> None:
    bad = bad_tokens(couple["a"])[kind]
    with pytest.raises(InvalidStatus) as info:
        await StompTestClient.open(server.ws_url, token=bad)
    response = info.value.response
    assert response.status_code == 401
    body = json.loads(response.body)
    assert body["type"] == "ERROR"
    assert body["code"] == "AUTH_FAILED"
    assert body["message"] == "인증에 실패했습니다."


@pytest.mark.parametrize(
    "kind", ["forged", "alg-none", "expired", "unknown-user", "garbage", "missing"]
)
async def test_bad_connect_token_gets_error_frame_then_close(
    server: ServerProcess, couple: Couple, kind: str
) -> None:
    client = await StompTestClient.open(server.ws_url)
    headers = {"accept-version": "1.2", "host": "x"}
    if kind != "missing":
        headers["Authorization"] = f"Bearer {bad_tokens(couple['a'])[kind]}"
    await client.send("CONNECT", headers)
    error = await client.expect("ERROR")
    assert error.get("message") == "AUTH_FAILED"
    assert frame_json(error)["code"] == "AUTH_FAILED"
    assert await client.closed()


async def test_no_connect_within_deadline_closes(server: ServerProcess) -> None:
    client = await StompTestClient.open(server.ws_url)
    started = time.monotonic()
    error = await client.expect("ERROR", timeout=6)
    assert error.get("message") == "CONNECT_TIMEOUT"
    assert "CONNECT" in frame_json(error)["detail"]
    assert await client.closed()
    assert 1.5 <= time.monotonic() - started < 6


async def test_token_expiry_mid_session(server: ServerProcess, couple: Couple) -> None:
    client = await StompTestClient.connected(server.ws_url, token(couple["a"], ttl=2))
    error = await client.expect("ERROR", timeout=6)
    assert error.get("message") == "TOKEN_EXPIRED"
    assert frame_json(error)["code"] == "TOKEN_EXPIRED"
    assert await client.closed()


async def test_server_heartbeats(server: ServerProcess, couple: Couple) -> None:
    client = await StompTestClient.open(server.ws_url, token=couple["ta"])
    await client.send("CONNECT", {"accept-version": "1.2", "heart-beat": "0,500"})
    connected = await client.expect("CONNECTED")
    assert connected.get("heart-beat") == "1000,0"
    await client.assert_silent(2.5)
    assert client.heartbeats >= 1
    await client.close()


async def test_stomp_10_without_accept_version(server: ServerProcess, couple: Couple) -> None:
    client = await StompTestClient.open(server.ws_url, token=couple["ta"], subprotocols=[])
    await client.send_raw("CONNECT\n\n\x00")
    connected = await client.expect("CONNECTED")
    # STOMP 1.1 §CONNECTED: a 1.0 server answers without a version header.
    assert connected.get("version") in (None, "1.0")
    assert connected.get("heart-beat") is None
    await client.close()


# -- malformed input ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "connect_first"),
    [
        ("SEND\ndestination:/app/chat/x\n\n{}\x00", False),  # SEND before CONNECT
        ("FROB\n\n\x00", True),  # unknown command
        ("SEND\n\n{}\x00", True),  # missing destination
        ("SEND\ndestination /app/chat/x\n\n\x00", True),  # header without colon
        ("SUBSCRIBE\nid:1\ndestination:/queue/nowhere\n\n\x00", True),  # unknown destination
        ("SEND\ndestination:/app/chat/x\ncontent-length:abc\n\n\x00", True),
        ("SEND\ndestination:/app/chat/x\ncontent-length:" + str(70000) + "\n\n\x00", True),
    ],
)
async def test_protocol_errors_get_error_then_close(
    server: ServerProcess, couple: Couple, raw: str, connect_first: bool
) -> None:
    if connect_first:
        client = await StompTestClient.connected(server.ws_url, couple["ta"])
    else:
        client = await StompTestClient.open(server.ws_url, token=couple["ta"])
    await client.send_raw(raw)
    error = await client.expect("ERROR")
    assert error.get("message")
    assert await client.closed()


async def test_oversized_frame_is_refused_before_it_completes(
    server: ServerProcess, couple: Couple
) -> None:
    client = await StompTestClient.connected(server.ws_url, couple["ta"])
    head = f"SEND\ndestination:/app/chat/{couple['couple']}\n\n"
    await client.send_raw(head + "x" * 40_000)  # no NUL yet: the frame is incomplete
    await client.send_raw("x" * 40_000)
    error = await client.expect("ERROR")
    assert error.get("message") == "FRAME_TOO_LARGE"
    assert "65536" in frame_json(error)["detail"]
    assert await client.closed()


# -- membership -----------------------------------------------------------------------------


async def test_outsider_cannot_subscribe_or_send(
    server: ServerProcess, couple: Couple, couple_pool: object
) -> None:
    other = next(couple_pool)  # type: ignore[call-overload]
    a, b = await pair(server, couple)
    intruder = await StompTestClient.connected(server.ws_url, other["ta"])
    await intruder.subscribe("/user/queue/errors")
    await intruder.send(
        "SUBSCRIBE",
        {"id": "spy", "destination": f"/topic/couple/{couple['couple']}", "receipt": "r-spy"},
    )
    error = await intruder.expect_message()
    assert error["code"] == "UNAUTHORIZED"
    assert error["message"] == "해당 채팅방에 접근 권한이 없습니다."
    await intruder.send(
        "SEND",
        {"destination": f"/app/chat/{couple['couple']}", "receipt": "r-send"},
        text("hi", "t-intruder"),
    )
    error = await intruder.expect_message()
    assert error["code"] == "UNAUTHORIZED"
    assert error["tempId"] == "t-intruder"
    for dest in ("/read", "/typing"):
        await intruder.send(
            "SEND",
            {"destination": f"/app/chat/{couple['couple']}{dest}"},
            {"upToSeq": 5} if dest == "/read" else {"typing": True},
        )
        assert (await intruder.expect_message())["code"] == "UNAUTHORIZED"
    # The session stays open and no RECEIPT was sent for the refused frames.
    await intruder.send("DISCONNECT", {"receipt": "bye"})
    receipt = await intruder.expect("RECEIPT")
    assert receipt.get("receipt-id") == "bye"
    # The members saw nothing of it.
    await a.assert_silent()
    await b.assert_silent()


async def test_send_straight_to_topic_is_refused(server: ServerProcess, couple: Couple) -> None:
    a, b = await pair(server, couple)
    await a.send(
        "SEND",
        {"destination": f"/topic/couple/{couple['couple']}", "receipt": "r1"},
        text("bypass", "t-bypass"),
    )
    error = await a.expect_message()
    assert error["code"] == "UNAUTHORIZED"
    await b.assert_silent()
    await a.send("SEND", {"destination": "/app/elsewhere", "receipt": "r2"}, text("x"))
    assert (await a.expect_message())["code"] == "UNAUTHORIZED"


# -- messages -------------------------------------------------------------------------------


async def test_two_members_chat(server: ServerProcess, couple: Couple) -> None:
    a, b = await pair(server, couple)
    dest = f"/app/chat/{couple['couple']}"
    await a.send("SEND", {"destination": dest, "receipt": "s1"}, text("안녕하세요!", "t-a-1"))
    receipt = await a.expect("RECEIPT")
    assert receipt.get("receipt-id") == "s1"
    own = await a.expect_message()
    got = await b.expect_message()
    assert got == own
    assert got["content"] == "안녕하세요!"
    assert got["seq"] == 1
    assert got["senderId"] == couple["a"]
    assert got["tempId"] == "t-a-1"
    assert got["type"] == "TEXT"
    assert got["isRead"] is False
    assert got["readAt"] is None
    assert got["senderName"]
    assert set(got) >= {"id", "senderProfileImage", "imageUrl", "createdAt"}
    await b.send(
        "SEND",
        {"destination": dest, "receipt": "s2"},
        {"type": "IMAGE", "imageUrl": "https://cdn.example/p.png", "tempId": "t-b-1"},
    )
    await b.expect("RECEIPT")
    image = await a.expect_message()
    assert (image["seq"], image["type"], image["imageUrl"]) == (
        2,
        "IMAGE",
        "https://cdn.example/p.png",
    )
    assert (await b.expect_message())["seq"] == 2
    await b.send("SEND", {"destination": dest}, {"type": "STICKER", "content": "heart-01"})
    sticker = await a.expect_message()
    assert (sticker["seq"], sticker["content"], sticker["tempId"]) == (3, "heart-01", None)


async def test_retried_tempid_is_stored_once(server: ServerProcess, couple: Couple) -> None:
    a, b = await pair(server, couple)
    dest = f"/app/chat/{couple['couple']}"
    await a.send("SEND", {"destination": dest, "receipt": "s1"}, text("once", "t-dup"))
    await a.expect("RECEIPT")
    first = await b.expect_message()
    await a.expect_message()
    await a.send("SEND", {"destination": dest, "receipt": "s2"}, text("once", "t-dup"))
    assert (await a.expect("RECEIPT")).get("receipt-id") == "s2"
    await b.assert_silent()  # not broadcast twice
    await a.send("SEND", {"destination": dest, "receipt": "s3"}, text("next", "t-next"))
    await a.expect("RECEIPT")
    assert (await b.expect_message())["seq"] == first["seq"] + 1


@pytest.mark.parametrize(
    ("body", "detail_part"),
    [
        (text("   ", "t-bad"), "non-blank"),
        ({"type": "IMAGE", "tempId": "t-bad"}, "imageUrl"),
        (text("가" * 4001, "t-bad"), "4000"),
        ({"type": "TEXT", "content": ["x"], "tempId": "t-bad"}, "string"),
        ({"type": "GIF", "content": "x", "tempId": "t-bad"}, "type"),
        ({"type": "STICKER", "tempId": "t-bad"}, "sticker"),
    ],
)
async def test_invalid_messages_get_send_failed_and_store_nothing(
    server: ServerProcess,
    couple: Couple,
    body: dict[str, object],
    detail_part: str,
) -> None:
    a, b = await pair(server, couple)
    dest = f"/app/chat/{couple['couple']}"
    await a.send("SEND", {"destination": dest, "receipt": "bad"}, body)
    error = await a.expect_message()
    assert error["code"] == "SEND_FAILED"
    assert error["tempId"] == "t-bad"
    assert error["message"] == "메시지 전송에 실패했습니다."
    assert detail_part in error["detail"]
    await b.assert_silent()
    await a.send("SEND", {"destination": dest, "receipt": "good"}, text("ok", "t-good"))
    assert (await a.expect("RECEIPT")).get("receipt-id") == "good"
    assert (await b.expect_message())["seq"] == 1  # nothing was stored before


@pytest.mark.parametrize("raw", [b"not json", b"[1]", b"\xff\xfe"])
async def test_non_json_bodies(server: ServerProcess, couple: Couple, raw: bytes) -> None:
    a, _ = await pair(server, couple)
    await a.send("SEND", {"destination": f"/app/chat/{couple['couple']}", "receipt": "x"}, raw)
    error = await a.expect_message()
    assert error["code"] == "SEND_FAILED"


async def test_pipelined_sends_keep_order(server: ServerProcess, couple: Couple) -> None:
    a, b = await pair(server, couple)
    dest = f"/app/chat/{couple['couple']}"
    for i in range(50):
        await a.send("SEND", {"destination": dest, "receipt": f"p{i}"}, text(f"m{i}", f"t{i}"))
    receipts: list[str | None] = []
    while len(receipts) < 50:
        frame = await a.next_frame()
        if frame.command == "RECEIPT":
            receipts.append(frame.get("receipt-id"))
    assert receipts == [f"p{i}" for i in range(50)]
    got = [await b.expect_message() for _ in range(50)]
    assert [m["content"] for m in got] == [f"m{i}" for i in range(50)]
    assert [m["seq"] for m in got] == list(range(1, 51))


# -- read marks, typing, presence -----------------------------------------------------------


async def test_read_receipts(server: ServerProcess, couple: Couple) -> None:
    a, b = await pair(server, couple)
    dest = f"/app/chat/{couple['couple']}"
    sent = []
    for i in range(3):
        await a.send("SEND", {"destination": dest}, text(f"m{i}"))
        sent.append(await b.expect_message())
        await a.expect_message()
    await b.send("SEND", {"destination": dest}, text("mine"))
    await a.expect_message()
    await b.expect_message()
    await b.send(
        "SEND", {"destination": dest + "/read", "receipt": "read1"}, {"messageIds": [sent[0]["id"]]}
    )
    assert (await b.expect("RECEIPT")).get("receipt-id") == "read1"
    receipt = await a.expect_message()
    assert receipt["type"] == "READ_RECEIPT"
    assert receipt["messageIds"] == [sent[0]["id"]]
    assert receipt["readAt"]
    await b.expect_message()
    # upToSeq marks the rest of A's messages; B's own message is never marked by B.
    await b.send("SEND", {"destination": dest + "/read"}, {"upToSeq": 4})
    receipt = await a.expect_message()
    assert receipt["messageIds"] == [sent[1]["id"], sent[2]["id"]]
    await b.expect_message()
    # Nothing changes the second time: no READ_RECEIPT.
    await b.send("SEND", {"destination": dest + "/read", "receipt": "again"}, {"upToSeq": 4})
    await b.expect("RECEIPT")
    await a.assert_silent()


async def test_typing_is_broadcast_and_throttled(server: ServerProcess, couple: Couple) -> None:
    a, b = await pair(server, couple)
    dest = f"/app/chat/{couple['couple']}/typing"
    await a.send("SEND", {"destination": dest}, {"typing": True})
    event = await b.expect_message()
    assert (event["type"], event["event"], event["typing"], event["userId"]) == (
        "SYSTEM",
        "TYPING",
        True,
        couple["a"],
    )
    await a.expect_message()
    await a.send("SEND", {"destination": dest}, {"typing": True})  # within the interval
    await b.assert_silent()
    await a.send("SEND", {"destination": dest}, {"typing": False})
    assert (await b.expect_message())["typing"] is False
    await a.send("SEND", {"destination": dest}, {"typing": "yes"})
    assert (await a.messages_until(lambda m: m.get("type") == "ERROR"))[-1]["code"] == "SEND_FAILED"


async def test_presence_first_and_last_session(server: ServerProcess, couple: Couple) -> None:
    b = await StompTestClient.connected(server.ws_url, couple["tb"])
    b.ignore_presence = False
    await b.subscribe(f"/topic/couple/{couple['couple']}")
    phone = await StompTestClient.connected(server.ws_url, couple["ta"])
    event = await b.expect_message()
    assert (event["event"], event["userId"]) == ("USER_CONNECTED", couple["a"])
    browser = await StompTestClient.connected(server.ws_url, couple["ta"])
    await b.assert_silent()  # a second device is not a new arrival
    await phone.send("DISCONNECT", {"receipt": "d"})
    await phone.expect("RECEIPT")
    await b.assert_silent()
    await browser.close()
    event = await b.expect_message()
    assert (event["event"], event["userId"]) == ("USER_DISCONNECTED", couple["a"])


async def test_resume_after_seq(server: ServerProcess, couple: Couple) -> None:
    a, _ = await pair(server, couple)
    dest = f"/app/chat/{couple['couple']}"
    for i in range(5):
        await a.send("SEND", {"destination": dest, "receipt": f"r{i}"}, text(f"m{i}"))
        await a.receipt(f"r{i}")
    late = await StompTestClient.connected(server.ws_url, couple["tb"])
    await late.subscribe(f"/topic/couple/{couple['couple']}", {"x-resume-after-seq": "2"})
    replayed = [await late.expect_message() for _ in range(3)]
    assert [m["seq"] for m in replayed] == [3, 4, 5]
    await a.send("SEND", {"destination": dest}, text("live"))
    live = await late.messages_until(lambda m: m.get("content") == "live")
    assert [m["seq"] for m in live if "seq" in m] == [6]


async def test_disconnect_with_receipt(server: ServerProcess, couple: Couple) -> None:
    client = await StompTestClient.connected(server.ws_url, couple["ta"])
    await client.send("DISCONNECT", {"receipt": "77"})
    assert (await client.expect("RECEIPT")).get("receipt-id") == "77"
    assert await client.closed()
