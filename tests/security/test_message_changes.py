"""Threat: a member abuses the changes of sent messages, to flood the couple's stream (and
the partner's phone) with reactions and edits, to make the server parse huge inputs, to change
the partner's messages, or to learn what the partner deleted for themselves.

Refused by: the per-user message rate, which changes share with messages (``ChatService.change``:
RATE_LIMITED with the tempId, nothing stored past the budget); the bounds checked before any
parsing (``requests.validate_emoji``: at most 32 code points, then one emoji; edits at most
``IEUM_MAX_TEXT_LENGTH``; the frame bound of 64 KiB before either); the store's checks under
the couple's lock (only the sender edits or unsends; another couple's message is NOT_FOUND);
the audience of a hide (``envelope.pack(audience=...)``: the partner's sessions drop it, and
replay never shows it to them).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from ieum_chat.chat.requests import MessageType, SendRequest
from ieum_chat.store.records import Message
from tests.unit.gateway.harness import Peer, World, body, template_database, world

RATE = {"message_rate": 1.0, "message_burst": 5}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return template_database(tmp_path_factory.mktemp("template"))


@pytest.fixture
async def w(tmp_path: Path, template: Path, request: pytest.FixtureRequest) -> AsyncIterator[World]:
    overrides: dict[str, Any] = getattr(request, "param", {})
    async with world(tmp_path, template, **overrides) as made:
        yield made


async def stored(w: World, content: str = "hi") -> Message:
    request = SendRequest(type=MessageType.TEXT, content=content, image_url=None, temp_id=None)
    return await (await w.chat.accept(w.a, w.couple.id, request))


def change(peer: Peer, w: World, action: str, payload: dict[str, Any], receipt: str = "") -> None:
    headers = {"destination": f"/app/chat/{w.couple.id}/{action}"}
    if receipt:
        headers["receipt"] = receipt
    peer.send("SEND", headers, orjson.dumps(payload))


async def errors_of(peer: Peer) -> list[dict[str, Any]]:
    await peer.settle()
    return [
        body(frame)
        for frame in await peer.frames()
        if frame.command == "MESSAGE" and frame.get("subscription") == "errors"
    ]


@pytest.mark.parametrize("w", [RATE], indirect=True)
async def test_a_reaction_flood_is_cut_at_the_message_rate(w: World) -> None:
    message = await stored(w)  # the sender's own send took one of a's budget, not b's
    peer = await w.member(w.b)
    for i in range(50):
        op = "add" if i % 2 == 0 else "remove"
        change(
            peer,
            w,
            "react",
            {"messageId": str(message.id), "emoji": "❤️", "op": op, "tempId": f"r{i}"},
        )
    errors = await errors_of(peer)
    limited = [e for e in errors if e["code"] == "RATE_LIMITED"]
    assert len(limited) >= 40, errors
    assert all(e["tempId"].startswith("r") for e in limited)
    position = await w.db.stream_position(w.couple.id)
    assert position <= 1 + 5 + 2  # the message, the burst, what refilled meanwhile


async def test_oversized_and_malformed_changes_are_refused_before_parsing(w: World) -> None:
    message = await stored(w)
    peer = await w.member(w.a)
    target = str(message.id)
    bad: list[tuple[str, dict[str, Any]]] = [
        ("react", {"messageId": target, "emoji": "❤️" * 10_000}),
        ("react", {"messageId": target, "emoji": "\u200d" * 20}),
        ("react", {"messageId": target, "emoji": 5}),
        ("react", {"messageId": target, "emoji": None}),
        ("edit", {"messageId": target, "content": "가" * 4001}),
        ("edit", {"messageId": target, "content": "\x00"}),
        ("edit", {"messageId": [target], "content": "x"}),
        ("unsend", {"messageId": {"id": target}}),
        ("delete", {}),
    ]
    for i, (action, payload) in enumerate(bad):
        change(peer, w, action, {**payload, "tempId": f"bad-{i}"})
    errors = await errors_of(peer)
    assert [(e["code"], e["tempId"]) for e in errors] == [
        ("SEND_FAILED", f"bad-{i}") for i in range(len(bad))
    ]
    assert await w.db.stream_position(w.couple.id) == 1
    assert (await w.db.messages_by_id([message.id]))[message.id] == message


async def test_the_partner_cannot_change_a_message_nor_see_a_hide(w: World) -> None:
    message = await stored(w, "mine")
    a = await w.member(w.a)
    a.send("SUBSCRIBE", {"id": "topic", "destination": f"/topic/couple/{w.couple.id}"})
    b = await w.member(w.b)
    b.send("SUBSCRIBE", {"id": "events", "destination": "/user/queue/events"})
    target = str(message.id)
    change(b, w, "edit", {"messageId": target, "content": "hijacked", "tempId": "e"})
    change(b, w, "unsend", {"messageId": target, "tempId": "u"})
    assert [(e["code"], e["tempId"]) for e in await errors_of(b)] == [
        ("FORBIDDEN", "e"),
        ("FORBIDDEN", "u"),
    ]
    change(b, w, "delete", {"messageId": target}, receipt="d")
    await b.settle()
    frames = await b.frames()
    assert any(f.command == "RECEIPT" for f in frames)
    assert [body(f)["type"] for f in frames if f.get("subscription") == "events"] == [
        "MESSAGE_DELETED"
    ]
    await a.settle()
    heard = [body(f) for f in await a.frames() if f.command == "MESSAGE"]
    assert [m for m in heard if m["type"] != "SYSTEM"] == []  # b came online: nothing else
    # a resuming session of a's is told nothing either, and still sees the message
    a2 = await w.member(w.a)
    topic = f"/topic/couple/{w.couple.id}"
    a2.send("SUBSCRIBE", {"id": "t", "destination": topic, "x-resume-after-seq": "0"})
    await a2.settle()
    seen = [body(f) for f in await a2.frames() if f.command == "MESSAGE"]
    assert [(m.get("type"), m.get("content")) for m in seen] == [("TEXT", "mine")]
    assert (await w.db.messages_by_id([message.id]))[message.id] == message


async def test_a_message_of_another_couple_is_not_found_and_unchanged(w: World) -> None:
    stranger = (await w.db.get_users([w.other.user1_id]))[w.other.user1_id]
    request = SendRequest(type=MessageType.TEXT, content="theirs", image_url=None, temp_id=None)
    message = await (await w.chat.accept(stranger, w.other.id, request))
    peer = await w.member(w.a)
    actions = ("edit", "unsend", "delete", "react")
    for action in actions:
        payload = {"messageId": str(message.id), "content": "x", "emoji": "❤️", "tempId": action}
        change(peer, w, action, payload)
    errors = await errors_of(peer)
    assert [(e["code"], e["tempId"]) for e in errors] == [("NOT_FOUND", a) for a in actions]
    assert (await w.db.messages_by_id([message.id]))[message.id] == message
    assert await w.db.hides_since(w.other.id, w.a.id, 0) == []
    assert await w.db.stream_position(w.other.id) == 1
