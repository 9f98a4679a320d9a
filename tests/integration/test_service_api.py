"""The service API (``/admin/v1``) against real server processes, on SQLite and PostgreSQL,
with the in-process broker and with Redis: two nodes share the database (and Redis), a member
on each, as a fleet behind a load balancer would place them.

Keys: constant-time matched, never logged, named in the audit log; users, couples, notices,
dissolution and account deletion, each with its bad input; and what dissolution and deletion
do to live sessions on both nodes within 2 s, and to later tokens, SUBSCRIBEs and REST calls.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from ieum_chat.client import (
    Admin,
    AdminError,
    Backoff,
    ChatClient,
    ChatMessage,
    ClientClosed,
    Disconnected,
    ErrorEvent,
    SystemEvent,
)
from tests.support.fixtures import SERVER_ENV
from tests.support.redis import REDIS_URL, require_redis
from tests.support.server import Cli, ServerProcess
from tests.support.stomp_client import StompTestClient, frame_json

KEY = "backend:" + "k" * 24 + "-the-app-backend"
BARE_KEY = "b" * 32
KEYS = f"{KEY},{BARE_KEY}"
SECRET_KEY = KEY.split(":", 1)[1]
PROMISE = 2.0  # seconds within which every node acts on a dissolution or a deletion
Couple = dict[str, str]


@dataclass
class Nodes:
    first: ServerProcess
    second: ServerProcess
    broker: str


@pytest.fixture(scope="module", params=["memory", "redis"])
def nodes(
    request: pytest.FixtureRequest, cli: Cli, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Nodes]:
    env = {**SERVER_ENV, "IEUM_ADMIN_API_KEYS": KEYS}
    if request.param == "redis":
        require_redis()
        env |= {"IEUM_REDIS_URL": REDIS_URL, "IEUM_REDIS_PREFIX": f"t{uuid.uuid4().hex[:8]}:"}
    logs: Path = tmp_path_factory.mktemp("logs")
    first = ServerProcess(cli, logs / "first.log", extra_env=env).start()
    try:
        second = ServerProcess(cli, logs / "second.log", extra_env=env).start()
        try:
            yield Nodes(first, second, request.param)
        finally:
            second.stop()
    finally:
        first.stop()


@pytest.fixture
async def api(nodes: Nodes) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=nodes.first.http_url + "/admin/v1",
        headers={"Authorization": f"Bearer {SECRET_KEY}"},
        timeout=10,
    ) as client:
        yield client


@pytest.fixture
async def admin(nodes: Nodes) -> AsyncIterator[Admin]:
    async with Admin(nodes.second.http_url, SECRET_KEY) as client:
        yield client


def error_code(response: httpx.Response) -> str:
    body = response.json()
    assert body["type"] == "ERROR", body
    return str(body["code"])


async def new_couple(api: httpx.AsyncClient) -> Couple:
    ids = [str(uuid.uuid4()), str(uuid.uuid4())]
    for name, user_id in zip(("민지", "준호"), ids, strict=True):
        assert (await api.put(f"/users/{user_id}", json={"name": name})).status_code == 201
    created = await api.post("/couples", json={"userIds": ids})
    assert created.status_code == 201, created.text
    return {"couple": created.json()["id"], "a": ids[0], "b": ids[1]}


def token(cli: Cli, user_id: str) -> str:
    return cli.run("token", user_id).stdout.strip()


async def member(url: str, tok: str, couple_id: str) -> StompTestClient:
    client = await StompTestClient.connected(url, tok)
    await client.subscribe("/user/queue/errors")
    await client.subscribe(f"/topic/couple/{couple_id}")
    return client


async def ends_with(client: StompTestClient, code: str, *, event: bool) -> float:
    """The session gets (with ``event``) SYSTEM COUPLE_DISSOLVED, then ERROR ``code``, and
    closes; the seconds it took."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    frame = await client.next_frame(timeout=PROMISE)
    if event:
        assert frame.command == "MESSAGE", frame
        body = frame_json(frame)
        assert (body["type"], body["event"]) == ("SYSTEM", "COUPLE_DISSOLVED"), body
        frame = await client.next_frame(timeout=max(0.01, PROMISE - (loop.time() - start)))
    assert frame.command == "ERROR", frame
    assert frame.get("message") == code
    assert frame_json(frame)["code"] == code
    assert await client.closed()
    return loop.time() - start


