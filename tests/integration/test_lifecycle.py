"""Edit, unsend, delete for me, reactions and replies against a real server, over STOMP and
REST, on SQLite and PostgreSQL: each action once, each bad input refused with its tempId and
nothing changed, concurrent changes from two devices, and a device that was offline converging
by resume on what history shows."""

from __future__ import annotations

import asyncio
import urllib.parse
import uuid
from typing import Any

import httpx
import pytest

from tests.support.server import ServerProcess
from tests.support.stomp_client import StompTestClient

pytestmark = pytest.mark.server_env({"IEUM_UNSEND_WINDOW": "5"})

Couple = dict[str, str]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def device(server: ServerProcess, couple: Couple, who: str, **resume: str) -> StompTestClient:
    """A connected session of ``who`` ("a" or "b"), subscribed to its errors, its own events
    and the couple's topic (``resume``: SUBSCRIBE headers, x-resume-after-seq)."""
    client = await StompTestClient.connected(server.ws_url, couple[f"t{who}"])
    await client.subscribe("/user/queue/errors")
    await client.subscribe("/user/queue/events")
    await client.subscribe(f"/topic/couple/{couple['couple']}", resume)
    return client


async def act(
    client: StompTestClient, couple: Couple, action: str, body: dict[str, Any]
) -> list[Any]:
    """SEND to /app/chat/{couple}/{action} with a receipt; the MESSAGE bodies read before it."""
    receipt = f"r-{uuid.uuid4().hex[:8]}"
    suffix = f"/{action}" if action else ""
    await client.send(
        "SEND",
        {"destination": f"/app/chat/{couple['couple']}{suffix}", "receipt": receipt},
        body,
    )
    return await client.receipt(receipt)


async def refused(
    client: StompTestClient, couple: Couple, action: str, body: dict[str, Any]
) -> dict[str, Any]:
    """SEND without a receipt; the error payload it gets (on /user/queue/errors), passing the
    broadcasts of earlier actions."""
    suffix = f"/{action}" if action else ""
    await client.send("SEND", {"destination": f"/app/chat/{couple['couple']}{suffix}"}, body)
    seen = await client.messages_until(lambda body: body.get("type") == "ERROR")
    error: dict[str, Any] = seen[-1]
    return error


async def history(http: httpx.AsyncClient, couple: Couple, who: str = "a") -> list[dict[str, Any]]:
    response = await http.get(
        f"/chat/rooms/{couple['couple']}/messages",
        params={"order": "asc", "limit": 100},
        headers=auth(couple[f"t{who}"]),
    )
    assert response.status_code == 200, response.text
    messages: list[dict[str, Any]] = response.json()["messages"]
    return messages


async def test_each_action_over_stomp_is_one_event_with_its_seq(
    server: ServerProcess, couple: Couple, http: httpx.AsyncClient
) -> None:
    a = await device(server, couple, "a")
    b = await device(server, couple, "b")

    async def everyone(client: StompTestClient, action: str, body: dict[str, Any]) -> Any:
        """Act; the one event both sessions then get (the actor's after its RECEIPT)."""
        assert await act(client, couple, action, body) == []
        seen_by_a, seen_by_b = await a.expect_message(), await b.expect_message()
        assert seen_by_a == seen_by_b
        return seen_by_a

    try:
        m1 = await everyone(a, "", {"type": "TEXT", "content": "첫 메시지", "tempId": "m1"})
        assert (m1["seq"], m1["editedAt"], m1["unsent"], m1["reactions"]) == (1, None, False, [])

        edit = {"messageId": m1["id"], "content": "고친 메시지", "tempId": "e1"}
        edited = await everyone(a, "edit", edit)
        assert edited["type"] == "MESSAGE_EDITED"
        assert (edited["seq"], edited["messageId"], edited["content"], edited["tempId"]) == (
            2,
            m1["id"],
            "고친 메시지",
            "e1",
        )
        assert edited["editedAt"]

        reaction = await everyone(b, "react", {"messageId": m1["id"], "emoji": "❤️", "op": "add"})
        assert reaction == {
            "type": "REACTION",
            "coupleId": couple["couple"],
            "seq": 3,
            "messageId": m1["id"],
            "userId": couple["b"],
            "tempId": None,
            "emoji": "❤️",
            "op": "add",
        }

        reply = await everyone(b, "", {"type": "TEXT", "content": "답장", "replyTo": m1["id"]})
        assert reply["replyTo"] == {
            "messageId": m1["id"],
            "senderId": couple["a"],
            "type": "TEXT",
            "preview": "고친 메시지",
            "unsent": False,
        }

        read = await everyone(b, "read", {"upToSeq": reply["seq"]})
        assert (read["type"], read["seq"], read["messageIds"]) == ("READ_RECEIPT", 5, [m1["id"]])

        unsent = await everyone(a, "unsend", {"messageId": m1["id"], "tempId": "u1"})
        assert (unsent["type"], unsent["seq"], unsent["messageId"]) == (
            "MESSAGE_UNSENT",
            6,
            m1["id"],
        )

        # delete for me: b's own sessions only, with no seq; a hears nothing
        b_phone = await device(server, couple, "b")
        assert await act(b, couple, "delete", {"messageId": reply["id"]}) == []
        for session in (b, b_phone):
            deleted = await session.expect_message()
            assert deleted["type"] == "MESSAGE_DELETED"
            assert (deleted["messageId"], deleted["userId"]) == (reply["id"], couple["b"])
            assert "seq" not in deleted
        await a.assert_silent()
        await b_phone.close()
    finally:
        await a.close()
        await b.close()

    seen_by_a = await history(http, couple, "a")
    assert [m["seq"] for m in seen_by_a] == [1, 4]
    tomb, answer = seen_by_a
    assert (tomb["unsent"], tomb["content"], tomb["reactions"], tomb["editedAt"]) == (
        True,
        None,
        [],
        tomb["editedAt"],
    )
    assert answer["replyTo"]["preview"] is None
    assert answer["replyTo"]["unsent"] is True
    assert [m["seq"] for m in await history(http, couple, "b")] == [1]


