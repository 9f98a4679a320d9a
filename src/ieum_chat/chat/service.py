"""The chat service: validate -> commit -> acknowledge -> publish.

Writer tasks (one on SQLite, ``IEUM_WRITE_CONCURRENCY`` on PostgreSQL, each owning a share of
the couples) take the pending messages and store whatever has queued up in one transaction
(group commit across couples), resolves each sender's future (the RECEIPT is
sent only then: a RECEIPT means durable), and publishes each new message once, in seq order.
A failed publish is logged, never reported as a failed send: the message is stored, and a
client that missed it catches up by seq.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ieum_chat.aio import finish_within, stop_tasks
from ieum_chat.auth import Principal, TokenVerifier
from ieum_chat.broker import Broker, SessionLimitReached
from ieum_chat.chat import codec
from ieum_chat.chat.cache import TTLCache
from ieum_chat.chat.envelope import channel_for, pack
from ieum_chat.chat.limits import RateLimiter
from ieum_chat.chat.presence import LocalPresence, Presence
from ieum_chat.chat.requests import ReadRequest, SendRequest, image_host_allowed
from ieum_chat.config import Settings
from ieum_chat.errors import (
    AuthError,
    BrokerError,
    NotFound,
    RateLimited,
    SendFailed,
    SendNotStored,
    StoreError,
    Unauthorized,
)
from ieum_chat.observability import metrics
from ieum_chat.store import Database
from ieum_chat.store.records import Couple, Message, NewMessage, User
from ieum_chat.uploads import UploadBackend

__all__ = ["ChatService", "utcnow"]

log = logging.getLogger(__name__)

MAX_BATCH = 512
WRITER_STOP_TIMEOUT = 1.0  # seconds for the writer tasks to end once cancelled


def utcnow() -> datetime:
    """Naive UTC, as stored in the plan's ``TIMESTAMP`` columns."""
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(slots=True)
class _Pending:
    new: NewMessage
    sender: User
    future: asyncio.Future[Message] = field(repr=False)
    queued_at: float = field(default_factory=time.perf_counter)