# -- keys -----------------------------------------------------------------------------------


async def test_wrong_missing_and_user_keys_are_refused(nodes: Nodes, cli: Cli) -> None:
    [seeded] = cli.seed(1)
    url = nodes.first.http_url + f"/admin/v1/users/{uuid.uuid4()}"
    async with httpx.AsyncClient(timeout=10) as http:
        for headers in (
            {},
            {"Authorization": f"Bearer {SECRET_KEY}x"},
            {"Authorization": f"Bearer {SECRET_KEY[:-1]}"},
            {"Authorization": f"Bearer {seeded['ta']}"},  # a user's JWT
            {"Authorization": f"Basic {SECRET_KEY}"},
        ):
            answer = await http.put(url, json={"name": "x"}, headers=headers)
            assert answer.status_code == 401, (headers, answer.text)
            assert error_code(answer) == "AUTH_FAILED"
        bare = await http.put(
            url, json={"name": "bare"}, headers={"Authorization": f"Bearer {BARE_KEY}"}
        )
        assert bare.status_code == 201
        named = await http.put(
            url, json={"name": "named"}, headers={"Authorization": f"Bearer {SECRET_KEY}"}
        )
        assert named.status_code == 200
        # and an admin key is no user token
        room = await http.get(
            nodes.first.http_url + "/chat/room", headers={"Authorization": f"Bearer {SECRET_KEY}"}
        )
        assert room.status_code == 401
    await asyncio.sleep(0.2)  # the log lines are written as the answers go
    log = nodes.first.log_text()
    assert "admin call key=backend PUT /admin/v1/users/" in log
    assert "admin call key=key2 PUT" in log
    assert log.count(f"admin call key=- PUT {url.split(':', 2)[2].split('/', 1)[1]}") == 0
    assert log.count("admin call key=- PUT /admin/v1/users/") == 5  # refused, no name
    assert SECRET_KEY not in log
    assert BARE_KEY not in log


# -- users and couples ----------------------------------------------------------------------


async def test_users_are_created_then_updated(api: httpx.AsyncClient) -> None:
    user_id = str(uuid.uuid4())
    created = await api.put(f"/users/{user_id}", json={"name": "민지"})
    assert created.status_code == 201
    assert created.json() == {"id": user_id, "name": "민지", "profileImage": None, "deleted": False}
    image = "https://img.example/minji.png"
    updated = await api.put(f"/users/{user_id}", json={"name": "민지 ♥", "profileImage": image})
    assert updated.status_code == 200
    assert updated.json()["name"] == "민지 ♥"
    for body in ({}, {"name": " "}, {"name": "x" * 101}, {"name": 3}, {"name": "a\x00b"}):
        answer = await api.put(f"/users/{user_id}", json=body)
        assert answer.status_code == 400, body
        assert error_code(answer) == "BAD_REQUEST"
    bad_json = await api.put(f"/users/{user_id}", content=b"{", headers={"content-type": "x"})
    assert bad_json.status_code == 400
    assert (await api.put("/users/not-a-uuid", json={"name": "x"})).status_code == 404
    system = await api.put(f"/users/{uuid.UUID(int=0)}", json={"name": "x"})
    assert system.status_code == 400


