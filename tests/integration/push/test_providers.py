"""Every provider against its local service: what the service receives, and what each of
its answers means to the delivery engine (SENT, DEAD, RETRY with Retry-After, FAILED)."""

from __future__ import annotations

import email.utils
import time
from typing import Any

import pytest

from ieum_chat.push.providers import Outcome, Result
from tests.support.push_servers import apns_error, fcm_error

from .conftest import Rig, note

# What each service answers for a given condition, as (status, JSON body) per platform.
ANSWERS: dict[str, dict[str, tuple[int, Any]]] = {
    "unregistered": {
        "fcm": (404, fcm_error(404, "NOT_FOUND", "UNREGISTERED")),
        "apns": (410, apns_error("Unregistered")),
        "webpush": (410, None),
    },
    "throttled": {
        "fcm": (429, fcm_error(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED")),
        "apns": (429, apns_error("TooManyRequests")),
        "webpush": (429, None),
    },
    "server_error": {
        "fcm": (500, fcm_error(500, "INTERNAL", "INTERNAL")),
        "apns": (500, apns_error("InternalServerError")),
        "webpush": (500, None),
    },
    "bad_request": {
        "fcm": (400, fcm_error(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT")),
        "apns": (400, apns_error("BadCollapseId")),
        "webpush": (400, None),
    },
    "forbidden": {
        "fcm": (403, fcm_error(403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH")),
        "apns": (403, apns_error("BadCertificateEnvironment")),
        "webpush": (403, None),
    },
}


async def send_after(rig: Rig, answer: str, *, headers: dict[str, str] | None = None) -> Result:
    status, body = ANSWERS[answer][rig.platform]
    rig.server.fail(status, body, headers=headers)
    async with rig.provider() as provider:
        return await provider.send(rig.target, note())


async def test_a_dead_token_is_dead(rig: Rig) -> None:
    result = await send_after(rig, "unregistered")
    assert result.outcome is Outcome.DEAD


async def test_throttling_is_retried_after_the_seconds_given(rig: Rig) -> None:
    result = await send_after(rig, "throttled", headers={"retry-after": "17"})
    assert result == Result(Outcome.RETRY, result.reason, 17.0)


async def test_retry_after_may_be_an_http_date(rig: Rig) -> None:
    when = email.utils.formatdate(time.time() + 3600, usegmt=True)
    result = await send_after(rig, "throttled", headers={"retry-after": when})
    assert result.outcome is Outcome.RETRY
    assert result.retry_after is not None
    assert 3000 < result.retry_after <= 3600


async def test_a_server_error_is_retried(rig: Rig) -> None:
    result = await send_after(rig, "server_error")
    assert result.outcome is Outcome.RETRY
    assert result.retry_after is None


@pytest.mark.parametrize("answer", ["bad_request", "forbidden"])
async def test_a_refused_request_fails(rig: Rig, answer: str) -> None:
    result = await send_after(rig, answer)
    assert result.outcome is Outcome.FAILED


async def test_a_hanging_service_is_retried_after_the_timeout(rig: Rig) -> None:
    async with rig.provider(push_timeout=2.0) as provider:
        # Connected (and authorised, where the service asks for it) by a first send, so that
        # the timeout runs out on the hung request and not on setting the connection up.
        assert await provider.send(rig.target, note()) == Result(Outcome.SENT)
        rig.server.hang()
        result = await provider.send(rig.target, note())
    assert result == Result(Outcome.RETRY, "timeout")
    assert rig.server.hung == 1


async def test_a_service_that_is_down_is_retried(rig: Rig) -> None:
    async with rig.provider() as provider:
        await rig.server.__aexit__(None, None, None)
        result = await provider.send(rig.target, note())
    assert result == Result(Outcome.RETRY, "connection_error")


async def test_a_service_back_to_normal_sends(rig: Rig) -> None:
    rig.server.fail(*ANSWERS["server_error"][rig.platform])
    async with rig.provider() as provider:
        first = await provider.send(rig.target, note())
        second = await provider.send(rig.target, note())
    assert (first.outcome, second) == (Outcome.RETRY, Result(Outcome.SENT))
