"""Devices that go offline and come back converge on the history, on SQLite and PostgreSQL.

Three devices of one couple (A's phone, A's browser, B's phone) each keep a RoomView. A
device is taken offline by closing its client, and brought back by a new client that
resumes after the last seq the old one delivered, with the same view. Whatever was sent,
edited, unsent, reacted to, read or deleted meanwhile, every device ends with its view equal
to the history (REST) as its user is shown it.

Every action waits for its RECEIPT; then one more message is sent and every device reads
the stream up to its seq before the views are compared, so nothing is compared in flight.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from ieum_chat.client import ChatClient, ChatMessage, RoomView, SendError
from tests.integration.test_client import FAST, Couple
from tests.integration.test_client_lifecycle import history, sent, settle
from tests.support.server import Cli, ServerProcess


@dataclass
class Device:
    """One member's device: its view and its place in the stream outlive its connections."""

    server: ServerProcess
    couple: Couple
    who: str
    view: RoomView = field(default_factory=RoomView)
    last_seq: int = 0
    client: ChatClient | None = None

    @property
    def online(self) -> bool:
        return self.client is not None

    def connected(self) -> ChatClient:
        assert self.client is not None
        return self.client

    async def connect(self) -> None:
        if self.client is not None:
            return
        token = self.couple[f"t{self.who}"]
        self.client = ChatClient(
            self.server.ws_url,
            lambda: token,
            couple_id=self.couple["couple"],
            resume_after_seq=self.last_seq,
            view=self.view,
            **FAST,
        )
        async with asyncio.timeout(30):
            await self.client.wait_ready()

    async def disconnect(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            await client.close()
            self.last_seq = client.last_seq or 0


def devices_of(server: ServerProcess, couple: Couple) -> dict[str, Device]:
    return {
        "phone": Device(server, couple, "a"),
        "browser": Device(server, couple, "a"),
        "b": Device(server, couple, "b"),
    }


def as_shown(messages: list[ChatMessage]) -> list[ChatMessage]:
    """The messages without the stream position each was read at (``asOfSeq``), which says
    when, not what: a view and a history page read at different moments."""
    return [dataclasses.replace(m, as_of_seq=None) for m in messages]


async def converge(
    server: ServerProcess,
    couple: Couple,
    devices: dict[str, Device],
    compared: Callable[[list[ChatMessage]], list[ChatMessage]] = as_shown,
) -> None:
    """Bring every device online, send a last message, read up to it everywhere, then check
    each view against the history its user is shown (both passed through ``compared``)."""
    for device in devices.values():
        await device.connect()
    last = devices["b"].connected()
    await last.send_text("끝", temp_id="the-end")
    end = await sent(last, "the-end")
    for device in devices.values():
        await settle(device.connected(), end.seq)
    shown = {who: compared(await history(server, couple, who)) for who in ("a", "b")}
    for name, device in devices.items():
        assert compared(device.view.messages()) == shown[device.who], name


async def close_all(devices: dict[str, Device]) -> None:
    for device in devices.values():
        await device.disconnect()


async def test_an_offline_device_converges_on_the_history(
    server: ServerProcess, couple: Couple
) -> None:
    devices = devices_of(server, couple)
    phone, browser, b = devices["phone"], devices["browser"], devices["b"]
    try:
        for device in devices.values():
            await device.connect()
        p, bb = phone.connected(), b.connected()
        for i in (1, 2, 3):
            await p.send_text(f"p{i}", temp_id=f"p{i}")
        for i in (1, 2):
            await bb.send_text(f"b{i}", temp_id=f"b{i}")
        b1, b2 = await sent(p, "b1"), await sent(p, "b2")
        p1, p2, p3 = [await sent(p, f"p{i}") for i in (1, 2, 3)]
        await browser.connected().react(b1.id, "👍")
        await bb.mark_read(up_to_seq=p2.seq)
        await settle(browser.connected(), b2.seq)
        await browser.disconnect()
        held_before = browser.view.messages()
        assert [m.temp_id for m in held_before] == ["p1", "p2", "p3", "b1", "b2"]

        # Offline: everything the stream can carry, for messages the browser holds and not.
        await p.edit(p1.id, "p1 edited")
        await p.unsend(p2.id)
        await p.react(b2.id, "❤️")
        await bb.react(p1.id, "😂")
        await bb.react(p3.id, "👍")
        await bb.unreact(p3.id, "👍")
        await bb.send_text("b3 replies to p1", temp_id="b3", reply_to=p1.id)
        await p.edit(p1.id, "p1 final")  # the reply's preview follows
        await bb.delete_for_me(p3.id)  # B's: A's devices never hear of it
        await p.delete_for_me(b1.id)  # A's, of a message the browser holds
        await p.send_text("p4", temp_id="p4")
        p4 = await sent(p, "p4")
        await p.delete_for_me(p4.id)  # A's, of a message the browser never saw
        b3 = await sent(p, "b3")
        await p.react(b3.id, "🙏")
        await bb.unsend(b3.id)  # a tombstone: its reaction goes
        await p.mark_read(up_to_seq=b3.seq)  # read on the phone: the browser's marks too
        await bb.mark_read(up_to_seq=p4.seq)
        await bb.send_text("b4", temp_id="b4")

        await converge(server, couple, devices)
        held = {m.temp_id: m for m in browser.view.messages()}
        assert list(held) == ["p1", "p2", "p3", "b2", "b3", "b4", "the-end"]
        assert (held["p1"].content, held["p2"].unsent, held["b3"].unsent) == (
            "p1 final",
            True,
            True,
        )
        assert held["b2"].is_read
        assert held["b2"].reactions == (("❤️", (uuid.UUID(couple["a"]),)),)
        assert held["p1"].reactions == (("😂", (uuid.UUID(couple["b"]),)),)
        b_view = {m.temp_id for m in b.view.messages()}
        assert "p3" not in b_view
        assert "b1" in b_view

        # A device starting from nothing gets to the same place.
        fresh = {"phone": Device(server, couple, "a"), "b": Device(server, couple, "b")}
        try:
            await converge(server, couple, fresh)
        finally:
            await close_all(fresh)
        assert as_shown(fresh["phone"].view.messages()) == as_shown(phone.view.messages())
    finally:
        await close_all(devices)


async def test_a_replayed_message_keeps_the_order_of_its_reactions(
    server: ServerProcess, couple: Couple
) -> None:
    devices = devices_of(server, couple)
    try:
        for device in devices.values():
            await device.connect()
        await devices["browser"].disconnect()
        p, bb = devices["phone"].connected(), devices["b"].connected()
        await p.send_text("m", temp_id="m")
        m = await sent(p, "m")
        await p.react(m.id, "👍")
        await p.unreact(m.id, "👍")
        await p.react(m.id, "👍")
        await bb.react(m.id, "👍")  # history: A then B
        await converge(server, couple, devices)
    finally:
        await close_all(devices)


# -- any interleaving of actions, disconnects and reconnects (bounded) ---------------------

DEVICES = ("phone", "browser", "b")
device_names = st.sampled_from(DEVICES)
message_index = st.integers(0, 30)
emojis = st.sampled_from(("👍", "❤️"))

sends = st.tuples(st.just("send"), device_names, st.none() | message_index)
step = st.one_of(
    sends,
    sends,
    st.tuples(st.just("edit"), device_names, message_index),
    st.tuples(st.just("unsend"), device_names, message_index),
    st.tuples(st.just("delete"), device_names, message_index),
    st.tuples(st.just("react"), device_names, message_index, emojis),
    st.tuples(st.just("react"), device_names, message_index, emojis),
    st.tuples(st.just("unreact"), device_names, message_index, emojis),
    st.tuples(st.just("read"), device_names),
    st.tuples(st.just("offline"), device_names),
    st.tuples(st.just("online"), device_names),
    st.tuples(st.just("drop"), device_names),
)
# A few messages first, so that the changes have something to change.
actions = st.builds(
    lambda first, rest: first + rest,
    st.lists(sends, min_size=2, max_size=4),
    st.lists(step, min_size=4, max_size=24),
)

# What the server may answer an action the generator made without looking: changing the
# partner's message (FORBIDDEN), editing or reacting to an unsent one (SEND_FAILED).
EXPECTED_REFUSALS = frozenset({"FORBIDDEN", "SEND_FAILED"})


async def play(server: ServerProcess, couple: Couple, steps: list[tuple[Any, ...]]) -> None:
    devices = devices_of(server, couple)
    messages: list[uuid.UUID] = []
    try:
        for device in devices.values():
            await device.connect()
        for number, (kind, name, *args) in enumerate(steps):
            device = devices[name]
            if kind == "offline":
                await device.disconnect()
                continue
            if kind == "online":
                await device.connect()
                continue
            if not device.online:
                continue  # a closed client does nothing
            client = device.connected()
            if kind == "drop":
                await client.reconnect()  # the next actions wait in the outbox
                continue
            if kind == "read":
                await client.mark_read(up_to_seq=2**62)
                continue
            if kind == "send":
                quoted = args[0]
                reply_to = (
                    messages[quoted % len(messages)] if messages and quoted is not None else None
                )
                temp_id = f"s{number}"
                await client.send_text(f"{name} {number}", temp_id=temp_id, reply_to=reply_to)
                messages.append((await sent(client, temp_id)).id)
                continue
            if not messages:
                continue
            target = messages[args[0] % len(messages)]
            try:
                if kind == "edit":
                    await client.edit(target, f"{name} edit {number}")
                elif kind == "unsend":
                    await client.unsend(target)
                elif kind == "delete":
                    await client.delete_for_me(target)
                elif kind == "react":
                    await client.react(target, args[1])
                else:
                    await client.unreact(target, args[1])
            except SendError as exc:
                if exc.code not in EXPECTED_REFUSALS:
                    raise
        await converge(server, couple, devices)
    finally:
        await close_all(devices)


@pytest.fixture(scope="module")
def fresh_couples(cli: Cli, couple_pool: Iterator[Couple]) -> Iterator[Couple]:
    """Couples with no history, as many as asked for."""

    def endless() -> Iterator[Couple]:
        yield from couple_pool
        while True:
            yield from cli.seed(20)

    return endless()


@settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    database=None,
    phases=(Phase.explicit, Phase.generate),
    suppress_health_check=[HealthCheck.too_slow],
)
@given(steps=actions)
def test_any_interleaving_converges_on_the_history(
    server: ServerProcess, fresh_couples: Iterator[Couple], steps: list[tuple[Any, ...]]
) -> None:
    asyncio.run(play(server, next(fresh_couples), steps))
