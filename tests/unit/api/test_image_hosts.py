"""IEUM_IMAGE_HOSTS lets IMAGE messages point at other hosts, on REST and STOMP alike (the
check is in the chat service both paths share)."""

from __future__ import annotations

from typing import Any

import pytest

from ieum_chat.chat.requests import MessageType, SendRequest
from ieum_chat.errors import SendFailed
from tests.unit.api.conftest import Api


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"image_hosts": ["cdn.example", "*.img.example"]}


@pytest.mark.parametrize("url", ["https://cdn.example/p.png", "https://eu.img.example/a/b.webp"])
async def test_allowed_hosts_are_accepted(api: Api, url: str) -> None:
    response = await api.send(type="IMAGE", imageUrl=url)
    assert response.status_code == 201, response.text
    assert response.json()["imageUrl"] == url


async def test_other_hosts_are_still_refused(api: Api) -> None:
    response = await api.send(type="IMAGE", imageUrl="https://evil.example/p.png", tempId="x")
    assert response.status_code == 400
    assert (response.json()["code"], response.json()["tempId"]) == ("SEND_FAILED", "x")


async def test_the_service_refuses_before_queueing(api: Api) -> None:
    """What the STOMP SEND path calls: nothing is queued for a foreign image."""
    request = SendRequest(MessageType.IMAGE, None, "https://evil.example/p.png", "t-1")
    with pytest.raises(SendFailed) as refused:
        await api.chat.accept(api.a, api.couple.id, request)
    assert refused.value.temp_id == "t-1"
    assert await api.db.get_messages(api.couple.id) == []
