"""APNs against the local APNs: HTTP/2 only, the provider JWT reused, and the payload: the
app's data as top-level keys beside ``aps``."""

from __future__ import annotations

import ssl
import time

import httpx
import jwt

from ieum_chat.config import Settings
from ieum_chat.push.providers import Outcome, Result, Target
from ieum_chat.push.providers.apns import ApnsProvider
from tests.support.push_servers import ApnsKey, ApnsServer, TlsFiles, apns_error

from .conftest import DEVICE_TOKEN, note

TARGET = Target("apns", DEVICE_TOKEN)


async def test_the_push_carries_aps_and_the_data_beside_it(
    apns_server: ApnsServer, apns_settings: Settings, apns_key: ApnsKey
) -> None:
    before = int(time.time())
    provider = ApnsProvider(apns_settings)
    try:
        assert await provider.send(TARGET, note()) == Result(Outcome.SENT)
    finally:
        await provider.close()
    [push] = apns_server.pushes
    assert push.http_version == "2"
    assert push.device_token == DEVICE_TOKEN
    assert push.payload == {
        "aps": {
            "alert": {"title": "Minji", "body": "See you at seven?"},
            "badge": 3,
            "sound": "default",
            "thread-id": "c-42",
        },
        **note().data,  # the contract's keys at the top level, typed as given
    }
    headers = push.headers
    assert headers["apns-topic"] == apns_key.topic
    assert headers["apns-push-type"] == "alert"
    assert headers["apns-priority"] == "10"
    assert headers["apns-collapse-id"] == "c-42"
    assert before + 3600 <= int(headers["apns-expiration"]) <= int(time.time()) + 3600


async def test_the_provider_token_is_made_once_and_reused(
    apns_server: ApnsServer, apns_settings: Settings, apns_key: ApnsKey
) -> None:
    provider = ApnsProvider(apns_settings)
    try:
        results = [await provider.send(TARGET, note()) for _ in range(3)]
    finally:
        await provider.close()
    assert set(results) == {Result(Outcome.SENT)}
    [token] = set(apns_server.provider_tokens)
    assert len(apns_server.provider_tokens) == 3
    assert jwt.get_unverified_header(token)["kid"] == apns_key.key_id
    assert jwt.decode(token, options={"verify_signature": False})["iss"] == apns_key.team_id
    assert apns_server.not_h2 == 0


async def test_a_bad_device_token_is_dead(apns_server: ApnsServer, apns_settings: Settings) -> None:
    apns_server.fail(400, apns_error("BadDeviceToken"))
    provider = ApnsProvider(apns_settings)
    try:
        result = await provider.send(TARGET, note())
    finally:
        await provider.close()
    assert result == Result(Outcome.DEAD, "bad_device_token")


async def test_a_token_that_is_not_hex_is_dead_without_a_request(
    apns_server: ApnsServer, apns_settings: Settings
) -> None:
    provider = ApnsProvider(apns_settings)
    try:
        result = await provider.send(Target("apns", "../../admin"), note())
    finally:
        await provider.close()
    assert result == Result(Outcome.DEAD, "bad_device_token")
    assert apns_server.requests == 0


async def test_an_expired_provider_token_is_retried(
    apns_server: ApnsServer, apns_settings: Settings
) -> None:
    apns_server.fail(403, apns_error("ExpiredProviderToken"))
    provider = ApnsProvider(apns_settings)
    try:
        result = await provider.send(TARGET, note())
    finally:
        await provider.close()
    assert result == Result(Outcome.RETRY, "expired_provider_token")


async def test_a_key_apns_does_not_know_fails(
    apns_server: ApnsServer, apns_settings: Settings
) -> None:
    unknown = apns_settings.model_copy(update={"apns_key_id": "UNKNOWN123"})
    provider = ApnsProvider(unknown)
    try:
        result = await provider.send(TARGET, note())
    finally:
        await provider.close()
    assert result == Result(Outcome.FAILED, "invalid_provider_token")


async def test_the_local_apns_refuses_http_1(apns_server: ApnsServer, tls: TlsFiles) -> None:
    async with httpx.AsyncClient(
        verify=ssl.create_default_context(cafile=tls.ca_file)
    ) as client:  # HTTP/1.1 only
        response = await client.post(f"{apns_server.url}/3/device/{DEVICE_TOKEN}", content=b"{}")
    assert response.status_code == 505
    assert apns_server.not_h2 == 1
