"""What becomes of a message on the demo page (/demo), in a real browser: headless Chromium driven
by playwright-core (node/demo_lifecycle.mjs), both members of a couple over WebSocket.

A (a phone: long press) and B (a desk: right click) react, toggle a reaction, edit, reply; B's
socket is then cut while A unsends, edits again and reacts and B's other device deletes a
message for B: B's page, never reloaded, resumes from its stream position and shows it all
(the quote of the unsent message says so), and the reaction it queued on the unsent message
comes back as an error. B deletes the tombstone for itself and reloads; with B's tab in the
background, B's other device reads and the tab's unread count clears. Screenshots in
``artifacts/demo_lifecycle/``.
"""

from __future__ import annotations

from typing import Any

import httpx
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
UNSENT = "곧 취소할 메시지예요 (this one gets unsent)"
EDITED = "저녁 7시에 만나요"
EDITED_1 = "저녁 7시 반에 만나요 (fixed)"
EDITED_2 = "저녁 8시에 만나요 (changed again)"
REPLY = "OK, see you then!"
REPLY_A = "이건 잘못 보냈어요 (about to unsend it)"
HIDDEN = "B가 다른 기기에서 지울 메시지 (deleted on B's other device)"
LAST = "읽었어요? (read on another device)"
PALETTE = ["❤️", "👍", "😂", "😮", "😢", "🙏"]

pytestmark = [
    pytest.mark.backends("sqlite"),
    pytest.mark.server_env({"IEUM_DEMO_ASSETS": str(WEB_MODULES)}),
]

Page = dict[str, Any]


def _by_text(page: Page) -> dict[str, dict[str, Any]]:
    return {m["text"]: m for m in page["messages"]}


def _by_id(page: Page) -> dict[str, dict[str, Any]]:
    return {m["id"]: m for m in page["messages"]}


def _run(server: ServerProcess, couple: Couple) -> dict[str, Any]:
    result, folder = run_couple_script("demo_lifecycle.mjs", server, couple, timeout=RUN_TIMEOUT)
    print(f"\ndemo page, message lifecycle: screenshots in {folder}")
    return result


@pytest.mark.external
def test_edit_unsend_react_reply_and_delete_on_the_demo_page(
    server: ServerProcess, couple: Couple
) -> None:
    node_ready()
    room = httpx.get(
        f"{server.http_url}/chat/room",
        headers={"Authorization": f"Bearer {couple['tb']}"},
        timeout=10,
    ).json()
    result = _run(server, couple)
    ids = result["ids"]

    # The menus: the partner's text offers reactions, reply, copy and delete for me; my own
    # text offers edit and unsend too; a tombstone offers delete for me alone.
    assert result["paletteB"] == PALETTE
    assert {"reply", "delete"} <= set(result["menuB"])
    assert not {"edit", "unsend"} & set(result["menuB"])
    assert {"reply", "edit", "unsend", "delete"} <= set(result["menuA"])
    assert result["tombstoneMenuB"] == ["delete"]
    assert result["tombstonePaletteB"] == 0
    # Editing puts the text in the composer; replying shows the quote bar, gone once sent.
    assert result["editBar"] == {"mode": "edit", "input": EDITED, "send": "수정"}
    assert result["replyBar"] == {
        "mode": "reply",
        "title": f"Reply to {room['partner']['name']}",
        "text": EDITED_1,
    }
    assert result["barAfterReply"] is False

    # B resumed on the same document (its socket cut, not its page reloaded) and caught up:
    # the tombstone, the second edit (in the reply's quote too), A's reaction; the message
    # B's other device deleted never showed; the reaction queued on the unsent message failed.
    assert result["sameDocument"] is True
    assert result["positionBeforeB"] < result["position"]
    resumed_a, resumed_b = result["afterResume"]["a"], result["afterResume"]["b"]
    for page, tombstone, edited in (
        (resumed_a, "메시지가 취소되었습니다", "(수정됨)"),
        (resumed_b, "This message was unsent", "(edited)"),
    ):
        shown = _by_id(page)
        unsent = shown[ids["unsent"]]
        assert (unsent["unsent"], unsent["text"], unsent["edited"]) == (True, tombstone, None)
        assert unsent["reactions"] == []
        assert not unsent["unread"]
        changed = shown[ids["edited"]]
        assert (changed["text"], changed["edited"]) == (EDITED_2, edited)
        assert [(r["emoji"], r["count"]) for r in changed["reactions"]] == [("❤️", 2)]
        reply = shown[ids["reply"]]
        assert reply["quote"]["replyTo"] == ids["edited"]
        assert reply["quote"]["text"] == EDITED_2
        assert [(r["emoji"], r["count"]) for r in reply["reactions"]] == [("😂", 1)]
        # The quote of the unsent message says so (it was shown before B went away).
        quoting = shown[ids["replyA"]]["quote"]
        assert (quoting["replyTo"], quoting["text"]) == (ids["unsent"], tombstone)
        # B read A's reply on its return (a read mark is an entry of the stream too).
        assert not shown[ids["replyA"]]["unread"]
        assert page["gaps"] == 0
        assert page["position"] == result["position"]
    assert ids["hidden"] in _by_id(resumed_a)
    assert ids["hidden"] not in _by_id(resumed_b)
    assert [m["id"] for m in resumed_b["messages"]] == [
        m["id"] for m in resumed_a["messages"] if m["id"] != ids["hidden"]
    ]
    assert result["toastB"].startswith("Could not react: ")

    # After B deleted the tombstone for itself and reloaded: the history as it is now.
    reloaded = _by_text(result["afterReload"])
    assert ids["unsent"] not in _by_id(result["afterReload"])
    assert HIDDEN not in reloaded
    assert reloaded[EDITED_2]["edited"] == "(edited)"
    assert reloaded[EDITED_2]["reactions"] == _by_id(resumed_b)[ids["edited"]]["reactions"]
    assert reloaded[REPLY]["quote"]["text"] == EDITED_2
    assert reloaded[REPLY_A]["quote"]["text"] == "This message was unsent"
    assert [m["text"] for m in result["afterReload"]["messages"]] == [EDITED_2, REPLY, REPLY_A]

    # Read on another device: the background tab's count went from one to none.
    assert result["titleAway"].startswith("(1) ")
    assert not result["titleRead"].startswith("(")

    # Every page saw the stream whole and in order; the server's history agrees.
    seqs_a = history_seqs(server, couple["ta"], couple["couple"])
    seqs_b = history_seqs(server, couple["tb"], couple["couple"])
    for who, seqs in (("a", seqs_a), ("b", seqs_b)):
        page = result[who]
        assert page["problems"] == []
        assert page["gaps"] == 0
        assert page["position"] == result["finalPosition"] >= seqs[-1]
        assert [m["seq"] for m in page["messages"]] == seqs
        assert {m["state"] for m in page["messages"]} == {"sent"}
    assert len(seqs_a) == len(seqs_b) + 2  # B deleted two for itself
    assert _by_text(result["a"])[LAST]["unread"] is False
