"""Threat: a token whose signature is valid (the auth service signed it, or the secret leaked)
but whose time claims are out of any sane range: ``exp`` with hundreds of digits, ``1e400``,
a boolean or a string. Unchecked, such a number overflowed a float conversion (HTTP 500) or
armed an expiry timer centuries away.

Bound: ``TokenVerifier`` accepts ``exp``, ``nbf`` and ``iat`` only as JSON numbers from 0 to
the end of year 9999; anything else is AUTH_FAILED, the same clean refusal at the WebSocket
handshake, on STOMP CONNECT and on REST.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt
import pytest

from ieum_chat.auth import TokenVerifier
from ieum_chat.config import Settings
from ieum_chat.errors import AuthError
from ieum_chat.gateway.admission import Refusal, admit
from tests.support.sockjs_polling import PollingStomp, connect_frame
from tests.unit.api.conftest import SECRET, Api

HUGE = int("9" * 401)
SOON = int(time.time()) + 600

OUT_OF_RANGE: list[dict[str, Any]] = [
    {"exp": HUGE},
    {"exp": 2**70},
    {"exp": -1},
    {"exp": 1e300},
    {"exp": True},
    {"exp": str(SOON)},
    {"exp": SOON, "iat": HUGE},
    {"exp": SOON, "iat": -(2**70)},
    {"exp": SOON, "nbf": HUGE},
    {"exp": SOON, "nbf": 1e300},
    {"exp": SOON, "nbf": False},
]


def signed(user: uuid.UUID, claims: dict[str, Any]) -> str:
    return jwt.encode({"sub": str(user), **claims}, SECRET, algorithm="HS256")


@pytest.mark.parametrize("claims", OUT_OF_RANGE, ids=[str(i) for i in range(len(OUT_OF_RANGE))])
def test_the_verifier_refuses_out_of_range_times(claims: dict[str, Any]) -> None:
    verifier = TokenVerifier(Settings(jwt_secret=SECRET))
    with pytest.raises(AuthError):
        verifier.verify(signed(uuid.uuid4(), claims), now=time.time())


def test_in_range_times_still_pass() -> None:
    verifier = TokenVerifier(Settings(jwt_secret=SECRET))
    user = uuid.uuid4()
    soon = int(time.time()) + 600  # not SOON: a long suite reaches this after it passed
    claims = {"exp": soon + 0.5, "iat": soon - 600, "nbf": soon - 600}
    assert verifier.verify(signed(user, claims), now=time.time()).user_id == user


async def test_rest_answers_auth_failed(api: Api) -> None:
    for claims in ({"exp": HUGE}, {"exp": SOON, "iat": HUGE}):
        headers = {"Authorization": f"Bearer {signed(api.a.id, claims)}"}
        response = await api.client.get("/chat/room", headers=headers)
        assert response.status_code == 401, response.text
        assert response.json()["code"] == "AUTH_FAILED"


async def test_the_handshake_refuses_with_401(api: Api) -> None:
    token = signed(api.a.id, {"exp": HUGE})
    with pytest.raises(Refusal) as refused:
        await admit(api.gateway, {}, f"token={token}", [])
    assert (refused.value.status, refused.value.payload["code"]) == (401, "AUTH_FAILED")
    response = await api.client.post(f"/ws/chat/000/huge-exp/xhr?token={token}")
    assert response.status_code == 401
    assert response.json()["code"] == "AUTH_FAILED"


async def test_connect_gets_an_auth_failed_error(api: Api) -> None:
    client = PollingStomp(api.client, "huge-exp-connect")
    assert (await client.open()).text == "o\n"
    assert (await client.send(connect_frame(signed(api.a.id, {"exp": HUGE})))).status_code == 204
    frame = await client.frame()
    assert frame.command == "ERROR"
    assert b'"AUTH_FAILED"' in frame.body
