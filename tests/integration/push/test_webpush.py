"""Web Push against the local push service, which decrypts each push as the browser would
and checks the VAPID signature; and the endpoint checks that keep pushes off private hosts."""

from __future__ import annotations

import re
import ssl

import httpx
import pytest

from ieum_chat.config import Settings
from ieum_chat.push.providers import Outcome, Result, Target, WebPushSubscription
from ieum_chat.push.providers._endpoint import EndpointRefused, peer_guard
from ieum_chat.push.providers.webpush import WebPushProvider, topic_for
from tests.support.push_servers import TlsFiles, VapidKey, WebPushServer

from .conftest import note


def target(subscription: WebPushSubscription) -> Target:
    return Target("webpush", subscription.endpoint, subscription)


@pytest.mark.parametrize("pem", [False, True], ids=["raw-key", "pem-key"])
async def test_the_browser_decrypts_the_payload(
    webpush_server: WebPushServer, webpush_settings: Settings, vapid_key: VapidKey, pem: bool
) -> None:
    settings = webpush_settings.model_copy(update=vapid_key.settings(pem=pem))
    subscription = webpush_server.subscribe(vapid_key.public_b64url)
    provider = WebPushProvider(settings)
    try:
        assert await provider.send(target(subscription), note()) == Result(Outcome.SENT)
    finally:
        await provider.close()
    [delivery] = webpush_server.deliveries
    assert delivery.payload == {
        "title": "Minji",
        "body": "See you at seven?",
        "badge": 3,
        "tag": "c-42",
        "data": note().data,
    }
    assert delivery.headers["ttl"] == "3600"
    assert delivery.headers["urgency"] == "high"
    assert delivery.headers["topic"] == topic_for("c-42")
    assert delivery.vapid_claims["aud"] == webpush_server.url
    assert delivery.vapid_claims["sub"] == "mailto:ops@example.com"


def test_the_topic_is_a_short_url_safe_token() -> None:
    for key in ("c-42", "couple:" + "x" * 200, "커플 42/!"):
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,32}", topic_for(key))
    assert topic_for("c-42") == topic_for("c-42") != topic_for("c-43")


async def test_the_application_server_key_is_the_public_point(
    webpush_settings: Settings, vapid_key: VapidKey
) -> None:
    provider = WebPushProvider(webpush_settings)
    await provider.close()
    assert provider.public_key_b64url() == vapid_key.public_b64url


async def test_an_unsubscribed_browser_is_dead(
    webpush_server: WebPushServer, webpush_settings: Settings, vapid_key: VapidKey
) -> None:
    subscription = webpush_server.subscribe(vapid_key.public_b64url)
    webpush_server.unsubscribe(subscription)
    provider = WebPushProvider(webpush_settings)
    try:
        result = await provider.send(target(subscription), note())
    finally:
        await provider.close()
    assert result == Result(Outcome.DEAD, "unsubscribed")


async def test_a_private_endpoint_is_refused_before_any_request(
    webpush_server: WebPushServer, webpush_settings: Settings, vapid_key: VapidKey
) -> None:
    strict = webpush_settings.model_copy(update={"push_allow_private": False})
    subscription = webpush_server.subscribe(vapid_key.public_b64url)
    local = WebPushSubscription(
        subscription.endpoint.replace("127.0.0.1", "localhost"),
        subscription.p256dh,
        subscription.auth,
    )
    provider = WebPushProvider(strict)
    try:
        results = {await provider.send(target(sub), note()) for sub in (subscription, local)}
    finally:
        await provider.close()
    assert results == {Result(Outcome.FAILED, "endpoint_refused")}
    assert webpush_server.requests == 0


async def test_an_http_endpoint_is_refused(webpush_settings: Settings, vapid_key: VapidKey) -> None:
    subscription = WebPushSubscription("http://93.184.215.14/push/1", "x", "y")
    provider = WebPushProvider(webpush_settings)
    try:
        result = await provider.send(target(subscription), note())
    finally:
        await provider.close()
    assert result == Result(Outcome.FAILED, "endpoint_refused")


async def test_the_peer_guard_refuses_a_private_peer_at_connect(
    webpush_server: WebPushServer, tls: TlsFiles, vapid_key: VapidKey
) -> None:
    """What stops DNS rebinding: the address actually connected to is checked, whatever the
    name resolved to when the endpoint was checked."""
    url = webpush_server.subscribe(vapid_key.public_b64url).endpoint
    context = ssl.create_default_context(cafile=tls.ca_file)
    async with httpx.AsyncClient(verify=context) as client:
        with pytest.raises(
            EndpointRefused, match=r"refused at connect: 127\.0\.0\.1 is a loopback"
        ):
            await client.post(url, content=b"", extensions={"trace": peer_guard(url)})
    assert webpush_server.requests == 0


async def test_bad_subscription_keys_fail(
    webpush_server: WebPushServer, webpush_settings: Settings, vapid_key: VapidKey
) -> None:
    good = webpush_server.subscribe(vapid_key.public_b64url)
    bad = WebPushSubscription(good.endpoint, "bm90LWEta2V5", good.auth)
    provider = WebPushProvider(webpush_settings)
    try:
        result = await provider.send(target(bad), note())
    finally:
        await provider.close()
    assert result == Result(Outcome.FAILED, "bad_subscription")
    assert webpush_server.requests == 0
