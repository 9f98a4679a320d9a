"""GET /chat/room, history, sending and read marks, in-process against SQLite."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import MutableMapping
from typing import Any

import orjson
import pytest

from ieum_chat.chat.envelope import channel_for, unpack
from tests.unit.api.conftest import Api, forged_token, seed


def error_of(response: object, status: int, code: str) -> dict[str, object]:
    import httpx

    assert isinstance(response, httpx.Response)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["type"] == "ERROR"
    assert body["code"] == code
    assert isinstance(body["message"], str)
    assert body["message"]
    return dict(body)


# -- GET /chat/room -----------------------------------------------------------------------


async def test_room_of_a_couple_with_no_messages(api: Api) -> None:
    response = await api.client.get("/chat/room", headers=api.auth())
    assert response.status_code == 200
    assert response.json() == {
        "id": str(api.couple.id),
        "partner": {"id": str(api.b.id), "name": api.b.name, "profileImage": None, "online": False},
        "unreadCount": 0,
        "lastMessage": None,
    }


async def test_room_counts_the_partners_unread_messages_and_shows_the_last(api: Api) -> None:
    await seed(api, 5)  # a, b, a, b, a
    room_b = (await api.client.get("/chat/room", headers=api.auth(api.b))).json()
    assert room_b["partner"]["id"] == str(api.a.id)
    assert room_b["unreadCount"] == 3
    assert room_b["lastMessage"]["seq"] == 5
    assert room_b["lastMessage"]["content"] == "m5"
    assert room_b["lastMessage"]["senderName"] == api.a.name
    room_a = (await api.client.get("/chat/room", headers=api.auth(api.a))).json()
    assert room_a["unreadCount"] == 2


async def test_partner_online_follows_presence(api: Api) -> None:
    await api.chat.session_opened(api.b)
    room = (await api.client.get("/chat/room", headers=api.auth())).json()
    assert room["partner"]["online"] is True
    await api.chat.session_closed(api.b)
    room = (await api.client.get("/chat/room", headers=api.auth())).json()
    assert room["partner"]["online"] is False


async def test_user_without_a_couple_gets_404(api: Api) -> None:
    response = await api.client.get("/chat/room", headers=api.auth(api.loner))
    error_of(response, 404, "NOT_FOUND")


# -- authentication -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Bearer garbage", "Basic dXNlcjpwdw==", "forged", "expired", "unknown-user"],
)
async def test_bad_or_missing_token_is_401(api: Api, header: str | None) -> None:
    from ieum_chat.store import User

    if header == "forged":
        header = f"Bearer {forged_token(api.a)}"
    elif header == "expired":
        header = f"Bearer {api.token(api.a, ttl=-10)}"
    elif header == "unknown-user":
        header = f"Bearer {api.token(User(uuid.uuid4(), 'ghost', None))}"
    headers = {} if header is None else {"Authorization": header}
    for method, path in [
        ("GET", "/chat/room"),
        ("GET", api.room("/messages")),
        ("POST", api.room("/messages")),
        ("POST", api.room("/read")),
        ("POST", api.room("/uploads")),
    ]:
        response = await api.client.request(method, path, headers=headers, json={})
        error_of(response, 401, "AUTH_FAILED")
        assert response.headers["www-authenticate"].startswith("Bearer")


# -- rooms: 403 / 404 -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("GET", "/messages", None),
        ("POST", "/messages", {"type": "TEXT", "content": "hi"}),
        ("POST", "/read", {"upToSeq": 1}),
        ("POST", "/uploads", {"contentType": "image/png", "size": 10}),
    ],
)
async def test_another_couples_room_is_403_and_an_unknown_room_404(
    api: Api, method: str, suffix: str, body: object
) -> None:
    other = await api.client.request(
        method, api.room(suffix, api.other), headers=api.auth(), json=body
    )
    error_of(other, 403, "UNAUTHORIZED")
    for room in (str(uuid.uuid4()), "not-a-room"):
        unknown = await api.client.request(
            method, f"/chat/rooms/{room}{suffix}", headers=api.auth(), json=body
        )
        error_of(unknown, 404, "NOT_FOUND")


async def test_stomp_membership_check_still_says_unauthorized_for_both(api: Api) -> None:
    from ieum_chat.errors import NotFound, Unauthorized

    with pytest.raises(Unauthorized):
        await api.chat.member_couple(api.a.id, uuid.uuid4())
    with pytest.raises(Unauthorized):
        await api.chat.member_couple(api.a.id, api.other.id)
    with pytest.raises(NotFound):
        await api.chat.room(api.a.id, uuid.uuid4())
    with pytest.raises(Unauthorized) as refused:
        await api.chat.room(api.a.id, api.other.id)
    assert not isinstance(refused.value, NotFound)


# -- history -------------------------------------------------------------------------------


async def history(api: Api, **params: Any) -> dict[str, object]:  # JSON values
    response = await api.client.get(api.room("/messages"), params=params, headers=api.auth())
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def seqs(page: dict[str, object]) -> list[int]:
    messages = page["messages"]
    assert isinstance(messages, list)
    return [m["seq"] for m in messages]


async def test_history_is_newest_first_and_walks_back_by_cursor(api: Api) -> None:
    await seed(api, 120)
    first = await history(api)
    assert seqs(first) == list(range(120, 70, -1))  # default limit 50
    assert first["hasMore"] is True
    assert first["nextCursor"] == 71
    second = await history(api, before=first["nextCursor"], limit=50)
    assert seqs(second) == list(range(70, 20, -1))
    third = await history(api, before=second["nextCursor"], limit=50)
    assert seqs(third) == list(range(20, 0, -1))
    assert third["hasMore"] is False
    assert third["nextCursor"] is None


async def test_history_forward_from_a_seq(api: Api) -> None:
    await seed(api, 30)
    page = await history(api, after=10, limit=15, order="asc")
    assert seqs(page) == list(range(11, 26))
    assert page["hasMore"] is True
    assert page["nextCursor"] == 25
    rest = await history(api, after=page["nextCursor"], order="asc")
    assert seqs(rest) == list(range(26, 31))
    assert rest["hasMore"] is False


async def test_history_between_two_seqs_and_empty_pages(api: Api) -> None:
    await seed(api, 30)
    assert seqs(await history(api, after=10, before=15)) == [14, 13, 12, 11]
    assert seqs(await history(api, after=29, before=30)) == []
    assert seqs(await history(api, before=1)) == []
    assert seqs(await history(api, after=10_000)) == []
    exact = await history(api, limit=30)
    assert len(seqs(exact)) == 30
    assert exact["hasMore"] is False


async def test_history_messages_carry_every_field(api: Api) -> None:
    await seed(api, 2)
    page = await history(api)
    messages = page["messages"]
    assert isinstance(messages, list)
    newest = messages[0]
    assert set(newest) == {
        "id", "coupleId", "seq", "senderId", "senderName", "senderProfileImage", "content",
        "type", "imageUrl", "isRead", "readAt", "createdAt", "tempId", "replyTo", "editedAt",
        "unsent", "reactions", "asOfSeq",
    }  # fmt: skip
    assert (newest["senderId"], newest["senderName"]) == (str(api.b.id), api.b.name)
    assert newest["createdAt"] == "2024-01-11T10:00:01.000"


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=101",
        "limit=-1",
        "limit=ten",
        "before=0",
        "before=-5",
        "before=abc",
        "before=1.5",
        "after=-1",
        "after=x",
        f"after={2**63}",
        f"before={2**64}",
        "order=sideways",
    ],
)
async def test_bad_cursor_or_limit_is_400(api: Api, query: str) -> None:
    response = await api.client.get(f"{api.room('/messages')}?{query}", headers=api.auth())
    body = error_of(response, 400, "BAD_REQUEST")
    assert isinstance(body["detail"], str)
    assert "query." in body["detail"]


# -- sending -------------------------------------------------------------------------------


async def test_send_stores_and_answers_the_message(api: Api) -> None:
    response = await api.send(type="TEXT", content="안녕하세요!", tempId="t-1")
    assert response.status_code == 201, response.text
    message = response.json()
    assert message["seq"] == 1
    assert (message["content"], message["type"], message["tempId"]) == (
        "안녕하세요!",
        "TEXT",
        "t-1",
    )
    assert message["senderId"] == str(api.a.id)
    stored = await api.db.get_messages(api.couple.id)
    assert [m.id for m in stored] == [uuid.UUID(message["id"])]


async def test_send_is_idempotent_by_temp_id(api: Api) -> None:
    first = (await api.send(type="TEXT", content="once", tempId="same")).json()
    again = await api.send(type="TEXT", content="once", tempId="same")
    assert again.status_code == 201
    assert again.json()["id"] == first["id"]
    assert again.json()["seq"] == first["seq"]
    other = (await api.send(api.b, type="TEXT", content="b's own", tempId="same")).json()
    assert other["id"] != first["id"]
    assert len(await api.db.get_messages(api.couple.id)) == 2


async def test_send_is_broadcast_to_the_couple(api: Api) -> None:
    received: list[bytes] = []

    def on_message(channel: str, payload: bytes) -> None:
        received.append(payload)

    channel = channel_for(api.couple.id)
    await api.chat.broker.subscribe(channel, on_message)
    try:
        message = (await api.send(type="STICKER", content="heart-1", tempId="s")).json()
        await api.send(type="STICKER", content="heart-1", tempId="s")  # a retry: not re-sent
        await asyncio.sleep(0.05)
    finally:
        await api.chat.broker.unsubscribe(channel, on_message)
    assert len(received) == 1
    seq, audience, body = unpack(received[0])
    assert (seq, audience) == (message["seq"], None)
    assert orjson.loads(body) == message


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"type": "TEXT", "content": "   ", "tempId": "t-blank"}, "non-blank"),
        ({"type": "TEXT", "tempId": "t-none"}, "non-blank"),
        ({"type": "TEXT", "content": "x" * 4001, "tempId": "t-long"}, "longer than"),
        ({"type": "IMAGE", "tempId": "t-img"}, "imageUrl"),
        ({"type": "IMAGE", "imageUrl": "ftp://x/y.png", "tempId": "t-ftp"}, "http(s)"),
        ({"type": "GIF", "content": "x", "tempId": "t-type"}, "'type'"),
        ({"type": "TEXT", "content": 5, "tempId": "t-int"}, "'content' must be a string"),
        ({"type": "STICKER", "content": "s" * 201, "tempId": "t-st"}, "sticker"),
    ],
)
async def test_invalid_message_is_400_send_failed_with_the_temp_id(
    api: Api, body: dict[str, object], detail: str
) -> None:
    response = await api.client.post(api.room("/messages"), json=body, headers=api.auth())
    error = error_of(response, 400, "SEND_FAILED")
    assert error["tempId"] == body["tempId"]
    assert detail in str(error["detail"])
    assert await api.db.get_messages(api.couple.id) == []


@pytest.mark.parametrize("raw", [b"", b"not json", b"[1,2]", b'"TEXT"', b"{"])
async def test_unparsable_body_is_400(api: Api, raw: bytes) -> None:
    response = await api.client.post(
        api.room("/messages"),
        content=raw,
        headers={**api.auth(), "Content-Type": "application/json"},
    )
    error_of(response, 400, "SEND_FAILED")


async def test_body_over_the_frame_limit_is_413(api: Api) -> None:
    huge = b'{"type":"TEXT","content":"' + b"x" * (api.settings.max_frame_size + 10) + b'"}'
    response = await api.client.post(
        api.room("/messages"),
        content=huge,
        headers={**api.auth(), "Content-Type": "application/json"},
    )
    error_of(response, 413, "PAYLOAD_TOO_LARGE")


# -- read marks ----------------------------------------------------------------------------


async def read(api: Api, body: object, user: object = None) -> dict[str, object]:
    from ieum_chat.store import User

    reader = user if isinstance(user, User) else api.b
    response = await api.client.post(api.room("/read"), json=body, headers=api.auth(reader))
    assert response.status_code == 200, response.text
    result: dict[str, object] = response.json()
    return result


async def test_read_up_to_a_seq_marks_the_partners_messages(api: Api) -> None:
    await seed(api, 6)  # a: 1, 3, 5; b: 2, 4, 6
    result = await read(api, {"upToSeq": 4})
    assert result["type"] == "READ_RECEIPT"
    assert result["readerId"] == str(api.b.id)
    assert result["seqs"] == [1, 3]
    assert isinstance(result["readAt"], str)
    again = await read(api, {"upToSeq": 4})
    assert (again["seqs"], again["messageIds"], again["readAt"]) == ([], [], None)
    room = (await api.client.get("/chat/room", headers=api.auth(api.b))).json()
    assert room["unreadCount"] == 1


async def test_read_by_message_ids(api: Api) -> None:
    await seed(api, 4)
    page = await api.db.get_messages(api.couple.id, ascending=True)
    ids = [str(m.id) for m in page]
    result = await read(api, {"messageIds": ids})
    assert result["seqs"] == [1, 3]
    assert result["messageIds"] == [ids[0], ids[2]]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"upToSeq": 1, "messageIds": []},
        {"upToSeq": -1},
        {"upToSeq": 2**63},
        {"upToSeq": "3"},
        {"upToSeq": True},
        {"messageIds": ["nope"]},
        {"messageIds": "x"},
        [],
    ],
)
async def test_bad_read_body_is_400(api: Api, body: object) -> None:
    response = await api.client.post(api.room("/read"), json=body, headers=api.auth())
    error_of(response, 400, "SEND_FAILED")


async def test_a_client_gone_before_its_body_arrived_is_no_server_error(api: Api) -> None:
    """The client disconnects half way through a send's body (a phone losing its network):
    a 400 for nobody and nothing stored, not an exception out of the application."""
    token = api.token(api.a).encode()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": api.room("/messages"),
        "raw_path": api.room("/messages").encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"test"),
            (b"authorization", b"Bearer " + token),
            (b"content-type", b"application/json"),
            (b"content-length", b"200"),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("test", 80),
        "state": {},
    }
    incoming: list[MutableMapping[str, Any]] = [
        {"type": "http.request", "body": b'{"type":"TEXT","content":"cut sh', "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> MutableMapping[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    await api.app(scope, receive, send)
    assert sent[0]["type"] == "http.response.start"
    assert sent[0]["status"] == 400
    assert await api.db.get_messages(api.couple.id) == []
