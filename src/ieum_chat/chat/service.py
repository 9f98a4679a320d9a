"""The chat service: validate -> commit -> acknowledge -> publish.

One writer task takes every pending message, stores whatever has queued up in one
transaction (group commit across couples), resolves each sender's future (the RECEIPT is
sent only then: a RECEIPT means durable), and publishes each new message once, in seq order.
A failed publish is logged, never reported as a failed send: the message is stored, and a
client that missed it catches up by seq.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ieum_chat.auth import Principal, TokenVerifier
from ieum_chat.broker import Broker
from ieum_chat.chat import codec
from ieum_chat.chat.cache import TTLCache
from ieum_chat.chat.envelope import channel_for, pack
from ieum_chat.chat.presence import LocalPresence
from ieum_chat.chat.requests import ReadRequest, SendRequest
from ieum_chat.config import Settings
from ieum_chat.errors import AuthError, BrokerError, SendFailed, StoreError, Unauthorized
from ieum_chat.store import Database
from ieum_chat.store.records import Couple, Message, NewMessage, User

__all__ = ["ChatService", "utcnow"]

log = logging.getLogger(__name__)

MAX_BATCH = 512


def utcnow() -> datetime:
    """Naive UTC, as stored in the plan's ``TIMESTAMP`` columns."""
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(slots=True)
class _Pending:
    new: NewMessage
    sender: User
    future: asyncio.Future[Message] = field(repr=False)


