"""The socket side of one :class:`StompSession`, for any transport that carries frames.

The WebSocket endpoints and the SockJS sessions all drive this class: they feed it the bytes
they receive (:meth:`StompConnection.feed`) and give it a :class:`Transport` to write frames
to. A frame is handled at once, inside ``feed``, whenever nothing has to be waited for (the
common SEND: membership cached, room in the write queue); the first frame that must wait (a
CONNECT, a SUBSCRIBE, a database lookup) continues in a task, and reading pauses until it is
done, so frames are still handled in order. An idle connection owns no task.

Everything the connection holds is bounded: the bytes waiting for the peer (a consumer that
falls that far behind is closed), the SENDs awaiting commit, the subscriptions (the STOMP
session counts those).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from ieum_chat.aio import stop_tasks_after
from ieum_chat.auth import Principal, bearer_token
from ieum_chat.chat import codec
from ieum_chat.chat.directory import Revocation
from ieum_chat.chat.envelope import channel_for
from ieum_chat.chat.requests import (
    SendRequest,
    parse_read_request,
    parse_send_request,
    parse_typing_request,
)
from ieum_chat.chat.service import ChatService
from ieum_chat.config import Settings
from ieum_chat.errors import (
    AuthError,
    ChatError,
    ErrorCode,
    SendFailed,
    SendNotStored,
    StoreError,
    Unauthorized,
    error_payload,
)
from ieum_chat.gateway.hub import Hub
from ieum_chat.gateway.routing import (
    ERRORS_QUEUE,
    Route,
    parse_app_destination,
    parse_subscription,
)
from ieum_chat.gateway.transports import QueuedTransport, Transport
from ieum_chat.observability import metrics
from ieum_chat.stomp import (
    Ack,
    ConnectRequested,
    Disconnect,
    Nack,
    RemoteProtocolError,
    Send,
    SessionState,
    StompSession,
    Subscribe,
    TimerAction,
    Unsubscribe,
)
from ieum_chat.store.records import Message, User

__all__ = ["Gateway", "Receive", "StompConnection"]

log = logging.getLogger(__name__)

_session_ids = itertools.count(1)
MAX_INFLIGHT_SENDS = 64
# Bound once: labels() looks the child up under a lock on every call.
_RECEIVED_OVER_STOMP = metrics.MESSAGES_RECEIVED.labels("stomp")
_DELIVERED = metrics.MESSAGES_DELIVERED
Receive = Callable[[], Awaitable[bytes | None]]
MAX_HELD = 1024  # live messages held per subscription while it catches up
REPLAY_PAGE = 500


@dataclass(slots=True, eq=False)
class Gateway:
    """What every connection of this process shares."""

    settings: Settings
    chat: ChatService
    hub: Hub
    connections: set[StompConnection] = field(default_factory=set)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    accepting: bool = True

    async def drain(self, grace: float) -> int:
        """Graceful shutdown: refuse new connections, let each session finish the SENDs it
        has in flight, then send it an ERROR (SERVER_SHUTDOWN: reconnect) and close it, all
        within ``grace`` seconds. Returns how many sessions were told."""
        self.accepting = False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        sessions = list(self.connections)
        if sessions:
            tasks = [asyncio.create_task(c.shutdown()) for c in sessions]
            await stop_tasks_after(tasks, deadline - loop.time(), "session shutdown")
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=max(0.0, deadline - loop.time()))
        return len(sessions)

    def session_count(self) -> int:
        return sum(1 for c in self.connections if c.user is not None)

    def backlog_bytes(self) -> int:
        return sum(c.transport.backlog() for c in self.connections)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` in a task this gateway owns (a connection's teardown)."""
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def resync(self) -> None:
        """Called when the broker reconnected: every local subscription catches up by seq."""
        for connection in self.connections:
            connection.resync()

    def revoke(self, revocation: Revocation) -> None:
        """Users or couples lost access (deleted or re-paired, on any node, by anyone): the
        sessions of a deleted user end with ERROR ACCESS_REVOKED, and sessions subscribed to
        a couple their user is no longer in end with ERROR COUPLE_DISSOLVED. Closing them
        also drops their subscriptions; the client's reconnect is checked afresh."""
        for conn in list(self.connections):
            user = conn.user or conn._handshake_user
            if user is None:
                continue
            if revocation.user_revoked(user.id):
                code = ErrorCode.ACCESS_REVOKED
            elif any(
                revocation.couple_revoked(user.id, sub.couple_id)
                for sub in conn._subscriptions.values()
            ):
                code = ErrorCode.COUPLE_DISSOLVED
            else:
                continue
            conn.log.info("session %s: %s", conn.session_id, code.value)
            conn._fail(code.value, error_payload(code))