async def test_bad_changes_are_refused_with_their_temp_id_and_change_nothing(
    server: ServerProcess, couple: Couple, http: httpx.AsyncClient, couple_pool: Any
) -> None:
    other = next(couple_pool)
    a = await device(server, couple, "a")
    b = await device(server, couple, "b")
    stranger = await device(server, other, "a")
    try:
        await act(a, couple, "", {"type": "TEXT", "content": "text"})
        text = await b.expect_message()
        await act(a, couple, "", {"type": "IMAGE", "imageUrl": "https://cdn.example/a.png"})
        image = await b.expect_message()
        await act(stranger, other, "", {"type": "TEXT", "content": "theirs"})
        theirs = await stranger.expect_message()
        cases: list[tuple[StompTestClient, str, dict[str, Any], str]] = [
            (b, "edit", {"messageId": text["id"], "content": "x"}, "FORBIDDEN"),
            (b, "unsend", {"messageId": text["id"]}, "FORBIDDEN"),
            (a, "edit", {"messageId": theirs["id"], "content": "x"}, "NOT_FOUND"),
            (a, "react", {"messageId": theirs["id"], "emoji": "❤️"}, "NOT_FOUND"),
            (a, "edit", {"messageId": str(uuid.uuid4()), "content": "x"}, "NOT_FOUND"),
            (a, "delete", {"messageId": theirs["id"]}, "NOT_FOUND"),
            (a, "edit", {"messageId": image["id"], "content": "x"}, "SEND_FAILED"),
            (a, "edit", {"messageId": text["id"], "content": "   "}, "SEND_FAILED"),
            (a, "edit", {"messageId": text["id"], "content": "가" * 4001}, "SEND_FAILED"),
            (a, "react", {"messageId": text["id"], "emoji": "ab"}, "SEND_FAILED"),
            (a, "react", {"messageId": text["id"], "emoji": "❤️❤️"}, "SEND_FAILED"),
            (a, "react", {"messageId": text["id"], "emoji": "❤️", "op": "toggle"}, "SEND_FAILED"),
            (a, "edit", {"messageId": "not-an-id", "content": "x"}, "SEND_FAILED"),
            (a, "", {"type": "TEXT", "content": "x", "replyTo": theirs["id"]}, "NOT_FOUND"),
            (stranger, "edit", {"messageId": text["id"], "content": "x"}, "UNAUTHORIZED"),
        ]
        for i, (client, action, body, code) in enumerate(cases):
            temp_id = f"bad-{i}"
            error = await refused(client, couple, action, {**body, "tempId": temp_id})
            assert (error["code"], error["tempId"]) == (code, temp_id), (action, body, error)
            if code == "SEND_FAILED":  # a change, not a send: its own text
                assert error["message"] == "요청을 처리하지 못했습니다.", error
        # 20 different reactions fit, the 21st does not
        for i in range(20):
            await act(b, couple, "react", {"messageId": text["id"], "emoji": chr(0x1F600 + i)})
        error = await refused(
            b, couple, "react", {"messageId": text["id"], "emoji": "🙏", "tempId": "r21"}
        )
        assert (error["code"], error["tempId"]) == ("SEND_FAILED", "r21")
    finally:
        for client in (a, b, stranger):
            await client.close()
    stored = {m["id"]: m for m in await history(http, couple)}
    assert stored[text["id"]]["content"] == "text"
    assert stored[text["id"]]["editedAt"] is None
    assert len(stored[text["id"]]["reactions"]) == 20
    assert stored[image["id"]]["imageUrl"] == "https://cdn.example/a.png"