async def test_couples_refuse_bad_pairs(api: httpx.AsyncClient) -> None:
    couple = await new_couple(api)
    loner = str(uuid.uuid4())
    assert (await api.put(f"/users/{loner}", json={"name": "solo"})).status_code == 201
    cases = [
        ({"userIds": [loner, loner]}, 400, "BAD_REQUEST"),
        ({"userIds": [loner]}, 400, "BAD_REQUEST"),
        ({"userIds": [loner, "nope"]}, 400, "BAD_REQUEST"),
        ({"userIds": [loner, str(uuid.uuid4())]}, 404, "NOT_FOUND"),
        ({"userIds": [loner, couple["a"]]}, 409, "CONFLICT"),
        ({"userIds": [couple["b"], couple["a"]]}, 409, "CONFLICT"),
    ]
    for body, status, code in cases:
        answer = await api.post("/couples", json=body)
        assert (answer.status_code, error_code(answer)) == (status, code), body
    # Nothing was changed by them: the couple is whole, and the loner is free to pair.
    notice = await api.post(f"/couples/{couple['couple']}/messages", json={"content": "x"})
    assert notice.status_code == 201
    other = str(uuid.uuid4())
    assert (await api.put(f"/users/{other}", json={"name": "둘"})).status_code == 201
    assert (await api.post("/couples", json={"userIds": [loner, other]})).status_code == 201


# -- notices --------------------------------------------------------------------------------


async def test_a_notice_is_stored_broadcast_and_in_history(
    api: httpx.AsyncClient, nodes: Nodes, cli: Cli
) -> None:
    couple = await new_couple(api)
    ta, tb = token(cli, couple["a"]), token(cli, couple["b"])
    a = await member(nodes.first.ws_url, ta, couple["couple"])
    # Live fan-out between nodes needs Redis; with the in-process broker, one node.
    other = nodes.second if nodes.broker == "redis" else nodes.first
    b = await member(other.ws_url, tb, couple["couple"])
    path = f"/couples/{couple['couple']}/messages"
    sent = await api.post(path, json={"content": "오늘은 두 분의 100일입니다 🎉", "tempId": "d100"})
    assert sent.status_code == 201, sent.text
    notice = sent.json()
    assert (notice["type"], notice["senderId"], notice["seq"]) == ("NOTICE", None, 1)
    for client in (a, b):
        live = await client.expect_message()
        assert {k: live[k] for k in ("id", "type", "senderId", "seq", "content")} == {
            k: notice[k] for k in ("id", "type", "senderId", "seq", "content")
        }
    again = await api.post(path, json={"content": "다른 내용", "tempId": "d100"})
    assert again.json()["id"] == notice["id"]  # stored once
    await a.assert_silent(0.3)
    async with httpx.AsyncClient(base_url=nodes.second.http_url, timeout=10) as http:
        history = await http.get(
            f"/chat/rooms/{couple['couple']}/messages",
            headers={"Authorization": f"Bearer {tb}"},
        )
        room = await http.get("/chat/room", headers={"Authorization": f"Bearer {tb}"})
    assert [m["id"] for m in history.json()["messages"]] == [notice["id"]]
    assert history.json()["messages"][0]["senderId"] is None
    assert room.json()["unreadCount"] == 1
    # a member cannot send one
    await a.send(
        "SEND",
        {"destination": f"/app/chat/{couple['couple']}"},
        {"type": "NOTICE", "content": "fake", "tempId": "n"},
    )
    assert (await a.expect_message())["code"] == "SEND_FAILED"
    for client in (a, b):
        await client.close()


async def test_notices_refuse_bad_input(api: httpx.AsyncClient) -> None:
    couple = await new_couple(api)
    path = f"/couples/{couple['couple']}/messages"
    for body in ({}, {"content": " "}, {"content": "x" * 4001}, {"content": "x", "tempId": 5}):
        answer = await api.post(path, json=body)
        assert answer.status_code == 400, body
        assert error_code(answer) == "SEND_FAILED"
    longest = await api.post(path, json={"content": "x" * 4000})
    assert longest.status_code == 201
    assert longest.json()["seq"] == 1  # the refused ones took no seq
    unknown = await api.post(f"/couples/{uuid.uuid4()}/messages", json={"content": "x"})
    assert (unknown.status_code, error_code(unknown)) == (404, "NOT_FOUND")


# -- dissolution and deletion ---------------------------------------------------------------