class ChatService:
    def __init__(
        self,
        db: Database,
        broker: Broker,
        settings: Settings,
        verifier: TokenVerifier,
    ) -> None:
        self.db = db
        self.broker = broker
        self.settings = settings
        self.verifier = verifier
        self.zone = settings.zone
        self.presence = LocalPresence()
        self._couples: TTLCache[uuid.UUID, Couple] = TTLCache(100_000, ttl=300.0)
        self._users: TTLCache[uuid.UUID, User] = TTLCache(100_000, ttl=60.0)
        self._typing: TTLCache[tuple[uuid.UUID, uuid.UUID], tuple[bool, float]] = TTLCache(
            100_000, ttl=60.0
        )
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue(maxsize=settings.write_queue)
        self._writer: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self._writer = asyncio.create_task(self._write_loop(), name="chat-writer")

    async def close(self) -> None:
        """Finish the messages already queued, then stop the writer."""
        if self._writer is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), timeout=10.0)
        self._writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer
        self._writer = None

    # -- identity and membership ----------------------------------------------------------

    async def authenticate(self, token: str | None) -> tuple[Principal, User]:
        principal = self.verifier.verify(token, now=time.time())
        user = await self.user(principal.user_id)
        if user is None:
            raise AuthError("unknown user")
        return principal, user

    async def user(self, user_id: uuid.UUID) -> User | None:
        user = self._users.get(user_id)
        if user is None:
            user = await self.db.get_user(user_id)
            if user is not None:
                self._users.put(user_id, user)
        return user

    async def member_couple(self, user_id: uuid.UUID, couple_id: uuid.UUID) -> Couple:
        """The couple, if ``user_id`` is one of its two members; else :class:`Unauthorized`."""
        couple = self._couples.get(couple_id)
        if couple is None:
            couple = await self.db.get_couple(couple_id)
            if couple is None:
                raise Unauthorized("no such couple, or not a member")
            self._couples.put(couple_id, couple)
        if not couple.has_member(user_id):
            raise Unauthorized("not a member of this couple")
        return couple

    async def couple_of(self, user_id: uuid.UUID) -> Couple | None:
        return await self.db.couple_of(user_id)

    # -- messages --------------------------------------------------------------------------

    async def send(self, sender: User, couple_id: uuid.UUID, request: SendRequest) -> Message:
        """Store the message and return it once committed (the stored one for a repeated tempId)."""
        await self.member_couple(sender.id, couple_id)
        return await self.submit(sender, couple_id, request)

    async def submit(self, sender: User, couple_id: uuid.UUID, request: SendRequest) -> Message:
        """Queue an already-authorised message for the writer and wait for its commit."""
        return await (await self.enqueue(sender, couple_id, request))

    async def enqueue(
        self,
        sender: User,
        couple_id: uuid.UUID,
        request: SendRequest,
    ) -> asyncio.Future[Message]:
        """Queue an already-authorised message; the future resolves once it is committed
        (or fails with :class:`SendFailed`). Waits while the write queue is full."""
        new = NewMessage(
            id=uuid.uuid4(),
            couple_id=couple_id,
            sender_id=sender.id,
            type=request.type.value,
            content=request.content,
            image_url=request.image_url,
            temp_id=request.temp_id,
            created_at=utcnow(),
        )
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(new, sender, future))
        return future

    async def _write_loop(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except asyncio.QueueEmpty:
                    break
            try:
                await self._commit(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _commit(self, batch: list[_Pending]) -> None:
        try:
            results = await self.db.append_messages([p.new for p in batch])
        except StoreError as exc:
            log.error("storing %d messages failed: %s", len(batch), exc)
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(
                        SendFailed("the message could not be stored", temp_id=pending.new.temp_id)
                    )
            return
        except Exception as exc:  # a bug: fail the batch loudly, keep the writer alive
            log.exception("unexpected failure storing %d messages", len(batch))
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(exc)
            return
        for pending, stored in zip(batch, results, strict=True):
            if not pending.future.done():
                pending.future.set_result(stored.message)
        # Acknowledge, then publish: one loop turn runs the futures' done-callbacks, which
        # queue each sender's RECEIPT ahead of the broadcast of the same message.
        await asyncio.sleep(0)
        for pending, stored in zip(batch, results, strict=True):
            if stored.created:
                body = codec.message_json(stored.message, pending.sender, self.zone)
                await self._publish(stored.message.couple_id, pack(stored.message.seq, body))

    async def _publish(self, couple_id: uuid.UUID, payload: bytes) -> None:
        try:
            await self.broker.publish(channel_for(couple_id), payload)
        except BrokerError as exc:
            log.warning("publish to couple %s failed: %s", couple_id, exc)

    # -- read marks, typing, presence ------------------------------------------------------

    async def mark_read(
        self,
        reader: User,
        couple_id: uuid.UUID,
        request: ReadRequest,
        *,
        acknowledge: Callable[[], None] | None = None,
    ) -> list[Message]:
        """Store the read marks; ``acknowledge`` runs after the commit, before the
        READ_RECEIPT is published."""
        await self.member_couple(reader.id, couple_id)
        read_at = utcnow()
        try:
            changed = await self.db.mark_read(
                couple_id,
                reader.id,
                message_ids=request.message_ids,
                up_to_seq=request.up_to_seq,
                read_at=read_at,
            )
        except StoreError as exc:
            raise SendFailed("read marks could not be stored") from exc
        if acknowledge is not None:
            acknowledge()
        if changed:
            body = codec.read_receipt_json(reader.id, changed, read_at, self.zone)
            await self._publish(couple_id, pack(0, body))
        return changed

    async def typing(
        self,
        user: User,
        couple_id: uuid.UUID,
        typing: bool,
        *,
        acknowledge: Callable[[], None] | None = None,
    ) -> bool:
        """Broadcast a TYPING event unless it repeats the last one within the interval."""
        await self.member_couple(user.id, couple_id)
        if acknowledge is not None:
            acknowledge()
        now = time.monotonic()
        key = (user.id, couple_id)
        last = self._typing.get(key)
        if last is not None and last[0] == typing and now - last[1] < self.settings.typing_interval:
            return False
        self._typing.put(key, (typing, now))
        body = codec.system_json("TYPING", user.id, utcnow(), self.zone, typing=typing)
        await self._publish(couple_id, pack(0, body))
        return True

    async def session_opened(self, user: User) -> None:
        if self.presence.opened(user.id):
            await self._presence_event("USER_CONNECTED", user)

    async def session_closed(self, user: User) -> None:
        if self.presence.closed(user.id):
            await self._presence_event("USER_DISCONNECTED", user)

    async def _presence_event(self, event: str, user: User) -> None:
        try:
            couple = await self.db.couple_of(user.id)
        except StoreError as exc:
            log.warning("presence %s for %s not sent: %s", event, user.id, exc)
            return
        if couple is not None:
            body = codec.system_json(event, user.id, utcnow(), self.zone)
            await self._publish(couple.id, pack(0, body))