class ChatService:
    def __init__(
        self,
        db: Database,
        broker: Broker,
        settings: Settings,
        verifier: TokenVerifier,
        uploads: UploadBackend | None = None,
        *,
        presence: Presence | None = None,
    ) -> None:
        self.db = db
        self.uploads = uploads
        self.broker = broker
        self.settings = settings
        self.verifier = verifier
        self.zone = settings.zone
        self.presence: Presence = presence if presence is not None else LocalPresence()
        self.presence.set_transition_handler(self._presence_changed)
        self._couples: TTLCache[uuid.UUID, Couple] = TTLCache(100_000, ttl=300.0)
        self._users: TTLCache[uuid.UUID, User] = TTLCache(100_000, ttl=60.0)
        self._typing: TTLCache[tuple[uuid.UUID, uuid.UUID], tuple[bool, float]] = TTLCache(
            100_000, ttl=60.0
        )
        self._message_limit = RateLimiter(settings.message_rate, settings.message_burst)
        self._control_limit = RateLimiter(settings.control_rate, settings.control_burst)
        self._queues: list[asyncio.Queue[_Pending]] = []
        self._writers: list[asyncio.Task[None]] = []

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        # Several writers keep the database busy while one waits on a commit. On SQLite the
        # store serialises write transactions anyway, so one writer is all it can use.
        # Each couple always goes to the same writer, so its messages commit (and get their
        # seqs) in the order they arrived; different couples commit in parallel.
        count = 1 if self.db.dialect == "sqlite" else self.settings.write_concurrency
        size = max(1, self.settings.write_queue // count)
        self._queues = [asyncio.Queue(maxsize=size) for _ in range(count)]
        self._writers = [
            asyncio.create_task(self._write_loop(queue), name=f"chat-writer-{i}")
            for i, queue in enumerate(self._queues)
        ]

    async def close(self, grace: float = 10.0) -> None:
        """Finish the messages already queued (for at most ``grace`` seconds), then stop
        the writers. A message not committed by then gets no RECEIPT: its sender re-sends it."""
        if not self._writers:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        await finish_within(
            asyncio.gather(*(queue.join() for queue in self._queues)),
            max(0.0, deadline - loop.time() - WRITER_STOP_TIMEOUT),
            "committing the queued messages",
        )
        await stop_tasks(self._writers, WRITER_STOP_TIMEOUT, "chat writers")
        self._writers = []

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

    def is_member_cached(self, user_id: uuid.UUID, couple_id: uuid.UUID) -> bool:
        """True when the cache already knows ``user_id`` is a member: the socket's fast path
        takes a SEND without waiting; anything else goes through :meth:`member_couple`."""
        couple = self._couples.get(couple_id)
        return couple is not None and couple.has_member(user_id)

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
        (or fails with :class:`SendFailed`). Waits while the write queue is full.
        Raises :class:`RateLimited` (nothing stored) past the sender's message rate."""
        queue = self._queue_for(couple_id)
        pending = self._pending(sender, couple_id, request)
        await queue.put(pending)
        return pending.future

    def can_enqueue_now(self, couple_id: uuid.UUID) -> bool:
        """Whether :meth:`enqueue_nowait` has room for a message of this couple."""
        return not self._queue_for(couple_id).full()

    def enqueue_nowait(
        self,
        sender: User,
        couple_id: uuid.UUID,
        request: SendRequest,
    ) -> asyncio.Future[Message]:
        """:meth:`enqueue` when :meth:`can_enqueue_now` said yes (else ``asyncio.QueueFull``)."""
        queue = self._queue_for(couple_id)
        if queue.full():
            raise asyncio.QueueFull
        pending = self._pending(sender, couple_id, request)
        queue.put_nowait(pending)
        return pending.future

    def _queue_for(self, couple_id: uuid.UUID) -> asyncio.Queue[_Pending]:
        return self._queues[couple_id.int % len(self._queues)]

    def _pending(self, sender: User, couple_id: uuid.UUID, request: SendRequest) -> _Pending:
        self._check_image(couple_id, request)
        if not self._message_limit.allow(sender.id):
            raise RateLimited("too many messages; slow down", temp_id=request.temp_id)
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
        return _Pending(new, sender, asyncio.get_running_loop().create_future())

    async def _write_loop(self, queue: asyncio.Queue[_Pending]) -> None:
        while True:
            batch = [await queue.get()]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(queue.get_nowait())
                except asyncio.QueueEmpty:
                    break
            try:
                await self._commit(batch)
            finally:
                for _ in batch:
                    queue.task_done()

    async def _commit(self, batch: list[_Pending]) -> None:
        try:
            results = await self.db.append_messages([p.new for p in batch])
        except StoreError as exc:
            log.error("storing %d messages failed: %s", len(batch), exc)
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(
                        SendNotStored(
                            "the message could not be stored", temp_id=pending.new.temp_id
                        )
                    )
            return
        except Exception as exc:  # a bug: fail the batch loudly, keep the writer alive
            log.exception("unexpected failure storing %d messages", len(batch))
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(exc)
            return
        committed = time.perf_counter()
        metrics.WRITE_BATCH_SIZE.observe(len(batch))
        created = 0
        for pending, stored in zip(batch, results, strict=True):
            metrics.SEND_TO_COMMIT.observe(committed - pending.queued_at)
            created += stored.created
            if not pending.future.done():
                pending.future.set_result(stored.message)
        metrics.MESSAGES_STORED.inc(created)
        # Acknowledge, then publish: one loop turn runs the futures' done-callbacks, which
        # queue each sender's RECEIPT ahead of the broadcast of the same message.
        await asyncio.sleep(0)
        for pending, stored in zip(batch, results, strict=True):
            if stored.created:
                body = codec.message_json(stored.message, pending.sender, self.zone)
                await self._publish(stored.message.couple_id, pack(stored.message.seq, body))
        metrics.COMMIT_TO_DELIVERY.observe(time.perf_counter() - committed)

    def write_queue_depth(self) -> int:
        return sum(queue.qsize() for queue in self._queues)

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
        self._check_control_rate(reader.id)
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
            raise SendNotStored("read marks could not be stored") from exc
        if acknowledge is not None:
            acknowledge()
        if changed:
            body = codec.read_receipt_json(reader.id, changed, read_at, self.zone)
            metrics.READ_RECEIPTS.inc()
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
        self._check_control_rate(user.id)
        if acknowledge is not None:
            acknowledge()
        now = time.monotonic()
        key = (user.id, couple_id)
        last = self._typing.get(key)
        if last is not None and last[0] == typing and now - last[1] < self.settings.typing_interval:
            return False
        self._typing.put(key, (typing, now))
        body = codec.system_json("TYPING", user.id, utcnow(), self.zone, typing=typing)
        metrics.TYPING_EVENTS.inc()
        await self._publish(couple_id, pack(0, body))
        return True

    def _check_control_rate(self, user_id: uuid.UUID) -> None:
        if not self._control_limit.allow(user_id):
            raise RateLimited("too many read marks or typing events; slow down")

    async def session_opened(self, user: User) -> None:
        """Count a session of ``user`` (every device, every node together), or refuse it
        with :class:`RateLimited` when the user holds ``IEUM_MAX_SESSIONS_PER_USER`` already:
        the presence backend checks and counts in one step, so concurrent CONNECTs cannot
        all pass the check. A refused session counted nothing (no :meth:`session_closed`)."""
        limit = self.settings.max_sessions_per_user
        try:
            came_online = await self.presence.opened(user.id, limit=limit)
        except SessionLimitReached:
            raise RateLimited(f"at most {limit} sessions per user") from None
        if came_online:
            await self._presence_event("USER_CONNECTED", user.id)

    async def session_closed(self, user: User) -> None:
        if await self.presence.closed(user.id):
            await self._presence_event("USER_DISCONNECTED", user.id)

    async def _presence_changed(self, user_id: uuid.UUID, online: bool) -> None:
        """A transition the presence backend found by itself (another node's sessions
        expired, or this node's counts were re-asserted after a Redis outage)."""
        await self._presence_event("USER_CONNECTED" if online else "USER_DISCONNECTED", user_id)

    # -- history for the gateway --------------------------------------------------------

    async def last_seq(self, couple_id: uuid.UUID) -> int:
        """The seq of the couple's last committed message (0 when there is none)."""
        last = await self.db.last_message(couple_id)
        return last.seq if last is not None else 0

    async def replay(
        self, couple_id: uuid.UUID, after_seq: int, *, limit: int
    ) -> list[tuple[int, bytes]]:
        """Stored messages after ``after_seq``, ascending, as (seq, wire JSON)."""
        page = await self.db.get_messages(
            couple_id, after_seq=after_seq, limit=limit, ascending=True
        )
        senders = await self.db.get_users({m.sender_id for m in page})
        return [(m.seq, codec.message_json(m, senders.get(m.sender_id), self.zone)) for m in page]

    async def _presence_event(self, event: str, user_id: uuid.UUID) -> None:
        try:
            couple = await self.db.couple_of(user_id)
        except StoreError as exc:
            log.warning("presence %s for %s not sent: %s", event, user_id, exc)
            return
        if couple is not None:
            body = codec.system_json(event, user_id, utcnow(), self.zone)
            await self._publish(couple.id, pack(0, body))

    # -- REST ------------------------------------------------------------------------------

    async def room(self, user_id: uuid.UUID, couple_id: uuid.UUID) -> Couple:
        """Like :meth:`member_couple`, but tells :class:`NotFound` (no such couple) from
        :class:`Unauthorized` (another couple's room), as REST answers 404 and 403. STOMP keeps
        saying UNAUTHORIZED for both, revealing nothing about other couples."""
        try:
            return await self.member_couple(user_id, couple_id)
        except Unauthorized:
            if await self.db.get_couple(couple_id) is None:
                raise NotFound("no such room") from None
            raise

    def _check_image(self, couple_id: uuid.UUID, request: SendRequest) -> None:
        """An IMAGE must name a file uploaded here for this couple, unless the operator allows
        its host (``IEUM_IMAGE_HOSTS``)."""
        url = request.image_url
        if url is None:
            return
        if self.uploads is not None and self.uploads.owns(url, couple_id):
            return
        if image_host_allowed(url, self.settings.image_hosts):
            return
        raise SendFailed(
            "'imageUrl' must be an image uploaded through POST /chat/rooms/{roomId}/uploads "
            "(or on a host the server allows)",
            temp_id=request.temp_id,
        )