async def test_dissolving_ends_both_members_sessions_on_both_nodes(
    api: httpx.AsyncClient, nodes: Nodes, cli: Cli
) -> None:
    couple = await new_couple(api)
    ta, tb = token(cli, couple["a"]), token(cli, couple["b"])
    a = await member(nodes.first.ws_url, ta, couple["couple"])
    b = await member(nodes.second.ws_url, tb, couple["couple"])

    dissolved = await api.post(f"/couples/{couple['couple']}/dissolve")
    assert dissolved.status_code == 200
    assert dissolved.json()["dissolved"] is True
    took = await asyncio.gather(
        ends_with(a, "COUPLE_DISSOLVED", event=True), ends_with(b, "COUPLE_DISSOLVED", event=True)
    )
    assert max(took) < PROMISE

    again = await api.post(f"/couples/{couple['couple']}/dissolve")
    assert again.status_code == 200
    assert again.json()["dissolvedAt"] == dissolved.json()["dissolvedAt"]
    missing = await api.post(f"/couples/{uuid.uuid4()}/dissolve")
    assert (missing.status_code, error_code(missing)) == (404, "NOT_FOUND")

    # The members may connect (they may pair again), but the couple is closed everywhere.
    for url in (nodes.first.ws_url, nodes.second.ws_url):
        client = await StompTestClient.connected(url, ta)
        await client.subscribe("/user/queue/errors")
        dest = f"/topic/couple/{couple['couple']}"
        await client.send("SUBSCRIBE", {"id": "s", "destination": dest, "receipt": "r"})
        assert (await client.expect_message())["code"] == "NOT_FOUND"
        await client.send(
            "SEND",
            {"destination": f"/app/chat/{couple['couple']}", "receipt": "x"},
            {"type": "TEXT", "content": "anyone?", "tempId": "t"},
        )
        refused = await client.expect_message()
        assert (refused["code"], refused["tempId"]) == ("NOT_FOUND", "t")
        await client.close()
    async with httpx.AsyncClient(base_url=nodes.second.http_url, timeout=10) as http:
        auth = {"Authorization": f"Bearer {ta}"}
        for path in ("/chat/room", f"/chat/rooms/{couple['couple']}/messages"):
            answer = await http.get(path, headers=auth)
            assert (answer.status_code, error_code(answer)) == (404, "NOT_FOUND"), path
        sent = await http.post(
            f"/chat/rooms/{couple['couple']}/messages",
            json={"type": "TEXT", "content": "x"},
            headers=auth,
        )
        assert (sent.status_code, error_code(sent)) == (404, "NOT_FOUND")
    notice = await api.post(f"/couples/{couple['couple']}/messages", json={"content": "x"})
    assert notice.status_code == 404

    # A new couple of the same two: a new stream from seq 1.
    reformed = await api.post("/couples", json={"userIds": [couple["b"], couple["a"]]})
    assert reformed.status_code == 201
    fresh = await member(nodes.second.ws_url, ta, reformed.json()["id"])
    await fresh.send(
        "SEND",
        {"destination": f"/app/chat/{reformed.json()['id']}", "receipt": "s1"},
        {"type": "TEXT", "content": "다시 시작", "tempId": "again"},
    )
    seen = await fresh.receipt("s1")
    own = seen[0] if seen else await fresh.expect_message()
    assert own["seq"] == 1
    await fresh.close()


