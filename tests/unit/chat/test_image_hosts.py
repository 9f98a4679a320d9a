"""The operator's list of hosts IMAGE messages may point at (IEUM_IMAGE_HOSTS)."""

from __future__ import annotations

import pytest

from ieum_chat.chat.requests import image_host_allowed
from ieum_chat.config import Settings


@pytest.mark.parametrize(
    ("url", "hosts", "allowed"),
    [
        ("https://cdn.example/p.png", [], False),
        ("https://cdn.example/p.png", ["cdn.example"], True),
        ("https://CDN.Example:8443/p.png", ["cdn.example"], True),
        ("https://cdn.example/p.png", ["CDN.EXAMPLE "], True),
        ("https://cdn.example.evil/p.png", ["cdn.example"], False),
        ("https://evil.example/cdn.example/p.png", ["cdn.example"], False),
        ("https://cdn.example@evil.example/p.png", ["cdn.example"], False),
        ("https://img.cdn.example/p.png", ["*.cdn.example"], True),
        ("https://a.b.cdn.example/p.png", ["*.cdn.example"], True),
        ("https://cdn.example/p.png", ["*.cdn.example"], False),
        ("https://evilcdn.example/p.png", ["*.cdn.example"], False),
        ("https://anything.example/p.png", ["*"], True),
        ("https://[::1/p.png", ["cdn.example"], False),
        ("https:///p.png", [""], False),
    ],
)
def test_image_host_allowed(url: str, hosts: list[str], allowed: bool) -> None:
    assert image_host_allowed(url, hosts) is allowed


def test_image_hosts_setting_is_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IEUM_IMAGE_HOSTS", "cdn.example, *.img.example")
    assert Settings().image_hosts == ["cdn.example", "*.img.example"]
    monkeypatch.delenv("IEUM_IMAGE_HOSTS")
    assert Settings().image_hosts == []
