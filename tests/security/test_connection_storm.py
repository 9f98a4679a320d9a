"""Threat: a reconnect storm. A node dies (or a mobile network blinks) and every client it had
comes back at once, each new session costing a token check, a membership check and a replay
from the database: thousands at the same instant stampede PostgreSQL and starve the sessions
that are already live.

Refused by: ``gateway.admission.admit``, which every shell calls before it verifies a token:
each node admits ``IEUM_ADMISSION_RATE`` new sessions per second in bursts of
``IEUM_ADMISSION_BURST`` (one token bucket per node, WebSocket handshakes and SockJS sessions
together) and refuses the excess with 503 UNAVAILABLE and ``Retry-After``, counted in
``ieum_admissions_refused_total``; and it refuses any new session while
``IEUM_ADMISSION_BACKLOG`` CONNECTs and SUBSCRIBEs are being handled, so that a node whose
database is slow lets in no more than it can set up before its clients give up (each give-up
would be a retry: twice the work, then more). The Python SDK waits at least Retry-After, plus
its own jittered backoff, so the refused clients come back spread out.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from ieum_chat.client import ChatClient, Connected, Disconnected
from ieum_chat.errors import ErrorCode
from ieum_chat.gateway.admission import Refusal, admit
from tests.support.server import ServerProcess
from tests.support.stomp_client import StompTestClient
from tests.unit.api.conftest import Api

BURST = 3
pytestmark = [
    pytest.mark.backends("sqlite"),
    # One token in 100 s: nothing refills while the test runs.
    pytest.mark.server_env({"IEUM_ADMISSION_RATE": "0.01", "IEUM_ADMISSION_BURST": str(BURST)}),
]


def refused_total(server: ServerProcess) -> float:
    text = httpx.get(f"{server.http_url}/metrics", timeout=5).text
    match = re.search(r"^ieum_admissions_refused_total ([0-9.e+]+)$", text, re.MULTILINE)
    assert match, "ieum_admissions_refused_total is not exported"
    return float(match.group(1))


def retry_after(headers: Any) -> int:
    value = int(headers["retry-after"])
    assert value >= 1
    return value


async def test_new_sessions_past_the_burst_are_refused_with_retry_after(
    server: ServerProcess, couple: dict[str, str]
) -> None:
    before = refused_total(server)
    admitted = [await StompTestClient.open(server.ws_url, token=couple["ta"]) for _ in range(BURST)]
    try:
        # The sessions admitted work as usual.
        for client in admitted:
            await client.send_raw("CONNECT\naccept-version:1.2\nhost:x\n\n\x00")
            assert (await client.expect("CONNECTED")).command == "CONNECTED"

        with pytest.raises(InvalidStatus) as refused:
            await StompTestClient.open(server.ws_url, token=couple["ta"])
        response = refused.value.response
        assert response.status_code == 503
        waited = retry_after(response.headers)
        assert b'"code":"UNAVAILABLE"' in response.body
        assert b"too many new connections" in response.body

        # A SockJS session is a new session too; a token-less handshake as well (its cost
        # comes at CONNECT).
        async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as http:
            sockjs = await http.post("/ws/chat/000/storm1/xhr", params={"token": couple["tb"]})
        assert sockjs.status_code == 503
        assert sockjs.json()["code"] == ErrorCode.UNAVAILABLE.value
        retry_after(sockjs.headers)
        with pytest.raises(InvalidStatus):
            await StompTestClient.open(server.ws_url)

        # The SDK backs off for at least Retry-After, then its own jitter.
        sdk = ChatClient(server.ws_url, lambda: couple["tb"], couple_id=couple["couple"])
        async with sdk:
            async with asyncio.timeout(10):
                while True:
                    event = await sdk.next_event()
                    assert not isinstance(event, Connected)
                    if isinstance(event, Disconnected):
                        break
            assert "503" in event.reason
            assert event.retry_in >= waited
        assert refused_total(server) == before + 4
    finally:
        for client in admitted:
            await client.close()


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"admission_backlog": 2}


async def test_no_new_session_while_the_node_is_behind_on_set_ups(api: Api) -> None:
    gateway = api.gateway
    token = {"authorization": f"Bearer {api.token(api.a)}"}
    assert (await admit(gateway, token, "")).user == api.a
    gateway.setups = 2  # two CONNECTs or SUBSCRIBEs waiting on the database
    with pytest.raises(Refusal) as refused:
        await admit(gateway, token, "")
    assert (refused.value.status, refused.value.retry_after) == (503, 1)
    assert refused.value.payload["code"] == ErrorCode.UNAVAILABLE.value
    assert ("Retry-After", "1") in refused.value.headers
    gateway.setups = 1
    assert (await admit(gateway, token, "")).user == api.a
