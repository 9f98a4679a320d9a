"""The demo page's device and notifications in a real browser: headless Chromium driven by
playwright-core (node/demo_push.mjs), notifications allowed for the server's origin, the server
with Web Push configured (a VAPID key made here).

The page registers its service worker for /demo, sends a stable per-browser id as
``x-device-id`` on every STOMP CONNECT (the same after a reload), and tries to subscribe with
the server's VAPID key. Headless Chromium has no push service to subscribe with without
Google's (and this test runs offline): ``pushManager.subscribe`` fails, the page says so
quietly (``body[data-push]``) and the chat goes on; no device is registered. Where it does
subscribe, the test checks the device the page registered instead. A message of the partner
that arrives while the tab is really in the background (another tab in front) shows a
notification, read back with ``registration.getNotifications()``; one that arrives while
the page is visible does not. Screenshots in ``artifacts/demo_push/``.
"""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from ieum_chat.push.vapid import public_key_b64url
from tests.e2e._demo_browser import (
    WEB_MODULES,
    Couple,
    node_ready,
    run_couple_script,
)
from tests.support.server import ServerProcess

RUN_TIMEOUT = 100.0
VAPID_PRIVATE = (
    base64.urlsafe_b64encode(
        ec.generate_private_key(ec.SECP256R1()).private_numbers().private_value.to_bytes(32, "big")
    )
    .rstrip(b"=")
    .decode()
)
FAILED_STATES = {"subscribe-failed", "no-worker", "register-failed"}

pytestmark = [
    pytest.mark.backends("sqlite"),
    pytest.mark.server_env(
        {
            "IEUM_DEMO_ASSETS": str(WEB_MODULES),
            "IEUM_VAPID_PRIVATE_KEY": VAPID_PRIVATE,
            "IEUM_VAPID_SUBJECT": "mailto:ops@ieum.test",
        }
    ),
]


def _run(server: ServerProcess, couple: Couple) -> dict[str, Any]:
    return run_couple_script("demo_push.mjs", server, couple, timeout=RUN_TIMEOUT)[0]


def _devices(server: ServerProcess, token: str) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{server.http_url}/chat/devices",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["devices"]
    return found


def test_the_service_worker_is_served_for_the_page(server: ServerProcess) -> None:
    worker = httpx.get(f"{server.http_url}/demo/sw.js", timeout=10)
    assert worker.status_code == 200
    assert worker.headers["content-type"].startswith("text/javascript")
    assert worker.headers["service-worker-allowed"] == "/demo"
    key = httpx.get(f"{server.http_url}/chat/push/vapid-key", timeout=10).json()
    assert key == {"publicKey": public_key_b64url(VAPID_PRIVATE)}


@pytest.mark.external
def test_device_id_worker_and_notifications_on_the_demo_page(
    server: ServerProcess, couple: Couple
) -> None:
    node_ready()
    result = _run(server, couple)
    page = result["page"]

    # The worker controls the page, from /demo/sw.js, with the scope /demo itself.
    assert page["permission"] == "granted"
    assert page["worker"]["scope"] == f"{server.http_url}/demo"
    assert page["worker"]["script"] == f"{server.http_url}/demo/sw.js"
    assert page["worker"]["active"] is True

    # One id per browser, on every CONNECT, the same after a reload.
    device_id = page["deviceId"]
    assert device_id.startswith("web-")
    assert len(result["connects"]) >= 2
    assert set(result["connects"]) == {device_id}
    assert result["afterReload"] == device_id

    # Web Push: registered where the browser could subscribe; said quietly where it could not.
    registered = _devices(server, couple["ta"])
    if page["push"] == "registered":
        assert page["subscription"]["endpoint"].startswith("https://")
        assert [(d["deviceId"], d["platform"]) for d in registered] == [(device_id, "webpush")]
        assert registered[0]["locale"] == "ko-KR"
    else:
        assert page["push"] in FAILED_STATES, page
        assert page["pushText"] == "· 푸시 사용 불가"
        assert page["pushDetail"]
        assert page["subscription"] is None
        assert registered == []
    assert page["problems"] == []

    # Visible: the message is on screen, no notification. Hidden: a notification, once.
    assert result["visibleNotifications"] == []
    assert result["hidden"] == {"state": "hidden", "hidden": True}
    (note,) = result["hiddenNotifications"]
    sent = result["sent"]
    assert note["title"] == sent["senderName"]
    assert note["body"] == sent["content"]
    assert note["tag"] == couple["couple"]
    assert note["data"]["messageId"] == sent["id"]
    assert note["data"]["seq"] == sent["seq"]
    assert result["notified"] == 1
    assert result["problems"] == {"a": []}