class _Subscription:
    """One SUBSCRIBE to a couple topic: a hub listener writing MESSAGE frames for its id.

    Chat messages go out strictly in seq order, each once. A seq that skips ahead means an
    earlier message is still on its way from another node, or was published while the
    broker was down: the subscription holds what arrives and catches up from the database
    (the source of truth), then releases what it held.
    """

    __slots__ = ("catching_up", "conn", "couple_id", "destination", "held", "id", "last_seq")

    def __init__(
        self, conn: StompConnection, sub_id: str, destination: str, couple_id: uuid.UUID
    ) -> None:
        self.conn = conn
        self.id = sub_id
        self.destination = destination
        self.couple_id = couple_id
        self.last_seq = 0  # the highest seq delivered (or, at the start, not asked for)
        self.catching_up = True  # until the first replay has run
        self.held: list[tuple[int, bytes]] = []

    def deliver(self, seq: int, body: bytes) -> None:
        if self.catching_up:
            self._hold(seq, body)
        elif seq == 0:  # read receipts, typing, presence: not stored, not ordered
            self.conn.push_message(self.destination, self.id, body)
        elif seq <= self.last_seq:
            return  # delivered already (by a replay)
        elif seq == self.last_seq + 1:
            self.last_seq = seq
            self.conn.push_message(self.destination, self.id, body)
        else:
            self._hold(seq, body)
            self.conn.catch_up(self)

    def _hold(self, seq: int, body: bytes) -> None:
        if len(self.held) >= MAX_HELD:
            self.conn.overflow()
            return
        self.held.append((seq, body))


