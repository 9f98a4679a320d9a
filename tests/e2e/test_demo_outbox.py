"""The demo page's outbox survives a reload, in a real browser: headless Chromium driven by
playwright-core (node/demo_outbox.mjs), both members of a couple over WebSocket.

A's browser loses the chat server (WebSockets, SockJS and REST refused at the browser; the
page itself still loads, as from a cache). A sends a message, which waits in the SDK's outbox
in IndexedDB, then reloads the page while still cut off: the new document shows the message
as being sent, though the server has never seen it. Once A's browser reaches the server again
the message is delivered exactly once, under the tempId it had before the reload, to B's
page and to the history, and the outbox is empty. Screenshots in ``artifacts/demo_outbox/``.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e._demo_browser import (
    WEB_MODULES,
    Couple,
    history_seqs,
    node_ready,
    run_couple_script,
)
from tests.support.server import ServerProcess

RUN_TIMEOUT = 90.0
HELLO = "안녕! 연결돼 있을 때 (while connected)"
OFFLINE = "서버에 닿지 않을 때 보낸 메시지 (sent while the server is out of reach)"
AFTER = "Got it, exactly once."

pytestmark = [
    pytest.mark.backends("sqlite"),
    pytest.mark.server_env({"IEUM_DEMO_ASSETS": str(WEB_MODULES)}),
]


def _texts(page: dict[str, Any]) -> list[str]:
    return [m["text"] for m in page["messages"]]


@pytest.mark.external
def test_a_message_sent_while_cut_off_survives_a_reload_and_is_delivered_once(
    server: ServerProcess, couple: Couple
) -> None:
    node_ready()
    result, folder = run_couple_script("demo_outbox.mjs", server, couple, timeout=RUN_TIMEOUT)
    print(f"\ndemo page, outbox across a reload: screenshots in {folder}")

    # Before the reload: one bubble being sent, and its entry in IndexedDB.
    (before,) = result["bubblesBefore"]
    temp_id = before["tempId"]
    assert (before["seq"], before["state"]) == (None, "sending")
    (entry,) = result["outboxBefore"]
    assert entry["kind"] == "message"
    assert entry["tempId"] == temp_id
    assert entry["body"]["content"] == OFFLINE

    # After the reload, still cut off: the new document shows it from the outbox, the room
    # from the last visit; the server has not seen it, nor has B.
    reloaded = result["afterReload"]
    assert reloaded["conn"] == "connecting"
    assert reloaded["partner"]
    assert reloaded["presence"] == "unknown"  # the last visit's room does not say who is online
    assert reloaded["bubbles"] == [{"seq": None, "state": "sending", "tempId": temp_id}]
    assert [e["tempId"] for e in reloaded["outbox"]] == [temp_id]
    assert [m["content"] for m in result["historyWhileCut"]] == [HELLO]
    assert result["onBWhileCut"] == []

    # Back in reach: delivered once, under the same tempId, and the outbox is empty.
    delivered = [m for m in result["historyAfter"] if m["content"] == OFFLINE]
    assert len(delivered) == 1
    assert delivered[0]["tempId"] == temp_id
    assert [m["content"] for m in result["historyAfter"]] == [HELLO, OFFLINE, AFTER]
    assert result["outboxAfter"] == []
    seqs = history_seqs(server, couple["ta"], couple["couple"])
    for who in ("a", "b"):
        page = result[who]
        assert _texts(page) == [HELLO, OFFLINE, AFTER]
        assert [m["seq"] for m in page["messages"]] == seqs
        assert {m["state"] for m in page["messages"]} == {"sent"}
        assert page["conn"] == "connected"
        assert page["gaps"] == 0
        assert page["problems"] == []