async def test_unsend_after_the_window_and_a_retried_edit_applied_once(
    server: ServerProcess, couple: Couple, http: httpx.AsyncClient
) -> None:
    a = await device(server, couple, "a")
    b = await device(server, couple, "b")
    try:
        await act(a, couple, "", {"type": "TEXT", "content": "v1"})
        m = await b.expect_message()
        for _ in range(2):  # the retry of an edit whose RECEIPT was lost
            await act(a, couple, "edit", {"messageId": m["id"], "content": "v2", "tempId": "e"})
        edited = await b.expect_message()
        assert edited["seq"] == 2
        await b.assert_silent()
        await asyncio.sleep(5.5)  # IEUM_UNSEND_WINDOW is 5 s here
        error = await refused(a, couple, "unsend", {"messageId": m["id"], "tempId": "late"})
        assert (error["code"], error["tempId"]) == ("WINDOW_EXPIRED", "late")
    finally:
        await a.close()
        await b.close()
    (only,) = await history(http, couple)
    assert (only["content"], only["unsent"]) == ("v2", False)


async def test_edit_and_unsend_from_two_devices_at_once_agree(
    server: ServerProcess, couple: Couple, http: httpx.AsyncClient
) -> None:
    phone = await device(server, couple, "a")
    browser = await device(server, couple, "a")
    try:
        await act(phone, couple, "", {"type": "TEXT", "content": "v1"})
        m = await browser.expect_message()
        assert await phone.expect_message() == m
        results = await asyncio.gather(
            act(phone, couple, "edit", {"messageId": m["id"], "content": "v2"}),
            act(browser, couple, "unsend", {"messageId": m["id"]}),
            return_exceptions=True,
        )
        views = []
        for client, result in zip((phone, browser), results, strict=True):
            seen = [] if isinstance(result, BaseException) else list(result)
            seen += await client.messages_until(
                lambda body: body.get("type") == "MESSAGE_UNSENT", timeout=5
            )
            views.append([body for body in seen if body.get("type") != "ERROR"])
    finally:
        await phone.close()
        await browser.close()
    # both devices saw the same events, in the same order, ending with the unsend
    phone_saw, browser_saw = ([(e["type"], e["seq"]) for e in v] for v in views)
    assert phone_saw == browser_saw
    (final,) = await history(http, couple)
    assert (final["unsent"], final["content"]) == (True, None)


