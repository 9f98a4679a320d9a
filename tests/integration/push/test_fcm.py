"""FCM HTTP v1 against the local FCM: the message it receives, and the access token's life
(fetched with a signed JWT-bearer grant, cached, replaced once on a 401)."""

from __future__ import annotations

import asyncio

from ieum_chat.config import Settings
from ieum_chat.push.providers import Outcome, Result, Target
from ieum_chat.push.providers.fcm import FcmProvider
from tests.support.push_servers import FCM_SCOPE, FcmServer, ServiceAccountKey, fcm_error

from .conftest import note

TARGET = Target("fcm", "fcm-registration-token-1")


async def test_the_message_carries_the_notification_and_string_data(
    fcm_server: FcmServer, fcm_settings: Settings, service_account: ServiceAccountKey
) -> None:
    provider = FcmProvider(fcm_settings)
    try:
        assert await provider.send(TARGET, note()) == Result(Outcome.SENT)
    finally:
        await provider.close()
    [received] = fcm_server.messages
    assert received.project_id == service_account.project_id
    assert received.message == {
        "token": "fcm-registration-token-1",
        "notification": {"title": "Minji", "body": "See you at seven?"},
        "data": {
            "type": "MESSAGE",
            "coupleId": "c-42",
            "seq": "17",
            "messageId": "m-9",
            "senderName": "Minji",
            "preview": "See you at seven?",
            "unreadCount": "3",
        },
        "android": {
            "collapse_key": "c-42",
            "priority": "high",
            "ttl": "3600s",
            "notification": {"tag": "c-42", "notification_count": 3},
        },
        "apns": {
            "headers": {"apns-collapse-id": "c-42"},
            "payload": {"aps": {"badge": 3, "sound": "default", "thread-id": "c-42"}},
        },
    }


async def test_the_grant_is_signed_for_the_accounts_own_token_uri(
    fcm_server: FcmServer, fcm_settings: Settings, service_account: ServiceAccountKey
) -> None:
    provider = FcmProvider(fcm_settings)
    try:
        await provider.send(TARGET, note())
    finally:
        await provider.close()
    [claims] = fcm_server.token_requests
    assert claims["iss"] == service_account.client_email
    assert claims["aud"] == service_account.token_uri == fcm_server.token_uri
    assert claims["scope"] == FCM_SCOPE


async def test_the_access_token_is_fetched_once_for_many_sends(
    fcm_server: FcmServer, fcm_settings: Settings
) -> None:
    provider = FcmProvider(fcm_settings)
    try:
        first = await provider.send(TARGET, note())
        rest = await asyncio.gather(*(provider.send(TARGET, note()) for _ in range(5)))
    finally:
        await provider.close()
    assert {first, *rest} == {Result(Outcome.SENT)}
    assert len(fcm_server.token_requests) == 1
    assert len({m.access_token for m in fcm_server.messages}) == 1


async def test_concurrent_first_sends_fetch_one_token(
    fcm_server: FcmServer, fcm_settings: Settings
) -> None:
    provider = FcmProvider(fcm_settings)
    try:
        results = await asyncio.gather(*(provider.send(TARGET, note()) for _ in range(5)))
    finally:
        await provider.close()
    assert set(results) == {Result(Outcome.SENT)}
    assert len(fcm_server.token_requests) == 1


async def test_a_revoked_token_is_replaced_once_and_the_push_repeated(
    fcm_server: FcmServer, fcm_settings: Settings
) -> None:
    provider = FcmProvider(fcm_settings)
    try:
        await provider.send(TARGET, note())
        fcm_server.revoke_tokens()
        result = await provider.send(TARGET, note())
    finally:
        await provider.close()
    assert result == Result(Outcome.SENT)
    assert len(fcm_server.token_requests) == 2
    assert len(fcm_server.messages) == 2
    assert fcm_server.requests == 3  # the one refused with 401, repeated once


async def test_a_second_401_is_not_repeated_again(
    fcm_server: FcmServer, fcm_settings: Settings
) -> None:
    fcm_server.fail(401, fcm_error(401, "UNAUTHENTICATED"), times=2)
    provider = FcmProvider(fcm_settings)
    try:
        result = await provider.send(TARGET, note())
    finally:
        await provider.close()
    assert result == Result(Outcome.FAILED, "unauthenticated")
    assert fcm_server.requests == 2
    assert len(fcm_server.token_requests) == 2


async def test_an_account_the_token_endpoint_refuses_fails_the_push(
    fcm_server: FcmServer, tls_settings_for_stranger: Settings
) -> None:
    provider = FcmProvider(tls_settings_for_stranger)
    try:
        result = await provider.send(TARGET, note())
    finally:
        await provider.close()
    assert result == Result(Outcome.FAILED, "token_http_400")
    assert fcm_server.requests == 0
