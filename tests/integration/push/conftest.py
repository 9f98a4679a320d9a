"""The three local push services, each with a provider configured against it.

``rig`` runs a test once per platform: the same scripted failure must give the same outcome
whichever provider meets it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ieum_chat.config import Settings
from ieum_chat.push.providers import Notification, Provider, Target
from ieum_chat.push.providers.apns import ApnsProvider
from ieum_chat.push.providers.fcm import FcmProvider
from ieum_chat.push.providers.webpush import WebPushProvider
from tests.support.push_servers import (
    ApnsKey,
    ApnsServer,
    FcmServer,
    ServiceAccountKey,
    TlsFiles,
    TlsServer,
    VapidKey,
    WebPushServer,
    make_tls,
    make_vapid_key,
    write_apns_key,
    write_service_account,
)

DEVICE_TOKEN = "a1b2c3d4" * 8  # an APNs device token is hex


def note(**changes: Any) -> Notification:
    fields: dict[str, Any] = {
        "title": "Minji",
        "body": "See you at seven?",
        "data": {
            "type": "MESSAGE",
            "coupleId": "c-42",
            "seq": 17,
            "messageId": "m-9",
            "senderName": "Minji",
            "preview": "See you at seven?",
            "unreadCount": 3,
        },
        "collapse_key": "c-42",
        "badge": 3,
        "ttl": 3600,
    }
    fields.update(changes)
    return Notification(**fields)


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls(tmp_path_factory.mktemp("push-tls"))


def push_settings(tls: TlsFiles, **kwargs: Any) -> Settings:
    return Settings(push_ca_file=tls.ca_file, **kwargs)


@pytest.fixture
async def fcm_server(tls: TlsFiles) -> AsyncIterator[FcmServer]:
    async with FcmServer(tls) as server:
        yield server


@pytest.fixture
def service_account(tmp_path: Path, fcm_server: FcmServer) -> ServiceAccountKey:
    account = write_service_account(tmp_path, fcm_server.token_uri)
    fcm_server.trust(account)
    return account


@pytest.fixture
def fcm_settings(tls: TlsFiles, fcm_server: FcmServer, service_account: ServiceAccountKey) -> Settings:
    return push_settings(tls, fcm_endpoint=fcm_server.url, **service_account.settings())


@pytest.fixture
async def apns_server(tls: TlsFiles) -> AsyncIterator[ApnsServer]:
    async with ApnsServer(tls) as server:
        yield server


@pytest.fixture
def apns_key(tmp_path: Path, apns_server: ApnsServer) -> ApnsKey:
    key = write_apns_key(tmp_path)
    apns_server.trust(key)
    return key


@pytest.fixture
def apns_settings(tls: TlsFiles, apns_server: ApnsServer, apns_key: ApnsKey) -> Settings:
    return push_settings(tls, apns_endpoint=apns_server.url, **apns_key.settings())


@pytest.fixture
async def webpush_server(tls: TlsFiles) -> AsyncIterator[WebPushServer]:
    async with WebPushServer(tls) as server:
        yield server


@pytest.fixture
def vapid_key() -> VapidKey:
    return make_vapid_key()


@pytest.fixture
def webpush_settings(tls: TlsFiles, vapid_key: VapidKey) -> Settings:
    # the local service listens on 127.0.0.1, which production refuses
    return push_settings(tls, push_allow_private=True, **vapid_key.settings())


@dataclass
class Rig:
    """One platform's provider, the server it talks to and a device registered there."""

    platform: str
    server: TlsServer
    target: Target
    settings: Settings
    build: Callable[[Settings], Provider]

    @asynccontextmanager
    async def provider(self, **changes: Any) -> AsyncIterator[Provider]:
        """The platform's provider, with ``changes`` to its settings (a shorter timeout)."""
        provider = self.build(self.settings.model_copy(update=changes))
        try:
            yield provider
        finally:
            await provider.close()


@pytest.fixture(params=["fcm", "apns", "webpush"])
def rig(request: pytest.FixtureRequest) -> Rig:
    platform: str = request.param
    build: Callable[[Settings], Provider]
    if platform == "fcm":
        server: TlsServer = request.getfixturevalue("fcm_server")
        settings: Settings = request.getfixturevalue("fcm_settings")
        target = Target("fcm", "fcm-registration-token-1")
        build = FcmProvider
    elif platform == "apns":
        server = request.getfixturevalue("apns_server")
        settings = request.getfixturevalue("apns_settings")
        target = Target("apns", DEVICE_TOKEN)
        build = ApnsProvider
    else:
        webpush: WebPushServer = request.getfixturevalue("webpush_server")
        server = webpush
        settings = request.getfixturevalue("webpush_settings")
        vapid: VapidKey = request.getfixturevalue("vapid_key")
        subscription = webpush.subscribe(vapid.public_b64url)
        target = Target("webpush", subscription.endpoint, subscription)
        build = WebPushProvider
    return Rig(platform, server, target, settings, build)
