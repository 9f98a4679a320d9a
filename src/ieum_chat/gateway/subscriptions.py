"""A connection's subscriptions to couple topics: live delivery in seq order, replay and catch-up.

A subscription listens on the hub first and replays from the database second (in a task the
connection owns, so the session keeps reading), holding the live messages that arrive
meanwhile; what it held is released above the replayed seq, so the client gets every message
once, with no gap at the seam. A seq that skips ahead later (a message still on its way from
another node, or published while the broker was down) starts a catch-up the same way. The
database is the source of truth; the broker only says "now".

A replay first tells the device of the messages its user hid (delete for me) since the seq it
resumes after (MESSAGE_DELETED without a seq, on ``/user/queue/events`` when the session
subscribed it), then replays the stream as that user sees it: messages as they are now, the
changes made since (each with its seq), and in the place of a message the user hid, its
MESSAGE_DELETED with the message's seq. A live entry meant for one member only (a hide) is
delivered to that member's sessions and dropped by the partner's: a session that subscribed
``/user/queue/events`` gets it there (:class:`OwnEvents` listens on its couple's channel for
it, with or without a topic subscription), any other on its topic subscription.

Replay respects the outbound bound: it writes a burst, then waits for the socket to drain
below the low-water mark before it reads or writes on, so a client that resumes from seq 0
holds at most about its bound however long the history is; one that stops taking bytes is
closed as a slow consumer (:meth:`Outlet.drained`).

A session that said which device it is (``x-device-id``) counts that device as watching the
couple (``push.watch``) from its first subscription to the couple's topic, before the
RECEIPT, until its last one ends: the delivery engine sends such a device no push.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Coroutine
from typing import Any, Protocol

from ieum_chat.chat.envelope import channel_for
from ieum_chat.chat.service import ChatService
from ieum_chat.errors import ErrorCode, StoreError
from ieum_chat.gateway.hub import Hub
from ieum_chat.gateway.routing import EVENTS_QUEUE
from ieum_chat.push.watch import DeviceWatch
from ieum_chat.store.records import User

__all__ = ["MAX_HELD", "REPLAY_PAGE", "Outlet", "OwnEvents", "Subscription", "Subscriptions"]

log = logging.getLogger(__name__)

MAX_HELD = 1024  # live messages held per subscription while it catches up
# Stored messages read per query. A message holds at most 4,000 characters (12 KB of UTF-8
# for Korean text), so a page a session may hold while it waits for its socket stays small.
REPLAY_PAGE = 50


class Outlet(Protocol):
    """What subscriptions need from their connection (the socket shell)."""

    user: User | None

    @property
    def session_id(self) -> str: ...

    @property
    def closing(self) -> bool: ...

    @property
    def replay_burst(self) -> int:
        """Bytes a replay may write before it waits for the socket to drain."""

    def push_message(self, destination: str, sub_id: str, body: bytes) -> None: ...

    def receipt(self, receipt_id: str | None, extra: tuple[tuple[str, str], ...] = ()) -> None: ...

    def overflow(self) -> None:
        """Close the session as a slow consumer."""

    def fail(
        self, code: ErrorCode, detail: str | None = None, *, receipt: str | None = None
    ) -> None:
        """ERROR (the code in ``message``, the detail in the JSON body), then close."""

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        """Run ``coro`` in a task the connection cancels when it goes."""

    async def drained(self) -> bool:
        """Wait until the peer has taken what was written, down to the low-water mark.
        False when the session closed meanwhile (a peer that took nothing for too long is
        closed as a slow consumer)."""


class Subscription:
    """One SUBSCRIBE to a couple topic: a hub listener writing MESSAGE frames for its id.

    Chat messages go out strictly in seq order, each once. A seq that skips ahead means an
    earlier message is still on its way from another node, or was published while the
    broker was down: the subscription holds what arrives and catches up from the database
    (the source of truth), then releases what it held.
    """

    __slots__ = ("catching_up", "couple_id", "destination", "held", "id", "last_seq", "owner")

    def __init__(
        self, owner: Subscriptions, sub_id: str, destination: str, couple_id: uuid.UUID
    ) -> None:
        self.owner = owner
        self.id = sub_id
        self.destination = destination
        self.couple_id = couple_id
        self.last_seq = 0  # the highest seq delivered (or, at the start, not asked for)
        self.catching_up = True  # until the first replay has run
        # What arrived while catching up; a list only while there is something (most
        # subscriptions, idle ones included, hold nothing most of the time).
        self.held: list[tuple[int, bytes, uuid.UUID | None]] | None = None

    def deliver(self, seq: int, body: bytes, audience: uuid.UUID | None = None) -> None:
        """The hub's call for every payload on the couple's channel (seq 0: not stored in the
        stream; ``audience``: for that member's sessions only)."""
        outlet = self.owner.outlet
        if audience is not None and (outlet.user is None or audience != outlet.user.id):
            return  # another member's own event (their hides): never shown to the partner
        if self.catching_up:
            self._hold(seq, body, audience)
        elif audience is not None:
            if self.owner.events is None:  # else OwnEvents delivers it on /user/queue/events
                outlet.push_message(self.destination, self.id, body)
        elif seq == 0:  # typing, presence: not stored, not ordered
            outlet.push_message(self.destination, self.id, body)
        elif seq <= self.last_seq:
            return  # delivered already (by a replay)
        elif seq == self.last_seq + 1:
            self.last_seq = seq
            outlet.push_message(self.destination, self.id, body)
        else:
            self._hold(seq, body, audience)
            self.owner.catch_up(self)

    def _hold(self, seq: int, body: bytes, audience: uuid.UUID | None) -> None:
        if self.held is None:
            self.held = []
        elif len(self.held) >= MAX_HELD:
            self.owner.outlet.overflow()
            return
        self.held.append((seq, body, audience))

    def release(self) -> None:
        """The replay is done: deliver what was held meanwhile (duplicates drop by seq)."""
        self.catching_up = False
        held, self.held = self.held, None
        for seq, body, audience in held or ():
            self.deliver(seq, body, audience)


class OwnEvents:
    """The SUBSCRIBE to ``/user/queue/events``: a hub listener on the user's couple channel
    that passes on the entries meant for this user alone (the messages they hid)."""

    __slots__ = ("couple_id", "id", "owner")

    def __init__(self, owner: Subscriptions, sub_id: str, couple_id: uuid.UUID | None) -> None:
        self.owner = owner
        self.id = sub_id
        self.couple_id = couple_id  # None: the user has no couple (nothing will come)

    def deliver(self, seq: int, body: bytes, audience: uuid.UUID | None = None) -> None:
        user = self.owner.outlet.user
        if audience is not None and user is not None and audience == user.id:
            self.owner.outlet.push_message(EVENTS_QUEUE, self.id, body)


class Subscriptions:
    """The couple-topic subscriptions of one connection, by subscription id, and its
    ``/user/queue/events`` subscription."""

    __slots__ = ("_subs", "_watched", "chat", "device", "events", "hub", "outlet", "watch")

    def __init__(
        self, outlet: Outlet, chat: ChatService, hub: Hub, watch: DeviceWatch | None = None
    ) -> None:
        self.outlet = outlet
        self.chat = chat
        self.hub = hub
        self.watch = watch
        self.device: str | None = None  # the session's x-device-id
        # A tuple, not a dict by id: most connections have one or none (a dict of one takes
        # 184 bytes, a list of one 88, a tuple of one 48), and the STOMP session bounds them
        # (64 by default); one is added or removed far less often than they are read.
        self._subs: tuple[Subscription, ...] = ()
        self._watched: set[uuid.UUID] | None = None
        self.events: OwnEvents | None = None

    async def open_events(self, sub_id: str, couple_id: uuid.UUID | None) -> None:
        """Deliver this user's own events of ``couple_id`` on ``/user/queue/events``."""
        await self.close_events()
        self.events = OwnEvents(self, sub_id, couple_id)
        if couple_id is not None:
            await self.hub.add(channel_for(couple_id), self.events)

    async def close_events(self) -> None:
        events, self.events = self.events, None
        if events is not None and events.couple_id is not None:
            await self.hub.remove(channel_for(events.couple_id), events)

    def _private(self, sub: Subscription, body: bytes) -> None:
        """A replayed entry for this user alone: on /user/queue/events, else on the topic."""
        if self.events is not None:
            self.outlet.push_message(EVENTS_QUEUE, self.events.id, body)
        else:
            self.outlet.push_message(sub.destination, sub.id, body)

    def __len__(self) -> int:
        return len(self._subs)

    def get(self, sub_id: str) -> Subscription | None:
        for sub in self._subs:
            if sub.id == sub_id:
                return sub
        return None

    def couples(self) -> set[uuid.UUID]:
        """The couples this connection listens to."""
        return {sub.couple_id for sub in self._subs}

    def notify(self, couple_id: uuid.UUID, body: bytes) -> None:
        """An event of this node's own about the couple (not from its channel, not in its
        stream) on every subscription to it, at once."""
        for sub in self._subs:
            if sub.couple_id == couple_id:
                self.outlet.push_message(sub.destination, sub.id, body)

    async def open(
        self,
        sub_id: str,
        destination: str,
        couple_id: uuid.UUID,
        *,
        after: int | None,
        receipt: str | None,
    ) -> None:
        """Listen (the RECEIPT goes out once listening), then replay from the database what
        the client asked for: ``after`` (``x-resume-after-seq``) delivers every message after
        it; ``None`` starts after the last message committed so far. Live messages that
        arrive meanwhile are held, then released above the replayed seq."""
        sub = Subscription(self, sub_id, destination, couple_id)
        self._subs = (*self._subs, sub)
        await self.hub.add(channel_for(couple_id), sub)
        await self._watch(couple_id)
        try:
            sub.last_seq = (
                after if after is not None else await self.chat.history.last_seq(couple_id)
            )
        except StoreError:
            self.outlet.fail(
                ErrorCode.HISTORY_UNAVAILABLE, "the history could not be read", receipt=receipt
            )
            return
        # Only now: a message the client sends after this RECEIPT gets a seq above last_seq.
        # x-last-seq: where this subscription starts, so that a client that knew no seq yet
        # resumes from here after a drop instead of missing what came meanwhile.
        self.outlet.receipt(receipt, (("x-last-seq", str(sub.last_seq)),))
        if after is None:
            # Nothing to replay: the position was read after the hub was listening, so every
            # entry above it is published to this subscription (and hides are only ever
            # above it); what arrived meanwhile is released in order, a gap catches up.
            sub.release()
            return
        # In a task of its own: the session goes on reading (heart-beats, SENDs) while a long
        # history waits for a slow socket; what arrives live meanwhile is held.
        self.outlet.spawn(self.replay(sub), f"replay-{self.outlet.session_id}")

    async def close(self, sub_id: str) -> None:
        sub = self.get(sub_id)
        if sub is None:
            return
        at = self._subs.index(sub)  # get found it there
        self._subs = self._subs[:at] + self._subs[at + 1 :]
        await self.hub.remove(channel_for(sub.couple_id), sub)
        if sub.couple_id not in self.couples():
            await self._unwatch(sub.couple_id)

    async def _watch(self, couple_id: uuid.UUID) -> None:
        user = self.outlet.user
        if self.watch is None or self.device is None or user is None:
            return
        if self._watched is None:
            self._watched = set()
        if couple_id not in self._watched:
            self._watched.add(couple_id)
            await self.watch.opened(couple_id, user.id, self.device)

    async def _unwatch(self, couple_id: uuid.UUID) -> None:
        user = self.outlet.user
        if self.watch is None or self.device is None or user is None or not self._watched:
            return
        if couple_id in self._watched:
            self._watched.discard(couple_id)
            await self.watch.closed(couple_id, user.id, self.device)

    async def close_all(self) -> None:
        """Stop listening (the connection is gone); never raises."""
        try:
            await self.close_events()
        except Exception:  # a broker failing to unsubscribe must not stop the teardown
            log.warning("session %s: unsubscribe failed", self.outlet.session_id)
        subs, self._subs = self._subs, ()
        for sub in subs:
            try:
                await self.hub.remove(channel_for(sub.couple_id), sub)
            except Exception:  # a broker failing to unsubscribe must not stop the teardown
                log.warning("session %s: unsubscribe failed", self.outlet.session_id)
        for couple_id in list(self._watched or ()):
            try:
                await self._unwatch(couple_id)
            except Exception:  # the counts' backend must not stop the teardown either
                log.warning("session %s: device watch not ended", self.outlet.session_id)

    def resync(self) -> None:
        """The broker may have lost messages: catch every subscription up."""
        for sub in self._subs:
            if not sub.catching_up:
                self.catch_up(sub)

    def catch_up(self, sub: Subscription) -> None:
        """Start a catch-up from the database for ``sub`` (it holds live messages meanwhile)."""
        if self.outlet.closing:
            return
        sub.catching_up = True
        self.outlet.spawn(self.replay(sub), f"catch-up-{self.outlet.session_id}")

    async def replay(self, sub: Subscription) -> None:
        """Tell of the user's hides since ``sub.last_seq``, then deliver the stream after it,
        page by page, waiting for the socket to drain after each burst; then release what
        was held meanwhile."""
        outlet = self.outlet
        user = outlet.user
        assert user is not None  # subscriptions open after CONNECT
        burst = 0

        async def paced(size: int) -> bool:
            """Count ``size`` bytes about to be written; past a burst, wait for the socket."""
            nonlocal burst
            if burst and burst + size > outlet.replay_burst:
                if not await outlet.drained():
                    return False
                burst = 0
            burst += size
            return True

        try:
            position = sub.last_seq
            after: tuple[int, uuid.UUID] | None = None
            while not outlet.closing:
                hides = await self.chat.history.hides_since(
                    sub.couple_id, user.id, position, after=after, limit=REPLAY_PAGE
                )
                for cursor, body in hides:
                    if not await paced(len(body)):
                        return
                    self._private(sub, body)
                    after = cursor
                if len(hides) < REPLAY_PAGE:
                    break
            while not outlet.closing:
                if burst:  # the next page is read only once the socket has taken this one
                    if not await outlet.drained():
                        return
                    burst = 0
                page = await self.chat.history.replay(
                    sub.couple_id, sub.last_seq, limit=REPLAY_PAGE, viewer_id=user.id
                )
                for seq, body in page:
                    if seq <= sub.last_seq:
                        continue
                    if not await paced(len(body)):
                        return
                    sub.last_seq = seq
                    outlet.push_message(sub.destination, sub.id, body)
                if len(page) < REPLAY_PAGE:
                    break
        except StoreError as exc:
            log.warning("session %s: catch-up failed: %s", outlet.session_id, exc)
            outlet.fail(ErrorCode.HISTORY_UNAVAILABLE, "the history could not be read")
            return
        if not outlet.closing:
            sub.release()
