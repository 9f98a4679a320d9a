"""Pushes end to end: a real server, its devices registered over REST, and the local FCM,
APNs and Web Push services: the offline partner gets one push per message with the
contract's payload, the sender and a device watching the couple get none, a NOTICE reaches
both members, dead tokens go, a 429 is waited out and sent once, previews can be turned off,
and a push owed when the server is killed is sent once after it starts again.
"""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.push.conftest import ADMIN_KEY, Services, fcm_to
from tests.support.push_servers.threaded import wait_until
from tests.support.server import Cli, ServerProcess
from tests.support.stomp_client import StompTestClient

PROMISE = 2.0  # seconds within which an offline device gets its push
Couple = dict[str, str]


@pytest.fixture(scope="module")
def pushing(
    cli: Cli, services: Services, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    log: Path = tmp_path_factory.mktemp("log") / "server.log"
    proc = ServerProcess(cli, log, extra_env=services.env).start()
    try:
        yield proc
    finally:
        proc.stop()


def rest(server: ServerProcess, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=server.http_url, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )


def register(server: ServerProcess, token: str, device_id: str, body: dict[str, Any]) -> None:
    with rest(server, token) as http:
        response = http.put(f"/chat/devices/{device_id}", json=body)
    assert response.status_code in (200, 201), response.text


def fcm_token() -> str:
    return f"fcm-{uuid.uuid4().hex}"


def apns_token() -> str:
    return uuid.uuid4().hex + uuid.uuid4().hex  # 64 hex digits


def send(
    server: ServerProcess, couple: Couple, body: dict[str, Any], *, as_b: bool = False
) -> dict[str, Any]:
    with rest(server, couple["tb" if as_b else "ta"]) as http:
        response = http.post(
            f"/chat/rooms/{couple['couple']}/messages",
            json={"tempId": uuid.uuid4().hex[:12], **body},
        )
    assert response.status_code in (200, 201), response.text
    sent: dict[str, Any] = response.json()
    return sent


def test_the_offline_partner_gets_one_push_with_the_contracts_payload(
    pushing: ServerProcess, services: Services, couple_pool: Iterator[Couple]
) -> None:
    couple = next(couple_pool)
    partner, own = fcm_token(), fcm_token()
    register(
        pushing, couple["tb"], "b-phone", {"platform": "fcm", "token": partner, "locale": "ko"}
    )
    register(pushing, couple["ta"], "a-phone", {"platform": "fcm", "token": own})
    sent = send(pushing, couple, {"type": "TEXT", "content": "저녁 7시에 봐요"})
    wait_until(lambda: len(fcm_to(services, partner)) == 1, PROMISE, "the partner's push")
    (message,) = fcm_to(services, partner)
    assert message["data"] == {
        "type": "TEXT",
        "coupleId": couple["couple"],
        "seq": str(sent["seq"]),
        "messageId": sent["id"],
        "senderName": message["data"]["senderName"],
        "preview": "저녁 7시에 봐요",
        "unreadCount": "1",
    }
    assert message["data"]["senderName"]  # the seeded member's name
    assert message["notification"]["body"] == "저녁 7시에 봐요"
    assert message["android"]["collapse_key"] == couple["couple"]
    # the sender's own devices get none
    second = send(pushing, couple, {"type": "STICKER", "content": "heart-01"})
    wait_until(lambda: len(fcm_to(services, partner)) == 2, PROMISE, "the second push")
    latest = fcm_to(services, partner)[1]["data"]
    assert (latest["preview"], latest["unreadCount"], latest["seq"]) == (
        "이모티콘",
        "2",
        str(second["seq"]),
    )
    assert fcm_to(services, own) == []


async def test_a_device_watching_the_couple_gets_none_and_the_other_one_does(
    pushing: ServerProcess, services: Services, couple_pool: Iterator[Couple]
) -> None:
    couple = next(couple_pool)
    watching, offline = apns_token(), apns_token()
    register(pushing, couple["tb"], "b-ipad", {"platform": "apns", "token": watching})
    register(
        pushing, couple["tb"], "b-iphone", {"platform": "apns", "token": offline, "locale": "en-US"}
    )
    session = await StompTestClient.connected(
        pushing.ws_url, couple["tb"], connect_headers={"x-device-id": "b-ipad"}
    )

    def pushes(token: str) -> list[Any]:
        return [p for p in services.apns.server.pushes if p.device_token == token]

    try:
        await session.subscribe(f"/topic/couple/{couple['couple']}")
        send(pushing, couple, {"type": "IMAGE", "imageUrl": "https://cdn.example/p.jpg"})
        wait_until(lambda: len(pushes(offline)) == 1, PROMISE, "the offline iPhone's push")
        (push,) = pushes(offline)
        # decided together: the watching iPad got none
        assert pushes(watching) == []
        assert push.http_version == "2"
        assert push.payload["aps"]["alert"]["body"] == "Photo"  # its locale is English
        assert push.payload["preview"] == "Photo"
        assert push.headers["apns-collapse-id"] == couple["couple"]
    finally:
        await session.close()
    # the session ended: the iPad is offline again
    send(pushing, couple, {"type": "TEXT", "content": "now?"})
    wait_until(lambda: len(pushes(watching)) == 1, PROMISE, "the iPad's push once it left")


def test_web_push_is_encrypted_for_the_subscription_and_previews_can_be_hidden(
    pushing: ServerProcess, services: Services, couple_pool: Iterator[Couple]
) -> None:
    couple = next(couple_pool)
    sub = services.webpush.server.subscribe(services.vapid.public_b64url)
    body = {
        "platform": "webpush",
        "subscription": {
            "endpoint": sub.endpoint,
            "keys": {"p256dh": sub.p256dh, "auth": sub.auth},
        },
    }
    register(pushing, couple["tb"], "b-browser", body)
    sub_id = sub.endpoint.rsplit("/", 1)[1]

    def delivered() -> list[Any]:
        return [
            d.payload for d in services.webpush.server.deliveries if d.subscription_id == sub_id
        ]

    send(pushing, couple, {"type": "TEXT", "content": "secret plans"})
    wait_until(lambda: len(delivered()) == 1, PROMISE, "the Web Push")
    assert delivered()[0]["body"] == "secret plans"
    assert delivered()[0]["data"]["preview"] == "secret plans"
    with rest(pushing, couple["tb"]) as http:
        assert http.put("/chat/settings", json={"pushPreview": False}).is_success
    send(pushing, couple, {"type": "TEXT", "content": "more secret plans"})
    wait_until(lambda: len(delivered()) == 2, PROMISE, "the second Web Push")
    hidden = delivered()[1]
    assert hidden["body"] == "새 메시지"
    assert hidden["data"]["preview"] == "새 메시지"
    assert "secret" not in str(hidden)


def test_a_notice_reaches_both_members(
    pushing: ServerProcess, services: Services, couple_pool: Iterator[Couple]
) -> None:
    couple = next(couple_pool)
    a, b = fcm_token(), fcm_token()
    register(pushing, couple["ta"], "a-phone", {"platform": "fcm", "token": a})
    register(pushing, couple["tb"], "b-phone", {"platform": "fcm", "token": b})
    with httpx.Client(
        base_url=pushing.http_url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=10
    ) as admin:
        response = admin.post(
            f"/admin/v1/couples/{couple['couple']}/messages", json={"content": "100일 축하해요"}
        )
    assert response.is_success, response.text
    wait_until(
        lambda: len(fcm_to(services, a)) == len(fcm_to(services, b)) == 1, PROMISE, "both pushes"
    )
    assert fcm_to(services, a)[0]["data"]["type"] == "NOTICE"
    assert fcm_to(services, a)[0]["data"]["senderName"] == "이음"


def test_a_dead_token_removes_the_device(
    pushing: ServerProcess, services: Services, couple_pool: Iterator[Couple]
) -> None:
    couple = next(couple_pool)
    token = apns_token()
    register(pushing, couple["tb"], "b-old-iphone", {"platform": "apns", "token": token})
    services.apns.call(lambda s: s.fail(410, {"reason": "Unregistered"}))
    send(pushing, couple, {"type": "TEXT", "content": "hello?"})

    def gone() -> bool:
        with rest(pushing, couple["tb"]) as http:
            devices = http.get("/chat/devices").json()["devices"]
        return all(d["deviceId"] != "b-old-iphone" for d in devices)

    wait_until(gone, 10, "the dead device's removal")


def test_a_429_is_waited_out_and_the_push_sent_once(
    pushing: ServerProcess, services: Services, couple_pool: Iterator[Couple]
) -> None:
    couple = next(couple_pool)
    token = fcm_token()
    register(pushing, couple["tb"], "b-phone", {"platform": "fcm", "token": token})
    before = services.fcm.server.requests
    services.fcm.call(
        lambda s: s.fail(
            429,
            {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED"}},
            headers={"Retry-After": "1"},
        )
    )
    send(pushing, couple, {"type": "TEXT", "content": "rate limited"})
    wait_until(lambda: len(fcm_to(services, token)) == 1, 15, "the push after the 429")
    assert services.fcm.server.requests - before == 2  # refused once, then accepted
    assert len(fcm_to(services, token)) == 1


def test_a_push_owed_when_the_server_is_killed_is_sent_once_after_it_restarts(
    cli: Cli,
    services: Services,
    couple_pool: Iterator[Couple],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    couple = next(couple_pool)
    token = fcm_token()
    log: Path = tmp_path_factory.mktemp("log") / "killed.log"
    services.fcm.call(lambda s: s.fail(503, times=10_000))  # down: every push is retried
    server = ServerProcess(cli, log, extra_env=services.env).start()
    try:
        register(server, couple["tb"], "b-phone", {"platform": "fcm", "token": token})
        send(server, couple, {"type": "TEXT", "content": "owed"})
        tried = services.fcm.server.requests
        wait_until(lambda: services.fcm.server.requests > tried, 10, "a first (refused) try")
    finally:
        server.stop(signal.SIGKILL)
        services.fcm.call(lambda s: s._plan.clear())  # the service is back
    again = ServerProcess(cli, log, extra_env=services.env).start()
    try:
        wait_until(lambda: len(fcm_to(services, token)) == 1, 30, "the owed push after the restart")
        assert fcm_to(services, token)[0]["data"]["preview"] == "owed"
    finally:
        again.stop()
    assert len(fcm_to(services, token)) == 1


def test_a_hanging_provider_delays_neither_the_chat_nor_the_other_providers(
    pushing: ServerProcess, services: Services, couple_pool: Iterator[Couple]
) -> None:
    couple = next(couple_pool)
    phone, iphone = fcm_token(), apns_token()
    register(pushing, couple["tb"], "b-android", {"platform": "fcm", "token": phone})
    register(pushing, couple["tb"], "b-iphone", {"platform": "apns", "token": iphone})
    services.apns.call(lambda s: s.hang(times=50))  # APNs takes requests and never answers
    hung = services.apns.server.hung
    for i in range(3):
        send(pushing, couple, {"type": "TEXT", "content": f"while APNs hangs {i}"})  # answered
    wait_until(lambda: len(fcm_to(services, phone)) == 3, PROMISE, "FCM's pushes")
    assert services.apns.server.hung > hung  # APNs was being tried all along
    services.apns.call(lambda s: s._plan.clear())

    # once APNs answers again, what it owes arrives (each once: the hung tries timed out)
    def to_iphone() -> list[str]:
        return [
            p.payload["preview"] for p in services.apns.server.pushes if p.device_token == iphone
        ]

    wait_until(lambda: len(set(to_iphone())) == 3, 30, "the iPhone's pushes after the hang")
