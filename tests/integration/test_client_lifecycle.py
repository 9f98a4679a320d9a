"""The client SDK's changes of sent messages against a real server, on SQLite and PostgreSQL:
edit, unsend, delete for me, reactions and replies, their refusals, and a change whose
RECEIPT was lost, written again after a reconnect and applied once."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from ieum_chat.client import (
    ChatClient,
    ChatMessage,
    Event,
    MessageDeleted,
    MessageEdited,
    MessageUnsent,
    ReactionChanged,
    ReadReceipt,
    RoomView,
    SendError,
    parse_event,
)
from ieum_chat.stomp import Frame
from tests.integration.test_client import Couple, member, next_of, running
from tests.support.polling import eventually
from tests.support.server import ServerProcess


def viewing(server: ServerProcess, couple: Couple, who: str, **kw: Any) -> ChatClient:
    """A member's device that keeps a RoomView."""
    return member(server, couple, who, view=RoomView(), **kw)


def view(client: ChatClient) -> RoomView:
    assert client.view is not None
    return client.view


async def until(client: ChatClient, done: Callable[[], bool], timeout: float = 15.0) -> None:
    """Read the client's events until ``done()`` holds. Its view is updated as each event is
    queued, so a condition on the view is checked after every step of the stream."""
    async with asyncio.timeout(timeout):
        while not done():
            await client.next_event()


async def settle(client: ChatClient, seq: int) -> None:
    """Until the client has taken the stream up to ``seq``."""
    await until(client, lambda: (client.last_seq or 0) >= seq)


async def sent(client: ChatClient, temp_id: str) -> ChatMessage:
    """The message sent with ``temp_id``, once it reached ``client``'s view."""
    await until(client, lambda: view(client).find_temp_id(temp_id) is not None)
    found = view(client).find_temp_id(temp_id)
    assert found is not None
    return found


def shown(messages: list[ChatMessage]) -> list[ChatMessage]:
    """The messages without the stream position each was read at (``asOfSeq``), which says
    when, not what: a view and a history page are read at different moments."""
    return [dataclasses.replace(m, as_of_seq=None) for m in messages]


async def history(server: ServerProcess, couple: Couple, who: str) -> list[ChatMessage]:
    """The couple's messages as REST shows them to ``who`` (``a`` or ``b``), oldest first."""
    async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as http:
        response = await http.get(
            f"/chat/rooms/{couple['couple']}/messages",
            params={"order": "asc", "limit": 100},
            headers={"Authorization": f"Bearer {couple[f't{who}']}"},
        )
    assert response.status_code == 200, response.text
    page = response.json()
    assert not page["hasMore"]
    messages = [parse_event(orjson.dumps(m)) for m in page["messages"]]
    assert all(isinstance(m, ChatMessage) for m in messages)
    return messages  # type: ignore[return-value]


async def events_until(client: ChatClient, temp_id: str) -> list[Event]:
    """Every event up to and including the message sent with ``temp_id``."""
    seen: list[Event] = []
    async with asyncio.timeout(15):
        while True:
            event = await client.next_event()
            seen.append(event)
            if isinstance(event, ChatMessage) and event.temp_id == temp_id:
                return seen