async def test_deleting_a_user_ends_every_device_and_refuses_their_token(
    api: httpx.AsyncClient, nodes: Nodes, cli: Cli
) -> None:
    couple = await new_couple(api)
    ta, tb = token(cli, couple["a"]), token(cli, couple["b"])
    devices = [
        await member(nodes.first.ws_url, ta, couple["couple"]),
        await member(nodes.second.ws_url, ta, couple["couple"]),
        await StompTestClient.connected(nodes.second.ws_url, ta),  # connected, no subscription
    ]
    partner = await member(nodes.first.ws_url, tb, couple["couple"])

    deleted = await api.delete(f"/users/{couple['a']}")
    assert deleted.status_code == 200
    assert deleted.json()["deleted"] is True
    assert deleted.json()["dissolvedCoupleId"] == couple["couple"]
    took = await asyncio.gather(
        *(ends_with(d, "ACCOUNT_DELETED", event=False) for d in devices),
        ends_with(partner, "COUPLE_DISSOLVED", event=True),
    )
    assert max(took) < PROMISE

    again = await api.delete(f"/users/{couple['a']}")
    assert again.status_code == 200
    assert again.json()["dissolvedCoupleId"] is None
    assert (await api.delete(f"/users/{uuid.uuid4()}")).status_code == 404
    recreate = await api.put(f"/users/{couple['a']}", json={"name": "again"})
    assert (recreate.status_code, error_code(recreate)) == (409, "CONFLICT")

    for url in (nodes.first.ws_url, nodes.second.ws_url):
        client = await StompTestClient.open(url)
        await client.send(
            "CONNECT", {"accept-version": "1.2", "host": "ieum", "Authorization": f"Bearer {ta}"}
        )
        frame = await client.expect("ERROR")
        assert frame_json(frame)["code"] == "ACCOUNT_DELETED"
        assert await client.closed()
    async with httpx.AsyncClient(base_url=nodes.second.http_url, timeout=10) as http:
        answer = await http.get("/chat/room", headers={"Authorization": f"Bearer {ta}"})
        assert (answer.status_code, error_code(answer)) == (401, "ACCOUNT_DELETED")
        partner_room = await http.get("/chat/room", headers={"Authorization": f"Bearer {tb}"})
        assert partner_room.status_code == 404  # the partner has no couple now


# -- the SDK and the document ---------------------------------------------------------------


async def until_closed(client: ChatClient) -> list[Any]:
    """Every event the client delivers until it ends (within 10 s)."""
    events: list[Any] = []
    async with asyncio.timeout(10):
        while True:
            try:
                events.append(await client.next_event())
            except ClientClosed:
                return events


async def test_a_client_sdk_session_ends_with_its_couple(
    api: httpx.AsyncClient, nodes: Nodes, cli: Cli
) -> None:
    """The SDK shows the notice and the dissolution, then ends by itself: no reconnect would
    be admitted, so it does not try."""
    couple = await new_couple(api)
    ta = token(cli, couple["a"])
    client = ChatClient(
        nodes.first.ws_url,  # where the notice is posted: live without Redis too
        lambda: ta,
        couple_id=couple["couple"],
        resume_after_seq=0,
        backoff=Backoff(0.05, 0.5),
    )
    client.start()
    try:
        async with asyncio.timeout(15):
            await client.wait_ready()
        sent = await api.post(f"/couples/{couple['couple']}/messages", json={"content": "축하해요"})
        assert sent.status_code == 201
        seen: list[Any] = []
        async with asyncio.timeout(10):
            while not any(isinstance(e, ChatMessage) for e in seen):
                seen.append(await client.next_event())
        notice = next(e for e in seen if isinstance(e, ChatMessage))
        assert (notice.type, notice.sender_id, notice.content) == ("NOTICE", None, "축하해요")
        assert (await api.post(f"/couples/{couple['couple']}/dissolve")).status_code == 200
        rest = await until_closed(client)
        system = [e for e in rest if isinstance(e, SystemEvent)]
        errors = [e for e in rest if isinstance(e, ErrorEvent)]
        assert [e.event for e in system] == ["COUPLE_DISSOLVED"]
        assert [(e.code, e.fatal) for e in errors] == [("COUPLE_DISSOLVED", True)]
        assert not any(isinstance(e, Disconnected) for e in rest)  # no reconnect
        with pytest.raises(ClientClosed):
            await client.send_text("anyone?")
    finally:
        await client.close()


