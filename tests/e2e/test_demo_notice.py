"""A notice and a dissolution on the demo page (/demo), in a real browser: headless Chromium
driven by playwright-core (node/demo_notice.mjs), both members of a couple over WebSocket.

The app's backend sends a notice through the service API: both pages show it as the
service's (neither member's bubble), in the stream's order. Then it dissolves the couple: both
pages say so in their language and stop, without trying to reconnect. Screenshots in
``artifacts/demo_notice/``.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e._demo_browser import (
    WEB_MODULES,
    Couple,
    node_ready,
    run_couple_script,
)
from tests.support.server import ServerProcess

RUN_TIMEOUT = 75.0
ADMIN_KEY = "demo-notice-" + "k" * 24
NOTICE = "오늘은 두 분의 100일입니다 🎉"

pytestmark = [
    pytest.mark.backends("sqlite"),
    pytest.mark.server_env(
        {"IEUM_DEMO_ASSETS": str(WEB_MODULES), "IEUM_ADMIN_API_KEYS": ADMIN_KEY}
    ),
]


def _run(server: ServerProcess, couple: Couple) -> dict[str, Any]:
    return run_couple_script(
        "demo_notice.mjs", server, couple, timeout=RUN_TIMEOUT, adminKey=ADMIN_KEY
    )[0]


@pytest.mark.external
def test_a_notice_then_the_dissolution_on_the_demo_page(
    server: ServerProcess, couple: Couple
) -> None:
    node_ready()
    result = _run(server, couple)
    notice = result["notice"]
    assert (notice["type"], notice["senderId"]) == ("NOTICE", None)

    # The notice: in both pages, in seq order, as the service's, not a member's.
    for page in (result["beforeA"], result["beforeB"]):
        shown = page["messages"]
        assert [m["type"] for m in shown] == ["TEXT", "NOTICE"]
        assert shown[-1]["text"] == NOTICE
        assert shown[-1]["seq"] == notice["seq"]
        assert shown[-1]["mine"] is False
        assert page["gaps"] == 0
    assert "notice" in result["noticeA"]["classes"]
    assert "theirs" not in result["noticeA"]["classes"]
    assert result["noticeA"]["sender"] == "이음"

    # The dissolution: both pages say so, in their language, and stop for good.
    assert result["fatalA"]["shown"] is True
    assert result["fatalA"]["title"] == "커플 연결이 해제되었어요"
    assert result["fatalB"]["title"] == "This couple was dissolved"
    for state in (result["fatalA"], result["fatalB"]):
        assert state["conn"] == "failed"
        assert state["inputDisabled"] is True
    assert result["socketsAfter"] == {"a": 0, "b": 0}
    assert result["problems"] == {"a": [], "b": []}
