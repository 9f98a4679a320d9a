"""Threat: an IMAGE message whose URL one parser reads as an allowed host and another as the
attacker's. With ``IEUM_IMAGE_HOSTS=cdn.example.com``, ``https://evil.com\\@cdn.example.com/a.png``
passed: Python's ``urlsplit`` sees user info ``evil.com\\`` and host ``cdn.example.com``, but
browsers and OkHttp (WHATWG URL rules: a backslash is a path separator in http(s) URLs) fetch
it from ``evil.com``, which then sees every reader's IP address and can swap the picture.

Refused by: ``chat.requests.image_host_allowed`` reads the host the way WHATWG clients do and
refuses every URL on which parsers can disagree: user info, backslashes, whitespace and
control characters, percent-encoded or non-ASCII hosts, numeric hosts that are not plain
dotted IPv4, empty labels, a missing host.
"""

from __future__ import annotations

from typing import Any

import pytest

from ieum_chat.chat.requests import image_host_allowed
from tests.unit.api.conftest import Api

HOSTS = ["cdn.example.com", "*.img.example.com"]

BYPASSES = [
    "https://evil.com\\@cdn.example.com/a.png",
    "https://evil.com\\\\@cdn.example.com/a.png",
    "https://evil.com%5C@cdn.example.com/a.png",
    "https://evil.com@cdn.example.com/a.png",
    "https://:@cdn.example.com/a.png",
    "https://cdn.example.com\\.evil.com/a.png",
    "https://cdn.example.com\t.evil.com/a.png",
    "https://cdn.example.com\n.evil.com/a.png",
    "https://cdn.example.com\r@evil.com/a.png",
    " https://cdn.example.com/a.png",
    "https://cdn.example.com /a.png",
    "https://cdn.example.com\x00.evil.com/a.png",
    "https://cdn.example.com\x7f/a.png",
    "https://cdn%2Eexample.com/a.png",
    "https://cdn.example%2Ecom/a.png",
    "https://%63dn.example.com/a.png",
    "https://cdn\u3002example.com/a.png",
    "https://ｃｄｎ.example.com/a.png",
    "https://cdn.example.com\u200b/a.png",
    "https:///cdn.example.com/a.png",
    "https:////evil.com/cdn.example.com/a.png",
    "https://cdn..example.com/a.png",
    "https://cdn.example.com./a.png",
    "https://cdn.example.com:99999/a.png",
    "https://cdn.example.com:80x/a.png",
    "https://[::1]/a.png",
    "https://0x7f.1/a.png",
    "https://2130706433/a.png",
    "https://a.img.example.com\\@b.img.example.com.evil.com/a.png",
    "javascript://cdn.example.com/%0aalert(1)",
    "ftp://cdn.example.com/a.png",
]


@pytest.mark.parametrize("url", BYPASSES, ids=[str(i) for i in range(len(BYPASSES))])
def test_ambiguous_urls_are_refused(url: str) -> None:
    assert not image_host_allowed(url, HOSTS)
    if "[::1]" not in url:  # a plain IP literal is a host like any other for "*"
        assert not image_host_allowed(url, ["*"])


@pytest.mark.parametrize(
    "url",
    [
        "https://cdn.example.com/a.png",
        "HTTPS://CDN.Example.COM:8443/a%20b.png?w=1#x",
        "http://eu.img.example.com/a/b.webp",
        "https://cdn.example.com/a@b/c\u00e9.png",
    ],
)
def test_plain_urls_of_allowed_hosts_pass(url: str) -> None:
    assert image_host_allowed(url, HOSTS)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"image_hosts": ["cdn.example.com"]}


async def test_an_image_message_with_the_bypass_is_refused(api: Api) -> None:
    url = "https://evil.com\\@cdn.example.com/a.png"
    response = await api.send(type="IMAGE", imageUrl=url, tempId="img-1")
    assert response.status_code == 400
    assert (response.json()["code"], response.json()["tempId"]) == ("SEND_FAILED", "img-1")
