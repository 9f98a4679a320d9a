"""Which Web Push endpoints the server calls: https only, and public addresses only unless
private ones are allowed (literal addresses and ``localhost``: no DNS needed)."""

from __future__ import annotations

import pytest

from ieum_chat.push.providers.webpush import check_endpoint_async

PRIVATE = [
    "https://127.0.0.1/push/1",
    "https://10.1.2.3/push/1",
    "https://172.16.0.9:8443/push/1",
    "https://192.168.1.1/push/1",
    "https://169.254.169.254/latest/meta-data",
    "https://[::1]/push/1",
    "https://[fe80::1]/push/1",
    "https://[fd00::5]/push/1",
    "https://[::ffff:10.0.0.1]/push/1",
    "https://0.0.0.0/push/1",
    "https://224.0.0.1/push/1",
    "https://100.64.0.1/push/1",
    "https://240.0.0.1/push/1",
    "https://localhost:8443/push/1",
]
PUBLIC = ["https://93.184.215.14/push/abc", "https://[2606:4700:4700::1111]:443/push/abc"]


@pytest.mark.parametrize("url", PRIVATE)
async def test_a_private_address_is_refused_unless_allowed(url: str) -> None:
    with pytest.raises(ValueError, match=r"refused: .* address .*IEUM_PUSH_ALLOW_PRIVATE"):
        await check_endpoint_async(url, allow_private=False)
    await check_endpoint_async(url, allow_private=True)


@pytest.mark.parametrize("url", PUBLIC)
async def test_a_public_address_is_accepted(url: str) -> None:
    await check_endpoint_async(url, allow_private=False)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://93.184.215.14/push/1", "only https"),
        ("ftp://93.184.215.14/push/1", "only https"),
        ("https:///push/1", "names no host"),
        ("https://user:secret@93.184.215.14/push/1", "credentials"),
        ("https://93.184.215.14:99999/push/1", "not a valid URL"),
    ],
)
@pytest.mark.parametrize("allow_private", [False, True])
async def test_a_malformed_or_plain_http_endpoint_is_refused(
    url: str, why: str, allow_private: bool
) -> None:
    with pytest.raises(ValueError, match=why):
        await check_endpoint_async(url, allow_private=allow_private)
