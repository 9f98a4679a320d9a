"""The REST API against a real server (SQLite and PostgreSQL), beside real STOMP sockets:
what is sent over REST reaches socket subscribers, through the same validation, tempId
idempotency, seq order and broadcast."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt

from tests.support.server import TEST_SECRET, ServerProcess
from tests.support.stomp_client import StompTestClient
from tests.support.uploads import png_bytes

Couple = dict[str, str]
PNG = png_bytes((64, 64))


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def text(content: str, temp_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "TEXT", "content": content}
    if temp_id is not None:
        body["tempId"] = temp_id
    return body


async def pair(server: ServerProcess, couple: Couple) -> tuple[StompTestClient, StompTestClient]:
    a = await StompTestClient.connected(server.ws_url, couple["ta"])
    b = await StompTestClient.connected(server.ws_url, couple["tb"])
    for client in (a, b):
        await client.subscribe("/user/queue/errors")
        await client.subscribe(f"/topic/couple/{couple['couple']}")
    return a, b


async def post_message(
    http: httpx.AsyncClient, couple: Couple, body: dict[str, Any], token_key: str = "ta"
) -> httpx.Response:
    return await http.post(
        f"/chat/rooms/{couple['couple']}/messages", json=body, headers=auth(couple[token_key])
    )


# -- REST and STOMP share one chat --------------------------------------------------------


async def test_rest_send_reaches_stomp_subscribers(
    server: ServerProcess, couple: Couple, http: httpx.AsyncClient
) -> None:
    a, b = await pair(server, couple)
    response = await post_message(http, couple, text("REST로 보냄", "rest-1"))
    assert response.status_code == 201, response.text
    sent = response.json()
    assert sent["seq"] == 1
    assert await b.expect_message() == sent
    assert await a.expect_message() == sent  # the sender's other devices see it too
    retry = await post_message(http, couple, text("REST로 보냄", "rest-1"))
    assert retry.status_code == 201
    assert retry.json() == sent
    await b.assert_silent()  # stored and broadcast once
    await a.close()
    await b.close()


async def test_stomp_send_and_rest_retry_are_one_message(
    server: ServerProcess, couple: Couple, http: httpx.AsyncClient
) -> None:
    a, b = await pair(server, couple)
    dest = f"/app/chat/{couple['couple']}"
    await a.send("SEND", {"destination": dest, "receipt": "r1"}, text("via socket", "t-x"))
    await a.expect("RECEIPT")
    first = await b.expect_message()
    retry = await post_message(http, couple, text("via socket", "t-x"))
    assert retry.status_code == 201
    assert (retry.json()["id"], retry.json()["seq"]) == (first["id"], first["seq"])
    await b.assert_silent()
    await a.close()
    await b.close()


async def test_rest_and_stomp_sends_share_one_seq_order(
    server: ServerProcess, couple: Couple, http: httpx.AsyncClient
) -> None:
    a, b = await pair(server, couple)
    dest = f"/app/chat/{couple['couple']}"
    for i in range(10):
        if i % 2:
            assert (await post_message(http, couple, text(f"m{i}"), "tb")).status_code == 201
        else:
            await a.send("SEND", {"destination": dest, "receipt": f"r{i}"}, text(f"m{i}"))
            await a.receipt(f"r{i}")
    seen = [await b.expect_message() for _ in range(10)]
    assert [m["seq"] for m in seen] == list(range(1, 11))
    assert [m["content"] for m in seen] == [f"m{i}" for i in range(10)]
    page = (
        await http.get(
            f"/chat/rooms/{couple['couple']}/messages",
            params={"limit": 4},
            headers=auth(couple["tb"]),
        )
    ).json()
    assert [m["seq"] for m in page["messages"]] == [10, 9, 8, 7]
    assert page["hasMore"] is True
    rest = (
        await http.get(
            f"/chat/rooms/{couple['couple']}/messages",
            params={"before": page["nextCursor"], "limit": 100},
            headers=auth(couple["tb"]),
        )
    ).json()
    assert [m["seq"] for m in rest["messages"]] == [6, 5, 4, 3, 2, 1]
    assert rest["hasMore"] is False
    # the same message, read from the store at stream position 10 rather than sent live
    assert (rest["messages"][-1]["asOfSeq"], seen[0]["asOfSeq"]) == (10, 1)
    assert {**rest["messages"][-1], "asOfSeq": 1} == seen[0]
    await a.close()
    await b.close()


async def test_rest_read_broadcasts_a_read_receipt(
    server: ServerProcess, couple: Couple, http: httpx.AsyncClient
) -> None:
    a, b = await pair(server, couple)
    for i in range(3):
        assert (await post_message(http, couple, text(f"from b {i}"), "tb")).status_code == 201
    for client in (a, b):
        for _ in range(3):
            await client.expect_message()
    response = await http.post(
        f"/chat/rooms/{couple['couple']}/read", json={"upToSeq": 2}, headers=auth(couple["ta"])
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["seqs"] == [1, 2]
    receipt = await b.expect_message()
    assert receipt == result
    assert receipt["type"] == "READ_RECEIPT"
    room = (await http.get("/chat/room", headers=auth(couple["ta"]))).json()
    assert room["unreadCount"] == 1
    assert room["lastMessage"]["seq"] == 3
    await a.close()
    await b.close()


async def test_room_shows_the_partner_online_while_connected(
    server: ServerProcess, couple: Couple, http: httpx.AsyncClient
) -> None:
    room = (await http.get("/chat/room", headers=auth(couple["ta"]))).json()
    assert room["id"] == couple["couple"]
    assert room["partner"]["id"] == couple["b"]
    assert room["partner"]["online"] is False
    b = await StompTestClient.connected(server.ws_url, couple["tb"])
    room = (await http.get("/chat/room", headers=auth(couple["ta"]))).json()
    assert room["partner"]["online"] is True
    await b.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        room = (await http.get("/chat/room", headers=auth(couple["ta"]))).json()
        if not room["partner"]["online"]:
            break
        await asyncio.sleep(0.05)
    assert room["partner"]["online"] is False


# -- bad input -------------------------------------------------------------------------------


def bad_tokens(user: str) -> dict[str, str]:
    def make(key: str = TEST_SECRET, ttl: float = 600, sub: str = user) -> str:
        return jwt.encode({"sub": sub, "exp": int(time.time() + ttl)}, key, algorithm="HS256")

    return {
        "forged": make(key="not-the-server-secret-0123456789-abcdefgh"),
        "expired": make(ttl=-10),
        "unknown-user": make(sub=str(uuid.uuid4())),
        "garbage": "abc.def",
    }


async def test_bad_tokens_are_401(couple: Couple, http: httpx.AsyncClient) -> None:
    for name, token in bad_tokens(couple["a"]).items():
        response = await http.get("/chat/room", headers=auth(token))
        assert response.status_code == 401, name
        assert response.json()["code"] == "AUTH_FAILED"
    missing = await http.get(f"/chat/rooms/{couple['couple']}/messages")
    assert missing.status_code == 401


async def test_rooms_of_others_unknown_rooms_and_bad_cursors(
    couple_pool: Iterator[Couple], http: httpx.AsyncClient
) -> None:
    mine, theirs = next(couple_pool), next(couple_pool)
    headers = auth(mine["ta"])
    other = await http.get(f"/chat/rooms/{theirs['couple']}/messages", headers=headers)
    assert (other.status_code, other.json()["code"]) == (403, "UNAUTHORIZED")
    intrude = await http.post(
        f"/chat/rooms/{theirs['couple']}/messages", json=text("x"), headers=headers
    )
    assert (intrude.status_code, intrude.json()["code"]) == (403, "UNAUTHORIZED")
    unknown = await http.get(f"/chat/rooms/{uuid.uuid4()}/messages", headers=headers)
    assert (unknown.status_code, unknown.json()["code"]) == (404, "NOT_FOUND")
    for query in ("limit=0", "limit=101", "before=x", "after=-1"):
        bad = await http.get(f"/chat/rooms/{mine['couple']}/messages?{query}", headers=headers)
        assert (bad.status_code, bad.json()["code"]) == (400, "BAD_REQUEST"), query


# -- uploads, end to end ---------------------------------------------------------------------


async def test_uploaded_image_can_be_sent_over_stomp(
    server: ServerProcess, couple: Couple, http: httpx.AsyncClient, uploads_dir: Path
) -> None:
    a, b = await pair(server, couple)
    ticket_response = await http.post(
        f"/chat/rooms/{couple['couple']}/uploads",
        json={"contentType": "image/png", "size": len(PNG)},
        headers=auth(couple["ta"]),
    )
    assert ticket_response.status_code == 200, ticket_response.text
    ticket = ticket_response.json()
    assert ticket["uploadUrl"].startswith(f"{server.http_url}/uploads/{couple['couple']}/")
    put = await http.put(ticket["uploadUrl"], content=PNG, headers=ticket["headers"])
    assert put.status_code == 201, put.text
    name = ticket["imageUrl"].rsplit("/", 1)[1]
    assert (uploads_dir / couple["couple"] / name).read_bytes() == PNG
    served = await http.get(ticket["imageUrl"])
    assert (served.status_code, served.content) == (200, PNG)
    assert served.headers["content-type"] == "image/png"

    dest = f"/app/chat/{couple['couple']}"
    image = {"type": "IMAGE", "imageUrl": ticket["imageUrl"], "tempId": "img-ok"}
    await a.send("SEND", {"destination": dest, "receipt": "ok"}, image)
    await a.expect("RECEIPT")
    assert (await b.expect_message())["imageUrl"] == ticket["imageUrl"]
    await a.expect_message()

    foreign = {"type": "IMAGE", "imageUrl": "https://evil.example/p.png", "tempId": "img-bad"}
    await a.send("SEND", {"destination": dest, "receipt": "bad"}, foreign)
    error = await a.expect_message()
    assert (error["code"], error["tempId"]) == ("SEND_FAILED", "img-bad")
    assert "imageUrl" in error["detail"]
    await b.assert_silent()
    rest = await post_message(http, couple, foreign)
    assert (rest.status_code, rest.json()["code"]) == (400, "SEND_FAILED")
    await a.close()
    await b.close()


async def test_upload_refusals_on_the_real_server(couple: Couple, http: httpx.AsyncClient) -> None:
    room = f"/chat/rooms/{couple['couple']}/uploads"
    headers = auth(couple["ta"])
    too_big = await http.post(
        room, json={"contentType": "image/png", "size": 10**9}, headers=headers
    )
    assert (too_big.status_code, too_big.json()["code"]) == (413, "PAYLOAD_TOO_LARGE")
    svg = await http.post(room, json={"contentType": "image/svg+xml", "size": 10}, headers=headers)
    assert (svg.status_code, svg.json()["code"]) == (415, "UNSUPPORTED_MEDIA_TYPE")
    ticket = (
        await http.post(room, json={"contentType": "image/png", "size": 100}, headers=headers)
    ).json()
    over = await http.put(ticket["uploadUrl"], content=PNG, headers=ticket["headers"])
    assert (over.status_code, over.json()["code"]) == (413, "PAYLOAD_TOO_LARGE")
    tampered = ticket["uploadUrl"].replace("size=100", "size=5000")
    forged = await http.put(tampered, content=PNG, headers=ticket["headers"])
    assert (forged.status_code, forged.json()["code"]) == (403, "SIGNATURE_INVALID")


async def test_text_the_database_cannot_hold_is_refused_alone(
    server: ServerProcess, couple: Couple, http: httpx.AsyncClient
) -> None:
    """A NUL character (PostgreSQL text cannot hold it) is refused by validation, so it never
    reaches the group commit and fails nobody else's message."""
    bad, good = await asyncio.gather(
        post_message(http, couple, text("a\x00b", "t-nul")),
        post_message(http, couple, text("fine", "t-fine"), "tb"),
    )
    assert (bad.status_code, bad.json()["code"], bad.json()["tempId"]) == (
        400,
        "SEND_FAILED",
        "t-nul",
    )
    assert good.status_code == 201
    assert good.json()["seq"] == 1