async def test_an_offline_device_converges_on_history_by_resume(
    server: ServerProcess, couple: Couple, http: httpx.AsyncClient
) -> None:
    a = await device(server, couple, "a")
    b_phone = await device(server, couple, "b")
    b_browser = await device(server, couple, "b")
    try:
        for i in range(3):
            await act(a, couple, "", {"type": "TEXT", "content": f"m{i}"})
        seen = [await b_browser.expect_message() for _ in range(3)]
        last_seen = seen[-1]["seq"]
        await b_browser.close()  # the browser goes offline

        m0, m1, m2 = seen
        await act(a, couple, "edit", {"messageId": m0["id"], "content": "m0 edited"})
        await act(a, couple, "unsend", {"messageId": m1["id"]})
        await act(b_phone, couple, "react", {"messageId": m2["id"], "emoji": "👍🏽"})
        await act(b_phone, couple, "delete", {"messageId": m2["id"]})
        await act(a, couple, "", {"type": "TEXT", "content": "new", "replyTo": m0["id"]})
        await act(b_phone, couple, "read", {"upToSeq": 100})

        b_browser = await device(server, couple, "b", **{"x-resume-after-seq": str(last_seen)})
        replayed = await b_browser.messages_until(
            lambda body: body.get("type") == "READ_RECEIPT", timeout=5
        )
    finally:
        for client in (a, b_phone, b_browser):
            await client.close()
    # the device applies what it was told, in order, to what it had
    view = {m["id"]: dict(m) for m in seen}
    for body in replayed:
        kind = body.get("type")
        if kind in ("TEXT", "IMAGE", "STICKER"):
            view[body["id"]] = dict(body)
        elif kind == "MESSAGE_EDITED":
            view[body["messageId"]] |= {"content": body["content"], "editedAt": body["editedAt"]}
        elif kind == "MESSAGE_UNSENT":
            view[body["messageId"]] |= {"content": None, "unsent": True, "reactions": []}
        elif kind == "MESSAGE_DELETED":
            view.pop(body["messageId"], None)
        elif kind == "REACTION":
            target = view.get(body["messageId"])
            if target is not None:
                target["reactions"] = [{"emoji": body["emoji"], "userIds": [body["userId"]]}]
        elif kind == "READ_RECEIPT" and body["readerId"] == couple["b"]:
            for message_id in body["messageIds"]:
                if message_id in view:
                    view[message_id]["isRead"] = True
    seqs = [b.get("seq") for b in replayed if b.get("seq") is not None]
    assert seqs == sorted(seqs)
    expected = await history(http, couple, "b")
    keys = ("id", "content", "unsent", "isRead", "reactions")
    assert [{k: m[k] for k in keys} for m in sorted(view.values(), key=lambda m: m["seq"])] == [
        {k: m[k] for k in keys} for m in expected
    ]
    assert [m["content"] for m in expected] == ["m0 edited", None, "new"]


async def test_each_action_over_rest(
    server: ServerProcess, couple: Couple, http: httpx.AsyncClient
) -> None:
    room = f"/chat/rooms/{couple['couple']}/messages"
    ta, tb = auth(couple["ta"]), auth(couple["tb"])
    b = await device(server, couple, "b")
    try:
        sent = await http.post(room, json={"type": "TEXT", "content": "hi"}, headers=ta)
        message = sent.json()
        assert (await b.expect_message())["id"] == message["id"]
        path = f"{room}/{message['id']}"

        edited = await http.patch(path, json={"content": "hello", "tempId": "e"}, headers=ta)
        assert edited.status_code == 200, edited.text
        assert (edited.json()["content"], edited.json()["editedAt"] is not None) == ("hello", True)
        assert (await b.expect_message())["type"] == "MESSAGE_EDITED"

        heart = urllib.parse.quote("❤️")
        reacted = await http.post(f"{path}/reactions/{heart}", headers=tb)
        assert reacted.json()["reactions"] == [{"emoji": "❤️", "userIds": [couple["b"]]}]
        assert (await b.expect_message())["type"] == "REACTION"
        again = await http.post(f"{path}/reactions/{heart}", headers=tb)
        assert again.json()["reactions"] == reacted.json()["reactions"]
        removed = await http.delete(f"{path}/reactions/{heart}", headers=tb)
        assert removed.json()["reactions"] == []
        assert (await b.expect_message())["op"] == "remove"

        forbidden = await http.post(f"{path}/unsend", json={"tempId": "u-b"}, headers=tb)
        assert forbidden.status_code == 403
        assert (forbidden.json()["code"], forbidden.json()["tempId"]) == ("FORBIDDEN", "u-b")
        unsent = await http.post(f"{path}/unsend", headers=ta)
        assert (unsent.json()["unsent"], unsent.json()["content"]) == (True, None)
        assert (await b.expect_message())["type"] == "MESSAGE_UNSENT"

        bad = await http.post(f"{path}/reactions/{urllib.parse.quote('ab')}", headers=tb)
        assert (bad.status_code, bad.json()["code"]) == (400, "SEND_FAILED")
        unknown = await http.patch(f"{room}/{uuid.uuid4()}", json={"content": "x"}, headers=ta)
        assert (unknown.status_code, unknown.json()["code"]) == (404, "NOT_FOUND")
        not_an_id = await http.delete(f"{room}/nope", headers=ta)
        assert not_an_id.status_code == 404

        hidden = await http.delete(path, headers=tb)
        assert hidden.status_code == 204
        deleted = await b.expect_message()
        assert (deleted["type"], deleted["messageId"]) == ("MESSAGE_DELETED", message["id"])
    finally:
        await b.close()
    assert await history(http, couple, "b") == []
    assert [m["unsent"] for m in await history(http, couple, "a")] == [True]
    room_of_b = (await http.get("/chat/room", headers=tb)).json()
    assert (room_of_b["lastMessage"], room_of_b["unreadCount"]) == (None, 0)
