"""What a connection does with each STOMP event: CONNECT, SUBSCRIBE, UNSUBSCRIBE, SEND,
DISCONNECT (ACK and NACK are accepted: every subscription is auto-ack).

SENDs to ``/read``, ``/typing`` and the changes of a sent message (``/edit``, ``/unsend``,
``/delete``, ``/react``) are handled in order, each waiting for its commit: their RECEIPT
(or error payload, with the change's tempId) comes before the event is published.

:meth:`Dispatcher.handle` does at once whatever needs no waiting and returns ``None``, or
returns the rest as an awaitable the connection runs before the next frame (frames are
handled in order). The common SEND (membership cached, room in the write queue) is queued
here without a task: the destination is parsed, the message counted and its body validated
once, then :meth:`ChatService.try_accept` queues it, or its waiting fallback
:meth:`ChatService.accept` does, in order.

A RECEIPT for a SEND is written when its commit resolves (a RECEIPT means durable), so a
client may pipeline SENDs; at most ``MAX_INFLIGHT_SENDS`` of a session await their commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from ieum_chat.auth import Principal, bearer_token
from ieum_chat.chat import codec
from ieum_chat.chat.requests import (
    SendRequest,
    parse_change_request,
    parse_read_request,
    parse_send_request,
    parse_seq,
    parse_typing_request,
)
from ieum_chat.errors import (
    AuthError,
    ChatError,
    ErrorCode,
    SendFailed,
    SendNotStored,
    StoreError,
    Unauthorized,
)
from ieum_chat.gateway.routing import (
    CHANGE_ROUTES,
    ERRORS_QUEUE,
    Route,
    Target,
    parse_app_destination,
    parse_subscription,
)
from ieum_chat.gateway.subscriptions import Subscriptions
from ieum_chat.observability import metrics
from ieum_chat.stomp import (
    Ack,
    ConnectRequested,
    Disconnect,
    Nack,
    Send,
    SessionState,
    Subscribe,
    Unsubscribe,
)
from ieum_chat.store.devices import DEVICE_ID_MAX
from ieum_chat.store.records import Message, User

if TYPE_CHECKING:
    from ieum_chat.gateway.connection import StompConnection

__all__ = ["MAX_INFLIGHT_SENDS", "RESUME_HEADER", "Dispatcher"]

MAX_INFLIGHT_SENDS = 64
RESUME_HEADER = "x-resume-after-seq"
# Bound once: labels() looks the child up under a lock on every call.
_RECEIVED_OVER_STOMP = metrics.counter_tally(metrics.MESSAGES_RECEIVED.labels("stomp"))


class Dispatcher:
    """The chat side of one connection: its user's requests, in the order they came."""

    # Slots: one per connection, thousands per process.
    __slots__ = (
        "_announced",
        "_conn",
        "_handshake",
        "_inflight",
        "errors_sub",
        "subscriptions",
    )

    def __init__(
        self,
        conn: StompConnection,
        subscriptions: Subscriptions,
        handshake: tuple[Principal, User] | None,
    ) -> None:
        self._conn = conn
        self.subscriptions = subscriptions
        self._handshake = handshake  # identity proven by the upgrade request's token
        self.errors_sub: str | None = None
        # Created on first use: most connections are idle most of the time.
        self._inflight: list[asyncio.Future[Message]] | None = None
        self._announced = False

    def handle(self, event: object) -> Awaitable[None] | None:
        """Handle ``event`` now if nothing has to be waited for (``None``), else return what
        is left to run before the next event."""
        if isinstance(event, Send):
            return self._on_send(event)
        if isinstance(event, Ack | Nack):  # nothing to do: every subscription is auto-ack
            self._conn.receipt(event.receipt)
            return None
        if isinstance(event, Subscribe):
            return self._setting_up(self._on_subscribe(event), event.receipt)
        if isinstance(event, Unsubscribe):
            return self._guarded(self._on_unsubscribe(event), event.receipt)
        if isinstance(event, ConnectRequested):
            return self._setting_up(self._on_connect(event), _header(event.headers, "receipt"))
        if isinstance(event, Disconnect):
            return self._on_disconnect(event)
        return None

    async def _setting_up(self, work: Coroutine[Any, Any, None], receipt: str | None) -> None:
        """A CONNECT or SUBSCRIBE: the database work of setting a session up. The node counts
        those in progress; past ``IEUM_ADMISSION_BACKLOG`` it admits no new session (see
        ``admission.admit``), so a storm queues no longer than the clients wait."""
        gateway = self._conn.gateway
        gateway.setups += 1
        try:
            await self._guarded(work, receipt)
        finally:
            gateway.setups -= 1

    async def _guarded(self, work: Coroutine[Any, Any, None], receipt: str | None) -> None:
        try:
            await work
        except StoreError as exc:
            # The database failed under a membership or identity lookup: the client did
            # nothing wrong. A session that is not yet connected is closed (it reconnects);
            # otherwise the frame is refused with an error payload and the session goes on.
            conn = self._conn
            conn.log.warning("session %s: database unavailable: %s", conn.session_id, exc)
            if conn.user is None:
                conn.fail(ErrorCode.SEND_FAILED, "database unavailable; retry", receipt=receipt)
            else:
                self.send_error(SendNotStored("database unavailable; retry"))

    def claimed_user(self) -> User | None:
        """The session's user, or before CONNECT the one the handshake's token proved."""
        if self._conn.user is not None:
            return self._conn.user
        return self._handshake[1] if self._handshake is not None else None

    # -- CONNECT --------------------------------------------------------------------------

    async def _on_connect(self, event: ConnectRequested) -> None:
        conn = self._conn
        chat = conn.gateway.chat
        receipt = _header(event.headers, "receipt")
        token = _connect_token(event.headers)
        try:
            if token is not None:
                principal, user = await chat.authenticate(token)
            elif self._handshake is not None:
                principal, user = self._handshake
                if principal.expires_at <= time.time():
                    raise AuthError("token expired")
            else:
                raise AuthError("missing token")
        except AuthError as exc:
            conn.log.info("session %s: authentication failed: %s", conn.session_id, exc.detail)
            metrics.AUTH_FAILURES.labels("connect").inc()
            conn.fail(exc.code, exc.detail or None, receipt=receipt)
            return
        if conn.closing:
            return  # ended while the user was looked up
        self._handshake = None
        # Counted (or refused past the per-user limit, across every node) before CONNECTED
        # goes out; a teardown meanwhile gives the place back (closed() reads _announced).
        conn.user, self._announced = user, True
        self.subscriptions.device = _device_id(event.headers)
        try:
            await chat.session_opened(user)
        except ChatError as exc:
            conn.user, self._announced = None, False
            conn.log.info("session %s: refused: %s", conn.session_id, exc.detail)
            conn.fail(exc.code, exc.detail or None, receipt=receipt)
            return
        if conn.closing:
            # Its deadline (or the peer) ended the session while the database answered:
            # nothing goes out; the teardown gives the counted session back.
            return
        session = conn.session
        conn.push(
            session.accept(
                time.monotonic(), (("session", conn.session_id), ("user-name", str(user.id)))
            )
        )
        session.set_expiry(time.monotonic() + (principal.expires_at - time.time()))
        conn.schedule_timer()
        conn.log.info(
            "session %s: user %s connected over %s (STOMP %s)",
            conn.session_id,
            user.id,
            conn.transport_name,
            session.version,
        )

    # -- SUBSCRIBE / UNSUBSCRIBE ----------------------------------------------------------

    async def _on_subscribe(self, event: Subscribe) -> None:
        conn = self._conn
        target = parse_subscription(event.destination)
        if target is None:
            conn.fail(
                ErrorCode.NO_SUCH_DESTINATION,
                f"no such destination: {event.destination[:100]}",
                receipt=event.receipt,
            )
            return
        if target.route is Route.ERRORS:
            self.errors_sub = event.id
            conn.receipt(event.receipt)
            return
        if target.route is Route.EVENTS:
            assert conn.user is not None
            couple = await conn.gateway.chat.couple_of(conn.user.id)
            await self.subscriptions.open_events(event.id, couple.id if couple else None)
            conn.receipt(event.receipt)
            return
        assert conn.user is not None
        after: int | None = None
        try:
            if target.couple_id is None:
                raise Unauthorized("no such couple")
            couple = await conn.gateway.chat.member_couple(conn.user.id, target.couple_id)
            resume = _header(event.headers, RESUME_HEADER)
            if resume is not None:
                try:
                    after = parse_seq(resume, RESUME_HEADER, header=True)
                except SendFailed as exc:
                    # Told, and subscribed from the latest message as without the header.
                    self.send_error(exc)
        except ChatError as exc:
            # Refused: the id is free again, so the client may retry with it.
            conn.session.discard_subscription(event.id)
            self.send_error(exc)
            return
        # The couple's own id, not the one parsed from the destination, which would otherwise
        # live as long as the subscription.
        await self.subscriptions.open(
            event.id, event.destination, couple.id, after=after, receipt=event.receipt
        )

    async def _on_unsubscribe(self, event: Unsubscribe) -> None:
        if event.id == self.errors_sub:
            self.errors_sub = None
        if self.subscriptions.events is not None and event.id == self.subscriptions.events.id:
            await self.subscriptions.close_events()
        await self.subscriptions.close(event.id)
        self._conn.receipt(event.receipt)

    # -- SEND -----------------------------------------------------------------------------

    def _on_send(self, event: Send) -> Awaitable[None] | None:
        conn = self._conn
        user = conn.user
        assert user is not None
        target = parse_app_destination(event.destination)
        if target is None or target.couple_id is None or target.route is not Route.SEND:
            return self._guarded(self._on_control(event, target, user), None)
        _RECEIVED_OVER_STOMP.inc()
        chat = conn.gateway.chat
        try:
            request = parse_send_request(
                event.body, max_text_length=conn.gateway.settings.max_text_length
            )
            inflight = self._inflight
            if inflight is None or len(inflight) < MAX_INFLIGHT_SENDS:
                acknowledge = self._acknowledger(request, event.receipt)
                future = chat.try_accept(user, target.couple_id, request, acknowledge=acknowledge)
                if future is not None:
                    self._track(future)
                    return None
        except ChatError as exc:
            self.send_error(exc)
            return None
        return self._guarded(self._accept(user, target.couple_id, request, event.receipt), None)

    async def _accept(
        self, user: User, couple_id: uuid.UUID, request: SendRequest, receipt: str | None
    ) -> None:
        """The waiting fallback: for room under the session's in-flight bound, for a
        membership lookup, for room in the write queue; never for the commit itself."""
        while self._inflight and len(self._inflight) >= MAX_INFLIGHT_SENDS:
            first = self._inflight[0]
            if first.done():
                # Awaiting a done future does not yield; its done-callback (which
                # removes it) runs on the next loop turn.
                await asyncio.sleep(0)
                continue
            with contextlib.suppress(Exception):
                await asyncio.shield(first)
        try:
            future = await self._conn.gateway.chat.accept(
                user, couple_id, request, acknowledge=self._acknowledger(request, receipt)
            )
        except ChatError as exc:
            self.send_error(exc)
            return
        self._track(future)

    def _track(self, future: asyncio.Future[Message]) -> None:
        """Count the SEND in flight until its commit resolves (the in-flight bound)."""
        if self._inflight is None:
            self._inflight = []
        self._inflight.append(future)

    def _acknowledger(
        self, request: SendRequest, receipt: str | None
    ) -> Callable[[asyncio.Future[Message]], None]:
        """What the chat service calls as soon as the commit resolves, before it publishes
        the message: the RECEIPT (or the error), so a client may pipeline SENDs and gets
        each RECEIPT ahead of its own copy of the message."""

        def done(fut: asyncio.Future[Message]) -> None:
            if self._inflight is not None:
                with contextlib.suppress(ValueError):
                    self._inflight.remove(fut)
            if fut.cancelled() or self._conn.closing:
                return
            exc = fut.exception()
            if exc is None:
                self._conn.receipt(receipt)
            elif isinstance(exc, ChatError):
                self.send_error(exc)
            else:
                self.send_error(
                    SendFailed("the message could not be stored", temp_id=request.temp_id)
                )

        return done

    async def wait_inflight(self) -> None:
        """Until every SEND queued so far has committed (or failed), its RECEIPT written."""
        if self._inflight:
            # Each RECEIPT is written when its commit resolves (the chat service calls the
            # acknowledger before the future's waiters run).
            await asyncio.gather(*self._inflight, return_exceptions=True)

    async def _on_control(self, event: Send, target: Target | None, user: User) -> None:
        """Read marks, typing and changes of sent messages; anything else under SEND is
        refused (UNAUTHORIZED)."""
        conn = self._conn
        chat = conn.gateway.chat
        try:
            if target is None:
                raise Unauthorized(
                    "SEND is accepted only on "
                    "/app/chat/{coupleId}[/read|/typing|/edit|/unsend|/delete|/react], "
                    f"not {event.destination[:100]}"
                )
            if target.couple_id is None:
                raise Unauthorized("no such couple")
            receipt = event.receipt

            def acknowledge() -> None:
                conn.receipt(receipt)

            if target.route in CHANGE_ROUTES:
                change = parse_change_request(
                    target.route.value,
                    event.body,
                    max_text_length=conn.gateway.settings.max_text_length,
                )

                def acknowledged(future: asyncio.Future[Any]) -> None:
                    if not future.cancelled() and future.exception() is None:
                        acknowledge()

                await (await chat.change(user, target.couple_id, change, acknowledge=acknowledged))
            elif target.route is Route.READ:
                request = parse_read_request(event.body)
                await chat.mark_read(user, target.couple_id, request, acknowledge=acknowledge)
            else:
                typing = parse_typing_request(event.body)
                await chat.typing(user, target.couple_id, typing, acknowledge=acknowledge)
        except ChatError as exc:
            self.send_error(exc)

    # -- DISCONNECT and the end -----------------------------------------------------------

    async def _on_disconnect(self, event: Disconnect) -> None:
        # A DISCONNECT receipt promises that everything before it was processed.
        await self.wait_inflight()
        conn = self._conn
        conn.receipt(event.receipt)
        conn.session.close_after_disconnect()
        conn.close()

    async def closed(self) -> None:
        """The connection is gone: its user's presence counts one session less."""
        user = self._conn.user
        if self._announced and user is not None:
            self._announced = False
            conn = self._conn
            conn.log.info("session %s: user %s disconnected", conn.session_id, user.id)
            with contextlib.suppress(Exception):
                await conn.gateway.chat.session_closed(user)

    def send_error(self, exc: ChatError) -> None:
        """An error payload on this session's ``/user/queue/errors`` subscription."""
        conn = self._conn
        conn.log.info("session %s: %s %s", conn.session_id, exc.code.value, exc.detail)
        metrics.ERRORS.labels(exc.code.value).inc()
        if self.errors_sub is None or conn.session.state is not SessionState.CONNECTED:
            return
        conn.push_message(ERRORS_QUEUE, self.errors_sub, codec.dumps(exc.payload()))


def _header(headers: tuple[tuple[str, str], ...], name: str) -> str | None:
    for key, value in headers:
        if key == name:
            return value
    return None


DEVICE_HEADER = "x-device-id"


def _device_id(headers: tuple[tuple[str, str], ...]) -> str | None:
    """The device a session says it is (``x-device-id``, as registered with PUT
    /chat/devices/{deviceId}); a blank or over-long id says nothing."""
    value = _header(headers, DEVICE_HEADER)
    if value is None or not value.strip() or len(value) > DEVICE_ID_MAX:
        return None
    return value


def _connect_token(headers: tuple[tuple[str, str], ...]) -> str | None:
    """The token of a CONNECT frame: ``Authorization`` (any case), else ``passcode``/``token``."""
    fallback: str | None = None
    for key, value in headers:
        lowered = key.lower()
        if lowered == "authorization":
            return bearer_token(value)
        if lowered in ("passcode", "token") and fallback is None and value:
            fallback = value
    return bearer_token(fallback)
