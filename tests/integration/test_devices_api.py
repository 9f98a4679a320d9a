"""Push devices, push settings and the VAPID key over REST, on SQLite and PostgreSQL.

The module's server has Web Push configured (a VAPID key generated here) and private push
endpoints refused, as in production. Every bad registration is a 400 BAD_REQUEST that
stores nothing; devices are each user's own; a token names one device; removing a device
drops the pushes still owed to it. The same app started in-process without Web Push (and
with private endpoints allowed) answers the VAPID key with 404 and takes a loopback endpoint.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ieum_chat.app import create_app
from ieum_chat.config import Settings
from ieum_chat.push.vapid import public_key_b64url
from ieum_chat.store import Database
from ieum_chat.store.deliveries import Cursor, NewDelivery
from ieum_chat.store.schema import utcnow
from tests.support.server import TEST_SECRET, Cli

Couple = dict[str, str]


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


VAPID_PRIVATE = b64url(
    ec.generate_private_key(ec.SECP256R1()).private_numbers().private_value.to_bytes(32, "big")
)

pytestmark = pytest.mark.server_env(
    {"IEUM_VAPID_PRIVATE_KEY": VAPID_PRIVATE, "IEUM_VAPID_SUBJECT": "mailto:ops@ieum.test"}
)

# A public address literal: accepted without a DNS lookup (nothing is ever sent to it).
PUBLIC_ENDPOINT = "https://93.184.215.14/wpush/v2/gAAAAABk-subscription"


def browser_keys() -> dict[str, str]:
    """The keys of a PushSubscription, as a browser makes them."""
    point = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    )
    return {"p256dh": b64url(point), "auth": b64url(os.urandom(16))}


def webpush(endpoint: str = PUBLIC_ENDPOINT, **extra: Any) -> dict[str, Any]:
    return {
        "platform": "webpush",
        "subscription": {"endpoint": endpoint, "keys": browser_keys()},
        "locale": "ko-KR",
        **extra,
    }


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def devices(http: httpx.AsyncClient, token: str) -> list[dict[str, Any]]:
    response = await http.get("/chat/devices", headers=auth(token))
    assert response.status_code == 200, response.text
    listed: list[dict[str, Any]] = response.json()["devices"]
    return listed


async def put(http: httpx.AsyncClient, token: str, device_id: str, body: object) -> httpx.Response:
    return await http.put(f"/chat/devices/{device_id}", content=_json(body), headers=auth(token))


def _json(body: object) -> bytes:
    # ASCII with \u escapes, as any JSON encoder may send: a lone surrogate stays expressible
    return json.dumps(body).encode()


@pytest.fixture
def other(couple_pool: Iterator[Couple]) -> Couple:
    """Members of another couple."""
    return next(couple_pool)


@pytest.fixture(scope="module")
def refused(couple_pool: Iterator[Couple]) -> Couple:
    """The couple every refused registration is tried for: none of them may leave a device."""
    return next(couple_pool)


# -- registration -------------------------------------------------------------------------


async def test_register_update_list_and_delete(http: httpx.AsyncClient, couple: Couple) -> None:
    token = couple["ta"]
    created = await put(http, token, "phone-1", {"platform": "fcm", "token": "fcm-token-abcdef"})
    assert created.status_code == 201, created.text
    first = created.json()
    assert first["deviceId"] == "phone-1"
    assert (first["platform"], first["locale"], first["tokenSuffix"]) == ("fcm", None, "abcdef")
    assert "token" not in first
    assert first["createdAt"] == first["updatedAt"]

    updated = await put(
        http, token, "phone-1", {"platform": "fcm", "token": "fcm-token-ghijkl", "locale": "en"}
    )
    assert updated.status_code == 200, updated.text
    second = updated.json()
    assert (second["tokenSuffix"], second["locale"]) == ("ghijkl", "en")
    assert second["createdAt"] == first["createdAt"]
    assert second["updatedAt"] >= first["updatedAt"]

    browser = await put(http, token, "browser-1", webpush())
    assert browser.status_code == 201, browser.text
    assert browser.json()["tokenSuffix"] == PUBLIC_ENDPOINT[-6:]
    same = await put(http, token, "browser-1", webpush(token=PUBLIC_ENDPOINT))
    assert same.status_code == 200, same.text
    apns = await put(http, token, "ipad", {"platform": "apns", "token": "a" * 64, "locale": None})
    assert apns.status_code == 201, apns.text

    listed = await devices(http, token)
    assert [d["deviceId"] for d in listed] == ["phone-1", "browser-1", "ipad"]
    assert listed[0] == second
    assert listed[1]["platform"] == "webpush"

    deleted = await http.delete("/chat/devices/phone-1", headers=auth(token))
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert [d["deviceId"] for d in await devices(http, token)] == ["browser-1", "ipad"]
    again = await http.delete("/chat/devices/phone-1", headers=auth(token))
    assert again.status_code == 404
    assert again.json()["code"] == "NOT_FOUND"


async def test_device_ids_are_each_users_own(
    http: httpx.AsyncClient, couple: Couple, other: Couple
) -> None:
    assert (
        await put(http, couple["ta"], "phone", {"platform": "fcm", "token": "t-a"})
    ).status_code == 201
    # the same id under another user is another device
    assert (
        await put(http, other["ta"], "phone", {"platform": "fcm", "token": "t-x"})
    ).status_code == 201
    # nobody removes or sees another user's device
    foreign = await http.delete("/chat/devices/phone", headers=auth(couple["tb"]))
    assert foreign.status_code == 404
    assert foreign.json()["code"] == "NOT_FOUND"
    assert await devices(http, couple["tb"]) == []
    assert [d["tokenSuffix"] for d in await devices(http, couple["ta"])] == ["t-a"]
    assert [d["tokenSuffix"] for d in await devices(http, other["ta"])] == ["t-x"]


async def test_a_token_moves_to_its_latest_registration(
    http: httpx.AsyncClient, couple: Couple, other: Couple
) -> None:
    body = {"platform": "fcm", "token": "shared-phone-token"}
    assert (await put(http, couple["ta"], "phone", body)).status_code == 201
    # the phone changed accounts: the token leaves the previous owner's device
    assert (await put(http, other["tb"], "my-phone", body)).status_code == 201
    assert await devices(http, couple["ta"]) == []
    assert [d["deviceId"] for d in await devices(http, other["tb"])] == ["my-phone"]
    # and a Web Push endpoint likewise
    sub = webpush(PUBLIC_ENDPOINT + "-moving")
    assert (await put(http, couple["tb"], "chrome", sub)).status_code == 201
    assert (
        await put(http, other["ta"], "chrome", webpush(PUBLIC_ENDPOINT + "-moving"))
    ).status_code == 201
    assert await devices(http, couple["tb"]) == []


async def test_deleting_a_device_drops_the_pushes_owed_to_it(
    http: httpx.AsyncClient, couple: Couple, database_url: str
) -> None:
    token, user_id, couple_id = couple["ta"], uuid.UUID(couple["a"]), uuid.UUID(couple["couple"])
    for device_id in ("gone", "kept"):
        body = {"platform": "fcm", "token": f"owed-{device_id}-{couple_id}"}
        assert (await put(http, token, device_id, body)).status_code == 201
    db = await Database.connect(database_url)
    try:
        since = await db.consumer_since("push")
        owed = await db.owed("push", couple_id, since)
        rows = [
            NewDelivery("fcm", "{}", utcnow(), couple_id=couple_id, user_id=user_id, device_id=d)
            for d in ("gone", "kept")
        ]
        assert await db.advance("push", couple_id, owed.cursor, Cursor(owed.cursor.seq), rows)
        assert (await http.delete("/chat/devices/gone", headers=auth(token))).status_code == 204
        claimed = await db.claim("fcm", utcnow(), limit=100)
        mine = [d.device_id for d in claimed if d.user_id == user_id]
        assert mine == ["kept"]
        await db.finish([d.id for d in claimed])
    finally:
        await db.close()


# -- bad input: 400, nothing stored ---------------------------------------------------------


def _bad_bodies() -> list[tuple[str, object]]:
    keys = browser_keys()
    point = base64.urlsafe_b64decode(keys["p256dh"] + "=")
    off_curve = b64url(b"\x04" + bytes(64))
    compressed = b64url(b"\x02" + point[1:33])

    def sub(endpoint: str = PUBLIC_ENDPOINT, **key_overrides: object) -> dict[str, Any]:
        return {
            "platform": "webpush",
            "subscription": {"endpoint": endpoint, "keys": {**keys, **key_overrides}},
        }

    return [
        ("unknown platform", {"platform": "gcm", "token": "t"}),
        ("platform missing", {"token": "t"}),
        ("platform not a string", {"platform": ["fcm"], "token": "t"}),
        ("token missing", {"platform": "fcm"}),
        ("token null", {"platform": "apns", "token": None}),
        ("token blank", {"platform": "fcm", "token": " \t "}),
        ("token empty", {"platform": "fcm", "token": ""}),
        ("token not a string", {"platform": "fcm", "token": 12345}),
        ("token over 4 KiB", {"platform": "fcm", "token": "x" * 4097}),
        ("token over 4 KiB in UTF-8", {"platform": "fcm", "token": "한" * 1366}),
        ("token with a NUL", {"platform": "apns", "token": "ab\x00cd"}),
        ("token not UTF-8 (a lone surrogate)", {"platform": "apns", "token": "ab\udb2ecd"}),
        ("locale with a NUL", {"platform": "fcm", "token": "t", "locale": "ko\x00"}),
        ("subscription on fcm", {**sub(), "platform": "fcm", "token": "t"}),
        ("locale too long", {"platform": "fcm", "token": "t", "locale": "ko-" + "a" * 33}),
        ("locale not a tag", {"platform": "fcm", "token": "t", "locale": "ko_KR"}),
        ("locale with a space", {"platform": "fcm", "token": "t", "locale": "ko KR"}),
        ("locale not a string", {"platform": "fcm", "token": "t", "locale": 82}),
        ("webpush without subscription", {"platform": "webpush", "token": PUBLIC_ENDPOINT}),
        ("subscription not an object", {"platform": "webpush", "subscription": "x"}),
        ("keys missing", {"platform": "webpush", "subscription": {"endpoint": PUBLIC_ENDPOINT}}),
        ("p256dh missing", sub(p256dh=None)),
        ("auth missing", sub(auth=None)),
        ("p256dh not base64url", sub(p256dh=keys["p256dh"][:-2] + "+/")),
        ("p256dh short", sub(p256dh=keys["p256dh"][:-4])),
        ("p256dh compressed", sub(p256dh=compressed)),
        ("p256dh off the curve", sub(p256dh=off_curve)),
        ("auth 15 bytes", sub(auth=b64url(bytes(15)))),
        ("auth 17 bytes", sub(auth=b64url(bytes(17)))),
        ("auth not base64url", sub(auth="!" * 22)),
        ("token differs from the endpoint", {**sub(), "token": PUBLIC_ENDPOINT + "x"}),
        ("endpoint http", sub("http://93.184.215.14/push")),
        ("endpoint not a URL", sub("push-endpoint")),
        ("endpoint over 4 KiB", sub(PUBLIC_ENDPOINT + "/" + "x" * 4096)),
        ("endpoint loopback", sub("https://127.0.0.1/push")),
        ("endpoint loopback v6", sub("https://[::1]:8443/push")),
        ("endpoint private", sub("https://10.1.2.3/push")),
        ("endpoint private v4-mapped", sub("https://[::ffff:192.168.1.1]/push")),
        ("endpoint link-local", sub("https://169.254.169.254/latest/meta-data")),
        ("endpoint named loopback", sub("https://localhost:9/push")),
        ("endpoint with credentials", sub("https://user:pw@93.184.215.14/push")),
        ("body not an object", ["fcm"]),
    ]


@pytest.mark.parametrize(("why", "body"), _bad_bodies(), ids=[w for w, _ in _bad_bodies()])
async def test_bad_registrations_are_refused_and_store_nothing(
    http: httpx.AsyncClient, refused: Couple, why: str, body: object
) -> None:
    response = await put(http, refused["ta"], "dev", body)
    assert response.status_code == 400, (why, response.text)
    error = response.json()
    assert (error["type"], error["code"]) == ("ERROR", "BAD_REQUEST")
    assert error["detail"], why
    assert await devices(http, refused["ta"]) == []


async def test_bad_json_is_refused(http: httpx.AsyncClient, refused: Couple) -> None:
    response = await http.put(
        "/chat/devices/dev", content=b"{not json", headers=auth(refused["ta"])
    )
    assert response.status_code == 400
    assert response.json()["code"] == "BAD_REQUEST"


@pytest.mark.parametrize(
    ("why", "device_id"),
    [
        ("over 100 characters", "d" * 101),
        ("blank", "%20%20"),
        ("a tab", "dev%09ice"),
        ("a newline", "dev%0Aice"),
        ("DEL", "dev%7Fice"),
        ("C1 control", "dev%C2%85ice"),
    ],
)
async def test_bad_device_ids_are_refused(
    http: httpx.AsyncClient, refused: Couple, why: str, device_id: str
) -> None:
    body = {"platform": "fcm", "token": f"token-{why}"}
    for method in ("PUT", "DELETE"):
        response = await http.request(
            method,
            f"/chat/devices/{device_id}",
            content=_json(body) if method == "PUT" else None,
            headers=auth(refused["ta"]),
        )
        assert response.status_code == 400, (why, method, response.text)
        assert response.json()["code"] == "BAD_REQUEST"
    assert await devices(http, refused["ta"]) == []


async def test_a_device_id_of_100_characters_is_fine(
    http: httpx.AsyncClient, couple: Couple
) -> None:
    device_id = "아" * 50 + "d" * 50
    response = await put(http, couple["tb"], device_id, {"platform": "fcm", "token": "t-100"})
    assert response.status_code == 201, response.text
    assert response.json()["deviceId"] == device_id


async def test_a_token_of_4096_bytes_is_fine(http: httpx.AsyncClient, couple: Couple) -> None:
    response = await put(http, couple["ta"], "big", {"platform": "fcm", "token": "한" * 1365 + "x"})
    assert response.status_code == 201, response.text


# -- auth, settings, the VAPID key -----------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/chat/devices", None),
        ("PUT", "/chat/devices/phone", {"platform": "fcm", "token": "t"}),
        ("DELETE", "/chat/devices/phone", None),
        ("GET", "/chat/settings", None),
        ("PUT", "/chat/settings", {"pushPreview": False}),
    ],
)
@pytest.mark.parametrize("token", [None, "not-a-jwt"])
async def test_every_route_but_the_vapid_key_needs_a_token(
    http: httpx.AsyncClient, method: str, path: str, body: object, token: str | None
) -> None:
    headers = auth(token) if token else {}
    response = await http.request(
        method, path, content=None if body is None else _json(body), headers=headers
    )
    assert response.status_code == 401, response.text
    assert response.json()["code"] == "AUTH_FAILED"
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_push_preview_round_trip(http: httpx.AsyncClient, couple: Couple) -> None:
    token = couple["tb"]
    assert (await http.get("/chat/settings", headers=auth(token))).json() == {"pushPreview": True}
    off = await http.put("/chat/settings", json={"pushPreview": False}, headers=auth(token))
    assert (off.status_code, off.json()) == (200, {"pushPreview": False})
    assert (await http.get("/chat/settings", headers=auth(token))).json() == {"pushPreview": False}
    # the partner's setting is their own
    assert (await http.get("/chat/settings", headers=auth(couple["ta"]))).json() == {
        "pushPreview": True
    }
    for bad in ({}, {"pushPreview": "false"}, {"pushPreview": 0}, {"pushPreview": None}, [True]):
        refused = await http.put("/chat/settings", json=bad, headers=auth(token))
        assert refused.status_code == 400, bad
        assert refused.json()["code"] == "BAD_REQUEST"
    on = await http.put("/chat/settings", json={"pushPreview": True}, headers=auth(token))
    assert on.json() == {"pushPreview": True}


async def test_the_vapid_key_is_the_configured_keys_public_half(
    http: httpx.AsyncClient,
) -> None:
    response = await http.get("/chat/push/vapid-key")  # no token
    assert response.status_code == 200, response.text
    key = response.json()["publicKey"]
    assert key == public_key_b64url(VAPID_PRIVATE)
    point = base64.urlsafe_b64decode(key + "=")
    assert (len(point), point[0]) == (65, 4)
    ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)


# -- the same app without Web Push, private endpoints allowed --------------------------------


@pytest.fixture
async def unconfigured(cli: Cli, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        database_url=cli.env["IEUM_DATABASE_URL"],
        jwt_secret=TEST_SECRET,
        upload_dir=str(tmp_path / "uploads"),
        push_allow_private=True,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://chat.test") as client:
            yield client


async def test_without_web_push_the_vapid_key_is_not_found(
    unconfigured: httpx.AsyncClient,
) -> None:
    response = await unconfigured.get("/chat/push/vapid-key")
    assert response.status_code == 404
    assert response.json()["code"] == "NOT_FOUND"


async def test_private_endpoints_when_allowed(
    unconfigured: httpx.AsyncClient, couple: Couple
) -> None:
    local = webpush("https://127.0.0.1:8443/push/local")
    response = await put(unconfigured, couple["ta"], "local-browser", local)
    assert response.status_code == 201, response.text
    # https is still required
    plain = await put(unconfigured, couple["ta"], "plain", webpush("http://127.0.0.1/push"))
    assert plain.status_code == 400
    assert [d["deviceId"] for d in await devices(unconfigured, couple["ta"])] == ["local-browser"]
