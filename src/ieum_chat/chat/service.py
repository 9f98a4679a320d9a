"""The chat service: who may chat (identity, membership, the directory feed), the requests of
members (send, change, read marks, typing) checked and queued to the write pipeline
(``chat.pipeline``: commit, acknowledge, publish), presence, and the read side
(``chat.history``) and the app backend's operations (``chat.lifecycle``) it holds.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from ieum_chat.auth import Principal, TokenVerifier
from ieum_chat.broker import Broker, SessionLimitReached
from ieum_chat.chat import codec
from ieum_chat.chat.cache import TTLCache
from ieum_chat.chat.directory import DirectoryWatcher, RevocationHandler
from ieum_chat.chat.envelope import pack
from ieum_chat.chat.history import History
from ieum_chat.chat.lifecycle import Lifecycle
from ieum_chat.chat.limits import RateLimiter
from ieum_chat.chat.media import MediaService
from ieum_chat.chat.pending import (
    Acknowledge,
    PendingChange,
    PendingMessage,
)
from ieum_chat.chat.pipeline import WritePipeline
from ieum_chat.chat.presence import LocalPresence, Presence
from ieum_chat.chat.requests import ChangeRequest, ReadRequest, SendRequest
from ieum_chat.config import Settings
from ieum_chat.errors import (
    AccountDeleted,
    AuthError,
    NotFound,
    RateLimited,
    StoreError,
    Unauthorized,
)
from ieum_chat.observability import metrics
from ieum_chat.store import Database
from ieum_chat.store.records import (
    SYSTEM_USER_ID,
    SYSTEM_USER_NAME,
    Applied,
    ChangeKind,
    Couple,
    Media,
    Message,
    NewChange,
    NewMessage,
    User,
    new_message_id,
)
from ieum_chat.store.schema import utcnow
from ieum_chat.uploads import UploadBackend

__all__ = ["ChatService"]

log = logging.getLogger(__name__)


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
        # Kept until the directory feed says the row changed (the TTL only bounds how long
        # a node that cannot read the feed trusts an entry).
        self._couples: TTLCache[uuid.UUID, Couple] = TTLCache(100_000, ttl=300.0)
        self._users: TTLCache[uuid.UUID, User] = TTLCache(100_000, ttl=60.0)
        # Bumped whenever cached entries are forgotten: a lookup that started before only
        # fills the cache if nothing was forgotten meanwhile (its row may be the old one).
        self._directory_epoch = 0
        self.directory = DirectoryWatcher(db, self._forget)
        # The app backend's operations on users and couples, and the daily purge.
        self.lifecycle = Lifecycle(db, uploads, settings, changed=self.directory.wake)
        # Upload tickets, checks and publication, what media messages name, the cleanup.
        self.media = MediaService(db, uploads, settings)
        # The read side: the stream and history as a member sees them, rendered.
        self.history = History(db, self.user, self.zone)
        self._typing: TTLCache[tuple[uuid.UUID, uuid.UUID], tuple[bool, float]] = TTLCache(
            100_000, ttl=60.0
        )
        self._message_limit = RateLimiter(settings.message_rate, settings.message_burst)
        self._control_limit = RateLimiter(settings.control_rate, settings.control_burst)
        # Commit, acknowledge, publish: every message, change and event goes through it.
        self.pipeline = WritePipeline(db, broker, settings, self.zone)

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        await self.pipeline.start()
        await self.directory.start()
        await self.lifecycle.start()
        await self.media.start()

    async def close(self, grace: float = 10.0) -> None:
        """Stop the purge schedule and the directory reader, then finish the queued messages
        (:meth:`WritePipeline.close`, within ``grace`` seconds)."""
        if not self.pipeline.started:
            return
        await self.lifecycle.close()
        await self.media.close()
        await self.directory.close()
        await self.pipeline.close(grace)

    # -- identity and membership ----------------------------------------------------------

    async def authenticate(self, token: str | None) -> tuple[Principal, User]:
        principal = self.verifier.verify(token, now=time.time())
        user = await self._user_row(principal.user_id)
        if user is None or user.id == SYSTEM_USER_ID:
            raise AuthError("unknown user")
        if user.deleted_at is not None:
            raise AccountDeleted("this account was deleted")
        return principal, user

    async def user(self, user_id: uuid.UUID) -> User | None:
        """The user, unless there is none or the account was deleted."""
        user = await self._user_row(user_id)
        return None if user is None or user.deleted_at is not None else user

    async def _user_row(self, user_id: uuid.UUID) -> User | None:
        user = self._users.get(user_id)
        if user is None:
            epoch = self._directory_epoch
            user = await self.db.get_user(user_id)
            if user is not None and epoch == self._directory_epoch:
                # Keyed by the record's own id (equal to user_id): the caller's copy, parsed
                # from a token, is not kept alive by the cache for every connected user.
                self._users.put(user.id, user)
        return user

    def set_revocation_handler(self, handler: RevocationHandler | None) -> None:
        """Call ``handler`` (on the event loop) when users or couples lose access: deleted or
        re-paired on any node, by anyone, within about a second (the directory feed)."""
        self.directory.handler = handler

    def _forget(self, users: set[uuid.UUID], couples: set[uuid.UUID]) -> None:
        """Drop cached users and couples that changed (both empty: everything)."""
        self._directory_epoch += 1
        if not users and not couples:
            self._users.clear()
            self._couples.clear()
            return
        for user_id in users:
            self._users.discard(user_id)
        for couple_id in couples:
            self._couples.discard(couple_id)

    async def member_couple(self, user_id: uuid.UUID, couple_id: uuid.UUID) -> Couple:
        """The couple, if ``user_id`` is one of its two members; else :class:`Unauthorized`.
        A member of a dissolved couple gets :class:`NotFound`: the couple is closed."""
        couple = self._couples.get(couple_id)
        if couple is None:
            epoch = self._directory_epoch
            couple = await self.db.get_couple(couple_id)
            if couple is None:
                raise Unauthorized("no such couple, or not a member")
            if epoch == self._directory_epoch:
                couple = self._held(couple)
                self._couples.put(couple.id, couple)  # its own id, as for users
        if not couple.has_member(user_id):
            raise Unauthorized("not a member of this couple")
        if not couple.active:
            raise NotFound("this couple was dissolved")
        return couple

    def _held(self, couple: Couple) -> Couple:
        """``couple`` made of what the caches hold already: the cached record when equal (the
        two members subscribing at once read it twice), else the record with its members'
        ids taken from the cached users. A couple's sessions then share one record and one
        id object per user, about 100 bytes less an idle session."""
        held = self._couples.get(couple.id)
        if held == couple:
            return held
        one, two = self._users.get(couple.user1_id), self._users.get(couple.user2_id)
        if one is None and two is None:
            return couple
        return dataclasses.replace(
            couple,
            user1_id=couple.user1_id if one is None else one.id,
            user2_id=couple.user2_id if two is None else two.id,
        )

    async def couple_of(self, user_id: uuid.UUID) -> Couple | None:
        return await self.db.couple_of(user_id)

    # -- messages --------------------------------------------------------------------------

    def try_accept(
        self,
        sender: User,
        couple_id: uuid.UUID,
        request: SendRequest,
        *,
        acknowledge: Acknowledge | None = None,
    ) -> asyncio.Future[Message] | None:
        """Queue a message for commit without waiting, when nothing has to be waited for:
        the sender is known (cached) to be a member and the couple's write queue has room.
        The future resolves once the message is committed (the stored one for a repeated
        tempId) or fails with :class:`SendFailed`. ``None``: call :meth:`accept`, which may
        wait. Raises :class:`Unauthorized` (a known non-member), :class:`RateLimited` past the
        sender's message rate, :class:`SendFailed` for an image we do not serve."""
        couple = self._couples.get(couple_id)
        if couple is None or not couple.active or request.reply_to is not None:
            return None
        if request.file_url is not None:  # its upload is looked up
            return None
        if not couple.has_member(sender.id):
            raise Unauthorized("not a member of this couple", temp_id=request.temp_id)
        if not self.pipeline.has_room(couple_id):
            return None
        pending = self._pending(sender, couple_id, request, acknowledge=acknowledge)
        self.pipeline.put_nowait(pending)
        return pending.future

    async def accept(
        self,
        sender: User,
        couple_id: uuid.UUID,
        request: SendRequest,
        *,
        acknowledge: Acknowledge | None = None,
    ) -> asyncio.Future[Message]:
        """:meth:`try_accept` when it may wait: for the membership lookup and for room in
        the write queue (bounded), never for the commit; the same future and errors, and
        :class:`NotFound` for a ``replyTo`` that is not a message of this couple. Every send
        goes through one of the two (STOMP, SockJS and REST alike)."""
        try:
            await self.member_couple(sender.id, couple_id)
        except (Unauthorized, NotFound) as exc:
            exc.temp_id = request.temp_id
            raise
        quoted: Message | None = None
        if request.reply_to is not None:
            quoted = (await self.db.messages_by_id([request.reply_to])).get(request.reply_to)
            if quoted is None or quoted.couple_id != couple_id:
                raise NotFound(
                    f"'replyTo': no message {request.reply_to} in this couple",
                    temp_id=request.temp_id,
                )
        media_url, media = await self.media.attach(couple_id, request)
        pending = self._pending(
            sender,
            couple_id,
            request,
            acknowledge=acknowledge,
            quoted=quoted,
            media_url=media_url,
            media=media,
        )
        await self.pipeline.put(pending)
        return pending.future

    async def notice(self, couple_id: uuid.UUID, request: SendRequest) -> Message:
        """Store and broadcast a notice of the app's backend (type NOTICE, from the system
        sender) in the couple's stream, as a member's message is: the same writer queue,
        tempId idempotency and publication. :class:`NotFound` for a couple that does not
        exist or was dissolved."""
        couple = await self.db.get_couple(couple_id)
        if couple is None or not couple.active:
            raise NotFound("no such couple, or it was dissolved", temp_id=request.temp_id)
        await self.db.ensure_system_user()
        system = User(SYSTEM_USER_ID, SYSTEM_USER_NAME, None)
        new = NewMessage(
            id=new_message_id(),
            couple_id=couple_id,
            sender_id=SYSTEM_USER_ID,
            type=request.type.value,
            content=request.content,
            image_url=None,
            temp_id=request.temp_id,
            created_at=utcnow(),
        )
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        await self.pipeline.put(PendingMessage(new=new, sender=system, quoted=None, future=future))
        message = await future
        if message.id == new.id:  # not a retry answered with the notice stored before
            metrics.LIFECYCLE_EVENTS.labels("notice").inc()
        return message

    async def change(
        self,
        user: User,
        couple_id: uuid.UUID,
        request: ChangeRequest,
        *,
        acknowledge: Acknowledge | None = None,
    ) -> asyncio.Future[Applied]:
        """Queue a change of a sent message (edit, unsend, delete for me, reaction) behind
        the couple's messages; the future resolves once it is committed (an :class:`Applied`)
        or fails: :class:`NotFound` (no such message in this couple), :class:`Forbidden` (not
        the sender's), :class:`WindowExpired`, :class:`SendFailed` (the message cannot take
        it). Raises :class:`Unauthorized` (not a member) and :class:`RateLimited` at once."""
        try:
            await self.member_couple(user.id, couple_id)
        except (Unauthorized, NotFound) as exc:
            exc.temp_id = request.temp_id
            raise
        if not self._message_limit.allow(user.id):
            raise RateLimited("too many messages and changes; slow down", temp_id=request.temp_id)
        new = NewChange(
            request.kind,
            couple_id,
            user.id,
            utcnow(),
            message_id=request.message_id,
            temp_id=request.temp_id,
            content=request.content,
            emoji=request.emoji,
            add=request.add,
        )
        return await self._queue_change(new, acknowledge)

    async def _queue_change(
        self, new: NewChange, acknowledge: Acknowledge | None
    ) -> asyncio.Future[Applied]:
        future: asyncio.Future[Applied] = asyncio.get_running_loop().create_future()
        await self.pipeline.put(PendingChange(new=new, future=future, acknowledge=acknowledge))
        return future

    def _pending(
        self,
        sender: User,
        couple_id: uuid.UUID,
        request: SendRequest,
        *,
        acknowledge: Acknowledge | None = None,
        quoted: Message | None = None,
        media_url: str | None = None,
        media: Media | None = None,
    ) -> PendingMessage:
        if not self._message_limit.allow(sender.id):
            raise RateLimited("too many messages; slow down", temp_id=request.temp_id)
        new = NewMessage(
            id=new_message_id(),
            couple_id=couple_id,
            sender_id=sender.id,
            type=request.type.value,
            content=request.content,
            image_url=request.image_url,
            temp_id=request.temp_id,
            created_at=utcnow(),
            reply_to_id=request.reply_to,
            media_url=media_url,
            media=media,
        )
        future = asyncio.get_running_loop().create_future()
        return PendingMessage(
            new=new, sender=sender, quoted=quoted, future=future, acknowledge=acknowledge
        )

    # -- read marks, typing, presence ------------------------------------------------------

    async def mark_read(
        self,
        reader: User,
        couple_id: uuid.UUID,
        request: ReadRequest,
        *,
        acknowledge: Callable[[], None] | None = None,
    ) -> Applied:
        """Mark read (a READ change, in the couple's stream behind its messages);
        ``acknowledge`` runs after the commit, before the READ_RECEIPT is published. The
        outcome's ``messages`` are those marked (none: nothing was unread, and no event)."""
        await self.member_couple(reader.id, couple_id)
        self._check_control_rate(reader.id)
        new = NewChange(
            ChangeKind.READ,
            couple_id,
            reader.id,
            utcnow(),
            message_ids=request.message_ids,
            up_to_seq=request.up_to_seq,
        )

        def acknowledged(future: asyncio.Future[Any]) -> None:
            if acknowledge is not None and not future.cancelled() and future.exception() is None:
                acknowledge()

        return await (await self._queue_change(new, acknowledged))

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
        await self.pipeline.publish(couple_id, pack(0, body))
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

    async def _presence_event(self, event: str, user_id: uuid.UUID) -> None:
        try:
            couple = await self.db.couple_of(user_id)
        except StoreError as exc:
            log.warning("presence %s for %s not sent: %s", event, user_id, exc)
            return
        if couple is not None:
            body = codec.system_json(event, user_id, utcnow(), self.zone)
            await self.pipeline.publish(couple.id, pack(0, body))

    # -- REST ------------------------------------------------------------------------------

    async def room(self, user_id: uuid.UUID, couple_id: uuid.UUID) -> Couple:
        """Like :meth:`member_couple`, but tells :class:`NotFound` (no such couple) from
        :class:`Unauthorized` (another couple's room), as REST answers 404 and 403. STOMP keeps
        saying UNAUTHORIZED for both, revealing nothing about other couples."""
        try:
            return await self.member_couple(user_id, couple_id)
        except Unauthorized as exc:
            refused = exc  # looked into after the handler (see ieum_chat._build)
        if await self.db.get_couple(couple_id) is None:
            raise NotFound("no such room")  # outside the handler: no exception to chain
        raise refused
