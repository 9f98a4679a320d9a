"""The per-user limits of the chat service apply to REST as they do to STOMP."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.api.conftest import Api


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    # A bucket that does not refill during the test, however slow the machine.
    return {"message_rate": 0.001, "message_burst": 3, "control_rate": 0.001, "control_burst": 2}


async def test_sending_past_the_message_limit_is_429(api: Api) -> None:
    statuses = [(await api.send(type="TEXT", content=f"m{i}")).status_code for i in range(5)]
    assert statuses == [201, 201, 201, 429, 429]
    refused = await api.send(type="TEXT", content="again", tempId="t-late")
    assert refused.json()["code"] == "RATE_LIMITED"
    assert refused.json()["tempId"] == "t-late"
    assert len(await api.db.get_messages(api.couple.id)) == 3


async def test_read_marks_past_the_control_limit_are_429(api: Api) -> None:
    path = api.room("/read")
    statuses = [
        (await api.client.post(path, json={"upToSeq": 0}, headers=api.auth())).status_code
        for _ in range(3)
    ]
    assert statuses == [200, 200, 429]