async def test_the_python_sdk_drives_the_service_api(admin: Admin, nodes: Nodes, cli: Cli) -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    assert (await admin.upsert_user(a, "민지"))["id"] == str(a)
    await admin.upsert_user(b, "준호", "https://img.example/j.png")
    couple = await admin.create_couple(a, b)
    notice = await admin.send_notice(couple["id"], "축하해요", temp_id="sdk-1")
    assert (notice["type"], notice["senderId"]) == ("NOTICE", None)
    assert (await admin.send_notice(couple["id"], "축하해요", temp_id="sdk-1"))["id"] == notice[
        "id"
    ]
    with pytest.raises(AdminError) as refused:
        await admin.create_couple(a, b)
    assert (refused.value.status, refused.value.code) == (409, "CONFLICT")
    assert (await admin.dissolve_couple(couple["id"]))["dissolved"] is True
    assert (await admin.delete_user(a))["deleted"] is True
    async with Admin(nodes.first.http_url, "w" * 32) as wrong:
        with pytest.raises(AdminError) as unauthorized:
            await wrong.dissolve_couple(couple["id"])
    assert (unauthorized.value.status, unauthorized.value.code) == (401, "AUTH_FAILED")


async def counters(node: ServerProcess) -> dict[str, float]:
    """The node's lifecycle and service API counters, by their sample's name and labels."""
    async with httpx.AsyncClient(timeout=10) as http:
        text = (await http.get(node.http_url + "/metrics")).text
    prefixes = ("ieum_lifecycle_events_total{", "ieum_admin_calls_total{")
    return {
        name: float(value)
        for name, value in (line.rsplit(" ", 1) for line in text.splitlines())
        if name.startswith(prefixes)
    }


def grown(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {
        name: after[name] - before.get(name, 0.0)
        for name in after
        if after[name] != before.get(name, 0.0)
    }


async def test_lifecycle_events_count_what_changed_and_every_call_is_counted(
    api: httpx.AsyncClient, nodes: Nodes
) -> None:
    """A repeated call (a second dissolution or deletion, a notice retried with its tempId)
    changes nothing and is no event; every call, refused ones too, is counted by key and
    status."""
    before = await counters(nodes.first)
    couple = await new_couple(api)  # two users, one couple
    path = f"/couples/{couple['couple']}/messages"
    for _ in range(2):
        assert (await api.post(path, json={"content": "x", "tempId": "n1"})).status_code == 201
    refused = await api.post("/couples", json={"userIds": [couple["a"], couple["b"]]})
    assert refused.status_code == 409
    for _ in range(2):
        assert (await api.post(f"/couples/{couple['couple']}/dissolve")).status_code == 200
    for _ in range(2):
        assert (await api.delete(f"/users/{couple['a']}")).status_code == 200
    events = "ieum_lifecycle_events_total"
    calls = 'ieum_admin_calls_total{key="backend",status='
    assert grown(before, await counters(nodes.first)) == {
        f'{events}{{event="user_upserted"}}': 2.0,
        f'{events}{{event="couple_created"}}': 1.0,
        f'{events}{{event="notice"}}': 1.0,
        f'{events}{{event="couple_dissolved"}}': 1.0,
        f'{events}{{event="user_deleted"}}': 1.0,
        f'{calls}"201"}}': 5.0,  # two users, the couple, the notice twice
        f'{calls}"409"}}': 1.0,
        f'{calls}"200"}}': 4.0,
    }


async def test_openapi_documents_the_service_api_apart(nodes: Nodes) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        document = (await http.get(nodes.first.http_url + "/openapi.json")).json()
    schemes = document["components"]["securitySchemes"]
    assert schemes["AdminApiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "API key",
        "description": schemes["AdminApiKey"]["description"],
    }
    admin_ops: list[dict[str, Any]] = [
        op
        for path, item in document["paths"].items()
        if path.startswith("/admin/v1/")
        for op in item.values()
    ]
    assert len(admin_ops) == 5
    for op in admin_ops:
        assert op["tags"] == ["admin"]
        assert op["security"] == [{"AdminApiKey": []}]
        assert "401" in op["responses"]