async def test_edit_react_reply_read_and_unsend_reach_both_members(
    server: ServerProcess, couple: Couple
) -> None:
    a, b = viewing(server, couple, "a"), viewing(server, couple, "b")
    user_a, user_b = uuid.UUID(couple["a"]), uuid.UUID(couple["b"])
    async with running(a, b):
        await a.send_text("원래 글", temp_id="m1")
        m1 = await sent(a, "m1")

        receipt = await a.edit(m1.id, "고친 글", temp_id="e1")
        assert (receipt.temp_id, receipt.attempts) == ("e1", 1)
        edited: MessageEdited = await next_of(b, MessageEdited)
        assert (edited.message_id, edited.user_id, edited.temp_id) == (m1.id, user_a, "e1")
        assert edited.content == "고친 글"
        assert edited.seq > m1.seq

        await b.react(m1.id, "❤️")
        await a.react(m1.id, "👍")
        await a.react(m1.id, "❤️")
        await a.react(m1.id, "❤️")  # already there: a RECEIPT, no event
        await b.unreact(m1.id, "❤️")
        reactions = [await next_of(a, ReactionChanged) for _ in range(4)]
        assert [(r.emoji, r.user_id, r.added) for r in reactions] == [
            ("❤️", user_b, True),
            ("👍", user_a, True),
            ("❤️", user_a, True),
            ("❤️", user_b, False),
        ]
        await settle(a, reactions[-1].seq)
        await settle(b, reactions[-1].seq)
        held, held_by_b = view(a).get(m1.id), view(b).get(m1.id)
        assert held is not None
        assert held_by_b is not None
        # The same message; asOfSeq may differ (b may have read it in its first replay,
        # after the edit, where a got it live).
        assert shown([held]) == shown([held_by_b])
        assert (held.content, held.reactions) == ("고친 글", (("❤️", (user_a,)), ("👍", (user_a,))))

        await b.send_text("답장", temp_id="r1", reply_to=m1.id)
        reply = await sent(a, "r1")
        assert reply.reply_to is not None
        assert (reply.reply_to.message_id, reply.reply_to.sender_id) == (m1.id, user_a)
        assert (reply.reply_to.preview, reply.reply_to.unsent) == ("고친 글", False)

        await a.mark_read(up_to_seq=reply.seq)
        read: ReadReceipt = await next_of(b, ReadReceipt)
        assert (read.reader_id, read.message_ids) == (user_a, (reply.id,))
        assert read.seq is not None

        await a.unsend(m1.id, temp_id="u1")
        unsent: MessageUnsent = await next_of(b, MessageUnsent)
        assert (unsent.message_id, unsent.temp_id) == (m1.id, "u1")
        await settle(a, unsent.seq)
        await settle(b, unsent.seq)

        tombstone = view(b).get(m1.id)
        assert tombstone is not None
        assert (tombstone.unsent, tombstone.content, tombstone.reactions) == (True, None, ())
        quoted = view(b).get(reply.id)
        assert quoted is not None
        assert quoted.reply_to is not None
        assert (quoted.reply_to.preview, quoted.reply_to.unsent, quoted.is_read) == (
            None,
            True,
            True,
        )
        assert shown(view(a).messages()) == shown(await history(server, couple, "a"))
        assert shown(view(b).messages()) == shown(await history(server, couple, "b"))
        assert a.pending_sends == b.pending_sends == 0


async def test_delete_for_me_reaches_the_users_other_devices_only(
    server: ServerProcess, couple: Couple
) -> None:
    phone, browser = viewing(server, couple, "a"), viewing(server, couple, "a")
    b = viewing(server, couple, "b")
    async with running(phone, browser, b):
        await b.send_text("지울 글", temp_id="x")
        await b.send_text("남길 글", temp_id="y")
        x = await sent(phone, "x")
        await sent(browser, "y")

        await phone.delete_for_me(x.id)
        gone: MessageDeleted = await next_of(browser, MessageDeleted)
        assert (gone.message_id, gone.user_id, gone.seq) == (x.id, uuid.UUID(couple["a"]), None)
        await until(phone, lambda: x.id not in view(phone))
        assert x.id not in view(browser)
        await phone.delete_for_me(x.id)  # again: nothing more to do, still a RECEIPT

        await b.send_text("다음", temp_id="z")
        # Published before "z" if at all: the partner never hears of it.
        assert not any(isinstance(e, MessageDeleted) for e in await events_until(b, "z"))
        assert x.id in view(b)
        await sent(phone, "z")
        await sent(browser, "z")
        mine = await history(server, couple, "a")
        assert [m.temp_id for m in mine] == ["y", "z"]
        assert shown(view(phone).messages()) == shown(view(browser).messages()) == shown(mine)
        assert [m.temp_id for m in await history(server, couple, "b")] == ["x", "y", "z"]