class _SessionLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Adds session, transport and user to every record (JSON logs carry them as fields)."""

    def __init__(self, conn: StompConnection) -> None:
        super().__init__(log, {})
        self.conn = conn

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        conn = self.conn
        kwargs["extra"] = {
            "session": conn.session_id,
            "transport": conn.transport_name,
            "user": str(conn.user.id) if conn.user is not None else None,
        }
        return msg, kwargs


class StompConnection:
    # Slots: thousands of these live in one process, most of them idle.
    __slots__ = (
        "__weakref__",
        "_announced",
        "_busy",
        "_closing",
        "_draining",
        "_errors_sub",
        "_handshake_principal",
        "_handshake_user",
        "_inflight",
        "_log",
        "_message_ids",
        "_subscriptions",
        "_tasks",
        "_timer",
        "_torn_down",
        "chat",
        "gateway",
        "remote",
        "session",
        "session_id",
        "transport",
        "transport_name",
        "user",
    )

    def __init__(
        self,
        gateway: Gateway,
        transport: Transport,
        *,
        transport_name: str,
        principal: Principal | None = None,
        user: User | None = None,
        preferred_version: str | None = None,
        remote: str | None = None,
    ) -> None:
        settings = gateway.settings
        self.gateway = gateway
        self.chat = gateway.chat
        self.transport = transport
        self.transport_name = transport_name
        self.remote = remote
        self.session_id = f"{next(_session_ids):x}-{uuid.uuid4().hex[:8]}"
        self.session = StompSession(
            now=time.monotonic(),
            server_heartbeat=settings.heartbeat_ms,
            connect_timeout=settings.connect_timeout,
            max_frame_size=settings.max_frame_size,
            max_subscriptions=settings.max_subscriptions,
            preferred_version=preferred_version,
        )
        self._handshake_principal = principal
        self._handshake_user = user
        self.user: User | None = None
        self._subscriptions: dict[str, _Subscription] = {}
        self._errors_sub: str | None = None
        self._closing = False
        self._draining = False
        self._torn_down = False
        self._message_ids = 0
        # Created on first use: most connections are idle most of the time.
        self._inflight: list[asyncio.Future[Message]] | None = None
        self._tasks: set[asyncio.Task[None]] | None = None
        self._log: _SessionLog | None = None
        self._busy: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._announced = False

    @property
    def log(self) -> _SessionLog:
        if self._log is None:
            self._log = _SessionLog(self)
        return self._log

    @property
    def closing(self) -> bool:
        return self._closing

    # -- driving --------------------------------------------------------------------------

    def open(self) -> None:
        """The transport is up: count the connection and start the CONNECT deadline."""
        self.gateway.connections.add(self)
        metrics.CONNECTIONS.labels(self.transport_name).inc()
        self._schedule_timer()

    def feed(self, data: bytes) -> None:
        """Bytes from the peer. Frames are handled now when possible, else in order by a
        task (while it runs, the transport is asked to pause reading)."""
        if self._closing:
            return
        try:
            self.session.receive_data(data, time.monotonic())
        except RemoteProtocolError as exc:
            self._protocol_error(exc)
            return
        if self._busy is None:
            self._pump()

    async def settled(self) -> None:
        """Wait until the frames fed so far have been handled (for transports that read by
        awaiting, instead of pausing)."""
        while self._busy is not None:
            await asyncio.wait({self._busy})

    def _next_event(self) -> object | None:
        if self._closing or self._draining:
            return None
        try:
            return self.session.next_event()
        except RemoteProtocolError as exc:
            self._protocol_error(exc)
            return None

    def _pump(self) -> None:
        while (event := self._next_event()) is not None:
            if not self._handle_now(event):
                self._busy = asyncio.create_task(
                    self._handle_in_order(event), name=f"stomp-{self.session_id}"
                )
                self.transport.pause_reading()
                return

    async def _handle_in_order(self, event: object) -> None:
        try:
            await self._handle(event)
            while (event := self._next_event()) is not None:
                if not self._handle_now(event):
                    await self._handle(event)
        except Exception:
            self.log.exception("session %s failed", self.session_id)
            self._close()
        finally:
            self._busy = None
            if not self._closing:
                self.transport.resume_reading()

    def _protocol_error(self, exc: RemoteProtocolError) -> None:
        self.log.info("session %s: protocol error: %s", self.session_id, exc.message)
        self._fail(exc.message)

    async def run(self, transport: QueuedTransport, receive: Receive) -> None:
        """Serve over a transport that reads by awaiting ``receive`` (``None``: the peer is
        gone) and writes through ``transport``'s writer task; then clean up."""
        self.open()
        writer = asyncio.create_task(transport.run(), name=f"stomp-write-{self.session_id}")
        reader = asyncio.create_task(self._read_loop(receive), name=f"stomp-read-{self.session_id}")
        try:
            done, _ = await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
            if reader in done and self._closing and not writer.done():
                # Let the writer flush the last frames (an ERROR, a RECEIPT) and close.
                await asyncio.wait({writer}, timeout=5.0)
        finally:
            for task in (reader, writer):
                task.cancel()
            for result in await asyncio.gather(reader, writer, return_exceptions=True):
                if isinstance(result, Exception):
                    self.log.error("session %s failed", self.session_id, exc_info=result)
            await self.teardown()

    async def _read_loop(self, receive: Receive) -> None:
        while not self._closing:
            data = await receive()
            if data is None:
                return
            self.feed(data)
            await self.settled()

    # -- events ---------------------------------------------------------------------------

    def _handle_now(self, event: object) -> bool:
        """Handle ``event`` without waiting, if it can be; False leaves it to :meth:`_handle`."""
        if isinstance(event, Send):
            return self._send_now(event)
        if isinstance(event, Ack | Nack):  # nothing to do: every subscription is auto-ack
            if event.receipt:
                self._push(self.session.receipt(event.receipt))
            return True
        return False

    async def _handle(self, event: object) -> None:
        try:
            await self._dispatch(event)
        except StoreError as exc:
            # The database failed under a membership or identity lookup: the client did
            # nothing wrong. A session that is not yet connected is closed (it reconnects);
            # otherwise the frame is refused with an error payload and the session goes on.
            self.log.warning("session %s: database unavailable: %s", self.session_id, exc)
            if self.user is None:
                self._fail(
                    ErrorCode.SEND_FAILED.value,
                    error_payload(ErrorCode.SEND_FAILED, detail="database unavailable; retry"),
                )
            else:
                self._send_error(SendNotStored("database unavailable; retry"))

    async def _dispatch(self, event: object) -> None:
        if isinstance(event, Send):
            await self._on_send(event)
        elif isinstance(event, Subscribe):
            await self._on_subscribe(event)
        elif isinstance(event, Unsubscribe):
            await self._on_unsubscribe(event)
        elif isinstance(event, ConnectRequested):
            await self._on_connect(event)
        elif isinstance(event, Disconnect):
            await self._on_disconnect(event)

    async def _on_connect(self, event: ConnectRequested) -> None:
        token = _connect_token(event.headers)
        try:
            if token is not None:
                principal, user = await self.chat.authenticate(token)
            elif self._handshake_principal is not None and self._handshake_user is not None:
                principal, user = self._handshake_principal, self._handshake_user
                if principal.expires_at <= time.time():
                    raise AuthError("token expired")
            else:
                raise AuthError("missing token")
        except AuthError as exc:
            self.log.info("session %s: authentication failed: %s", self.session_id, exc.detail)
            metrics.AUTH_FAILURES.labels("connect").inc()
            self._fail(ErrorCode.AUTH_FAILED.value, exc.payload())
            return
        # Counted (or refused past the per-user limit) before CONNECTED goes out; a teardown
        # meanwhile gives the place back (it closes what _announced says was opened).
        self.user, self._announced = user, True
        try:
            await self.chat.session_opened(user)
        except ChatError as exc:
            self.user, self._announced = None, False
            self.log.info("session %s: refused: %s", self.session_id, exc.detail)
            self._fail(exc.code.value, exc.payload())
            return
        self._push(
            self.session.accept(
                time.monotonic(),
                (("session", self.session_id), ("user-name", str(user.id))),
            )
        )
        self.session.set_expiry(time.monotonic() + (principal.expires_at - time.time()))
        self._schedule_timer()
        self.log.info(
            "session %s: user %s connected over %s (STOMP %s)",
            self.session_id,
            user.id,
            self.transport_name,
            self.session.version,
        )

    async def _on_subscribe(self, event: Subscribe) -> None:
        target = parse_subscription(event.destination)
        if target is None:
            self._fail(f"no such destination: {event.destination[:100]}")
            return
        if target.route is Route.ERRORS:
            self._errors_sub = event.id
        else:
            assert self.user is not None
            try:
                if target.couple_id is None:
                    raise Unauthorized("no such couple")
                await self.chat.member_couple(self.user.id, target.couple_id)
            except ChatError as exc:
                # Refused: the id is free again, so the client may retry with it.
                self.session.discard_subscription(event.id)
                self._send_error(exc)
                return
            sub = _Subscription(self, event.id, event.destination, target.couple_id)
            self._subscriptions[event.id] = sub
            resume = _header(event.headers, "x-resume-after-seq")
            await self._start_subscription(sub, resume, event.receipt)
            return
        if event.receipt:
            self._push(self.session.receipt(event.receipt))

    async def _start_subscription(
        self,
        sub: _Subscription,
        resume: str | None,
        receipt: str | None,
    ) -> None:
        """Listen (the RECEIPT goes out once listening), then replay from the database what
        the client asked for: ``x-resume-after-seq: N`` delivers every message after N; a
        plain SUBSCRIBE starts after the last message committed so far. Live messages that
        arrive meanwhile are held, then released above the replayed seq: no gap, no
        duplicate at the seam."""
        after: int | None = None
        if resume is not None:
            try:
                after = int(resume)
                if after < 0:
                    raise ValueError
            except ValueError:
                self._send_error(SendFailed("'x-resume-after-seq' must be a non-negative integer"))
                after = None
        await self.gateway.hub.add(channel_for(sub.couple_id), sub)
        try:
            sub.last_seq = after if after is not None else await self.chat.last_seq(sub.couple_id)
        except StoreError:
            self._fail("the history could not be read; reconnect and resume")
            return
        # Only now: a message the client sends after this RECEIPT gets a seq above last_seq.
        if receipt:
            self._push(self.session.receipt(receipt))
        await self._replay(sub)

    def catch_up(self, sub: _Subscription) -> None:
        """Start a catch-up from the database for ``sub`` (it holds live messages meanwhile)."""
        if self._closing:
            return
        sub.catching_up = True
        task = asyncio.create_task(self._replay(sub), name=f"catch-up-{self.session_id}")
        if self._tasks is None:
            self._tasks = set()
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _replay(self, sub: _Subscription) -> None:
        try:
            while not self._closing:
                page = await self.chat.replay(sub.couple_id, sub.last_seq, limit=REPLAY_PAGE)
                for seq, body in page:
                    if seq > sub.last_seq:
                        sub.last_seq = seq
                        self.push_message(sub.destination, sub.id, body)
                if len(page) < REPLAY_PAGE:
                    break
        except StoreError as exc:
            self.log.warning("session %s: catch-up failed: %s", self.session_id, exc)
            self._fail("the history could not be read; reconnect and resume")
            return
        finally:
            sub.catching_up = False
        held, sub.held = sub.held, []
        for seq, body in held:
            sub.deliver(seq, body)

    def resync(self) -> None:
        """The broker may have lost messages: catch every subscription up."""
        for sub in self._subscriptions.values():
            if not sub.catching_up:
                self.catch_up(sub)

    async def _on_unsubscribe(self, event: Unsubscribe) -> None:
        if event.id == self._errors_sub:
            self._errors_sub = None
        sub = self._subscriptions.pop(event.id, None)
        if sub is not None:
            await self.gateway.hub.remove(channel_for(sub.couple_id), sub)
        if event.receipt:
            self._push(self.session.receipt(event.receipt))

    def _send_now(self, event: Send) -> bool:
        """The hot path: a chat message to a couple whose membership is cached, with room
        in the write queue and under the in-flight bound, is queued without a task."""
        user = self.user
        target = parse_app_destination(event.destination)
        if (
            user is None
            or target is None
            or target.route is not Route.SEND
            or target.couple_id is None
            or (self._inflight is not None and len(self._inflight) >= MAX_INFLIGHT_SENDS)
            or not self.chat.is_member_cached(user.id, target.couple_id)
            or not self.chat.can_enqueue_now(target.couple_id)
        ):
            return False
        _RECEIVED_OVER_STOMP.inc()
        try:
            request = parse_send_request(
                event.body, max_text_length=self.gateway.settings.max_text_length
            )
            future = self.chat.enqueue_nowait(
                user,
                target.couple_id,
                request,
                acknowledge=self._acknowledger(request, event.receipt),
            )
        except ChatError as exc:
            self._send_error(exc)
            return True
        self._track(future)
        return True

    async def _on_send(self, event: Send) -> None:
        assert self.user is not None
        user = self.user
        target = parse_app_destination(event.destination)
        try:
            if target is None:
                raise Unauthorized(
                    f"SEND is accepted only on /app/chat/{{coupleId}}[/read|/typing], "
                    f"not {event.destination[:100]}"
                )
            if target.couple_id is None:
                raise Unauthorized("no such couple")
            if target.route is Route.SEND:
                _RECEIVED_OVER_STOMP.inc()
                request = parse_send_request(
                    event.body, max_text_length=self.gateway.settings.max_text_length
                )
                try:
                    await self.chat.member_couple(user.id, target.couple_id)
                except Unauthorized as exc:
                    exc.temp_id = request.temp_id
                    raise
                await self._submit(user, target.couple_id, request, event.receipt)
                return
            receipt = event.receipt

            def acknowledge() -> None:
                if receipt:
                    self._push(self.session.receipt(receipt))

            if target.route is Route.READ:
                await self.chat.mark_read(
                    user, target.couple_id, parse_read_request(event.body), acknowledge=acknowledge
                )
            else:
                await self.chat.typing(
                    user,
                    target.couple_id,
                    parse_typing_request(event.body),
                    acknowledge=acknowledge,
                )
        except ChatError as exc:
            self._send_error(exc)

    async def _submit(
        self,
        user: User,
        couple_id: uuid.UUID,
        request: SendRequest,
        receipt: str | None,
    ) -> None:
        """Queue the message for commit, waiting for room (at most MAX_INFLIGHT_SENDS of a
        session wait at once, and the write queue is bounded), not for the commit."""
        while self._inflight and len(self._inflight) >= MAX_INFLIGHT_SENDS:
            first = self._inflight[0]
            if first.done():
                # Awaiting a done future does not yield; its done-callback (which
                # removes it) runs on the next loop turn.
                await asyncio.sleep(0)
                continue
            with contextlib.suppress(Exception):
                await asyncio.shield(first)
        future = await self.chat.enqueue(
            user, couple_id, request, acknowledge=self._acknowledger(request, receipt)
        )
        self._track(future)

    def _track(self, future: asyncio.Future[Message]) -> None:
        if self._inflight is None:
            self._inflight = []
        self._inflight.append(future)

    def _acknowledger(
        self, request: SendRequest, receipt: str | None
    ) -> Callable[[asyncio.Future[Message]], None]:
        """What the chat service calls as soon as the commit resolves (before it publishes
        the message): the RECEIPT, or the error, so a client may pipeline SENDs."""

        def done(fut: asyncio.Future[Message]) -> None:
            if self._inflight is not None:
                with contextlib.suppress(ValueError):
                    self._inflight.remove(fut)
            if fut.cancelled() or self._closing:
                return
            exc = fut.exception()
            if exc is None:
                if receipt:
                    self._push(self.session.receipt(receipt))
            elif isinstance(exc, ChatError):
                self._send_error(exc)
            else:
                self._send_error(
                    SendFailed("the message could not be stored", temp_id=request.temp_id)
                )

        return done

    async def _wait_inflight(self) -> None:
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
            await asyncio.sleep(0)  # let the done-callbacks queue their receipts

    async def _on_disconnect(self, event: Disconnect) -> None:
        # A DISCONNECT receipt promises that everything before it was processed.
        await self._wait_inflight()
        if event.receipt:
            self._push(self.session.receipt(event.receipt))
        self.session.close_after_disconnect()
        self._close()

    async def shutdown(self) -> None:
        """Stop taking frames, wait for the SENDs in flight to commit (their RECEIPTs go
        out), then ERROR with SERVER_SHUTDOWN and close: the client reconnects elsewhere
        or later and resumes by seq."""
        if self._closing:
            return
        self._draining = True
        await self._wait_inflight()
        self._fail(ErrorCode.SERVER_SHUTDOWN.value, error_payload(ErrorCode.SERVER_SHUTDOWN))

    # -- output ---------------------------------------------------------------------------

    def push_message(self, destination: str, sub_id: str, body: bytes) -> None:
        if self._closing:
            return
        self._message_ids += 1
        frame = self.session.message(
            destination=destination,
            subscription=sub_id,
            message_id=f"{self.session_id}-{self._message_ids}",
            body=body,
        )
        _DELIVERED.inc()
        self._push(frame)

    def _push(self, frame: bytes) -> None:
        if self._closing:
            return
        if not self.transport.write(frame):
            self.overflow()
            return
        self.session.note_sent(time.monotonic())

    def overflow(self) -> None:
        """The peer reads too slowly: drop what is queued, ERROR, close. Memory stays
        bounded; the client reconnects and resumes by seq."""
        if self._closing:
            return
        self.log.warning(
            "session %s: %d bytes not taken by the peer: closing slow consumer",
            self.session_id,
            self.transport.backlog(),
        )
        self.transport.discard()
        metrics.SLOW_CONSUMERS.inc()
        self._fail("slow consumer: too many undelivered frames; reconnect and resume")

    def _send_error(self, exc: ChatError) -> None:
        """An error payload on this session's ``/user/queue/errors`` subscription."""
        self.log.info("session %s: %s %s", self.session_id, exc.code.value, exc.detail)
        metrics.ERRORS.labels(exc.code.value).inc()
        if self._errors_sub is None or self.session.state is not SessionState.CONNECTED:
            return
        self.push_message(ERRORS_QUEUE, self._errors_sub, codec.dumps(exc.payload()))

    def _fail(self, message: str, payload: dict[str, object] | None = None) -> None:
        """STOMP ERROR, then close (STOMP 1.2: the server closes after sending ERROR)."""
        if self._closing or self.session.state is SessionState.CLOSED:
            self._close()
            return
        body = codec.dumps(payload) if payload is not None else b""
        code = payload.get("code") if payload is not None else None
        metrics.ERRORS.labels(code if isinstance(code, str) else "PROTOCOL").inc()
        # Past the bound or not, the last frame goes out: the close follows it.
        self.transport.write(self.session.error(message, body=body))
        self._close()

    def _close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._cancel_timer()
        self.transport.close()

    # -- timers ---------------------------------------------------------------------------

    def _schedule_timer(self) -> None:
        self._cancel_timer()
        deadline = self.session.get_timer()
        if deadline is None or self._closing:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, deadline - time.monotonic())
        self._timer = loop.call_at(loop.time() + delay, self._on_timer)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self) -> None:
        self._timer = None
        action = self.session.handle_timer(time.monotonic())
        if action is TimerAction.SEND_HEARTBEAT:
            self._push(b"\n")
        elif action is TimerAction.CONNECT_TIMEOUT:
            self.log.info("session %s: no CONNECT in time", self.session_id)
            self._fail("no CONNECT frame received in time")
        elif action is TimerAction.PEER_TIMEOUT:
            self.log.info("session %s: peer heart-beats stopped", self.session_id)
            self._close()
        elif action is TimerAction.EXPIRED:
            self.log.info("session %s: token expired", self.session_id)
            self._fail(ErrorCode.TOKEN_EXPIRED.value, error_payload(ErrorCode.TOKEN_EXPIRED))
        self._schedule_timer()

    # -- teardown -------------------------------------------------------------------------

    def connection_lost(self) -> None:
        """The transport is gone (for transports that call back instead of awaiting)."""
        self._closing = True
        self._cancel_timer()
        self.gateway.spawn(self.teardown())

    async def teardown(self) -> None:
        if self._torn_down:
            return
        self._torn_down = True
        if self in self.gateway.connections:
            self.gateway.connections.discard(self)
            metrics.CONNECTIONS.labels(self.transport_name).dec()
        self._closing = True
        self._cancel_timer()
        tasks = list(self._tasks or ())
        if self._busy is not None:
            tasks.append(self._busy)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        subs, self._subscriptions = self._subscriptions, {}
        for sub in subs.values():
            with contextlib.suppress(Exception):
                await self.gateway.hub.remove(channel_for(sub.couple_id), sub)
        if self._announced and self.user is not None:
            self._announced = False
            self.log.info("session %s: user %s disconnected", self.session_id, self.user.id)
            with contextlib.suppress(Exception):
                await self.chat.session_closed(self.user)


def _header(headers: tuple[tuple[str, str], ...], name: str) -> str | None:
    for key, value in headers:
        if key == name:
            return value
    return None


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
