"""Which providers the settings turn on, and the start-up errors for settings half-set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ieum_chat.config import Settings
from ieum_chat.push.providers import providers_from
from ieum_chat.push.providers.apns import ApnsProvider
from ieum_chat.push.providers.fcm import FcmProvider
from ieum_chat.push.providers.webpush import WebPushProvider
from tests.support.push_servers import make_vapid_key, write_apns_key, write_service_account


def every_setting(directory: Path) -> dict[str, Any]:
    return {
        **write_service_account(directory, "https://127.0.0.1:1/token").settings(),
        **write_apns_key(directory).settings(),
        **make_vapid_key().settings(),
    }


async def test_no_settings_no_providers() -> None:
    assert providers_from(Settings()) == {}


async def test_each_configured_provider_is_on(tmp_path: Path) -> None:
    providers = providers_from(Settings(**every_setting(tmp_path)))
    try:
        assert {name: type(p) for name, p in providers.items()} == {
            "fcm": FcmProvider,
            "apns": ApnsProvider,
            "webpush": WebPushProvider,
        }
        assert all(p.platform == name for name, p in providers.items())
    finally:
        for provider in providers.values():
            await provider.close()


@pytest.mark.parametrize(
    ("unset", "message"),
    [
        ("apns_team_id", "APNs is half-configured: .* but IEUM_APNS_TEAM_ID missing"),
        ("apns_topic", "APNs is half-configured: .* but IEUM_APNS_TOPIC missing"),
        ("vapid_subject", "Web Push is half-configured: .* but IEUM_VAPID_SUBJECT missing"),
    ],
)
def test_half_set_settings_stop_the_start(tmp_path: Path, unset: str, message: str) -> None:
    settings = every_setting(tmp_path)
    del settings[unset]
    with pytest.raises(ValueError, match=message):
        providers_from(Settings(**settings))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"fcm_credentials": "/nonexistent/sa.json"}, "IEUM_FCM_CREDENTIALS: cannot read"),
        ({"apns_key_file": "/nonexistent/AuthKey.p8"}, "IEUM_APNS_KEY_FILE: cannot read"),
        ({"vapid_private_key": "not-a-key"}, "IEUM_VAPID_PRIVATE_KEY"),
        ({"vapid_subject": "ops@example.com"}, "IEUM_VAPID_SUBJECT"),
    ],
)
def test_unreadable_keys_stop_the_start(
    tmp_path: Path, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        providers_from(Settings(**{**every_setting(tmp_path), **changes}))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "is not JSON"),
        ('{"type": "authorized_user"}', "not a service account"),
        ('{"type": "service_account", "project_id": "p"}', "lacks client_email, token_uri"),
    ],
)
def test_a_wrong_service_account_file_stops_the_start(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "sa.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        providers_from(Settings(fcm_credentials=str(path)))


def test_a_key_that_is_not_p256_stops_the_start(tmp_path: Path) -> None:
    path = tmp_path / "AuthKey.p8"
    path.write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    settings = {**every_setting(tmp_path), "apns_key_file": str(path)}
    with pytest.raises(ValueError, match="not a PEM private key"):
        providers_from(Settings(**settings))