async def test_refused_changes_raise_send_error(server: ServerProcess, couple: Couple) -> None:
    a, b = viewing(server, couple, "a"), viewing(server, couple, "b")
    unknown = uuid.uuid4()
    async with running(a, b):
        await a.send_text("내 글", temp_id="mine")
        mine = await sent(a, "mine")
        await b.send_sticker("bear-01", temp_id="sticker")
        sticker = await sent(a, "sticker")

        refusals: list[tuple[str, Any]] = [
            ("FORBIDDEN", b.edit(mine.id, "남의 글", temp_id="t1")),
            ("FORBIDDEN", b.unsend(mine.id, temp_id="t2")),
            ("NOT_FOUND", a.edit(unknown, "없는 글", temp_id="t3")),
            ("NOT_FOUND", a.react(unknown, "👍", temp_id="t4")),
            ("NOT_FOUND", a.send_text("답장", temp_id="t5", reply_to=unknown)),
            ("SEND_FAILED", a.edit(mine.id, "   ", temp_id="t6")),
            ("SEND_FAILED", a.edit(mine.id, "x" * 4001, temp_id="t7")),
            ("SEND_FAILED", b.edit(sticker.id, "not text", temp_id="t8")),
            ("SEND_FAILED", a.react(mine.id, "ok", temp_id="t9")),
            ("SEND_FAILED", a.react(mine.id, "👍👍", temp_id="t10")),
        ]
        for code, call in refusals:
            with pytest.raises(SendError) as info:
                await call
            assert (info.value.code, info.value.transient) == (code, False), info.value
        with pytest.raises(SendError) as deleted:
            await a.delete_for_me(unknown)
        assert deleted.value.code == "NOT_FOUND"

        await a.unsend(mine.id)
        for call in (a.edit(mine.id, "되살리기"), a.react(mine.id, "👍")):
            with pytest.raises(SendError) as info:
                await call
            assert info.value.code == "SEND_FAILED"
        assert a.pending_sends == b.pending_sends == 0
        assert (a.stats.send_failures, b.stats.send_failures) == (10, 3)
        assert [m.temp_id for m in await history(server, couple, "a")] == ["mine", "sticker"]


Changed = (MessageEdited, ReactionChanged)


class LosingChangeReceipts(ChatClient):
    """Drops the RECEIPTs of its outbox while ``lose`` is set, as a connection that dies
    between the commit and the RECEIPT would."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lose = False
        self.lost = 0

    def _on_frame(self, frame: Frame) -> None:
        outbox_receipt = (frame.get("receipt-id") or "").startswith("s-")
        if self.lose and frame.command == "RECEIPT" and outbox_receipt:
            self.lost += 1
            return
        super()._on_frame(frame)


async def test_a_change_whose_receipt_was_lost_is_applied_once(
    server: ServerProcess, couple: Couple
) -> None:
    a = member(server, couple, "a", LosingChangeReceipts, view=RoomView())
    b = viewing(server, couple, "b")
    assert isinstance(a, LosingChangeReceipts)
    async with running(a, b):
        await a.send_text("원래 글", temp_id="m1")
        m1 = await sent(b, "m1")
        a.lose = True
        calls = [
            asyncio.create_task(a.edit(m1.id, "고친 글", temp_id="e1")),
            asyncio.create_task(a.react(m1.id, "❤️", temp_id="r1")),
            asyncio.create_task(a.unreact(m1.id, "❤️", temp_id="r2")),
            asyncio.create_task(a.react(m1.id, "👍", temp_id="r3")),
        ]
        kinds = [await next_of(b, Changed) for _ in range(4)]
        # Each RECEIPT left before its change's event, but on a's socket, not b's: a may read
        # the last of them after b has read the event.
        await eventually(lambda: a.lost == 4)
        assert not any(call.done() for call in calls)  # stored, but never acknowledged
        a.lose = False
        await a.reconnect()
        receipts = await asyncio.wait_for(asyncio.gather(*calls), 30)
        assert [(r.temp_id, r.attempts) for r in receipts] == [
            ("e1", 2),
            ("r1", 2),
            ("r2", 2),
            ("r3", 2),
        ]
        assert a.stats.resent == 4

        await a.send_text("끝", temp_id="end")
        again = await events_until(b, "end")
        # The second writes were answered from the stored changes, not applied again.
        assert not any(isinstance(e, Changed) for e in again)
        assert [type(e) for e in kinds] == [MessageEdited] + [ReactionChanged] * 3
        await sent(a, "end")
        expected = shown(await history(server, couple, "a"))
        assert shown(view(a).messages()) == shown(view(b).messages()) == expected
        held = view(b).get(m1.id)
        assert held is not None
        assert (held.content, held.reactions) == ("고친 글", (("👍", (uuid.UUID(couple["a"]),)),))
