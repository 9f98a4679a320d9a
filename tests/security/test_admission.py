"""Threat: one shell that opens sockets checks less than another. The raw WebSocket and the
SockJS session-creating request each verified the handshake token with their own copy of the
code, and the copies drifted (SockJS failures went uncounted, so a token-guessing run over
SockJS never showed on the ``ieum_auth_failures_total`` alert).

Refused by: ``gateway.admission.admit``, the one set of handshake checks every shell calls
(draining, origin, token), whose refusals are built by the one error-payload builder with a
code of the ``ErrorCode`` enum.
"""

from __future__ import annotations

from typing import Any

import pytest

from ieum_chat.errors import ErrorCode, error_payload
from ieum_chat.gateway.admission import Refusal, admit
from ieum_chat.observability import metrics
from tests.unit.api.conftest import Api


def handshake_failures() -> float:
    value: float = metrics.AUTH_FAILURES.labels("handshake")._value.get()
    return value


async def test_sockjs_counts_refused_tokens_like_the_websocket(api: Api) -> None:
    before = handshake_failures()
    response = await api.client.post("/ws/chat/000/guess-1/xhr?token=forged")
    assert response.status_code == 401
    assert response.json() == error_payload(ErrorCode.AUTH_FAILED, detail="malformed token")
    assert handshake_failures() == before + 1
    with pytest.raises(Refusal):
        await admit(api.gateway, {}, "token=forged")
    assert handshake_failures() == before + 2


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"allowed_origins": ["https://app.example"]}


async def test_refusals_carry_codes_of_the_enum(api: Api) -> None:
    with pytest.raises(Refusal) as refused:
        await admit(api.gateway, {"origin": "https://evil.example"}, "")
    assert refused.value.status == 403
    assert refused.value.payload == error_payload(
        ErrorCode.UNAUTHORIZED, detail="origin not allowed"
    )
    admitted = await admit(api.gateway, {"origin": "https://app.example"}, "", ["v12.stomp"])
    assert (admitted.subprotocol, admitted.user) == ("v12.stomp", None)
    token = api.token(api.a)
    admitted = await admit(api.gateway, {"authorization": f"Bearer {token}"}, "")
    assert admitted.user == api.a
